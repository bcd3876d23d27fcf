package marketplace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The Sharetribe SDKs send command bodies as Transit JSON (non-verbose by
// default, which caches repeated keys as "^0", "^1", …; verbose when
// X-Transit-Verbose is set). decodeTransit reads either into the same
// generic tree encoding/json would give for the JSON form of the body:
// keywords become plain strings, UUIDs their string form, instants
// RFC 3339 strings, numbers json.Number, money {amount, currency} and
// geolocations {lat, lng}.

// transitCacheSize is the size of Transit's rolling cache (44 * 44 codes).
const transitCacheSize = 44 * 44

type transitReader struct {
	cache []string
}

// tagMarker is a decoded "~#tag" string: the first element of a tagged
// value.
type tagMarker string

func decodeTransit(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var raw any
	if err := d.Decode(&raw); err != nil {
		return nil, fmt.Errorf("transit: %w", err)
	}
	r := &transitReader{}
	v, err := r.read(raw, false)
	if err != nil {
		return nil, err
	}
	// A top-level scalar is written as ["~#'", value].
	return v, nil
}

func (r *transitReader) read(v any, asKey bool) (any, error) {
	switch x := v.(type) {
	case string:
		return r.readString(x, asKey)
	case []any:
		if len(x) > 0 && x[0] == "^ " {
			if len(x)%2 != 1 {
				return nil, errors.New("transit: map with an odd number of elements")
			}
			m := make(map[string]any, len(x)/2)
			for i := 1; i < len(x); i += 2 {
				k, err := r.read(x[i], true)
				if err != nil {
					return nil, err
				}
				ks, ok := k.(string)
				if !ok {
					return nil, fmt.Errorf("transit: unsupported map key %v", k)
				}
				val, err := r.read(x[i+1], false)
				if err != nil {
					return nil, err
				}
				m[ks] = val
			}
			return m, nil
		}
		if len(x) == 2 {
			if s, ok := x[0].(string); ok {
				first, err := r.readString(s, false)
				if err != nil {
					return nil, err
				}
				if tag, ok := first.(tagMarker); ok {
					rep, err := r.read(x[1], false)
					if err != nil {
						return nil, err
					}
					return fromTag(string(tag), rep)
				}
				rest, err := r.read(x[1], false)
				if err != nil {
					return nil, err
				}
				return []any{first, rest}, nil
			}
		}
		out := make([]any, len(x))
		for i, e := range x {
			d, err := r.read(e, false)
			if err != nil {
				return nil, err
			}
			out[i] = d
		}
		return out, nil
	case map[string]any:
		// Verbose form: a JSON object whose keys are Transit strings.
		m := make(map[string]any, len(x))
		for k, val := range x {
			dk, err := r.readString(k, true)
			if err != nil {
				return nil, err
			}
			if tag, ok := dk.(tagMarker); ok && len(x) == 1 {
				rep, err := r.read(val, false)
				if err != nil {
					return nil, err
				}
				return fromTag(string(tag), rep)
			}
			ks, ok := dk.(string)
			if !ok {
				return nil, fmt.Errorf("transit: unsupported map key %v", dk)
			}
			dv, err := r.read(val, false)
			if err != nil {
				return nil, err
			}
			m[ks] = dv
		}
		return m, nil
	default:
		return v, nil
	}
}

func (r *transitReader) readString(s string, asKey bool) (any, error) {
	if len(s) > 1 && s[0] == '^' && s != "^ " {
		i, err := cacheIndex(s)
		if err != nil || i >= len(r.cache) {
			return nil, fmt.Errorf("transit: bad cache reference %q", s)
		}
		return parseTransitString(r.cache[i])
	}
	if len(s) > 3 && (asKey || strings.HasPrefix(s, "~:") || strings.HasPrefix(s, "~$") || strings.HasPrefix(s, "~#")) {
		if len(r.cache) == transitCacheSize {
			r.cache = r.cache[:0]
		}
		r.cache = append(r.cache, s)
	}
	return parseTransitString(s)
}

func cacheIndex(code string) (int, error) {
	switch len(code) {
	case 2:
		return int(code[1]) - 48, nil
	case 3:
		return (int(code[1])-48)*44 + int(code[2]) - 48, nil
	}
	return 0, errors.New("bad cache code")
}

func parseTransitString(s string) (any, error) {
	if len(s) < 2 || s[0] != '~' {
		return s, nil
	}
	body := s[2:]
	switch s[1] {
	case '~', '^', '`':
		return s[1:], nil
	case ':', '$', 'u', 'r':
		return body, nil
	case '#':
		return tagMarker(body), nil
	case '_':
		return nil, nil
	case '?':
		return body == "t", nil
	case 'i', 'n', 'd', 'f':
		if _, err := strconv.ParseFloat(body, 64); err != nil {
			return nil, fmt.Errorf("transit: bad number %q", s)
		}
		return json.Number(body), nil
	case 'm':
		ms, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("transit: bad instant %q", s)
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"), nil
	case 't':
		return body, nil
	}
	return nil, fmt.Errorf("transit: unsupported tag in %q", s)
}

func fromTag(tag string, rep any) (any, error) {
	switch tag {
	case "u", "'", "set", "list", "f", "n":
		return rep, nil
	case "mn":
		a, ok := rep.([]any)
		if !ok || len(a) != 2 {
			return nil, errors.New("transit: bad money")
		}
		return map[string]any{"amount": a[0], "currency": a[1]}, nil
	case "geo":
		a, ok := rep.([]any)
		if !ok || len(a) != 2 {
			return nil, errors.New("transit: bad geolocation")
		}
		return map[string]any{"lat": a[0], "lng": a[1]}, nil
	}
	return nil, fmt.Errorf("transit: unsupported tag %q", tag)
}
