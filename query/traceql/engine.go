package traceql

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/weftdb/weft/internal/otlpwire"
)

// This file holds the per-trace evaluator's data model: a Trace is the
// spans of one trace decoded from OTLP TracesData bytes, with the
// parent/child structure and the trace-level intrinsics resolved, ready for
// RootExpr.Eval. Both the live-store and the block path evaluate through
// it, so they cannot disagree on what a query matches.

// Trace is one trace prepared for evaluation. Strings read from it point
// into the bytes given to NewTrace, which must not change while the Trace
// or spansets evaluated on it are in use (values copied into
// Spanset.Attributes and Span.Selected are cloned and do not).
type Trace struct {
	// Spans in the order they appear in the data.
	Spans []*Span
	// Root is the root span (first span without a parent ID), or nil.
	Root *Span
	// TraceID is the trace ID of the first span.
	TraceID []byte
	// StartUnixNano and EndUnixNano are the earliest span start and the
	// latest span end.
	StartUnixNano, EndUnixNano uint64

	traceIDHex string
	rootName   string
	rootSvc    string
	orphans    bool // a span's parent is not in the trace

	// nested holds the nested-set numbers of the spans (by index),
	// computed once, on first use (nestedSet).
	nestedOnce sync.Once
	nested     []nestedSet
}

// nestedSet is a span's place in Tempo's nested-set numbering of the span
// tree: left and right bound the numbers of its descendants, parent is
// its parent's left (-1 for a root). All three are 0 for a span that no
// root span leads to (its parent, or an ancestor's, was not received).
type nestedSet struct {
	left, right, parent int32
}

// Complete reports whether the trace has a root span and the parent of
// every other span: false means spans of it may be elsewhere (another
// block, the live-store) or have not arrived yet.
func (t *Trace) Complete() bool { return t.Root != nil && !t.orphans }

// Span is one span of a Trace, decoded eagerly from the wire (attribute
// values stay encoded until a query reads them).
type Span struct {
	// Raw is the encoded Span message.
	Raw      []byte
	Fields   otlpwire.SpanFields
	Name     string
	Parent   *Span   // nil for a root or when the parent is not in the trace
	Children []*Span // in trace order
	// Selected holds the values of select(...) fields, set on the copies
	// of spans that a select stage returns.
	Selected []KeyValue

	index    int
	attrs    []wireAttr
	resource *resourceInfo
	scope    *scopeInfo
	events   []eventInfo
	links    []linkInfo
}

// Index is the span's position in Trace.Spans.
func (s *Span) Index() int { return s.index }

// DurationNanos is end minus start (0 when end precedes start).
func (s *Span) DurationNanos() uint64 {
	if s.Fields.EndTimeUnixNano < s.Fields.StartTimeUnixNano {
		return 0
	}
	return s.Fields.EndTimeUnixNano - s.Fields.StartTimeUnixNano
}

type wireAttr struct {
	key []byte
	val otlpwire.AnyValueView
}

type resourceInfo struct {
	attrs []wireAttr
}

type scopeInfo struct {
	name, version string
	attrs         []wireAttr
}

type eventInfo struct {
	name  string
	time  uint64
	attrs []wireAttr
}

type linkInfo struct {
	traceID, spanID []byte
	attrs           []wireAttr
}

// bstr views b as a string without copying.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func readAttrs(msg []byte, k otlpwire.MessageKind, n int) ([]wireAttr, error) {
	out := make([]wireAttr, 0, n)
	err := otlpwire.EachAttribute(msg, k, func(key []byte, v otlpwire.AnyValueView) bool {
		out = append(out, wireAttr{key: key, val: v})
		return true
	})
	return out, err
}

// NewTrace reads the spans of one trace from OTLP TracesData bytes (what
// the live-store holds and blocks return). data must not change while the
// Trace is in use.
func NewTrace(data []byte) (*Trace, error) {
	var b otlpwire.Batch
	if err := b.Scan(data); err != nil {
		return nil, fmt.Errorf("traceql: reading trace: %w", err)
	}
	t := &Trace{Spans: make([]*Span, 0, b.SpanCount())}
	slab := make([]Span, b.SpanCount())
	for ri := range b.Resources {
		r := &b.Resources[ri]
		attrs, err := readAttrs(r.Header, otlpwire.MessageResourceHeader, 8)
		if err != nil {
			return nil, fmt.Errorf("traceql: resource: %w", err)
		}
		res := &resourceInfo{attrs: attrs}
		for si := range r.Scopes {
			sc := &r.Scopes[si]
			sf, err := otlpwire.ReadScopeHeader(sc.Header)
			if err != nil {
				return nil, fmt.Errorf("traceql: %w", err)
			}
			sattrs, err := readAttrs(sc.Header, otlpwire.MessageScopeHeader, sf.Attributes)
			if err != nil {
				return nil, fmt.Errorf("traceql: scope: %w", err)
			}
			scope := &scopeInfo{name: bstr(sf.Name), version: bstr(sf.Version), attrs: sattrs}
			for pi := range sc.Spans {
				sp := &slab[len(t.Spans)]
				if err := readSpan(sp, sc.Spans[pi].Raw); err != nil {
					return nil, fmt.Errorf("traceql: %w", err)
				}
				sp.resource, sp.scope, sp.index = res, scope, len(t.Spans)
				t.Spans = append(t.Spans, sp)
			}
		}
	}
	t.link()
	return t, nil
}

func readSpan(sp *Span, raw []byte) error {
	f, err := otlpwire.ReadSpan(raw)
	if err != nil {
		return err
	}
	*sp = Span{Raw: raw, Fields: f, Name: bstr(f.Name)}
	if f.Attributes > 0 {
		if sp.attrs, err = readAttrs(raw, otlpwire.MessageSpan, f.Attributes); err != nil {
			return err
		}
	}
	var ierr error
	if f.Events > 0 {
		sp.events = make([]eventInfo, 0, f.Events)
		err = otlpwire.EachEvent(raw, func(ev []byte) bool {
			ef, e := otlpwire.ReadEvent(ev)
			if e != nil {
				ierr = e
				return false
			}
			info := eventInfo{name: bstr(ef.Name), time: ef.TimeUnixNano}
			if ef.Attributes > 0 {
				if info.attrs, ierr = readAttrs(ev, otlpwire.MessageEvent, ef.Attributes); ierr != nil {
					return false
				}
			}
			sp.events = append(sp.events, info)
			return true
		})
		if err = firstError(err, ierr); err != nil {
			return err
		}
	}
	if f.Links > 0 {
		sp.links = make([]linkInfo, 0, f.Links)
		err = otlpwire.EachLink(raw, func(l []byte) bool {
			lf, e := otlpwire.ReadLink(l)
			if e != nil {
				ierr = e
				return false
			}
			info := linkInfo{traceID: lf.TraceID, spanID: lf.SpanID}
			if lf.Attributes > 0 {
				if info.attrs, ierr = readAttrs(l, otlpwire.MessageLink, lf.Attributes); ierr != nil {
					return false
				}
			}
			sp.links = append(sp.links, info)
			return true
		})
		if err = firstError(err, ierr); err != nil {
			return err
		}
	}
	return nil
}

func firstError(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// link resolves parents, children, the root and the trace-level fields.
func (t *Trace) link() {
	byID := make(map[string]*Span, len(t.Spans))
	for _, s := range t.Spans {
		if len(s.Fields.SpanID) > 0 {
			if _, dup := byID[bstr(s.Fields.SpanID)]; !dup {
				byID[bstr(s.Fields.SpanID)] = s
			}
		}
	}
	for i, s := range t.Spans {
		if i == 0 || s.Fields.StartTimeUnixNano < t.StartUnixNano {
			t.StartUnixNano = s.Fields.StartTimeUnixNano
		}
		if s.Fields.EndTimeUnixNano > t.EndUnixNano {
			t.EndUnixNano = s.Fields.EndTimeUnixNano
		}
		if t.TraceID == nil && len(s.Fields.TraceID) > 0 {
			t.TraceID = s.Fields.TraceID
		}
		if len(s.Fields.ParentSpanID) == 0 {
			if t.Root == nil {
				t.Root = s
			}
			continue
		}
		if p := byID[bstr(s.Fields.ParentSpanID)]; p != nil && p != s {
			s.Parent = p
			p.Children = append(p.Children, s)
		} else {
			t.orphans = true
		}
	}
	// Guard against parent cycles in malformed data: break any cycle so
	// ancestor walks terminate.
	for _, s := range t.Spans {
		steps := 0
		for p := s.Parent; p != nil; p = p.Parent {
			if steps++; steps > len(t.Spans) {
				s.Parent = nil
				break
			}
		}
	}
	t.traceIDHex = hex.EncodeToString(t.TraceID)
	if t.Root != nil {
		t.rootName = t.Root.Name
		if v, ok := lookupWire(t.Root.resource.attrs, "service.name"); ok {
			t.rootSvc = bstr(v.Str())
		}
	}
}

// nestedSet returns s's nested-set numbers, numbering the trace on first
// use. Tempo numbers the spans of a trace with one counter starting at 1 in
// a depth-first walk from each root span (a span without a parent ID):
// a span gets left when the walk enters it and right when it leaves it, and
// parent is the left of its parent. Tempo walks roots and children in
// storage order, which differs between weft's live-store and its blocks;
// weft walks them in start-time order, ties broken by span ID, so that
// both give the same numbers.
func (t *Trace) nestedSet(s *Span) nestedSet {
	t.nestedOnce.Do(t.numberNestedSets)
	if s.index < 0 || s.index >= len(t.nested) {
		return nestedSet{}
	}
	return t.nested[s.index]
}

func (t *Trace) numberNestedSets() {
	t.nested = make([]nestedSet, len(t.Spans))
	var roots []*Span
	for _, s := range t.Spans {
		if len(s.Fields.ParentSpanID) == 0 {
			roots = append(roots, s)
		}
	}
	sortStartThenID(roots)
	type frame struct {
		span     *Span
		children []*Span
	}
	var (
		next  int32 = 1
		stack []frame
	)
	// enter numbers s and pushes it with its children to visit. Only
	// children whose Parent is s are visited (link may have cut a cycle),
	// so every span is entered at most once.
	enter := func(s *Span, parent int32) {
		t.nested[s.index] = nestedSet{left: next, parent: parent}
		next++
		var kids []*Span
		for _, c := range s.Children {
			if c.Parent == s {
				kids = append(kids, c)
			}
		}
		sortStartThenID(kids)
		stack = append(stack, frame{span: s, children: kids})
	}
	for _, r := range roots {
		enter(r, -1)
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if len(top.children) > 0 {
				c := top.children[0]
				top.children = top.children[1:]
				enter(c, t.nested[top.span.index].left)
				continue
			}
			t.nested[top.span.index].right = next
			next++
			stack = stack[:len(stack)-1]
		}
	}
}

// sortStartThenID orders spans by start time, then span ID, then trace
// order.
func sortStartThenID(spans []*Span) {
	slices.SortFunc(spans, func(a, b *Span) int {
		return cmp.Or(cmp.Compare(a.Fields.StartTimeUnixNano, b.Fields.StartTimeUnixNano),
			bytes.Compare(a.Fields.SpanID, b.Fields.SpanID), cmp.Compare(a.index, b.index))
	})
}

func lookupWire(attrs []wireAttr, name string) (otlpwire.AnyValueView, bool) {
	for i := range attrs {
		if bstr(attrs[i].key) == name {
			return attrs[i].val, true
		}
	}
	return otlpwire.AnyValueView{}, false
}

// ServiceName is the span's resource service.name ("" if none). The
// string points into the trace's data.
func (s *Span) ServiceName() string {
	if s.resource == nil {
		return ""
	}
	if v, ok := lookupWire(s.resource.attrs, "service.name"); ok {
		return bstr(v.Str())
	}
	return ""
}

// RootServiceName is the root span's resource service.name ("" if none).
func (t *Trace) RootServiceName() string { return t.rootSvc }

// RootName is the root span's name ("" if no root).
func (t *Trace) RootName() string { return t.rootName }

// DurationNanos is the latest end minus the earliest start.
func (t *Trace) DurationNanos() uint64 {
	if t.EndUnixNano < t.StartUnixNano {
		return 0
	}
	return t.EndUnixNano - t.StartUnixNano
}
