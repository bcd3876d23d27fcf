package config

import (
	"reflect"
	"sort"
	"strings"

	"github.com/backlothq/backlot/internal/yamlschema"
)

// notYetAvailable lists the keys that belong to the schema but have nothing
// behind them in this version: a file that sets one is refused at start-up
// ("routes: not available yet in this version") rather than accepted and
// silently ignored. A "*" stands for any entry of a map.
//
// This is the one place to change when a feature lands: delete its line,
// and Load, Prepare, `backlot config check` and `backlot serve` accept the
// key again, with the validation rules already in validate.go.
func notYetAvailable() []string {
	return []string{}
}

// unavailableMsg is the message of a refused key.
const unavailableMsg = "not available yet in this version"

// refuse returns one issue for every key of the table that c sets (a value
// that is not zero, or a list or map that is not empty), with its line when
// c was loaded from a file, and the key paths it refused. It must run
// before withDefaults, which fills some of these keys.
func (c *Config) refuse(table []string) (issues []Issue, paths []string) {
	v := &validator{c: c}
	for _, pattern := range table {
		resolve(reflect.ValueOf(c).Elem(), strings.Split(pattern, "."), "", func(path string) {
			v.add(path, "%s", unavailableMsg)
			paths = append(paths, path)
		})
	}
	return v.issues, paths
}

// resolve calls found with the key path of every value that parts names
// under v and that is set. Map entries ("*") are visited in key order.
func resolve(v reflect.Value, parts []string, path string, found func(string)) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if len(parts) == 0 {
		if isSet(v) {
			found(path)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for _, f := range yamlschema.Fields(v.Type()) {
			if f.Key == parts[0] {
				resolve(v.Field(f.Index), parts[1:], yamlschema.JoinKey(path, f.Key), found)
				return
			}
		}
		panic("config: notYetAvailable names " + parts[0] + ", which is not a key under " + path) // a bug in the table
	case reflect.Map:
		if parts[0] != "*" {
			resolve(v.MapIndex(reflect.ValueOf(parts[0])), parts[1:], yamlschema.JoinKey(path, parts[0]), found)
			return
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		sort.Strings(keys)
		for _, k := range keys {
			resolve(v.MapIndex(reflect.ValueOf(k)), parts[1:], yamlschema.JoinKey(path, k), found)
		}
	}
}

// isSet reports whether a value counts as written: not zero, and for lists
// and maps not empty (so "routes: []" asks for nothing and is accepted).
func isSet(v reflect.Value) bool {
	if !v.IsValid() {
		return false
	}
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() > 0
	}
	return !v.IsZero()
}

// covered reports whether path is one of roots, lies under one, or holds
// one: an issue there says nothing the refusal or the decoding problem at
// the root has not said already.
func covered(path string, roots []string) bool {
	for _, r := range roots {
		if under(path, r) || under(r, path) {
			return true
		}
	}
	return false
}

// under reports whether path is root or a key path below it.
func under(path, root string) bool {
	if root == "" || path == root {
		return true
	}
	if !strings.HasPrefix(path, root) {
		return false
	}
	c := path[len(root)]
	return c == '.' || c == '['
}
