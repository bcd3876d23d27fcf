// Command backlot-bench is backlot built as a framework user would build
// it: the stock server plus a no-op worker for the end-to-end benchmark
// (ingest → job → completed). bench/compare.sh runs it beside the peer.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/backlothq/backlot"
	"github.com/backlothq/backlot/jobs"
)

func main() {
	cfgPath := flag.String("config", "backlot.yaml", "configuration file")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6060) for profiling under load")
	flag.Parse()
	if *pprofAddr != "" {
		go func() { fmt.Fprintln(os.Stderr, http.ListenAndServe(*pprofAddr, nil)) }()
	}
	// BENCH_CPUPROFILE=path writes a CPU profile of the whole run (start to
	// SIGTERM), for profiling under a load that has no convenient window.
	if path := os.Getenv("BENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "backlot-bench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "backlot-bench:", err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	// The default logger, as `backlot serve` has it (JSON to stderr, in batches).
	app, err := backlot.New(backlot.WithConfigFile(*cfgPath))
	if err != nil {
		fmt.Fprintln(os.Stderr, "backlot-bench:", err)
		os.Exit(1)
	}
	app.Worker("bench.noop", func(ctx context.Context, job *jobs.Job) error { return nil })
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "backlot-bench:", err)
		os.Exit(1)
	}
}
