// Command bare is the ceiling of the side-by-side runs: bare net/http
// handlers with no middleware, auth, verification or storage. GET /me
// answers a small JSON body (the ceiling for authenticated GETs); POST
// /webhooks/{source} reads the body and answers 202 (the ceiling for
// webhook ingest under the same load generator on the same cores).
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18090", "listen address")
	flag.Parse()
	http.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"subject":"abf32c52-801c-4a40-8da0-82096fe455dd","tenant":"PARTNER_ID"}` + "\n"))
	})
	http.HandleFunc("POST /webhooks/{source}", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"job_id":"0"}` + "\n"))
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
