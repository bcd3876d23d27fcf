package marketplace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Marketplace API answers JSON or Transit (JSON encoding), as the
// Accept header asks; the Sharetribe SDK always asks for Transit. Response
// bodies are built as trees of maps, slices and scalars, with the three
// value types below where Transit has a richer type than JSON.

// uuidValue is a UUID: a plain string in JSON, "~u…" in Transit.
type uuidValue string

// keyword is a Transit keyword ("~:currentUser"); a plain string in JSON.
type keyword string

// timestamp is an instant: an ISO 8601 string with milliseconds in JSON,
// "~m<millis>" in Transit.
type timestamp time.Time

func (u uuidValue) MarshalJSON() ([]byte, error) { return json.Marshal(string(u)) }
func (k keyword) MarshalJSON() ([]byte, error)   { return json.Marshal(string(k)) }
func (t timestamp) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z"))
}

const transitContentType = "application/transit+json;charset=UTF-8"

// wantsTransit reports whether the client asked for Transit rather than JSON.
func wantsTransit(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/transit+json") && !strings.Contains(a, "application/json")
}

// writeAPI answers an API response tree in the encoding r asked for.
func writeAPI(w http.ResponseWriter, r *http.Request, status int, v any) {
	if r == nil || !wantsTransit(r) {
		writeJSON(w, status, v)
		return
	}
	var b bytes.Buffer
	if err := encodeTransit(&b, v, true); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", transitContentType)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// encodeTransit writes v as Transit JSON (non-verbose, without caching,
// which readers accept). Map keys become keywords, as in Sharetribe's
// responses.
func encodeTransit(b *bytes.Buffer, v any, key bool) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		if key {
			return writeString(b, "~:"+x)
		}
		if x != "" && (x[0] == '~' || x[0] == '^' || x[0] == '`') {
			x = "~" + x // escape, so the reader does not take it for a tag or cache reference
		}
		return writeString(b, x)
	case keyword:
		return writeString(b, "~:"+string(x))
	case uuidValue:
		return writeString(b, "~u"+string(x))
	case timestamp:
		return writeString(b, "~m"+strconv.FormatInt(time.Time(x).UnixMilli(), 10))
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("transit: cannot encode %v", x)
		}
		b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	case json.Number:
		b.WriteString(x.String())
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encodeTransit(b, e, false); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(`["^ "`)
		for _, k := range keys {
			b.WriteByte(',')
			if err := encodeTransit(b, k, true); err != nil {
				return err
			}
			b.WriteByte(',')
			if err := encodeTransit(b, x[k], false); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	default:
		// Anything else (typed slices and maps in extended data): through
		// JSON into the generic shapes above.
		raw, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("transit: %w", err)
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var g any
		if err := d.Decode(&g); err != nil {
			return fmt.Errorf("transit: %w", err)
		}
		return encodeTransit(b, g, false)
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) error {
	q, err := json.Marshal(s)
	if err != nil {
		return err
	}
	b.Write(q)
	return nil
}
