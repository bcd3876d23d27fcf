// Package yamlschema decodes a YAML document strictly into a Go struct
// that serves as its schema: every key must be a field (by its yaml tag),
// every value of the field's type; ${VAR} references in values are
// expanded, and any scalar can be overridden by an environment variable
// named after its key path (PREFIX_SERVER_LISTEN for server.listen). Every
// problem is reported with its line, all in one pass, and hostile input
// (alias bombs, deep nesting, huge override fan-out) costs bounded work.
// Package config uses it for backlot.yaml; it knows nothing of backlot's
// keys.
package yamlschema

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile file from costing unbounded work.
const (
	// maxNodes bounds the nodes visited while decoding, counting each use of
	// a YAML alias again, so "billion laughs" documents fail fast.
	maxNodes = 100_000
	// maxOverridePaths bounds the override names looked up.
	maxOverridePaths = 100_000
)

// Issue is one problem found in a document.
type Issue struct {
	// File is the document's file, or "$NAME" when the value came from an
	// environment override.
	File string
	// Line is 1-based; 0 when unknown.
	Line int
	// Path is the key path: server.listen, webhooks[0].verify.scheme.
	Path string
	// Msg says what is wrong.
	Msg string
}

// Origin is where a key path's value came from: a line of the file, or an
// override variable.
type Origin struct {
	Line int
	Env  string
}

// Decoder decodes one document.
type Decoder struct {
	// File names the document in issues.
	File string
	// Lookup resolves ${VAR} references and overrides. Nil: nothing is set.
	Lookup func(string) (string, bool)
	// EnvPrefix starts override variable names ("BACKLOT_"); "" turns
	// overrides off.
	EnvPrefix string
	// Describe names what a field of a type decoding itself from a scalar
	// (encoding.TextUnmarshaler) wants, for issues: "a duration such as
	// 30s". Nil: "a <type name>".
	Describe func(reflect.Type) string
}

// Result is what Decode found.
type Result struct {
	// Issues are the problems, in the order found.
	Issues []Issue
	// Holes are the key paths whose values failed to decode (and the keys
	// an unknown key probably meant): later checks about them are
	// consequences, not news.
	Holes []string
	// Origins maps every decoded key path to where it was set.
	Origins map[string]Origin
	// Fatal is set when nothing could be decoded.
	Fatal bool
}

// Decode parses data as YAML, expands ${VAR} references in values with
// d.Lookup, applies EnvPrefix overrides for every scalar of the schema of
// into (a pointer to a struct whose fields carry yaml tags), and decodes
// strictly: unknown keys, wrong types and duplicate keys are issues, each
// with its line. A problem that stops decoding altogether (invalid YAML, a
// top level that is not a mapping) is the only issue, with Fatal set.
func (d Decoder) Decode(data []byte, into any) Result {
	l := &loader{
		file:      d.File,
		lookup:    d.Lookup,
		envPrefix: d.EnvPrefix,
		describe:  d.Describe,
		origins:   map[string]Origin{},
		envOf:     map[*yaml.Node]string{},
		bad:       map[*yaml.Node]bool{},
		active:    map[*yaml.Node]bool{},
		budget:    maxNodes,
	}
	if l.lookup == nil {
		l.lookup = func(string) (string, bool) { return "", false }
	}
	root, perr := parseYAML(data)
	if perr != nil {
		return Result{Issues: []Issue{yamlIssue(d.File, perr)}, Fatal: true}
	}
	doc := root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind == 0 || isNull(doc) {
		doc = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if doc.Kind != yaml.MappingNode {
		return Result{Issues: []Issue{{File: d.File, Line: doc.Line, Msg: "want a mapping at the top level, got " + describe(doc)}}, Fatal: true}
	}

	// ${VAR} first, so overrides are taken literally; an override replaces
	// a value whose expansion failed, and its problem goes away with it.
	v := reflect.ValueOf(into).Elem()
	var expIssues []nodeIssue
	l.expand(doc, "", &expIssues)
	l.override(doc, v.Type())
	for _, e := range expIssues {
		if !l.replaced(e.n) {
			l.issues = append(l.issues, e.is)
			l.holes = append(l.holes, e.is.Path)
			l.bad[e.n] = true
		}
	}
	l.decode(doc, v, "")
	return Result{Issues: l.issues, Holes: l.holes, Origins: l.origins}
}

// parseYAML parses into a node tree. A panic inside the YAML library is
// turned into an error: the file is untrusted input.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("yaml: cannot parse: %v", r)
		}
	}()
	root = &yaml.Node{}
	if err := yaml.Unmarshal(data, root); err != nil {
		return nil, err
	}
	return root, nil
}

// yamlIssue turns a yaml.v3 syntax error ("yaml: line 3: …") into an Issue
// with its line.
func yamlIssue(file string, err error) Issue {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, text, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(num); err == nil {
				return Issue{File: file, Line: line, Msg: "invalid YAML: " + text}
			}
		}
	}
	return Issue{File: file, Msg: "invalid YAML: " + msg}
}

// loader holds the state of one Decode.
type loader struct {
	file      string
	lookup    func(string) (string, bool)
	envPrefix string
	describe  func(reflect.Type) string
	issues    []Issue
	// holes are the key paths whose values failed to decode (every issue's
	// path, and the key an unknown key probably meant): validation issues
	// about them are consequences, not news.
	holes   []string
	origins map[string]Origin
	// envOf marks nodes created by a BACKLOT_* override, by variable name.
	envOf map[*yaml.Node]string
	// replacedNodes are value nodes an override replaced.
	replacedNodes map[*yaml.Node]bool
	// bad marks nodes already reported (failed expansion); decode skips them.
	bad map[*yaml.Node]bool
	// active holds alias and merge targets being decoded, to catch cycles.
	active    map[*yaml.Node]bool
	budget    int
	overflown bool
	paths     int
}

func (l *loader) replaced(n *yaml.Node) bool { return l.replacedNodes[n] }

// add records an issue about node n at path.
func (l *loader) add(n *yaml.Node, path, format string, args ...any) {
	is := Issue{File: l.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		if name, ok := l.envOf[n]; ok {
			is.File = "$" + name
		} else {
			is.Line = n.Line
		}
	}
	l.issues = append(l.issues, is)
	l.holes = append(l.holes, path)
}

// record notes where path was set.
func (l *loader) record(path string, n *yaml.Node) {
	if n == nil {
		return
	}
	if name, ok := l.envOf[n]; ok {
		l.origins[path] = Origin{Env: name}
		return
	}
	if _, ok := l.origins[path]; !ok {
		l.origins[path] = Origin{Line: n.Line}
	}
}

// ---- ${VAR} expansion ----

// nodeIssue is an issue about node n, kept until Decode knows whether an
// override replaced n.
type nodeIssue struct {
	n  *yaml.Node
	is Issue
}

// expand replaces ${VAR} references in every scalar value (not keys) under
// n, appending a problem to issues in document order.
func (l *loader) expand(n *yaml.Node, path string, issues *[]nodeIssue) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			l.expand(n.Content[i+1], joinKey(path, k.Value), issues)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			l.expand(c, path+"["+strconv.Itoa(i)+"]", issues)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, missing, err := expandString(n.Value, l.lookup)
		if err != nil {
			*issues = append(*issues, nodeIssue{n, Issue{File: l.file, Line: n.Line, Path: path, Msg: err.Error()}})
			return
		}
		for _, m := range missing {
			*issues = append(*issues, nodeIssue{n, Issue{File: l.file, Line: n.Line, Path: path, Msg: "${" + m + "} is not set"}})
		}
		if len(missing) > 0 {
			return
		}
		if out != n.Value {
			n.Value = out
			n.Tag = "!!str" // an expanded value is a value, never YAML null
		}
	}
}

// expandString expands ${NAME} and ${NAME:-default} (default when unset or
// empty); $$ is a literal $, and any other $ is left alone. It returns the
// names of unset variables without a default.
func expandString(s string, lookup func(string) (string, bool)) (string, []string, error) {
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", nil, fmt.Errorf("unterminated ${ in %q (write $$ for a literal $)", clip(s))
			}
			expr := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validVarName(name) {
				return "", nil, fmt.Errorf("invalid variable name in ${%s}", clip(expr))
			}
			v, ok := lookup(name)
			switch {
			case hasDef && (!ok || v == ""):
				b.WriteString(def)
			case ok:
				b.WriteString(v)
			default:
				missing = append(missing, name)
			}
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), missing, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// ---- BACKLOT_<PATH> overrides ----

// override applies BACKLOT_<PATH> variables. Rather than parse variable
// names (which the lookup function cannot list, and which are ambiguous
// because keys contain underscores), it enumerates every scalar path of the
// schema, plus the map entries and list items present in the file, and
// looks each name up. Variables naming no scalar are simply never asked for.
func (l *loader) override(doc *yaml.Node, t reflect.Type) {
	l.replacedNodes = map[*yaml.Node]bool{}
	if l.envPrefix == "" {
		return
	}
	l.overrideStruct(t, doc, func() *yaml.Node { return doc }, strings.TrimSuffix(l.envPrefix, "_"), "")
}

func (l *loader) overrideStruct(t reflect.Type, m *yaml.Node, ensure func() *yaml.Node, env, path string) {
	for _, f := range Fields(t) {
		fenv := env + "_" + envKey(f.Key)
		fpath := joinKey(path, f.Key)
		var child *yaml.Node
		if m != nil {
			child = mapValue(m, f.Key)
		}
		parentEnsure := ensure
		key := f.Key
		setLeaf := func(v *yaml.Node) { l.setKey(parentEnsure(), key, v) }
		childEnsure := func() *yaml.Node { return l.ensureMapping(parentEnsure(), key) }
		l.overrideValue(f.Type, child, setLeaf, childEnsure, fenv, fpath)
	}
}

// overrideValue handles one schema position of type t whose current node is
// n (nil when absent).
func (l *loader) overrideValue(t reflect.Type, n *yaml.Node, set func(*yaml.Node), ensure func() *yaml.Node, env, path string) {
	if l.paths++; l.paths > maxOverridePaths {
		return
	}
	n = deref(n)
	switch kindOf(t) {
	case kindScalar:
		if v, ok := l.lookup(env); ok {
			nn := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
			l.envOf[nn] = env
			set(nn)
		}
	case kindScalarList:
		if v, ok := l.lookup(env); ok {
			// A list of scalars is overridden by a comma-separated value.
			seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			l.envOf[seq] = env
			for _, part := range strings.Split(v, ",") {
				if part = strings.TrimSpace(part); part == "" {
					continue
				}
				it := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: part}
				l.envOf[it] = env
				seq.Content = append(seq.Content, it)
			}
			set(seq)
		}
	case kindStruct:
		var m *yaml.Node
		if n != nil && n.Kind == yaml.MappingNode {
			m = n
		}
		l.overrideStruct(structType(t), m, ensure, env, path)
	case kindMap:
		if n == nil || n.Kind != yaml.MappingNode {
			return // only entries already in the file can be overridden
		}
		elem := t.Elem()
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" {
				continue
			}
			idx := i + 1
			key := k.Value
			l.overrideValue(elem, n.Content[idx],
				func(v *yaml.Node) { l.replace(n, idx, v) },
				func() *yaml.Node { return l.ensureMapping(n, key) },
				env+"_"+envKey(key), joinKey(path, key))
		}
	case kindList:
		if n == nil || n.Kind != yaml.SequenceNode {
			return
		}
		elem := t.Elem()
		for i := range n.Content {
			idx := i
			item := n
			l.overrideValue(elem, n.Content[i],
				func(v *yaml.Node) { l.replace(item, idx, v) },
				func() *yaml.Node {
					c := deref(item.Content[idx])
					if c.Kind != yaml.MappingNode {
						c = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
						l.replace(item, idx, c)
					}
					return c
				},
				env+"_"+strconv.Itoa(i), path+"["+strconv.Itoa(i)+"]")
		}
	}
}

// replace sets parent.Content[i], remembering the node it replaced.
func (l *loader) replace(parent *yaml.Node, i int, v *yaml.Node) {
	l.markReplaced(parent.Content[i])
	parent.Content[i] = v
}

// markReplaced marks n and everything under it as replaced.
func (l *loader) markReplaced(n *yaml.Node) {
	if n == nil || l.replacedNodes[n] {
		return
	}
	l.replacedNodes[n] = true
	for _, c := range n.Content {
		l.markReplaced(c)
	}
}

// setKey sets key in mapping m to v, adding the key when absent.
func (l *loader) setKey(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			l.replace(m, i+1, v)
			return
		}
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	l.envOf[k] = l.envOf[v]
	m.Content = append(m.Content, k, v)
}

// ensureMapping returns the mapping at key in m, creating it (or replacing a
// null or scalar there) when needed.
func (l *loader) ensureMapping(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			if c := deref(m.Content[i+1]); c.Kind == yaml.MappingNode {
				return c
			}
			c := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: m.Content[i].Line}
			l.replace(m, i+1, c)
			return c
		}
	}
	c := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, c)
	return c
}

// mapValue returns the value of key in mapping m (explicit keys only).
func mapValue(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// deref follows aliases (bounded, in case of a cycle).
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// envKey turns a YAML key into its part of a BACKLOT_* name.
func envKey(k string) string {
	b := []byte(strings.ToUpper(k))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// ---- schema reflection ----

type schemaKind int

const (
	kindScalar schemaKind = iota
	kindScalarList
	kindStruct
	kindMap
	kindList
	kindOther
)

// isText reports whether t decodes itself from a scalar (Duration).
func isText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// kindOf classifies a schema type for overrides.
func kindOf(t reflect.Type) schemaKind {
	if isText(t) {
		return kindScalar
	}
	switch t.Kind() {
	case reflect.Pointer:
		return kindOf(t.Elem())
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return kindScalar
	case reflect.Struct:
		return kindStruct
	case reflect.Map:
		return kindMap
	case reflect.Slice:
		if kindOf(t.Elem()) == kindScalar {
			return kindScalarList
		}
		return kindList
	}
	return kindOther
}

func structType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// Field is one key of a schema struct.
type Field struct {
	Key   string       // the YAML key
	Index int          // the struct field's index
	Type  reflect.Type // the field's type
}

// Fields lists the YAML keys of a struct type in declaration order.
func Fields(t reflect.Type) []Field {
	var out []Field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		out = append(out, Field{Key: key, Index: i, Type: f.Type})
	}
	return out
}

// ---- checking decode ----

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "want X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(clip(n.Value))
	}
	return "nothing"
}

// Clip shortens s for an issue message.
func Clip(s string) string { return clip(s) }

func clip(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}

// JoinKey appends key to a key path.
func JoinKey(path, key string) string { return joinKey(path, key) }

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

type pair struct {
	k, v   *yaml.Node
	merged bool
}

// pairs returns the key/value pairs of mapping n, with YAML merge keys
// ("<<: *base") resolved: explicit keys win over merged ones, and earlier
// merge sources over later ones.
func (l *loader) pairs(n *yaml.Node, path string) []pair {
	var out, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			srcs := []*yaml.Node{v}
			if d := deref(v); d != nil && d.Kind == yaml.SequenceNode {
				srcs = d.Content
			}
			for _, s := range srcs {
				d := deref(s)
				if d == nil || d.Kind != yaml.MappingNode {
					l.add(k, path, "merge (<<) wants a mapping or a list of mappings, got %s", describe(s))
					continue
				}
				if l.active[d] {
					l.add(k, path, "merge (<<) refers to a mapping that contains it")
					continue
				}
				if !l.spend(k, path) {
					return out
				}
				l.active[d] = true
				for _, p := range l.pairs(d, path) {
					p.merged = true
					merged = append(merged, p)
				}
				delete(l.active, d)
			}
			continue
		}
		out = append(out, pair{k: k, v: v})
	}
	if len(merged) == 0 {
		return out
	}
	have := map[string]bool{}
	for _, p := range out {
		have[p.k.Value] = true
	}
	for _, p := range merged {
		if !have[p.k.Value] {
			have[p.k.Value] = true
			out = append(out, p)
		}
	}
	return out
}

// spend charges one node against the budget; false once it is exhausted.
func (l *loader) spend(n *yaml.Node, path string) bool {
	if l.budget--; l.budget >= 0 {
		return true
	}
	if !l.overflown {
		l.overflown = true
		l.add(n, path, "document too large after alias expansion (over %d nodes)", maxNodes)
	}
	return false
}

// decode checks node n against the schema type of v and stores it in v,
// recording an issue for each unknown key, duplicate key and wrong type.
func (l *loader) decode(n *yaml.Node, v reflect.Value, path string) {
	if !l.spend(n, path) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || l.active[n.Alias] {
			l.add(n, path, "alias refers to a value that contains it")
			return
		}
		l.active[n.Alias] = true
		defer delete(l.active, n.Alias)
		l.decode(n.Alias, v, path)
		return
	}
	if l.bad[n] || isNull(n) {
		return
	}
	t := v.Type()
	if isText(t) {
		if n.Kind != yaml.ScalarNode {
			l.add(n, path, "want %s, got %s", l.want(t), describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			l.add(n, path, "want %s, got %s", l.want(t), describe(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		l.decode(n, v.Elem(), path)
	case reflect.Struct:
		l.decodeStruct(n, v, path)
	case reflect.Map:
		l.decodeMap(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			l.add(n, path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			l.record(p, c)
			l.decode(c, s.Index(i), p)
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			l.add(n, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		b, ok := parseBool(n)
		if !ok {
			l.add(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowInt(i) {
			l.add(n, path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if n.Kind != yaml.ScalarNode || err != nil || v.OverflowUint(u) {
			l.add(n, path, "want a non-negative integer, got %s", describe(n))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			l.add(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		l.add(n, path, "unsupported schema type %s", t) // a bug in config.go, not in the file
	}
}

// want names what a field of type t wants, for an issue.
func (l *loader) want(t reflect.Type) string {
	if l.describe != nil {
		if s := l.describe(t); s != "" {
			return s
		}
	}
	return "a " + t.Name()
}

func parseBool(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode {
		return false, false
	}
	switch n.Value {
	case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y":
		return true, true
	case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N":
		return false, true
	}
	return false, false
}

func (l *loader) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		l.add(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fields := Fields(v.Type())
	byKey := make(map[string]Field, len(fields))
	for _, f := range fields {
		byKey[f.Key] = f
	}
	seen := map[string]*yaml.Node{}
	for _, p := range l.pairs(n, path) {
		if p.k.Kind != yaml.ScalarNode {
			l.add(p.k, path, "keys must be strings, got %s", describe(p.k))
			continue
		}
		key := p.k.Value
		kp := joinKey(path, key)
		if first, dup := seen[key]; dup && !p.merged {
			l.add(p.k, kp, "duplicate key (first set at line %d)", first.Line)
			continue
		}
		seen[key] = p.k
		f, ok := byKey[key]
		if !ok {
			msg := "unknown key"
			if s := suggest(key, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
				l.holes = append(l.holes, joinKey(path, s))
			}
			l.add(p.k, kp, "%s", msg)
			continue
		}
		l.recordKey(kp, p.k, p.v)
		l.decode(p.v, v.Field(f.Index), kp)
	}
}

// recordKey notes the origin of a key: the override variable when its value
// came from the environment, else the key's line.
func (l *loader) recordKey(path string, k, v *yaml.Node) {
	if _, ok := l.envOf[v]; ok {
		l.record(path, v)
		return
	}
	l.record(path, k)
}

func (l *loader) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		l.add(n, path, "want a mapping, got %s", describe(n))
		return
	}
	t := v.Type()
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	seen := map[string]*yaml.Node{}
	for _, p := range l.pairs(n, path) {
		if p.k.Kind != yaml.ScalarNode || isNull(p.k) {
			l.add(p.k, path, "keys must be strings, got %s", describe(p.k))
			continue
		}
		key := p.k.Value
		kp := joinKey(path, key)
		if first, dup := seen[key]; dup && !p.merged {
			l.add(p.k, kp, "duplicate key (first set at line %d)", first.Line)
			continue
		}
		seen[key] = p.k
		l.recordKey(kp, p.k, p.v)
		elem := reflect.New(t.Elem()).Elem()
		l.decode(p.v, elem, kp)
		v.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
	}
}

// suggest returns the known key closest to key within edit distance 2.
func suggest(key string, fields []Field) string {
	best, bestD := "", 3
	for _, f := range fields {
		if d := editDistance(key, f.Key); d < bestD {
			best, bestD = f.Key, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, with an early exit for long keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
