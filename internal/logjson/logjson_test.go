package logjson_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/internal/logjson"
)

// same writes r through logjson and through slog.JSONHandler and fails
// unless the bytes are equal.
func same(t *testing.T, opts *slog.HandlerOptions, r slog.Record, derive func(slog.Handler) slog.Handler) {
	t.Helper()
	var got, want bytes.Buffer
	var h, ref slog.Handler = logjson.New(&got, opts), slog.NewJSONHandler(&want, opts)
	if derive != nil {
		h, ref = derive(h), derive(ref)
	}
	ctx := context.Background()
	if h.Enabled(ctx, r.Level) != ref.Enabled(ctx, r.Level) {
		t.Fatalf("Enabled(%v) differs", r.Level)
	}
	if !ref.Enabled(ctx, r.Level) {
		return
	}
	if err := h.Handle(ctx, r.Clone()); err != nil {
		t.Fatal(err)
	}
	if err := ref.Handle(ctx, r.Clone()); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("logjson wrote\n%s\nslog.JSONHandler wrote\n%s", got.String(), want.String())
	}
}

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

func TestSameBytesAsSlog(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 9, 4, 50, 590613549, time.UTC)
	zoned := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", -5*3600))
	strs := []string{"", "plain", `quote " backslash \ slash /`, "<html>&amp;", "tab\tnewline\ncr\r", "\x00\x01\x1f\x7f",
		"bad \xff utf8 \xc3", "sep \u2028 and \u2029", "ünïcödé 日本 🎉", strings.Repeat("long ", 400)}
	floats := []float64{0, math.Copysign(0, -1), 0.353, 1, -2.5, 123456.789, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e300,
		-1e-10, 5e-324, math.MaxFloat64}
	cases := []struct {
		name string
		r    slog.Record
	}{
		{"request line", record(at, slog.LevelInfo, "request",
			slog.String("request_id", "78f003224418600b058dd5fa0bc7b391"), slog.String("method", "GET"),
			slog.String("path", "/auth/whoami"), slog.String("route", "GET /auth/whoami"), slog.Int("status", 200),
			slog.Float64("duration_ms", 0.353), slog.Int64("bytes", 228), slog.String("client_ip", "127.0.0.1"),
			slog.String("subject", "alice"), slog.String("authenticator", "staff"))},
		{"no time", record(time.Time{}, slog.LevelWarn, "w", slog.Bool("b", true))},
		{"zoned time", record(zoned, slog.LevelError, "e", slog.Uint64("u", math.MaxUint64), slog.Int64("i", math.MinInt64))},
		{"custom level", record(at, slog.LevelInfo+2, "x")},
		{"below info", record(at, slog.LevelDebug, "dropped")},
		{"NaN", record(at, slog.LevelInfo, "m", slog.Float64("f", math.NaN()))},
		{"Inf", record(at, slog.LevelInfo, "m", slog.Float64("f", math.Inf(-1)))},
		{"error", record(at, slog.LevelInfo, "m", slog.Any("error", errors.New("boom \"x\"")))},
		{"duration and time", record(at, slog.LevelInfo, "m", slog.Duration("d", 1500*time.Millisecond), slog.Time("t", zoned))},
		{"group", record(at, slog.LevelInfo, "m", slog.Group("g", slog.String("a", "1")), slog.String("b", "2"))},
		{"empty group", record(at, slog.LevelInfo, "m", slog.Group("g"), slog.String("b", "2"))},
		{"inline group", record(at, slog.LevelInfo, "m", slog.Group("", slog.String("a", "1")))},
		{"empty attr", record(at, slog.LevelInfo, "m", slog.Attr{}, slog.String("b", "2"))},
		{"empty key", record(at, slog.LevelInfo, "m", slog.String("", "v"))},
		{"valuer", record(at, slog.LevelInfo, "m", slog.Any("v", valuer{}))},
		{"any", record(at, slog.LevelInfo, "m", slog.Any("m", map[string]int{"<a>": 1}), slog.Any("s", []byte("hi")))},
		{"many attrs", record(at, slog.LevelInfo, "m", manyAttrs(40)...)},
		{"bad year", record(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m")},
	}
	for _, s := range strs {
		cases = append(cases, struct {
			name string
			r    slog.Record
		}{"string " + s[:min(len(s), 12)], record(at, slog.LevelInfo, s, slog.String(s+"k", s))})
	}
	for _, f := range floats {
		cases = append(cases, struct {
			name string
			r    slog.Record
		}{"float", record(at, slog.LevelInfo, "m", slog.Float64("f", f))})
	}
	derived := map[string]func(slog.Handler) slog.Handler{
		"root":      nil,
		"WithAttrs": func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.String("svc", "x")}) },
		"WithGroup": func(h slog.Handler) slog.Handler { return h.WithGroup("g") },
	}
	opts := map[string]*slog.HandlerOptions{
		"nil":   nil,
		"debug": {Level: slog.LevelDebug},
		"error": {Level: slog.LevelError},
		"replace": {ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}},
	}
	for _, c := range cases {
		for dn, d := range derived {
			for on, o := range opts {
				t.Run(c.name+"/"+dn+"/"+on, func(t *testing.T) { same(t, o, c.r, d) })
			}
		}
	}
}

func record(at time.Time, l slog.Level, msg string, attrs ...slog.Attr) slog.Record {
	r := slog.NewRecord(at, l, msg, 0)
	r.AddAttrs(attrs...)
	return r
}

func manyAttrs(n int) []slog.Attr {
	out := make([]slog.Attr, n)
	for i := range out {
		out[i] = slog.Int("k"+strings.Repeat("x", i), i)
	}
	return out
}

// FuzzSameBytesAsSlog: any message, key, string and float written as
// slog.JSONHandler writes them.
func FuzzSameBytesAsSlog(f *testing.F) {
	f.Add("request", "path", "/a\"b\\c\n\u2028\xff", 0.353, int64(-7), true)
	f.Add("", "k", "", 1e-7, int64(0), false)
	f.Fuzz(func(t *testing.T, msg, key, s string, fl float64, i int64, b bool) {
		at := time.Unix(0, i).UTC()
		same(t, nil, record(at, slog.LevelInfo, msg, slog.String(key, s), slog.Float64("f", fl), slog.Int64("i", i),
			slog.Bool("b", b), slog.String("k2", key+s)), nil)
	})
}

func BenchmarkRequestLine(b *testing.B) {
	attrs := []slog.Attr{slog.String("request_id", "78f003224418600b058dd5fa0bc7b391"), slog.String("method", "GET"),
		slog.String("path", "/auth/whoami"), slog.String("route", "GET /auth/whoami"), slog.Int("status", 200),
		slog.Float64("duration_ms", 0.353), slog.Int64("bytes", 228), slog.String("client_ip", "127.0.0.1"),
		slog.String("subject", "alice"), slog.String("authenticator", "staff")}
	for name, h := range map[string]slog.Handler{
		"slog":    slog.NewJSONHandler(discard{}, nil),
		"logjson": logjson.New(discard{}, nil),
	} {
		b.Run(name, func(b *testing.B) {
			l := slog.New(h)
			for b.Loop() {
				l.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
			}
		})
		// As the server writes its request line: the record made directly,
		// without the caller's program counter (runtime.Callers).
		b.Run(name+"/record", func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				if h.Enabled(ctx, slog.LevelInfo) {
					r := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
					r.AddAttrs(attrs...)
					h.Handle(ctx, r)
				}
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
