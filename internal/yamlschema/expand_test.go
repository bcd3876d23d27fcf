package yamlschema

import (
	"reflect"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HOST": "db.example", "EMPTY": "", "PW": "p@ss"}
	tests := []struct {
		in, want string
	}{
		{"plain", "plain"},
		{"${HOST}", "db.example"},
		{"a-${HOST}-b", "a-db.example-b"},
		{"${NOPE:-fallback}", "fallback"},
		{"${EMPTY:-fallback}", "fallback"},
		{"${HOST:-fallback}", "db.example"},
		{"${NOPE:-}", ""},
		{"${EMPTY}", ""},
		{"pa$$word", "pa$word"},
		{"$$${PW}", "$p@ss"},
		{"$${HOST}", "${HOST}"},
		{"$2a$10$abc", "$2a$10$abc"}, // a lone $ is literal
		{"cost$", "cost$"},
		{"${HOST}${PW}", "db.examplep@ss"},
	}
	for _, tt := range tests {
		got, missing, err := expandString(tt.in, envMap(env))
		if err != nil || len(missing) > 0 || got != tt.want {
			t.Errorf("expand(%q) = %q, %v, %v; want %q", tt.in, got, missing, err, tt.want)
		}
	}
	for _, bad := range []struct{ in, want string }{
		{"${HOST", "unterminated ${"},
		{"${1X}", "invalid variable name"},
		{"${}", "invalid variable name"},
		{"${A-B}", "invalid variable name"},
	} {
		if _, _, err := expandString(bad.in, envMap(env)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("expand(%q) err = %v, want %q", bad.in, err, bad.want)
		}
	}
	_, missing, err := expandString("${A}:${HOST}:${B}", envMap(env))
	if err != nil || !reflect.DeepEqual(missing, []string{"A", "B"}) {
		t.Errorf("missing = %v, %v; want [A B]", missing, err)
	}
}
