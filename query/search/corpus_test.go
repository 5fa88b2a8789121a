package search

// This file runs the TraceQL conformance corpus in testdata/corpus (the
// format is described in testdata/corpus/README.md). Every case of every
// file runs through the public Searcher.Search API over three
// environments built from the same traces: everything in the live-store,
// everything in Parquet blocks (two blocks), and a mix where one trace is
// split between a block and the live-store. Each environment must give
// exactly the expected result.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gopkg.in/yaml.v3"
)

// corpusBase is the time every start offset of the corpus counts from.
var corpusBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// corpusFile is one YAML file of the corpus.
type corpusFile struct {
	Traces []corpusTrace `yaml:"traces"`
	Cases  []corpusCase  `yaml:"cases"`
}

// corpusTrace is one trace to load; ID is the small number the trace ID is
// derived from.
type corpusTrace struct {
	ID    int          `yaml:"id"`
	Spans []corpusSpan `yaml:"spans"`
}

// corpusSpan is one span. Parent 0 means a root span.
type corpusSpan struct {
	ID       int           `yaml:"id"`
	Parent   int           `yaml:"parent"`
	Service  string        `yaml:"service"`
	Resource attrList      `yaml:"resource"`
	Scope    *corpusScope  `yaml:"scope"`
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`
	Status   string        `yaml:"status"`
	Message  string        `yaml:"message"`
	Start    corpusDur     `yaml:"start"`
	Dur      corpusDur     `yaml:"dur"`
	Attrs    attrList      `yaml:"attrs"`
	Events   []corpusEvent `yaml:"events"`
	Links    []corpusLink  `yaml:"links"`
}

// corpusScope is a span's instrumentation scope.
type corpusScope struct {
	Name    string   `yaml:"name"`
	Version string   `yaml:"version"`
	Attrs   attrList `yaml:"attrs"`
}

// corpusEvent is a span event; At is its time since the span's start.
type corpusEvent struct {
	Name  string    `yaml:"name"`
	At    corpusDur `yaml:"at"`
	Attrs attrList  `yaml:"attrs"`
}

// corpusLink is a span link to span Span of trace Trace (small numbers).
type corpusLink struct {
	Trace int      `yaml:"trace"`
	Span  int      `yaml:"span"`
	Attrs attrList `yaml:"attrs"`
}

// corpusCase is one query and its expected outcome: Want (the traces, in
// response order) or Error (a substring of an InvalidArgument error).
type corpusCase struct {
	Name        string       `yaml:"name"`
	Q           string       `yaml:"q"`
	Limit       int          `yaml:"limit"`
	Spss        int          `yaml:"spss"`
	MinDuration corpusDur    `yaml:"minDuration"`
	MaxDuration corpusDur    `yaml:"maxDuration"`
	Want        *[]wantTrace `yaml:"want"`
	Error       string       `yaml:"error"`
	Skip        string       `yaml:"skip"`
	SkipEnvs    []string     `yaml:"skipEnvs"`
	line        int          // line of the case in its file
}

// wantTrace is one expected trace. Spans, Matched, Attributes and
// SpanAttrs are a shorthand for a single spanset.
type wantTrace struct {
	Trace      int              `yaml:"trace"`
	Spans      []int            `yaml:"spans"`
	Matched    int              `yaml:"matched"`
	Attributes attrList         `yaml:"attributes"`
	SpanAttrs  map[int]attrList `yaml:"spanAttrs"`
	Spansets   []wantSpanset    `yaml:"spansets"`
	// MetadataOnly expects no spanset (a legacy search, without q).
	MetadataOnly bool `yaml:"metadataOnly"`
}

// wantSpanset is one expected spanset. Spans lists the span ids shown
// (after truncation to spss) in start-time order; Matched defaults to
// len(Spans).
type wantSpanset struct {
	Spans      []int            `yaml:"spans"`
	Matched    int              `yaml:"matched"`
	Attributes attrList         `yaml:"attributes"`
	SpanAttrs  map[int]attrList `yaml:"spanAttrs"`
}

// corpusDur is a Go duration written as a string ("1.5s").
type corpusDur time.Duration

// UnmarshalYAML reads a Go duration.
func (d *corpusDur) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: cannot read duration: not a scalar", n.Line)
	}
	if n.Value == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: cannot read duration: %w", n.Line, err)
	}
	*d = corpusDur(v)
	return nil
}

// attr is one typed attribute: a key and a YAML value node.
type attr struct {
	Key   string
	Value *yaml.Node
}

// attrList is an ordered YAML mapping of attributes with typed values.
type attrList []attr

// UnmarshalYAML reads a mapping, keeping its order and value types.
func (l *attrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: cannot read attributes: not a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		v := n.Content[i+1]
		if _, err := otlpValue(v); err != nil {
			return err
		}
		*l = append(*l, attr{Key: n.Content[i].Value, Value: v})
	}
	return nil
}

// otlpValue turns a YAML value into its OTLP JSON form: strings, ints,
// floats, bools and lists (arrays).
func otlpValue(n *yaml.Node) (*AnyValue, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return otlpValue(n.Alias)
	case yaml.SequenceNode:
		arr := &ArrayValue{}
		for _, e := range n.Content {
			v, err := otlpValue(e)
			if err != nil {
				return nil, err
			}
			arr.Values = append(arr.Values, v)
		}
		return &AnyValue{ArrayValue: arr}, nil
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			s := n.Value
			return &AnyValue{StringValue: &s}, nil
		case "!!int":
			i, err := strconv.ParseInt(n.Value, 0, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: cannot read int %q: %w", n.Line, n.Value, err)
			}
			return &AnyValue{IntValue: &i}, nil
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: cannot read float %q: %w", n.Line, n.Value, err)
			}
			return &AnyValue{DoubleValue: &f}, nil
		case "!!bool":
			b, err := strconv.ParseBool(n.Value)
			if err != nil {
				return nil, fmt.Errorf("line %d: cannot read bool %q: %w", n.Line, n.Value, err)
			}
			return &AnyValue{BoolValue: &b}, nil
		}
	}
	return nil, fmt.Errorf("line %d: cannot read attribute value %q: use a string, int, float, bool or list", n.Line, n.Value)
}

// putValue stores an OTLP JSON value into a pcommon.Value.
func putValue(dst pcommon.Value, v *AnyValue) {
	switch {
	case v.StringValue != nil:
		dst.SetStr(*v.StringValue)
	case v.IntValue != nil:
		dst.SetInt(*v.IntValue)
	case v.DoubleValue != nil:
		dst.SetDouble(*v.DoubleValue)
	case v.BoolValue != nil:
		dst.SetBool(*v.BoolValue)
	case v.ArrayValue != nil:
		s := dst.SetEmptySlice()
		for _, e := range v.ArrayValue.Values {
			putValue(s.AppendEmpty(), e)
		}
	}
}

func putAttrs(m pcommon.Map, l attrList) {
	for _, a := range l {
		v, _ := otlpValue(a.Value) // checked when decoding
		putValue(m.PutEmpty(a.Key), v)
	}
}

// corpusTraceID derives a trace ID from a small number.
func corpusTraceID(n int) [16]byte {
	var id [16]byte
	binary.BigEndian.PutUint32(id[12:], uint32(n))
	return id
}

// corpusSpanID derives a span ID from a small number.
func corpusSpanID(n int) [8]byte {
	var id [8]byte
	binary.BigEndian.PutUint32(id[4:], uint32(n))
	return id
}

var corpusKinds = map[string]ptrace.SpanKind{
	"": ptrace.SpanKindUnspecified, "unspecified": ptrace.SpanKindUnspecified,
	"internal": ptrace.SpanKindInternal, "server": ptrace.SpanKindServer, "client": ptrace.SpanKindClient,
	"producer": ptrace.SpanKindProducer, "consumer": ptrace.SpanKindConsumer,
}

var corpusStatuses = map[string]ptrace.StatusCode{
	"": ptrace.StatusCodeUnset, "unset": ptrace.StatusCodeUnset,
	"ok": ptrace.StatusCodeOk, "error": ptrace.StatusCodeError,
}

// buildTrace returns the given spans of trace tr as OTLP. Spans with the
// same resource (and scope) share a ResourceSpans (ScopeSpans).
func buildTrace(tr *corpusTrace, spans []corpusSpan) ptrace.Traces {
	td := ptrace.NewTraces()
	resources := map[string]ptrace.ResourceSpans{}
	scopes := map[string]ptrace.ScopeSpans{}
	for _, s := range spans {
		rkey := s.Service + "\x00" + attrsKey(s.Resource)
		rs, ok := resources[rkey]
		if !ok {
			rs = td.ResourceSpans().AppendEmpty()
			if s.Service != "" {
				rs.Resource().Attributes().PutStr("service.name", s.Service)
			}
			putAttrs(rs.Resource().Attributes(), s.Resource)
			resources[rkey] = rs
		}
		sc := s.Scope
		if sc == nil {
			sc = &corpusScope{}
		}
		skey := rkey + "\x01" + sc.Name + "\x00" + sc.Version + "\x00" + attrsKey(sc.Attrs)
		ss, ok := scopes[skey]
		if !ok {
			ss = rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(sc.Name)
			ss.Scope().SetVersion(sc.Version)
			putAttrs(ss.Scope().Attributes(), sc.Attrs)
			scopes[skey] = ss
		}
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(corpusTraceID(tr.ID))
		sp.SetSpanID(corpusSpanID(s.ID))
		if s.Parent != 0 {
			sp.SetParentSpanID(corpusSpanID(s.Parent))
		}
		sp.SetName(s.Name)
		sp.SetKind(corpusKinds[s.Kind])
		sp.Status().SetCode(corpusStatuses[s.Status])
		sp.Status().SetMessage(s.Message)
		start := corpusBase.Add(time.Duration(s.Start))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(s.Dur))))
		putAttrs(sp.Attributes(), s.Attrs)
		for _, e := range s.Events {
			ev := sp.Events().AppendEmpty()
			ev.SetName(e.Name)
			ev.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(e.At))))
			putAttrs(ev.Attributes(), e.Attrs)
		}
		for _, l := range s.Links {
			ln := sp.Links().AppendEmpty()
			ln.SetTraceID(corpusTraceID(l.Trace))
			ln.SetSpanID(corpusSpanID(l.Span))
			putAttrs(ln.Attributes(), l.Attrs)
		}
	}
	return td
}

// attrsKey renders attributes canonically, to group spans by resource.
func attrsKey(l attrList) string {
	var b strings.Builder
	for _, a := range l {
		v, _ := otlpValue(a.Value)
		fmt.Fprintf(&b, "%s=%s;", a.Key, renderValue(v))
	}
	return b.String()
}

// renderValue prints a value with its type: string:"x", int:1,
// double:1.5, bool:true, [ ... ].
func renderValue(v *AnyValue) string {
	switch {
	case v == nil:
		return "<nil>"
	case v.StringValue != nil:
		return "string:" + strconv.Quote(*v.StringValue)
	case v.IntValue != nil:
		return "int:" + strconv.FormatInt(*v.IntValue, 10)
	case v.DoubleValue != nil:
		return "double:" + strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	case v.BoolValue != nil:
		return "bool:" + strconv.FormatBool(*v.BoolValue)
	case v.ArrayValue != nil:
		parts := make([]string, len(v.ArrayValue.Values))
		for i, e := range v.ArrayValue.Values {
			parts[i] = renderValue(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return "<empty>"
}

// loadCorpusFile decodes one corpus file strictly and checks it.
func loadCorpusFile(path string) (*corpusFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read corpus file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f corpusFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", path, err)
	}
	// Lines of the cases, for messages.
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", path, err)
	}
	if len(doc.Content) == 1 {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "cases" {
				for j, c := range root.Content[i+1].Content {
					if j < len(f.Cases) {
						f.Cases[j].line = c.Line
					}
				}
			}
		}
	}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("cannot use %s: %w", path, err)
	}
	return &f, nil
}

// check validates references and names.
func (f *corpusFile) check() error {
	traces := map[int]*corpusTrace{}
	for i := range f.Traces {
		tr := &f.Traces[i]
		if tr.ID <= 0 || traces[tr.ID] != nil {
			return fmt.Errorf("trace id %d is not positive or not unique", tr.ID)
		}
		traces[tr.ID] = tr
		seen := map[int]bool{}
		for _, s := range tr.Spans {
			if s.ID <= 0 || seen[s.ID] {
				return fmt.Errorf("trace %d: span id %d is not positive or not unique", tr.ID, s.ID)
			}
			seen[s.ID] = true
			if _, ok := corpusKinds[s.Kind]; !ok {
				return fmt.Errorf("trace %d span %d: unknown kind %q", tr.ID, s.ID, s.Kind)
			}
			if _, ok := corpusStatuses[s.Status]; !ok {
				return fmt.Errorf("trace %d span %d: unknown status %q", tr.ID, s.ID, s.Status)
			}
		}
	}
	names := map[string]bool{}
	for _, c := range f.Cases {
		if c.Name == "" || names[c.Name] {
			return fmt.Errorf("line %d: case name %q is empty or not unique", c.line, c.Name)
		}
		names[c.Name] = true
		for _, e := range c.SkipEnvs {
			if e != "live" && e != "blocks" && e != "mixed" || c.Skip == "" {
				return fmt.Errorf("case %s: skipEnvs needs skip and names live, blocks or mixed", c.Name)
			}
		}
		if (c.Want == nil) == (c.Error == "") {
			return fmt.Errorf("case %s: give exactly one of want and error", c.Name)
		}
		if c.Want == nil {
			continue
		}
		for _, w := range *c.Want {
			tr := traces[w.Trace]
			if tr == nil {
				return fmt.Errorf("case %s: unknown trace %d", c.Name, w.Trace)
			}
			if len(w.Spansets) > 0 && (w.Spans != nil || w.Matched != 0 || w.Attributes != nil || w.SpanAttrs != nil) {
				return fmt.Errorf("case %s trace %d: give spansets or spans, not both", c.Name, w.Trace)
			}
			for _, ss := range w.sets() {
				if len(ss.Spans) == 0 {
					return fmt.Errorf("case %s trace %d: a spanset without spans", c.Name, w.Trace)
				}
				for _, id := range ss.Spans {
					if tr.span(id) == nil {
						return fmt.Errorf("case %s trace %d: unknown span %d", c.Name, w.Trace, id)
					}
				}
			}
		}
	}
	return nil
}

func (tr *corpusTrace) span(id int) *corpusSpan {
	for i := range tr.Spans {
		if tr.Spans[i].ID == id {
			return &tr.Spans[i]
		}
	}
	return nil
}

// sets returns the trace's expected spansets, expanding the shorthand.
func (w *wantTrace) sets() []wantSpanset {
	if w.MetadataOnly {
		return nil
	}
	if len(w.Spansets) > 0 {
		return w.Spansets
	}
	return []wantSpanset{{Spans: w.Spans, Matched: w.Matched, Attributes: w.Attributes, SpanAttrs: w.SpanAttrs}}
}

// corpusEnv is one way of storing the corpus's traces.
type corpusEnv struct {
	name string
	e    *env
}

// buildEnvs loads the traces of f into three environments: live-store
// only, blocks only (traces alternating between two blocks), and mixed
// (traces alternating between a block and the live-store, with the first
// trace of several spans split: its first half in the block, the rest
// live).
func buildEnvs(t *testing.T, f *corpusFile) []corpusEnv {
	t.Helper()
	live := newEnv(t)
	for i := range f.Traces {
		live.live(buildTrace(&f.Traces[i], f.Traces[i].Spans))
	}

	blocks := newEnv(t)
	var a, b []ptrace.Traces
	for i := range f.Traces {
		td := buildTrace(&f.Traces[i], f.Traces[i].Spans)
		if i%2 == 0 {
			a = append(a, td)
		} else {
			b = append(b, td)
		}
	}
	for _, tds := range [][]ptrace.Traces{a, b} {
		if len(tds) > 0 {
			blocks.block(tds...)
		}
	}

	mixed := newEnv(t)
	split := -1
	for i := range f.Traces {
		if len(f.Traces[i].Spans) >= 2 {
			split = i
			break
		}
	}
	var inBlock []ptrace.Traces
	for i := range f.Traces {
		tr := &f.Traces[i]
		switch {
		case i == split:
			h := len(tr.Spans) / 2
			inBlock = append(inBlock, buildTrace(tr, tr.Spans[:h]))
			mixed.live(buildTrace(tr, tr.Spans[h:]))
		case i%2 == 0:
			inBlock = append(inBlock, buildTrace(tr, tr.Spans))
		default:
			mixed.live(buildTrace(tr, tr.Spans))
		}
	}
	if len(inBlock) > 0 {
		mixed.block(inBlock...)
	}
	return []corpusEnv{{"live", live}, {"blocks", blocks}, {"mixed", mixed}}
}

// TestCorpus runs every case of testdata/corpus/*.yaml in every
// environment. Set CORPUS_RUN_SKIPPED=1 to run the cases marked skip too.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "corpus", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no corpus files")
	}
	runSkipped := os.Getenv("CORPUS_RUN_SKIPPED") != ""
	total := 0
	for _, path := range files {
		f, err := loadCorpusFile(path)
		if err != nil {
			t.Fatal(err)
		}
		total += len(f.Cases)
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			envs := buildEnvs(t, f)
			for i := range f.Cases {
				c := &f.Cases[i]
				t.Run(c.Name, func(t *testing.T) {
					if c.Skip != "" && len(c.SkipEnvs) == 0 && !runSkipped {
						t.Skip(c.Skip)
					}
					for _, ev := range envs {
						t.Run(ev.name, func(t *testing.T) {
							if c.Skip != "" && slices.Contains(c.SkipEnvs, ev.name) && !runSkipped {
								t.Skip(c.Skip)
							}
							runCorpusCase(t, path, f, c, ev.e)
						})
					}
				})
			}
		})
	}
	t.Logf("%d corpus cases in %d files", total, len(files))
}

// runCorpusCase runs one case in one environment.
func runCorpusCase(t *testing.T, path string, f *corpusFile, c *corpusCase, e *env) {
	req := Request{
		Query:           c.Q,
		Limit:           c.Limit,
		SpansPerSpanSet: c.Spss,
		MinDuration:     time.Duration(c.MinDuration),
		MaxDuration:     time.Duration(c.MaxDuration),
	}
	where := fmt.Sprintf("%s:%d: %s", path, c.line, c.Q)
	resp, err := e.s.Search(context.Background(), req, "t")
	if c.Error != "" {
		switch {
		case err == nil:
			t.Fatalf("%s\nwant an error containing %q, got a result:\n%s", where, c.Error, renderResponse(f, resp, nil))
		case status.Code(err) != codes.InvalidArgument:
			t.Fatalf("%s\nwant an InvalidArgument error, got %v", where, err)
		case !strings.Contains(status.Convert(err).Message(), c.Error):
			t.Fatalf("%s\nerror %q does not contain %q", where, status.Convert(err).Message(), c.Error)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s\nunexpected error: %v", where, err)
	}
	if _, err := json.Marshal(resp); err != nil {
		t.Fatalf("%s\ncannot encode the response: %v", where, err)
	}
	got := renderResponse(f, resp, c)
	want := renderWant(f, c)
	if got != want {
		t.Fatalf("%s\n--- want\n%s--- got\n%s", where, want, got)
	}
}

// index maps the rendered IDs of the corpus back to their numbers.
type corpusIndex struct {
	traces map[string]*corpusTrace
	spans  map[string]int
}

func newCorpusIndex(f *corpusFile) *corpusIndex {
	ix := &corpusIndex{traces: map[string]*corpusTrace{}, spans: map[string]int{}}
	for i := range f.Traces {
		tr := &f.Traces[i]
		ix.traces[traceIDString(corpusTraceID(tr.ID))] = tr
		for _, s := range tr.Spans {
			id := corpusSpanID(s.ID)
			ix.spans[fmt.Sprintf("%x", id[:])] = s.ID
		}
	}
	return ix
}

// traceHeader renders the trace-level fields expected of trace tr.
func traceHeader(tr *corpusTrace) string {
	svc, name := RootSpanNotYetReceived, ""
	var start, end time.Duration
	for i, s := range tr.Spans {
		if s.Parent == 0 && name == "" && svc == RootSpanNotYetReceived {
			svc, name = s.Service, s.Name
			if svc == "" {
				svc = RootSpanNotYetReceived
			}
		}
		if i == 0 || time.Duration(s.Start) < start {
			start = time.Duration(s.Start)
		}
		end = max(end, time.Duration(s.Start+s.Dur))
	}
	return fmt.Sprintf("trace %d root=%q/%q start=%s durationMs=%d\n", tr.ID, svc, name, start, (end-start)/time.Millisecond)
}

// renderSpanset renders one spanset: its span ids in start-time order,
// matched, its attributes sorted by key and the chosen span attributes.
func renderSpanset(spans []int, matched int, attrs []*KeyValue, spanAttrs map[int][]*KeyValue) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  spanset spans=%v matched=%d\n", spans, matched)
	renderKVs(&b, "    attr ", attrs)
	ids := make([]int, 0, len(spanAttrs))
	for id := range spanAttrs {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "    span %d attributes:\n", id)
		renderKVs(&b, "      ", spanAttrs[id])
	}
	return b.String()
}

func renderKVs(b *strings.Builder, indent string, kvs []*KeyValue) {
	sorted := slices.Clone(kvs)
	slices.SortStableFunc(sorted, func(x, y *KeyValue) int { return cmp.Compare(x.Key, y.Key) })
	for _, kv := range sorted {
		fmt.Fprintf(b, "%s%s = %s\n", indent, kv.Key, renderValue(kv.Value))
	}
}

func kvsOf(l attrList) []*KeyValue {
	out := make([]*KeyValue, 0, len(l))
	for _, a := range l {
		v, _ := otlpValue(a.Value)
		out = append(out, &KeyValue{Key: a.Key, Value: v})
	}
	return out
}

// sortSpans orders span ids of tr by start time, then id.
func sortSpans(tr *corpusTrace, ids []int) {
	slices.SortFunc(ids, func(a, b int) int {
		sa, sb := tr.span(a), tr.span(b)
		if sa == nil || sb == nil {
			return cmp.Compare(a, b)
		}
		return cmp.Or(cmp.Compare(sa.Start, sb.Start), cmp.Compare(a, b))
	})
}

// renderWant renders the expected result of c.
func renderWant(f *corpusFile, c *corpusCase) string {
	var b strings.Builder
	ix := newCorpusIndex(f)
	for _, w := range *c.Want {
		tr := ix.traces[traceIDString(corpusTraceID(w.Trace))]
		b.WriteString(traceHeader(tr))
		var sets []string
		for _, ss := range w.sets() {
			spans := slices.Clone(ss.Spans)
			sortSpans(tr, spans)
			matched := ss.Matched
			if matched == 0 {
				matched = len(ss.Spans)
			}
			var sa map[int][]*KeyValue
			if ss.SpanAttrs != nil {
				sa = map[int][]*KeyValue{}
				for id, l := range ss.SpanAttrs {
					sa[id] = kvsOf(l)
				}
			}
			sets = append(sets, renderSpanset(spans, matched, kvsOf(ss.Attributes), sa))
		}
		sort.Strings(sets)
		b.WriteString(strings.Join(sets, ""))
	}
	return b.String()
}

// renderResponse renders resp in the same form as renderWant, showing the
// span attributes the case asks about (all of them when c is nil), and
// notes spans and traces that are inconsistent with the corpus.
func renderResponse(f *corpusFile, resp *Response, c *corpusCase) string {
	var b strings.Builder
	spss := DefaultSpansPerSpanSet
	if c != nil && c.Spss > 0 {
		spss = c.Spss
	}
	ix := newCorpusIndex(f)
	// Spans carry their name only when the query reads it, as Tempo's do.
	readsName := false
	if c != nil {
		if q, err := parse(Request{Query: c.Q}); err == nil {
			readsName = q.readsName
		}
	}
	var want map[int]wantTrace
	if c != nil && c.Want != nil {
		want = map[int]wantTrace{}
		for _, w := range *c.Want {
			want[w.Trace] = w
		}
	}
	for _, t := range resp.Traces {
		tr := ix.traces[t.TraceID]
		if tr == nil {
			fmt.Fprintf(&b, "unknown trace %s\n", t.TraceID)
			continue
		}
		fmt.Fprintf(&b, "trace %d root=%q/%q start=%s durationMs=%d\n", tr.ID, t.RootServiceName, t.RootTraceName,
			time.Duration(int64(t.StartTimeUnixNano)-corpusBase.UnixNano()), t.DurationMs)
		if len(t.SpanSets) > 0 && t.SpanSet != t.SpanSets[0] {
			b.WriteString("  spanSet is not spanSets[0]\n")
		}
		var wantSets []wantSpanset
		if w, ok := want[tr.ID]; ok {
			wantSets = w.sets()
		}
		var sets []string
		for _, ss := range t.SpanSets {
			var spans []int
			var problems []string
			all := map[int][]*KeyValue{}
			for _, sp := range ss.Spans {
				id, ok := ix.spans[sp.SpanID]
				def := tr.span(id)
				if !ok || def == nil {
					problems = append(problems, "unknown span "+sp.SpanID)
					continue
				}
				if wantName := def.Name; (readsName && sp.Name != wantName) || (!readsName && sp.Name != "") || sp.StartTimeUnixNano != uint64(corpusBase.Add(time.Duration(def.Start)).UnixNano()) ||
					sp.DurationNanos != uint64(def.Dur) {
					problems = append(problems, fmt.Sprintf("span %d has name %q start %d duration %d", id, sp.Name, sp.StartTimeUnixNano, sp.DurationNanos))
				}
				spans = append(spans, id)
				all[id] = sp.Attributes
			}
			sortSpans(tr, spans)
			// When more spans matched than spss, Tempo does not say which
			// are shown: accept any spss of the expected ones.
			for _, w := range wantSets {
				if len(w.Spans) > spss && w.Matched == 0 && int(ss.Matched) == len(w.Spans) &&
					len(spans) == spss && subset(spans, w.Spans) {
					spans = sortedCopy(tr, w.Spans)
				}
			}
			// Show the span attributes of the spans the matching expected
			// spanset asks about.
			var sa map[int][]*KeyValue
			if c == nil {
				sa = all
			}
			for _, w := range wantSets {
				if w.SpanAttrs == nil || !slices.Equal(sortedCopy(tr, w.Spans), spans) {
					continue
				}
				sa = map[int][]*KeyValue{}
				for id := range w.SpanAttrs {
					sa[id] = all[id]
				}
			}
			s := renderSpanset(spans, int(ss.Matched), ss.Attributes, sa)
			for _, p := range problems {
				s += "    " + p + "\n"
			}
			sets = append(sets, s)
		}
		sort.Strings(sets)
		b.WriteString(strings.Join(sets, ""))
	}
	return b.String()
}

// subset reports whether every element of a is in b.
func subset(a, b []int) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func sortedCopy(tr *corpusTrace, ids []int) []int {
	out := slices.Clone(ids)
	sortSpans(tr, out)
	return out
}

// Make sure an unknown key is rejected: the corpus must not silently
// ignore a misspelt expectation.
func TestCorpusStrict(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	src := "traces: []\ncases:\n  - name: x\n    q: '{}'\n    wnat: []\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadCorpusFile(path)
	var te *yaml.TypeError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "wnat") {
		t.Fatalf("got %v, want an unknown-field error naming wnat", err)
	}
}
