package logbuf_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/logbuf"
)

// sink records each write the Writer makes to it.
type sink struct {
	mu     sync.Mutex
	writes []string
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, string(p))
	return len(p), nil
}

func (s *sink) get() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.writes, ""), len(s.writes)
}

func TestWriterBatchesInOrder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		size       int
		lines      []string
		wantWrites int // before Close
		wantAfter  int // after Close
	}{
		{"small lines wait", 64, []string{"a\n", "b\n", "c\n"}, 0, 1},
		{"full buffer written before the line that does not fit", 8, []string{"aaaa\n", "bbbb\n", "cc\n"}, 1, 2},
		{"line larger than the buffer goes through after what waited", 8, []string{"ab\n", "0123456789\n", "c\n"}, 2, 3},
		{"line exactly the buffer size waits", 5, []string{"abcd\n"}, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := &sink{}
			w := logbuf.New(s, time.Hour, c.size)
			for _, l := range c.lines {
				if n, err := w.Write([]byte(l)); n != len(l) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", l, n, err)
				}
			}
			if _, n := s.get(); n != c.wantWrites {
				t.Fatalf("before Close: %d writes, want %d", n, c.wantWrites)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, n := s.get()
			if n != c.wantAfter || got != strings.Join(c.lines, "") {
				t.Fatalf("after Close: %d writes %q, want %d writes %q", n, got, c.wantAfter, strings.Join(c.lines, ""))
			}
			for _, wr := range s.writes {
				if !strings.HasSuffix(wr, "\n") {
					t.Fatalf("a write split a line: %q", wr)
				}
			}
			// After Close, writes go straight through.
			w.Write([]byte("late\n"))
			if got, _ := s.get(); !strings.HasSuffix(got, "late\n") {
				t.Fatalf("write after Close held back: %q", got)
			}
		})
	}
}

func TestWriterFlushesAfterInterval(t *testing.T) {
	t.Parallel()
	s := &sink{}
	w := logbuf.New(s, 20*time.Millisecond, 1<<10)
	defer w.Close()
	w.Write([]byte("one\n"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := s.get(); got == "one\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was never written without Flush")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The timer is armed again by the next line.
	w.Write([]byte("two\n"))
	for {
		if got, _ := s.get(); got == "one\ntwo\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second line was never written")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHandlerWritesWarningsAtOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		level slog.Level
		held  bool
	}{
		{slog.LevelDebug, true},
		{slog.LevelInfo, true},
		{slog.LevelWarn, false},
		{slog.LevelError, false},
	}
	for _, c := range cases {
		t.Run(c.level.String(), func(t *testing.T) {
			t.Parallel()
			s := &sink{}
			w := logbuf.New(s, time.Hour, 1<<10)
			base := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
			// WithAttrs and WithGroup keep the behaviour.
			log := slog.New(logbuf.Handler(base, w)).With("svc", "x").WithGroup("g")
			log.Info("before")
			log.Log(context.Background(), c.level, "this")
			got, _ := s.get()
			if c.held && got != "" {
				t.Fatalf("%s line written at once: %q", c.level, got)
			}
			if !c.held && (!strings.Contains(got, `"msg":"before"`) || !strings.Contains(got, `"msg":"this"`) ||
				strings.Index(got, "before") > strings.Index(got, `"msg":"this"`)) {
				t.Fatalf("%s line not written at once with what came before: %q", c.level, got)
			}
			if !c.held && !strings.Contains(got, `"svc":"x"`) {
				t.Fatalf("attributes lost: %q", got)
			}
		})
	}
}

func TestWriterConcurrentLinesStayWhole(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var mu sync.Mutex
	locked := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	w := logbuf.New(locked, time.Millisecond, 256)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				fmt.Fprintf(w, "g%d line %04d %s\n", g, i, strings.Repeat("x", i%40))
			}
		}()
	}
	wg.Wait()
	w.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	next := map[string]int{}
	for _, l := range lines {
		var g, i int
		var x string
		if _, err := fmt.Sscanf(l, "g%d line %d %s", &g, &i, &x); err != nil && i%40 != 0 {
			t.Fatalf("torn line %q: %v", l, err)
		}
		key := fmt.Sprint(g)
		if i != next[key] {
			t.Fatalf("goroutine %d: line %d after %d (out of order or lost)", g, i, next[key]-1)
		}
		next[key]++
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
