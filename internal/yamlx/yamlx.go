// Package yamlx decodes YAML into Go config structs strictly, reporting every
// unknown key and type error at once with its line and dotted YAML path.
//
// yaml.v3 can reject unknown fields only through a Decoder, which loses the
// positions of nested documents; yamlx walks the yaml.Node tree against the
// struct's yaml tags instead, so callers that hold a node (a pipeline node's
// config block, a config file) keep exact lines.
package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is a problem found at one place of a YAML document.
type Error struct {
	File string // file name, may be empty
	Line int    // 1-based line, 0 when unknown
	Path string // dotted YAML path such as "nodes.otlp.config.endpoint"
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// UnknownKeyFunc decides what to do with a key the target struct does not
// have. It returns true when the key is tolerated (it is then removed from the
// node before decoding); returning false makes it an "unknown key" error.
type UnknownKeyFunc func(path string, key *yaml.Node) bool

// Options tune Decode.
type Options struct {
	File    string         // reported in errors
	Path    string         // dotted path of node inside the file, prefix of every error path
	Unknown UnknownKeyFunc // nil: every unknown key is an error
}

// Decode checks node against the shape of out (a pointer to a struct, map or
// slice), then decodes it into out, then runs Validate() on every value that
// has it. All problems are returned, joined, each as an *Error.
func Decode(node *yaml.Node, out any, opts Options) error {
	if node == nil || node.Kind == 0 || (node.Kind == yaml.DocumentNode && len(node.Content) == 0) {
		// No node, or an empty document (yaml.Unmarshal of an empty or
		// comment-only file): nothing to decode, the defaults stand.
		return validateAll(out, opts)
	}
	if node.Kind == yaml.DocumentNode {
		node = node.Content[0]
	}
	var errs []error
	check(node, reflect.TypeOf(out), opts.Path, opts, &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := node.Decode(out); err != nil {
		return errors.Join(typeErrors(err, opts)...)
	}
	return validateAll(out, opts)
}

// Join returns the path a.b for parent a and key b.
func Join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

func check(n *yaml.Node, t reflect.Type, path string, opts Options, errs *[]error) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		checkScalar(n, t, path, opts, errs)
		return
	}
	// A struct with its own UnmarshalYAML is still checked key by key (and
	// tolerated keys are removed before it sees them); other types with
	// their own decoding are decoded alone here, so that their errors carry
	// their path.
	if t.Kind() != reflect.Struct && reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			for _, e := range typeErrors(err, Options{File: opts.File, Path: path}) {
				mergeKey(e.(*Error), path)
				*errs = append(*errs, e)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if isNull(n) {
				return
			}
			*errs = append(*errs, &Error{File: opts.File, Line: n.Line, Path: path, Msg: fmt.Sprintf("expected a mapping, found %s", kindName(n))})
			return
		}
		fields, inlineMap := structFields(t)
		seen := map[string]int{}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isMerge(k) {
				// "<<: *anchor": the merged mappings have the shape of this one.
				kept = append(kept, k, v)
				for _, m := range mergeSources(v) {
					check(m, t, path, opts, errs)
				}
				continue
			}
			p := Join(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				*errs = append(*errs, &Error{File: opts.File, Line: k.Line, Path: p, Msg: fmt.Sprintf("duplicate key (first at line %d)", first)})
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok && inlineMap != nil {
				// An inline map collects every other key.
				ft, ok = inlineMap.Elem(), true
			}
			if !ok {
				if opts.Unknown != nil && opts.Unknown(p, k) {
					continue // tolerated: dropped before decoding
				}
				*errs = append(*errs, &Error{File: opts.File, Line: k.Line, Path: p, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			kept = append(kept, k, v)
			check(v, ft, p, opts, errs)
		}
		n.Content = kept
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			if !isNull(n) {
				*errs = append(*errs, &Error{File: opts.File, Line: n.Line, Path: path, Msg: fmt.Sprintf("expected a mapping, found %s", kindName(n))})
			}
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; isMerge(k) {
				for _, m := range mergeSources(n.Content[i+1]) {
					check(m, t, path, opts, errs)
				}
				continue
			}
			check(n.Content[i+1], t.Elem(), Join(path, n.Content[i].Value), opts, errs)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			// []byte also takes a !!binary scalar: left to the decoder.
			if !isNull(n) && t.Elem().Kind() != reflect.Uint8 {
				*errs = append(*errs, &Error{File: opts.File, Line: n.Line, Path: path, Msg: fmt.Sprintf("expected a list, found %s", kindName(n))})
			}
			return
		}
		for i, c := range n.Content {
			check(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), opts, errs)
		}
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		checkScalar(n, t, path, opts, errs)
	}
}

// checkScalar reports a value that does not decode into the scalar type t,
// saying what was expected instead of yaml.v3's "cannot unmarshal !!str".
func checkScalar(n *yaml.Node, t reflect.Type, path string, opts Options, errs *[]error) {
	if isNull(n) {
		return // the field keeps its value, as the decoder does
	}
	what := expected(t)
	if n.Kind != yaml.ScalarNode {
		*errs = append(*errs, &Error{File: opts.File, Line: n.Line, Path: path, Msg: fmt.Sprintf("expected %s, found %s", what, kindName(n))})
		return
	}
	if n.Decode(reflect.New(t).Interface()) == nil {
		return
	}
	msg := fmt.Sprintf("%s is not %s", quote(n.Value), what)
	if lo, hi, ok := intRange(t); ok && t != durationType && isInteger(n.Value) {
		msg = fmt.Sprintf("%s is out of range (expected an integer from %s to %s)", n.Value, lo, hi)
	}
	*errs = append(*errs, &Error{File: opts.File, Line: n.Line, Path: path, Msg: msg})
}

// expected describes the values of the scalar type t.
func expected(t reflect.Type) string {
	if t == durationType {
		return "a duration (expected e.g. 30s, 5m)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean (expected true or false)"
	case reflect.String:
		return "a string"
	case reflect.Float32, reflect.Float64:
		return "a number (expected e.g. 0.5)"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a " + t.String()
}

// intRange returns the bounds of an integer type.
func intRange(t reflect.Type) (lo, hi string, ok bool) {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b := t.Bits()
		return strconv.FormatInt(-1<<(b-1), 10), strconv.FormatInt(1<<(b-1)-1, 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "0", strconv.FormatUint(1<<t.Bits()-1, 10), true
	}
	return "", "", false
}

// isInteger reports whether s is an integer in YAML's notations, whatever
// its size.
func isInteger(s string) bool {
	s = strings.ReplaceAll(s, "_", "")
	s = strings.TrimLeft(s, "+-")
	for _, p := range []string{"0x", "0o", "0b"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			s = rest
			if s == "" {
				return false
			}
			for _, c := range strings.ToLower(s) {
				if !strings.ContainsRune("0123456789abcdef", c) {
					return false
				}
			}
			return true
		}
	}
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// quote quotes a value for a message, shortened when long.
func quote(v string) string {
	if r := []rune(v); len(r) > 40 {
		v = string(r[:40]) + "…"
	}
	return strconv.Quote(v)
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// isMerge reports whether k is the merge key "<<" (not a quoted "<<").
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// mergeSources returns the mappings a merge key's value merges in: one
// mapping, an alias of one, or a list of those. Anything else is left to the
// decoder to report.
func mergeSources(v *yaml.Node) []*yaml.Node {
	deref := func(n *yaml.Node) *yaml.Node {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			return n.Alias
		}
		return n
	}
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return []*yaml.Node{v}
	case yaml.SequenceNode:
		var out []*yaml.Node
		for _, c := range v.Content {
			if c = deref(c); c.Kind == yaml.MappingNode {
				out = append(out, c)
			}
		}
		return out
	}
	return nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return quote(n.Value)
	default:
		return "another kind of value"
	}
}

// structFields maps yaml keys to field types, following inline structs. An
// inline map (which takes every other key) is returned as inlineMap.
func structFields(t reflect.Type) (out map[string]reflect.Type, inlineMap reflect.Type) {
	out = map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, rest, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(rest, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Map:
				inlineMap = ft
			case reflect.Struct:
				fields, m := structFields(ft)
				for k, v := range fields {
					out[k] = v
				}
				if m != nil {
					inlineMap = m
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out, inlineMap
}

func suggest(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for k := range fields {
		if d := distance(key, k); d < bestD || (d == bestD && best != "" && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance, used only for suggestions.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// typeErrors turns decoding errors, such as yaml.v3's "line N: cannot
// unmarshal" ones, into *Error, each with its line when the message starts
// with it, and yaml.v3's wording replaced by what was expected.
func typeErrors(err error, opts Options) []error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	errs := make([]error, 0, len(msgs))
	for _, msg := range msgs {
		e := &Error{File: opts.File, Path: opts.Path, Msg: msg}
		var line int
		if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
			e.Line = line
			_, e.Msg, _ = strings.Cut(msg, ": ")
		}
		e.Msg = plainTypeError(e.Msg)
		errs = append(errs, e)
	}
	return errs
}

// yamlTypeError is yaml.v3's wording of a type error, which check() has
// mostly ruled out; it remains for types with their own UnmarshalYAML and
// for map keys.
var yamlTypeError = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")

// plainTypeError rewords a yaml.v3 type error as what was expected.
func plainTypeError(msg string) string {
	m := yamlTypeError.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	tag, value, goType := m[1], m[2], m[3]
	var what string
	switch {
	case goType == "time.Duration":
		what = expected(durationType)
	case goType == "bool":
		what = expected(reflect.TypeFor[bool]())
	case goType == "string":
		what = "a string"
	case strings.HasPrefix(goType, "float"):
		what = expected(reflect.TypeFor[float64]())
	case strings.HasPrefix(goType, "uint"):
		what = "a non-negative integer"
	case strings.HasPrefix(goType, "int"):
		what = "an integer"
	case strings.HasPrefix(goType, "[]"):
		what = "a list"
	case strings.HasPrefix(goType, "map["):
		what = "a mapping"
	default:
		return msg
	}
	switch tag {
	case "seq":
		return "expected " + what + ", found a list"
	case "map":
		return "expected " + what + ", found a mapping"
	}
	return fmt.Sprintf("%s is not %s", strconv.Quote(value), what)
}

// mergeKey moves the key an UnmarshalYAML error starts with ("address: …",
// "address[1]: …") into the path, when it is the path's own last key.
func mergeKey(e *Error, path string) {
	last := path[strings.LastIndexAny(path, ".]")+1:]
	if last == "" {
		return
	}
	rest, ok := strings.CutPrefix(e.Msg, last)
	if !ok {
		return
	}
	if m, ok := strings.CutPrefix(rest, ": "); ok {
		e.Msg = m
		return
	}
	if strings.HasPrefix(rest, "[") {
		if i := strings.Index(rest, "]: "); i > 0 {
			e.Path += rest[:i+1]
			e.Msg = rest[i+3:]
		}
	}
}

// Validator is implemented by config structs that check their own values.
type Validator interface {
	Validate() error
}

// validateAll calls Validate on out and on every nested struct that has it,
// depth first, prefixing errors with the YAML path of the value.
func validateAll(out any, opts Options) error {
	var errs []error
	validateValue(reflect.ValueOf(out), opts.Path, opts, &errs)
	return errors.Join(errs...)
}

func validateValue(v reflect.Value, path string, opts Options, errs *[]error) {
	if !v.IsValid() {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, rest, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			p := path
			if !strings.Contains(rest, "inline") {
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				p = Join(path, name)
			}
			validateValue(v.Field(i), p, opts, errs)
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			p := Join(path, fmt.Sprint(iter.Key().Interface()))
			val := iter.Value()
			if val.Kind() == reflect.Pointer || val.Kind() == reflect.Interface {
				validateValue(val, p, opts, errs)
				continue
			}
			// A map value is not addressable: validate an addressable copy,
			// so that a Validate with a pointer receiver runs too, and store
			// it back in case Validate normalized it.
			cp := reflect.New(val.Type()).Elem()
			cp.Set(val)
			validateValue(cp, p, opts, errs)
			v.SetMapIndex(iter.Key(), cp)
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			validateValue(v.Index(i), fmt.Sprintf("%s[%d]", path, i), opts, errs)
		}
	}
	if v.CanAddr() {
		if val, ok := v.Addr().Interface().(Validator); ok {
			if err := val.Validate(); err != nil {
				*errs = append(*errs, &Error{File: opts.File, Path: path, Msg: err.Error()})
			}
			return
		}
	}
	if v.CanInterface() {
		if val, ok := v.Interface().(Validator); ok {
			if err := val.Validate(); err != nil {
				*errs = append(*errs, &Error{File: opts.File, Path: path, Msg: err.Error()})
			}
		}
	}
}
