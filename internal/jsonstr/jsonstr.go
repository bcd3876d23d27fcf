// Package jsonstr writes strings as JSON string literals, and floats as
// JSON numbers, byte for byte as the standard library does, for the answers
// and log lines backlot writes without encoding/json or slog's generic path
// (whoami, the request log line): their output must not differ from what
// those would write.
package jsonstr

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Style is whose escaping to follow.
type Style uint8

const (
	// EncodingJSON escapes as encoding/json's default: also <, > and &
	// (as \u003c, \u003e, \u0026), and \b and \f by their short forms.
	EncodingJSON Style = iota
	// Slog escapes as log/slog's JSON handler: <, > and & as they are,
	// \b and \f as \u0008 and \u000c.
	Slog
)

const hexDigits = "0123456789abcdef"

// Append appends s quoted: quotes, backslashes and control characters
// escaped, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped (both
// styles), and what the style adds.
func Append(b []byte, s string, style Style) []byte {
	html := style == EncodingJSON
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && html:
				b = append(b, '\\', 'b')
			case c == '\f' && html:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendFloat appends f as encoding/json (and so slog's JSON handler)
// writes a float64. ok is false, and b unchanged, for NaN and ±Inf, which
// encoding/json refuses.
func AppendFloat(b []byte, f float64) (_ []byte, ok bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // e-09 → e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}
