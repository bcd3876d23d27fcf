package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/backlothq/backlot/internal/testutil"
)

// TestMakeInstall: `make install` builds the binary with the version
// stamped in and copies it to $(PREFIX)/bin, where it runs.
func TestMakeInstall(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is needed to test the install target: %v", err)
	}
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	prefix := filepath.Join(tmp, "prefix")
	cmd := exec.Command("make", "-s", "-C", root, "install",
		"PREFIX="+prefix, "BIN="+filepath.Join(tmp, "build", "backlot"), "VERSION=v9.9.9-installtest")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(prefix, "bin", "backlot")
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatalf("make install did not put backlot in $(PREFIX)/bin: %v", err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s is not executable: %v", bin, fi.Mode())
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "backlot v9.9.9-installtest" {
		t.Errorf("installed backlot version = %q (%v), want the stamped version", out, err)
	}
}
