package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// parse returns the document node of src, failing the test on a YAML
// syntax error.
func parse(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("cannot parse test YAML: %v", err)
	}
	return &n
}

// errorsOf flattens a (joined) error into its *Error parts, failing the
// test when a part is not an *Error.
func errorsOf(t *testing.T, err error) []*Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var parts []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		parts = j.Unwrap()
	} else {
		parts = []error{err}
	}
	out := make([]*Error, 0, len(parts))
	for _, p := range parts {
		var e *Error
		if !errors.As(p, &e) {
			t.Fatalf("error %q (%T) is not a *yamlx.Error", p, p)
		}
		out = append(out, e)
	}
	return out
}

// wantErrors checks that err holds exactly the errors want, in order, each
// given as its Error() text.
func wantErrors(t *testing.T, err error, want ...string) []*Error {
	t.Helper()
	got := errorsOf(t, err)
	var texts []string
	for _, e := range got {
		texts = append(texts, e.Error())
	}
	if !reflect.DeepEqual(texts, want) {
		t.Fatalf("errors:\n got  %q\n want %q", texts, want)
	}
	return got
}

type server struct {
	Host    string        `yaml:"host"`
	Port    int           `yaml:"port"`
	Timeout time.Duration `yaml:"timeout"`
}

type backend struct {
	Name    string `yaml:"name"`
	Weight  int    `yaml:"weight"`
	Enabled bool   `yaml:"enabled"`
}

type root struct {
	Server   server             `yaml:"server"`
	Backends []backend          `yaml:"backends"`
	Routes   map[string]backend `yaml:"routes"`
	Ptr      *server            `yaml:"ptr"`
	Tags     map[string]string  `yaml:"tags"`
	Skipped  string             `yaml:"-"`
	NoTag    int
}

func TestDecodeNestedValues(t *testing.T) {
	src := `server:
  host: localhost
  port: 8080
  timeout: 5s
backends:
  - name: a
    weight: 1
  - name: b
    enabled: true
routes:
  r1:
    name: x
ptr:
  timeout: 1m30s
tags:
  anything: goes
notag: 7
`
	var r root
	if err := Decode(parse(t, src), &r, Options{}); err != nil {
		t.Fatal(err)
	}
	want := root{
		Server:   server{Host: "localhost", Port: 8080, Timeout: 5 * time.Second},
		Backends: []backend{{Name: "a", Weight: 1}, {Name: "b", Enabled: true}},
		Routes:   map[string]backend{"r1": {Name: "x"}},
		Ptr:      &server{Timeout: 90 * time.Second},
		Tags:     map[string]string{"anything": "goes"},
		NoTag:    7,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("decoded\n %+v\nwant\n %+v", r, want)
	}
}

// Decode on top of existing values keeps what the YAML does not set.
func TestDecodeKeepsDefaults(t *testing.T) {
	r := root{Server: server{Host: "default", Port: 1, Timeout: time.Second}}
	if err := Decode(parse(t, "server:\n  port: 2\n"), &r, Options{}); err != nil {
		t.Fatal(err)
	}
	if r.Server != (server{Host: "default", Port: 2, Timeout: time.Second}) {
		t.Fatalf("server: %+v", r.Server)
	}
}

func TestUnknownKeyWithLinePathAndSuggestion(t *testing.T) {
	src := `server:
  host: localhost
  prot: 8080
`
	var r root
	errs := wantErrors(t, Decode(parse(t, src), &r, Options{File: "cfg.yaml"}),
		`cfg.yaml:3: server.prot: unknown key (did you mean "port"?)`)
	if e := errs[0]; e.File != "cfg.yaml" || e.Line != 3 || e.Path != "server.prot" || e.Msg != `unknown key (did you mean "port"?)` {
		t.Fatalf("error fields: %+v", e)
	}
}

func TestUnknownKeyWithoutSuggestion(t *testing.T) {
	var r root
	wantErrors(t, Decode(parse(t, "completely_different: 1\n"), &r, Options{}),
		`1: completely_different: unknown key`)
}

// The suggestion is the closest key; among keys equally close, the first in
// alphabetical order, so that the message does not change from run to run.
func TestSuggestionIsClosestAndStable(t *testing.T) {
	type s struct {
		Abcd int `yaml:"abcd"`
		Abce int `yaml:"abce"`
		Abxy int `yaml:"abxy"`
	}
	for range 20 {
		var v s
		wantErrors(t, Decode(parse(t, "abcz: 1\n"), &v, Options{}),
			`1: abcz: unknown key (did you mean "abcd"?)`)
	}
	var v s
	wantErrors(t, Decode(parse(t, "abxz: 1\n"), &v, Options{}),
		`1: abxz: unknown key (did you mean "abxy"?)`)
}

// Every problem of the document is reported at once, in document order.
func TestAllErrorsAtOnce(t *testing.T) {
	src := `server:
  hots: a
  port: 1
backends:
  - name: a
  - nmae: b
    wieght: 2
routes:
  r1:
    enabeld: true
bogus: 1
`
	var r root
	err := Decode(parse(t, src), &r, Options{File: "f.yaml"})
	wantErrors(t, err,
		`f.yaml:2: server.hots: unknown key (did you mean "host"?)`,
		`f.yaml:6: backends[1].nmae: unknown key (did you mean "name"?)`,
		`f.yaml:7: backends[1].wieght: unknown key (did you mean "weight"?)`,
		`f.yaml:10: routes.r1.enabeld: unknown key (did you mean "enabled"?)`,
		`f.yaml:11: bogus: unknown key`,
	)
	// The joined error prints one problem a line.
	if got := strings.Count(err.Error(), "\n"); got != 4 {
		t.Fatalf("joined error has %d newlines, want 4:\n%s", got, err)
	}
	// Nothing was decoded: the struct is untouched when keys are wrong.
	if r.Server.Port != 0 {
		t.Fatalf("decoded despite errors: %+v", r.Server)
	}
}

func TestOptionsPathPrefixesErrors(t *testing.T) {
	var s server
	wantErrors(t, Decode(parse(t, "host: a\nprto: 1\n"), &s, Options{File: "p.yaml", Path: "nodes.otlp.config"}),
		`p.yaml:2: nodes.otlp.config.prto: unknown key (did you mean "port"?)`)
}

func TestDuplicateKeys(t *testing.T) {
	src := `server:
  host: a
  port: 1
  host: b
`
	var r root
	wantErrors(t, Decode(parse(t, src), &r, Options{File: "d.yaml"}),
		`d.yaml:4: server.host: duplicate key (first at line 2)`)
}

// Duplicate keys of a map are left to yaml.v3, which reports them with
// their line as well.
func TestDuplicateMapKeys(t *testing.T) {
	src := `tags:
  a: x
  a: y
`
	var r root
	errs := errorsOf(t, Decode(parse(t, src), &r, Options{File: "m.yaml"}))
	if len(errs) != 1 {
		t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
	}
	if e := errs[0]; e.File != "m.yaml" || e.Line != 3 || !strings.Contains(e.Msg, `"a" already defined at line 2`) {
		t.Fatalf("error: %+v", e)
	}
}

type base struct {
	Name  string `yaml:"name"`
	Level int    `yaml:"level"`
}

type withInline struct {
	base  `yaml:",inline"`
	Extra *struct {
		Inner base `yaml:",inline"`
		Own   int  `yaml:"own"`
	} `yaml:"extra"`
	Mode string `yaml:"mode"`
}

type exportedInline struct {
	Base base   `yaml:",inline"`
	Mode string `yaml:"mode"`
}

func TestInlineFields(t *testing.T) {
	var v exportedInline
	if err := Decode(parse(t, "name: n\nlevel: 3\nmode: m\n"), &v, Options{}); err != nil {
		t.Fatal(err)
	}
	if v.Base.Name != "n" || v.Base.Level != 3 || v.Mode != "m" {
		t.Fatalf("decoded %+v", v)
	}
	var w exportedInline
	wantErrors(t, Decode(parse(t, "name: n\nlevle: 3\n"), &w, Options{}),
		`2: levle: unknown key (did you mean "level"?)`)

	// Inline inside a nested pointer struct; the unexported embedded struct
	// of withInline is not a key of its own.
	var x withInline
	if err := Decode(parse(t, "mode: a\nextra:\n  name: inner\n  own: 2\n"), &x, Options{}); err != nil {
		t.Fatal(err)
	}
	if x.Extra == nil || x.Extra.Inner.Name != "inner" || x.Extra.Own != 2 {
		t.Fatalf("decoded %+v", x.Extra)
	}
	var y withInline
	wantErrors(t, Decode(parse(t, "extra:\n  nmae: inner\n"), &y, Options{}),
		`2: extra.nmae: unknown key (did you mean "name"?)`)
}

// An inline map collects every key the struct does not have: none is
// unknown, and its values are checked against the map's element type.
func TestInlineMap(t *testing.T) {
	type v struct {
		Known string             `yaml:"known"`
		Rest  map[string]backend `yaml:",inline"`
	}
	var out v
	if err := Decode(parse(t, "known: k\nfoo:\n  name: f\n"), &out, Options{}); err != nil {
		t.Fatal(err)
	}
	if out.Known != "k" || out.Rest["foo"].Name != "f" {
		t.Fatalf("decoded %+v", out)
	}
	var bad v
	wantErrors(t, Decode(parse(t, "foo:\n  nme: f\n"), &bad, Options{}),
		`2: foo.nme: unknown key (did you mean "name"?)`)
}

// YAML merge keys are not unknown keys: the merged mapping is checked
// against the same struct, at its own lines.
func TestMergeKeys(t *testing.T) {
	src := `defaults: &d
  host: h
  port: 1
server:
  <<: *d
  port: 2
ptr:
  <<: [*d, {timeout: 3s}]
`
	type v struct {
		Defaults server  `yaml:"defaults"`
		Server   server  `yaml:"server"`
		Ptr      *server `yaml:"ptr"`
	}
	var out v
	if err := Decode(parse(t, src), &out, Options{}); err != nil {
		t.Fatal(err)
	}
	if out.Server != (server{Host: "h", Port: 2}) || out.Ptr == nil || *out.Ptr != (server{Host: "h", Port: 1, Timeout: 3 * time.Second}) {
		t.Fatalf("decoded server %+v ptr %+v", out.Server, out.Ptr)
	}

	bad := `anchors:
  a: &a
    hots: h
server:
  <<: *a
`
	type w struct {
		Anchors map[string]any `yaml:"anchors"`
		Server  server         `yaml:"server"`
	}
	var out2 w
	wantErrors(t, Decode(parse(t, bad), &out2, Options{}),
		`3: server.hots: unknown key (did you mean "host"?)`)

	// In a map, the merged entries are entries of the map.
	m := `base: &b
  r1: {name: one}
routes:
  <<: *b
  r2: {name: two}
`
	type x struct {
		Base   map[string]backend `yaml:"base"`
		Routes map[string]backend `yaml:"routes"`
	}
	var out3 x
	if err := Decode(parse(t, m), &out3, Options{}); err != nil {
		t.Fatal(err)
	}
	if out3.Routes["r1"].Name != "one" || out3.Routes["r2"].Name != "two" {
		t.Fatalf("routes %+v", out3.Routes)
	}
	// A quoted "<<" is a plain key.
	var out4 server
	wantErrors(t, Decode(parse(t, "\"<<\": 1\n"), &out4, Options{}), `1: <<: unknown key`)
}

func TestDurations(t *testing.T) {
	var s server
	if err := Decode(parse(t, "timeout: 5s\n"), &s, Options{}); err != nil {
		t.Fatal(err)
	}
	if s.Timeout != 5*time.Second {
		t.Fatalf("timeout %v", s.Timeout)
	}
	var s2 server
	errs := errorsOf(t, Decode(parse(t, "host: a\ntimeout: 5 parsecs\n"), &s2, Options{File: "t.yaml"}))
	if len(errs) != 1 || errs[0].Line != 2 || errs[0].File != "t.yaml" || errs[0].Msg != `"5 parsecs" is not a duration (expected e.g. 30s, 5m)` {
		t.Fatalf("errors %v", errs)
	}
	if strings.HasPrefix(errs[0].Msg, "line ") {
		t.Fatalf("the line is repeated in the message: %q", errs[0].Msg)
	}
}

// Type errors are all reported, each with its line and the path of its key.
func TestTypeErrorsCarryLines(t *testing.T) {
	src := `server:
  host: a
  port: eighty
backends:
  - name: a
    weight: [1, 2]
`
	var r root
	err := Decode(parse(t, src), &r, Options{File: "ty.yaml", Path: "cfg"})
	errs := errorsOf(t, err)
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), err)
	}
	if e := errs[0]; e.Line != 3 || e.File != "ty.yaml" || e.Path != "cfg.server.port" || e.Msg != `"eighty" is not an integer` {
		t.Fatalf("first error %+v", e)
	}
	if e := errs[1]; e.Line != 6 || e.Path != "cfg.backends[0].weight" || e.Msg != "expected an integer, found a list" {
		t.Fatalf("second error %+v", e)
	}
	if got := errs[0].Error(); got != `ty.yaml:3: cfg.server.port: "eighty" is not an integer` {
		t.Fatalf("Error() = %q", got)
	}
}

func TestStructGivenOtherKinds(t *testing.T) {
	var r root
	wantErrors(t, Decode(parse(t, "server: [1, 2]\nptr: hello\n"), &r, Options{}),
		`1: server: expected a mapping, found a list`,
		`2: ptr: expected a mapping, found "hello"`)
	// A null value is fine: the field keeps its value.
	r2 := root{Server: server{Port: 9}}
	if err := Decode(parse(t, "server:\nptr: ~\n"), &r2, Options{}); err != nil {
		t.Fatal(err)
	}
	if r2.Server.Port != 9 {
		t.Fatalf("server %+v", r2.Server)
	}
}

// strictStruct has its own UnmarshalYAML, which fails on any key it does
// not know, as sources/otlp's Protocols does.
type strictStruct struct {
	A int `yaml:"a"`
	B int `yaml:"b"`
}

var errStrictUnknown = errors.New("strictStruct: unknown key")

func (s *strictStruct) UnmarshalYAML(n *yaml.Node) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch k := n.Content[i].Value; k {
		case "a", "b":
		default:
			return fmt.Errorf("%w %q", errStrictUnknown, k)
		}
	}
	type plain strictStruct
	return n.Decode((*plain)(s))
}

type hasStrict struct {
	Strict strictStruct `yaml:"strict"`
	Other  int          `yaml:"other"`
}

// A key the Unknown hook tolerates is removed before decoding, so it never
// reaches the struct, not even a custom UnmarshalYAML of a struct type;
// that struct's other unknown keys are still reported by yamlx, with a line.
func TestUnknownHookTolerates(t *testing.T) {
	src := `strict:
  a: 1
  tolerated: {deep: true}
  b: 2
other: 3
also_tolerated: x
`
	var calls []string
	var lines []int
	hook := func(path string, key *yaml.Node) bool {
		calls = append(calls, path)
		lines = append(lines, key.Line)
		return path == "strict.tolerated" || path == "also_tolerated"
	}
	var v hasStrict
	if err := Decode(parse(t, src), &v, Options{Unknown: hook}); err != nil {
		t.Fatalf("tolerated key reached the decoder: %v", err)
	}
	if v.Strict != (strictStruct{A: 1, B: 2}) || v.Other != 3 {
		t.Fatalf("decoded %+v", v)
	}
	if !reflect.DeepEqual(calls, []string{"strict.tolerated", "also_tolerated"}) || !reflect.DeepEqual(lines, []int{3, 6}) {
		t.Fatalf("hook called with %v at lines %v", calls, lines)
	}

	bad := `strict:
  a: 1
  tolerated: 1
  c: 2
`
	var v2 hasStrict
	err := Decode(parse(t, bad), &v2, Options{File: "s.yaml", Unknown: hook})
	wantErrors(t, err, `s.yaml:4: strict.c: unknown key (did you mean "a"?)`)
	if errors.Is(err, errStrictUnknown) {
		t.Fatal("the custom UnmarshalYAML ran despite the unknown key")
	}
}

// Without a hook the key is an ordinary unknown key; a hook that returns
// false leaves it one too.
func TestUnknownHookRefuses(t *testing.T) {
	var v hasStrict
	wantErrors(t, Decode(parse(t, "strict:\n  zzz: 1\n"), &v, Options{Unknown: func(string, *yaml.Node) bool { return false }}),
		`2: strict.zzz: unknown key`)
}

// The tolerated key is removed from the node: decoding the same node again
// does not see it.
func TestToleratedKeyIsRemovedFromNode(t *testing.T) {
	n := parse(t, "a: 1\nx: 2\n")
	var s strictStruct
	if err := Decode(n, &s, Options{Unknown: func(string, *yaml.Node) bool { return true }}); err != nil {
		t.Fatal(err)
	}
	var again strictStruct
	if err := n.Decode(&again); err != nil {
		t.Fatalf("the tolerated key is still in the node: %v", err)
	}
}

// Non-struct types with their own UnmarshalYAML are left to it.
type upper string

func (u *upper) UnmarshalYAML(n *yaml.Node) error {
	*u = upper(strings.ToUpper(n.Value))
	return nil
}

func TestNonStructUnmarshalerLeftAlone(t *testing.T) {
	var v struct {
		U upper `yaml:"u"`
	}
	if err := Decode(parse(t, "u: abc\n"), &v, Options{}); err != nil {
		t.Fatal(err)
	}
	if v.U != "ABC" {
		t.Fatalf("u = %q", v.U)
	}
}

// Custom unmarshaler errors that are not type errors are still *Error.
func TestPlainDecodeError(t *testing.T) {
	// Checking passes (a is a field), then the custom decoder fails.
	var w struct {
		S *failing `yaml:"s"`
	}
	wantErrors(t, Decode(parse(t, "s:\n  a: 1\n"), &w, Options{File: "x.yaml", Path: "p"}),
		`x.yaml: p: failing always fails`)
}

type failing struct {
	A int `yaml:"a"`
}

func (*failing) UnmarshalYAML(*yaml.Node) error { return errors.New("failing always fails") }

type ptrValidated struct {
	N int `yaml:"n"`
}

func (p *ptrValidated) Validate() error {
	if p.N < 0 {
		return fmt.Errorf("n must not be negative, got %d", p.N)
	}
	return nil
}

type valValidated struct {
	S string `yaml:"s"`
}

func (v valValidated) Validate() error {
	if v.S == "" {
		return errors.New("s is required")
	}
	return nil
}

type validatedRoot struct {
	P      ptrValidated            `yaml:"p"`
	PP     *ptrValidated           `yaml:"pp"`
	V      valValidated            `yaml:"v"`
	List   []ptrValidated          `yaml:"list"`
	Map    map[string]ptrValidated `yaml:"map"`
	VMap   map[string]valValidated `yaml:"vmap"`
	Nested struct {
		Deep valValidated `yaml:"deep"`
	} `yaml:"nested"`
	Inl   ptrValidated `yaml:",inline"`
	calls *int
}

func (r *validatedRoot) Validate() error {
	if r.calls != nil {
		*r.calls++
	}
	if r.V.S == "boom" {
		return errors.New("root says no")
	}
	return nil
}

// Validate runs on every nested value that has it, with a pointer or a
// value receiver, in structs, pointers, slices and maps; its error carries
// the YAML path of the value.
func TestValidateNested(t *testing.T) {
	src := `p: {n: -1}
pp: {n: -2}
v: {s: ""}
list:
  - {n: 1}
  - {n: -3}
map:
  m1: {n: -4}
vmap:
  k: {s: ""}
nested:
  deep: {s: ""}
n: -5
`
	var r validatedRoot
	err := Decode(parse(t, src), &r, Options{File: "v.yaml", Path: "top"})
	wantErrors(t, err,
		`v.yaml: top.p: n must not be negative, got -1`,
		`v.yaml: top.pp: n must not be negative, got -2`,
		`v.yaml: top.v: s is required`,
		`v.yaml: top.list[1]: n must not be negative, got -3`,
		`v.yaml: top.map.m1: n must not be negative, got -4`,
		`v.yaml: top.vmap.k: s is required`,
		`v.yaml: top.nested.deep: s is required`,
		`v.yaml: top: n must not be negative, got -5`,
	)
}

func TestValidateTopLevelRunsOnce(t *testing.T) {
	calls := 0
	r := validatedRoot{calls: &calls}
	src := "v: {s: boom}\nnested: {deep: {s: x}}\n"
	wantErrors(t, Decode(parse(t, src), &r, Options{}), `root says no`)
	if calls != 1 {
		t.Fatalf("root Validate called %d times", calls)
	}
}

// A nil node (no YAML at all) or an empty document decodes nothing but
// still validates the defaults.
func TestNilAndEmptyNodesValidate(t *testing.T) {
	r := validatedRoot{V: valValidated{S: "ok"}, Nested: struct {
		Deep valValidated `yaml:"deep"`
	}{valValidated{S: "ok"}}}
	if err := Decode(nil, &r, Options{}); err != nil {
		t.Fatalf("valid defaults: %v", err)
	}
	var bad validatedRoot
	bad.Nested.Deep.S = "ok"
	wantErrors(t, Decode(nil, &bad, Options{File: "n.yaml", Path: "cfg"}), `n.yaml: cfg.v: s is required`)

	for _, src := range []string{"", "# only a comment\n", "---\n", "~\n"} {
		r := server{Port: 7}
		if err := Decode(parse(t, src), &r, Options{}); err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if r.Port != 7 {
			t.Fatalf("%q changed the defaults: %+v", src, r)
		}
	}
}

func TestErrorFormatting(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "f.yaml", Line: 3, Path: "a.b", Msg: "bad"}, "f.yaml:3: a.b: bad"},
		{Error{File: "f.yaml", Path: "a.b", Msg: "bad"}, "f.yaml: a.b: bad"},
		{Error{File: "f.yaml", Line: 3, Msg: "bad"}, "f.yaml:3: bad"},
		{Error{Line: 3, Path: "a", Msg: "bad"}, "3: a: bad"},
		{Error{Path: "a[1].c", Msg: "bad"}, "a[1].c: bad"},
		{Error{Msg: "bad"}, "bad"},
		{Error{File: "f.yaml", Msg: "bad"}, "f.yaml: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestJoin(t *testing.T) {
	if got := Join("", "a"); got != "a" {
		t.Errorf("Join(\"\", a) = %q", got)
	}
	if got := Join("a.b", "c"); got != "a.b.c" {
		t.Errorf("Join(a.b, c) = %q", got)
	}
}

// Decode also takes a mapping or sequence node directly (a block inside a
// bigger document), and decodes into maps and slices.
func TestDecodeNonDocumentNodesAndTargets(t *testing.T) {
	doc := parse(t, "outer:\n  inner:\n    - {name: a}\n    - {nam: b}\n")
	seq := doc.Content[0].Content[1].Content[1]
	var list []backend
	wantErrors(t, Decode(seq, &list, Options{File: "o.yaml", Path: "outer.inner"}),
		`o.yaml:4: outer.inner[1].nam: unknown key (did you mean "name"?)`)

	var m map[string]server
	if err := Decode(parse(t, "x: {port: 1}\ny: {port: 2}\n"), &m, Options{}); err != nil {
		t.Fatal(err)
	}
	if m["x"].Port != 1 || m["y"].Port != 2 {
		t.Fatalf("map %+v", m)
	}
	var m2 map[string]server
	wantErrors(t, Decode(parse(t, "x: {prt: 1}\n"), &m2, Options{}),
		`1: x.prt: unknown key (did you mean "port"?)`)
}

func TestAliases(t *testing.T) {
	src := `a: &s {host: h, port: 1}
b: *s
`
	var v struct {
		A server `yaml:"a"`
		B server `yaml:"b"`
	}
	if err := Decode(parse(t, src), &v, Options{}); err != nil {
		t.Fatal(err)
	}
	if v.B != (server{Host: "h", Port: 1}) {
		t.Fatalf("b %+v", v.B)
	}
}

// Type errors say what the key expects, with the key's path and line,
// instead of yaml.v3's "cannot unmarshal !!str `soon` into time.Duration".
func TestTypeErrorsSayWhatWasExpected(t *testing.T) {
	type search struct {
		QueryTimeout time.Duration `yaml:"query_timeout"`
	}
	type cfg struct {
		Search   search            `yaml:"search"`
		Jobs     int               `yaml:"jobs"`
		Small    int8              `yaml:"small"`
		Count    uint32            `yaml:"count"`
		Enabled  bool              `yaml:"enabled"`
		Ratio    float64           `yaml:"ratio"`
		Names    []string          `yaml:"names"`
		Labels   map[string]string `yaml:"labels"`
		Name     string            `yaml:"name"`
		Timeouts []time.Duration   `yaml:"timeouts"`
		Limits   map[string]int    `yaml:"limits"`
	}
	src := `search:
  query_timeout: soon
jobs: many
small: 300
count: -1
enabled: maybe
ratio: half
names: just-one
labels: [a, b]
name: {a: 1}
timeouts: [1s, 5]
limits: {a: 1, b: lots}
jobs2: 1
`
	var c cfg
	wantErrors(t, Decode(parse(t, src), &c, Options{File: "weft.yaml", Path: "query_frontend"}),
		`weft.yaml:2: query_frontend.search.query_timeout: "soon" is not a duration (expected e.g. 30s, 5m)`,
		`weft.yaml:3: query_frontend.jobs: "many" is not an integer`,
		`weft.yaml:4: query_frontend.small: 300 is out of range (expected an integer from -128 to 127)`,
		`weft.yaml:5: query_frontend.count: -1 is out of range (expected an integer from 0 to 4294967295)`,
		`weft.yaml:6: query_frontend.enabled: "maybe" is not a boolean (expected true or false)`,
		`weft.yaml:7: query_frontend.ratio: "half" is not a number (expected e.g. 0.5)`,
		`weft.yaml:8: query_frontend.names: expected a list, found "just-one"`,
		`weft.yaml:9: query_frontend.labels: expected a mapping, found a list`,
		`weft.yaml:10: query_frontend.name: expected a string, found a mapping`,
		`weft.yaml:11: query_frontend.timeouts[1]: "5" is not a duration (expected e.g. 30s, 5m)`,
		`weft.yaml:12: query_frontend.limits.b: "lots" is not an integer`,
		`weft.yaml:13: query_frontend.jobs2: unknown key (did you mean "jobs"?)`,
	)
	// A long value is shortened.
	long := strings.Repeat("x", 100)
	errs := errorsOf(t, Decode(parse(t, "jobs: "+long+"\n"), &c, Options{}))
	if len(errs) != 1 || strings.Contains(errs[0].Msg, long) || !strings.Contains(errs[0].Msg, `…" is not an integer`) {
		t.Fatalf("errors %v", errs)
	}
	// Values of the right type, and nulls, pass.
	ok := "search: {query_timeout: 1m}\njobs: 0x10\nsmall: -128\ncount: 4294967295\nenabled: true\nratio: 1\nnames: [a]\nlabels: {a: b}\nname: 5\ntimeouts: ~\nlimits: {a: 1_000}\n"
	if err := Decode(parse(t, ok), &c, Options{}); err != nil {
		t.Fatal(err)
	}
	if c.Jobs != 16 || c.Search.QueryTimeout != time.Minute || c.Name != "5" || c.Limits["a"] != 1000 {
		t.Fatalf("decoded %+v", c)
	}
}

// Type errors found by the decoder itself (inside a type with its own
// UnmarshalYAML) are reworded the same way.
func TestPlainTypeError(t *testing.T) {
	for in, want := range map[string]string{
		"cannot unmarshal !!str `soon` into time.Duration": `"soon" is not a duration (expected e.g. 30s, 5m)`,
		"cannot unmarshal !!str `${WEFT_...` into int":     `"${WEFT_..." is not an integer`,
		"cannot unmarshal !!map into []string":             "expected a list, found a mapping",
		"cannot unmarshal !!seq into uint64":               "expected a non-negative integer, found a list",
		"cannot unmarshal !!str `x` into bool":             `"x" is not a boolean (expected true or false)`,
		"cannot unmarshal !!str `x` into pkg.Custom":       "cannot unmarshal !!str `x` into pkg.Custom",
		"something else": "something else",
	} {
		if got := plainTypeError(in); got != want {
			t.Errorf("plainTypeError(%q) = %q, want %q", in, got, want)
		}
	}
}

// addrs decodes from one string or a list of strings, and names itself in
// its errors, as internal/kafka's Brokers does.
type addrs []string

func (a *addrs) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*a = addrs{n.Value}
		return nil
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: address[%d]: expected a host:port string", c.Line, i)
			}
			*a = append(*a, c.Value)
		}
		return nil
	}
	var list []string
	return n.Decode(&list) // a type error
}

// The errors of a type with its own UnmarshalYAML carry its key's path and
// their line.
func TestUnmarshalerErrorsCarryPath(t *testing.T) {
	var v struct {
		Kafka struct {
			Address addrs `yaml:"address"`
			Other   addrs `yaml:"other"`
		} `yaml:"kafka"`
	}
	wantErrors(t, Decode(parse(t, "kafka:\n  address:\n    - a:1\n    - [b]\n  other: {a: 1}\n"), &v, Options{File: "w.yaml"}),
		`w.yaml:4: kafka.address[1]: expected a host:port string`,
		`w.yaml:5: kafka.other: expected a list, found a mapping`)
}

// Merge keys are inlined as YAML defines them: own keys win, then the
// sources in order; the anchored mapping keeps its keys.
func TestInlineMerges(t *testing.T) {
	var doc yaml.Node
	src := "base: &b {x: 1, y: 2}\nmore: &m {y: 3, z: 4}\nuse:\n  <<: [*b, *m]\n  x: 9\nnested:\n  inner:\n    <<: *b\n"
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	InlineMerges(&doc)
	root := Root(&doc)
	want := map[string]string{"use.x": "9", "use.y": "2", "use.z": "4", "nested.inner.x": "1", "nested.inner.y": "2", "base.x": "1"}
	for path, v := range want {
		if n := GetPath(root, path); n == nil || n.Value != v {
			t.Errorf("%s = %v, want %s", path, n, v)
		}
	}
	if n := GetPath(root, "base.z"); n != nil {
		t.Errorf("the anchored mapping got a key: base.z = %s", n.Value)
	}
	var got, orig map[string]any
	if err := doc.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(src), &orig); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(orig) {
		t.Errorf("decoded after inlining %v, before %v", got, orig)
	}
}
