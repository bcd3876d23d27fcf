package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/backlothq/backlot/jobs"
)

// A worker reads its payload, reports progress and log lines (shown by the
// console and `backlot jobs show`), and asks for a later retry when the
// vendor says so.
func ExampleWorkFunc() {
	var sendReminder jobs.WorkFunc = func(ctx context.Context, j *jobs.Job) error {
		var p struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal(j.Payload, &p); err != nil {
			return fmt.Errorf("payload: %w", err) // retried, then failed
		}
		jobs.Logf(ctx, "sending reminder to %s (attempt %d)", p.UserID, j.Attempt)
		jobs.SetProgress(ctx, 50)
		if vendorBusy := p.UserID == ""; vendorBusy {
			return jobs.RetryAfter(30*time.Second, errors.New("vendor answered 429"))
		}
		jobs.SetProgress(ctx, 100)
		return nil
	}
	// Outside the engine Logf and SetProgress do nothing, so a worker can
	// be called directly in a unit test.
	err := sendReminder(context.Background(), &jobs.Job{Payload: []byte(`{"user_id":"u1"}`), Attempt: 1})
	fmt.Println(err)
	err = sendReminder(context.Background(), &jobs.Job{Payload: []byte(`{}`), Attempt: 1})
	var ra *jobs.RetryAfterError
	fmt.Println(errors.As(err, &ra), ra.After)
	// Output:
	// <nil>
	// true 30s
}
