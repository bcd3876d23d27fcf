# backlot — make test is the one command CI runs (see .ci/run).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFILES  = $(shell find . -name '*.go' -not -path '*/node_modules/*' -not -path './bin/*')
BIN     ?= bin/backlot
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin

.PHONY: test fmt-check vet build install bench clean

## test: gofmt check, go vet, and the whole suite under the race detector
## (SQLite and a throwaway PostgreSQL; browser and interop tests included).
test: fmt-check vet
	$(GO) test -race -timeout 20m ./...

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## build: a static binary (CGO_ENABLED=0) with the version stamped in.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/backlot

## install: build, then copy the binary to $(BINDIR) (default /usr/local/bin,
## so `backlot` is on the PATH). PREFIX=$$HOME/.local installs for one user;
## DESTDIR stages a package.
install: build
	install -d "$(DESTDIR)$(BINDIR)"
	install -m 0755 $(BIN) "$(DESTDIR)$(BINDIR)/backlot"

## bench: the Go benchmarks, then the side-by-side comparison with the peer.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./internal/authn/ ./internal/webhook/ ./internal/engine/ ./internal/proxy/
	@if [ -x bench/compare.sh ]; then bench/compare.sh; fi

clean:
	rm -rf bin
