package jsonstr_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"testing"

	"github.com/backlothq/backlot/internal/jsonstr"
)

// reference returns what the standard library writes for s in style.
func reference(t *testing.T, s string, style jsonstr.Style) string {
	t.Helper()
	if style == jsonstr.EncodingJSON {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key != "s" {
			return slog.Attr{}
		}
		return a
	}})).Info("", "s", s)
	out := strings.TrimSuffix(buf.String(), "}\n")
	return out[strings.Index(out, `"s":`)+4:]
}

func check(t *testing.T, s string) {
	t.Helper()
	for _, style := range []jsonstr.Style{jsonstr.EncodingJSON, jsonstr.Slog} {
		if got, want := string(jsonstr.Append(nil, s, style)), reference(t, s, style); got != want {
			t.Errorf("style %d, %q: got %s, want %s", style, s, got, want)
		}
	}
}

func TestAppendAsTheStandardLibrary(t *testing.T) {
	t.Parallel()
	all := make([]byte, 0, 128)
	for c := 0; c < 128; c++ {
		all = append(all, byte(c))
	}
	for _, s := range []string{"", "plain", `"quoted" \back\`, "<a href='x'>&amp;</a>", "\b\f\n\r\t\x00\x1f\x7f",
		string(all), "bad \xff\xfe utf8 \xc3", "\u2028\u2029", "ünïcödé 日本 🎉", "\xed\xa0\x80 surrogate"} {
		check(t, s)
	}
}

func FuzzAppendAsTheStandardLibrary(f *testing.F) {
	f.Add("<&>\b\f\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) { check(t, s) })
}

func TestAppendFloatAsEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, math.Copysign(0, -1), 0.353, 1, -2.5, 123456789.125, 1e-6, 9.99e-7, 1e-7, -1e-10,
		1e20, 1e21, 1.5e300, 5e-324, math.MaxFloat64} {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := jsonstr.AppendFloat(nil, f); !ok || string(got) != string(want) {
			t.Errorf("%v: got %s, %v; want %s", f, got, ok, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got, ok := jsonstr.AppendFloat([]byte("x"), f); ok || string(got) != "x" {
			t.Errorf("%v: got %q, %v; want it refused", f, got, ok)
		}
	}
}
