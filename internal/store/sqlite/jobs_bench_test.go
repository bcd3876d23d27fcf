package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/store"
	"github.com/backlothq/backlot/internal/testutil"
)

// BenchmarkInsertJobs measures the store's cost of one group-commit batch
// of 128 jobs with dedupe keys (ns/op is per row).
func BenchmarkInsertJobs(b *testing.B) {
	db := testutil.SQLite(b)
	ctx := context.Background()
	batch := make([]store.JobInsert, 128)
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		for k := range batch {
			n++
			batch[k] = store.JobInsert{Kind: "bench", Queue: "default", Payload: []byte(`{"type":"invoice.paid","data":{"id":"in_123"}}`),
				MaxAttempts: 10, DedupeKey: fmt.Sprintf("wh_%d", n)}
		}
		if _, err := db.InsertJobs(ctx, time.Now(), batch); err != nil {
			b.Fatal(err)
		}
	}
}
