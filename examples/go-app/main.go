// Command go-app is backlot used as a Go framework, in one file: a route
// behind an authenticator that answers errors with backlot's JSON error
// envelope and enqueues a job, and the worker that handles the job.
//
//	go run ./examples/go-app --config examples/go-app/backlot.yaml
//
// Then, with a token from `backlot token mint --config
// examples/go-app/backlot.yaml --sub user-1`:
//
//	curl -X POST -H "Authorization: Bearer $TOKEN" -d '{"note":"hi"}' localhost:8080/api/notes
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/jobs"
)

func main() {
	configPath := flag.String("config", "backlot.yaml", "configuration file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *configPath, nil); err != nil {
		fmt.Fprintln(os.Stderr, "go-app:", err)
		os.Exit(1)
	}
}

// note is the job payload: who wrote what.
type note struct {
	By   string `json:"by"`
	Text string `json:"note"`
}

// run builds the app, adds the route and the worker, and serves until ctx
// ends. With ln nil it listens on server.listen.
func run(ctx context.Context, configPath string, ln net.Listener) error {
	app, err := backlot.New(backlot.WithConfigFile(configPath))
	if err != nil {
		return err
	}

	// POST /api/notes: only callers with a token from the "users"
	// authenticator get here; the Principal says who they are.
	app.Handle("POST /api/notes", []string{"users"}, func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context()) // always there behind an authenticator
		var in struct {
			Note string `json:"note"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil || in.Note == "" {
			backlot.WriteError(w, r, backlot.NewError(http.StatusBadRequest, "invalid_note", `the body must be {"note": "<text>"}`))
			return
		}
		payload, _ := json.Marshal(note{By: p.Subject, Text: in.Note})
		res, err := app.Jobs().Enqueue(r.Context(), "notes.save", payload, nil)
		if err != nil {
			backlot.WriteError(w, r, err) // a 500 whose cause is logged, not sent
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]int64{"job_id": res.ID})
	})

	// The worker: a nil return completes the job, an error retries it
	// with backoff, jobs.Logf lines show in `backlot jobs show`.
	app.Worker("notes.save", func(ctx context.Context, job *jobs.Job) error {
		var n note
		if err := json.Unmarshal(job.Payload, &n); err != nil {
			return fmt.Errorf("payload: %w", err)
		}
		if n.Text == "fail" {
			return errors.New("asked to fail")
		}
		jobs.Logf(ctx, "saved a note by %s (%d bytes)", n.By, len(n.Text))
		app.Logger().Info("note saved", slog.String("by", n.By), slog.Int64("job", job.ID))
		return nil
	})

	if ln == nil {
		return app.Run(ctx)
	}
	return app.Serve(ctx, ln)
}
