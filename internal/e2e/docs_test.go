package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/backlothq/backlot/config"
	"github.com/backlothq/backlot/internal/testutil"
)

// userDocs lists the documentation a user of the repository reads: the
// README, docs/ and the examples.
func userDocs(t *testing.T) (root string, files []string) {
	t.Helper()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files = []string{filepath.Join(root, "README.md")}
	for _, dir := range []string{"docs", "examples"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			if ext := filepath.Ext(path); !d.IsDir() && (ext == ".md" || ext == ".yaml" || ext == ".yml") {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return root, files
}

// TestDocsSpeakForThemselves: the user-facing docs and examples never send
// the reader to files they do not have (the product specification, the
// source material it was drawn from).
func TestDocsSpeakForThemselves(t *testing.T) {
	t.Parallel()
	root, files := userDocs(t)
	banned := regexp.MustCompile(`SPEC|[Ss]eeds? ?0\d\d|\.\./shared`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := banned.FindString(line); m != "" {
				rel, _ := filepath.Rel(root, f)
				t.Errorf("%s:%d mentions %q: %s", rel, i+1, m, strings.TrimSpace(line))
			}
		}
	}
}

var (
	yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")
	varRef    = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)
)

// TestDocYAMLExamples loads every YAML example of the docs. None may use
// a key this version refuses as not yet available (the docs describe only
// what is built), and the authentication page, which says every example on
// it passes `backlot config check`, must be right.
func TestDocYAMLExamples(t *testing.T) {
	t.Parallel()
	root, files := userDocs(t)
	dir := t.TempDir()
	n := 0
	for _, f := range files {
		if filepath.Ext(f) != ".md" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		mustPass := rel == filepath.Join("docs", "authentication.md")
		for i, m := range yamlBlock.FindAllStringSubmatch(string(b), -1) {
			n++
			block := m[1]
			path := filepath.Join(dir, strings.NewReplacer("/", "_", ".", "_").Replace(rel)+"-"+string(rune('a'+i))+".yaml")
			if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
				t.Fatal(err)
			}
			// Answer only the variables the example references: any other
			// name would be taken for a BACKLOT_* override.
			vars := map[string]string{}
			for _, v := range varRef.FindAllStringSubmatch(block, -1) {
				vars[v[1]] = exampleValue(v[1])
			}
			_, err := config.Load(path, func(name string) (string, bool) { v, ok := vars[name]; return v, ok })
			var ce *config.Error
			switch {
			case err == nil:
			case !errors.As(err, &ce):
				t.Errorf("%s, YAML example %d: %v", rel, i+1, err)
			case mustPass:
				t.Errorf("%s, YAML example %d does not pass config check:\n%v\n%s", rel, i+1, err, block)
			default:
				for _, is := range ce.Issues {
					if strings.Contains(is.Msg, "not available yet") {
						t.Errorf("%s, YAML example %d uses %s, which this version refuses:\n%s", rel, i+1, is.Path, block)
					}
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("found only %d YAML examples: is the pattern right?", n)
	}
}

// exampleValue is a value that passes validation for a variable an example
// references, by what its name says it holds.
func exampleValue(name string) string {
	switch {
	case strings.Contains(name, "WHSEC"):
		return "whsec_ZXhhbXBsZS1zZWNyZXQtZm9yLWRvY3M="
	case strings.HasPrefix(name, "BACKLOT_KEY"):
		return "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes
	case strings.Contains(name, "DATABASE_URL"):
		return "postgres://backlot:pw@db.example:5432/backlot"
	}
	return strings.Repeat("x", 48)
}
