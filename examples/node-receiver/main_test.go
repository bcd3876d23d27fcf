package nodereceiver

import (
	"testing"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestMain removes the built backlot binary after the tests.
func TestMain(m *testing.M) { testutil.Main(m) }
