package backlot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/auth"
	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/jobs"
)

// exampleConfig is a configuration built in code: an SQLite file in a
// temporary directory. A real program would usually load backlot.yaml with
// backlot.WithConfigFile.
func exampleConfig() *config.Config {
	dir, _ := os.MkdirTemp("", "backlot-example")
	return &config.Config{
		Server: config.Server{Listen: "127.0.0.1:0"},
		Store:  config.Store{URL: "sqlite://" + filepath.Join(dir, "app.db")},
	}
}

// New builds an App from a configuration; nothing listens until Run.
func ExampleNew() {
	app, err := backlot.New(backlot.WithConfig(exampleConfig()), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println("config:", err)
		return
	}
	defer app.Close()
	fmt.Println("store:", app.Config().Store.URL[:len("sqlite://")])
	// Output: store: sqlite://
}

// Handle adds a route. The handler reads the caller with auth.FromContext
// (two results: the Principal and whether there is one) and answers errors
// with backlot.WriteError, which writes the JSON error envelope.
func ExampleApp_Handle() {
	app, err := backlot.New(backlot.WithConfig(exampleConfig()), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app.Close()

	// No authenticators listed: a public route, so there is no Principal.
	app.Handle("GET /api/orders/{id}", nil, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := auth.FromContext(r.Context()); !ok {
			backlot.WriteError(w, r, backlot.NewError(http.StatusNotFound, "order_not_found", "no order %s", r.PathValue("id")))
			return
		}
	})

	rec := httptest.NewRecorder()
	app.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/orders/o-1", nil))
	var env struct {
		Code    int    `json:"error_code"`
		Error   string `json:"error"`
		Message string `json:"error_message"`
	}
	body, _ := io.ReadAll(rec.Body)
	json.Unmarshal(body, &env)
	fmt.Println(rec.Code, env.Error, env.Message)
	// Output: 404 order_not_found Not found.
}

// Worker registers the function that handles jobs of one kind; a route or
// another worker enqueues them with app.Jobs().Enqueue.
func ExampleApp_Worker() {
	app, err := backlot.New(backlot.WithConfig(exampleConfig()), backlot.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan string, 1)
	app.Worker("reminders.send", func(ctx context.Context, job *jobs.Job) error {
		var p struct {
			UserID string `json:"user_id"`
		}
		if err := json.Unmarshal(job.Payload, &p); err != nil {
			return err // retried with backoff, then failed
		}
		jobs.Logf(ctx, "reminding %s", p.UserID)
		done <- p.UserID
		return nil
	})

	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- app.Run(ctx) }()
	if _, err := app.Jobs().Enqueue(ctx, "reminders.send", []byte(`{"user_id":"u-7"}`), nil); err != nil {
		fmt.Println(err)
	}
	fmt.Println("worker ran for", <-done)
	stop()
	<-served
	// Output: worker ran for u-7
}
