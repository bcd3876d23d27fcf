package yamlschema

import (
	"strconv"
	"strings"
	"testing"
)

type testSchema struct {
	Server struct {
		Listen string `yaml:"listen"`
		Max    int    `yaml:"max"`
	} `yaml:"server"`
	Names []string `yaml:"names"`
}

// TestDecode: the decoder knows nothing of backlot's keys; every problem
// of a document comes back at once, with its line and key path.
func TestDecode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		doc    string
		env    map[string]string
		want   string   // server.listen after decoding
		issues []string // "line: path: msg" prefixes, in order
		fatal  bool
	}{
		{"clean", "server:\n  listen: \":1\"\n", nil, ":1", nil, false},
		{"variable", "server:\n  listen: \"${ADDR}\"\n", map[string]string{"ADDR": ":2"}, ":2", nil, false},
		{"override wins", "server:\n  listen: \":1\"\n", map[string]string{"X_SERVER_LISTEN": ":3"}, ":3", nil, false},
		{"every problem at once", "server:\n  lisen: x\n  max: many\nnames: 7\n", nil, "",
			[]string{"2: server.lisen: unknown key", "3: server.max: want", "4: names: want"}, false},
		{"unset variable", "server:\n  listen: \"${NOPE}\"\n", nil, "", []string{"2: server.listen: ${NOPE} is not set"}, false},
		{"not a mapping", "- a\n- b\n", nil, "", []string{"1: : want a mapping"}, true},
		{"invalid yaml", "server: [\n", nil, "", []string{""}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var v testSchema
			res := Decoder{File: "f.yaml", Lookup: envMap(c.env), EnvPrefix: "X_"}.Decode([]byte(c.doc), &v)
			if res.Fatal != c.fatal {
				t.Fatalf("Fatal = %v, want %v (%v)", res.Fatal, c.fatal, res.Issues)
			}
			if len(res.Issues) != len(c.issues) {
				t.Fatalf("issues %v, want %d", res.Issues, len(c.issues))
			}
			for i, is := range res.Issues {
				if got := strconv.Itoa(is.Line) + ": " + is.Path + ": " + is.Msg; !strings.HasPrefix(got, c.issues[i]) {
					t.Errorf("issue %d = %q, want prefix %q", i, got, c.issues[i])
				}
			}
			if !c.fatal && len(c.issues) == 0 && v.Server.Listen != c.want {
				t.Errorf("listen = %q, want %q", v.Server.Listen, c.want)
			}
		})
	}
}

// TestDecodeExpansionIssuesInDocumentOrder: unset variables are reported in
// the order they appear, every run (two on one line are not sorted apart
// later by their line).
func TestDecodeExpansionIssuesInDocumentOrder(t *testing.T) {
	t.Parallel()
	doc := "server: {listen: \"${A}\", max: \"${B}\"}\nnames: [\"${C}\", \"${D}\", \"${E}\"]\n"
	want := []string{"server.listen", "server.max", "names[0]", "names[1]", "names[2]"}
	for range 50 {
		var v testSchema
		res := Decoder{File: "f.yaml"}.Decode([]byte(doc), &v)
		var got []string
		for _, is := range res.Issues {
			got = append(got, is.Path)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("issue paths %v, want %v", got, want)
		}
	}
}
