package traceql

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Evaluation follows Tempo's engine. The first stage sees one spanset
// holding every span of the trace; each stage maps spansets to spansets:
//
//   - { expr } keeps the spans for which expr is true and drops spansets
//     left empty. A missing attribute makes every comparison false (!= and
//     !~ included); `= nil` / `!= nil` test presence. Operands of
//     different types compare false, except that int, float and duration
//     compare numerically. Unscoped .x is the span attribute, else the
//     resource one. event., link. and the event:/link: intrinsics hold when
//     some event or link satisfies the comparison. Array attributes match
//     = =~ < ... when some element does, != and !~ when none does.
//   - A && B and A || B evaluate both sides on the same input spanset and
//     yield the union of their spans when both (either) are non-empty.
//   - Structural operators yield the right-hand spans that have (! forms:
//     have no) the relation to some left-hand span; & forms yield the
//     spans of both sides that take part in a relation.
//   - by(e) splits each spanset by the value of e (missing values form a
//     group of their own) and records "by(e)" = value in Attributes.
//   - Aggregate filters skip spans whose value is missing and drop a
//     spanset with no value; they record e.g. "count()" = value.
//   - coalesce() merges all spansets into one (dropping their attributes).
//   - select(...) returns copies of the spans with Selected set.

// Spanset is a group of spans of one trace that a query yields.
type Spanset struct {
	// Spans in trace order.
	Spans []*Span
	// Matched is the number of spans in the spanset (truncating to spss is
	// the caller's job).
	Matched int
	// Attributes holds by() group values (key "by(expr)") and aggregate
	// results (key "count()", "avg(duration)", ...), in the order the
	// stages produced them.
	Attributes []KeyValue
}

// ErrUnsupported is wrapped by errors for query features the evaluator does
// not implement.
var ErrUnsupported = errors.New("unsupported by the evaluator")

// ErrSpansetOperationMultiple is returned when a structural operator gets
// several spansets on one side (Tempo's error, e.g. for a grouped pipeline
// operand).
var ErrSpansetOperationMultiple = errors.New("traceql: spanset operators are not supported for multiple spansets per trace. consider using coalesce()")

type evalCtx struct {
	t *Trace

	// When row is set, attributes are read from it instead of from a span
	// (Condition.Match); unknown records that one could not be.
	row     []Value
	cond    *Condition
	unknown bool
}

// Eval runs the query over one trace and returns the spansets it yields,
// nil when the trace does not match. The result is deterministic: spans are
// in trace order, groups in order of first appearance.
func (r *RootExpr) Eval(t *Trace) ([]Spanset, error) {
	if r == nil || r.Pipeline == nil || t == nil || len(t.Spans) == 0 {
		return nil, nil
	}
	c := &evalCtx{t: t}
	all := Spanset{Spans: slices.Clone(t.Spans)}
	out, err := c.pipeline(r.Pipeline, []Spanset{all})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	for i := range out {
		out[i].Matched = len(out[i].Spans)
	}
	return out, nil
}

func (c *evalCtx) pipeline(p *Pipeline, in []Spanset) ([]Spanset, error) {
	cur := in
	for _, st := range p.Stages {
		var err error
		if cur, err = c.stage(st, cur); err != nil {
			return nil, err
		}
		if len(cur) == 0 {
			return nil, nil
		}
	}
	return cur, nil
}

func (c *evalCtx) stage(st Stage, in []Spanset) ([]Spanset, error) {
	switch st := st.(type) {
	case SpansetExpr:
		var out []Spanset
		for i := range in {
			r, err := c.spansetExpr(st, in[i])
			if err != nil {
				return nil, err
			}
			out = append(out, r...)
		}
		return out, nil
	case *ScalarFilter:
		return c.scalarFilter(st, in)
	case *GroupBy:
		return c.groupBy(st, in)
	case *Coalesce:
		if len(in) == 0 {
			return nil, nil
		}
		var lists [][]*Span
		for _, ss := range in {
			lists = append(lists, ss.Spans)
		}
		return []Spanset{{Spans: unionSpans(lists...)}}, nil
	case *Select:
		return c.selectStage(st, in)
	}
	return nil, fmt.Errorf("traceql: %w: stage %T", ErrUnsupported, st)
}

// spansetExpr evaluates a spanset expression against one input spanset.
func (c *evalCtx) spansetExpr(e SpansetExpr, in Spanset) ([]Spanset, error) {
	switch e := e.(type) {
	case *SpansetFilter:
		var keep []*Span
		for _, s := range in.Spans {
			if e.Expr == nil {
				keep = append(keep, s)
				continue
			}
			v, err := c.field(e.Expr, s)
			if err != nil {
				return nil, err
			}
			if v.truthy() {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			return nil, nil
		}
		return []Spanset{{Spans: keep, Attributes: in.Attributes}}, nil
	case *Pipeline:
		return c.pipeline(e, []Spanset{in})
	case *SpansetOp:
		lhs, err := c.spansetExpr(e.LHS, in)
		if err != nil {
			return nil, err
		}
		rhs, err := c.spansetExpr(e.RHS, in)
		if err != nil {
			return nil, err
		}
		if e.Op.IsStructural() && (len(lhs) > 1 || len(rhs) > 1) {
			// As Tempo: relations are only defined between two spansets.
			return nil, ErrSpansetOperationMultiple
		}
		l, r := flatten(lhs), flatten(rhs)
		var spans []*Span
		switch e.Op {
		case SpansetAnd:
			if len(l) == 0 || len(r) == 0 {
				return nil, nil
			}
			spans = unionSpans(l, r)
		case SpansetUnion:
			spans = unionSpans(l, r)
		case SpansetChild, SpansetParent, SpansetDescendant, SpansetAncestor, SpansetSibling:
			spans = related(e.Op, l, r, c.t, false)
		case SpansetNotChild:
			spans = related(SpansetChild, l, r, c.t, true)
		case SpansetNotParent:
			spans = related(SpansetParent, l, r, c.t, true)
		case SpansetNotDescendant:
			spans = related(SpansetDescendant, l, r, c.t, true)
		case SpansetNotAncestor:
			spans = related(SpansetAncestor, l, r, c.t, true)
		case SpansetNotSibling:
			spans = related(SpansetSibling, l, r, c.t, true)
		case SpansetUnionChild, SpansetUnionParent, SpansetUnionDescendant, SpansetUnionAncestor, SpansetUnionSibling:
			rel := e.Op - SpansetUnionChild + SpansetChild
			inv := map[SpansetOperator]SpansetOperator{
				SpansetChild: SpansetParent, SpansetParent: SpansetChild,
				SpansetDescendant: SpansetAncestor, SpansetAncestor: SpansetDescendant,
				SpansetSibling: SpansetSibling,
			}[rel]
			spans = unionSpans(related(rel, l, r, c.t, false), related(inv, r, l, c.t, false))
		default:
			return nil, fmt.Errorf("traceql: %w: spanset operator %s", ErrUnsupported, e.Op)
		}
		if len(spans) == 0 {
			return nil, nil
		}
		return []Spanset{{Spans: spans, Attributes: in.Attributes}}, nil
	}
	return nil, fmt.Errorf("traceql: %w: spanset expression %T", ErrUnsupported, e)
}

func flatten(sets []Spanset) []*Span {
	if len(sets) == 1 {
		return sets[0].Spans
	}
	lists := make([][]*Span, len(sets))
	for i := range sets {
		lists[i] = sets[i].Spans
	}
	return unionSpans(lists...)
}

// unionSpans merges span lists into one without duplicates, in trace
// order.
func unionSpans(lists ...[]*Span) []*Span {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]*Span, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.SortStableFunc(out, func(a, b *Span) int { return a.index - b.index })
	return slices.CompactFunc(out, func(a, b *Span) bool { return a.index == b.index })
}

// related returns the spans of r that have the relation op (child, parent,
// descendant, ancestor, sibling) to some span of l, or with not, those
// that have it to none.
func related(op SpansetOperator, l, r []*Span, t *Trace, not bool) []*Span {
	inL := make([]bool, len(t.Spans))
	for _, s := range l {
		inL[s.index] = true
	}
	var mark []bool // spans related to some l span, for parent/ancestor/sibling
	switch op {
	case SpansetParent: // r is the parent of some l
		mark = make([]bool, len(t.Spans))
		for _, s := range l {
			if s.Parent != nil {
				mark[s.Parent.index] = true
			}
		}
	case SpansetAncestor: // r is an ancestor of some l
		mark = make([]bool, len(t.Spans))
		for _, s := range l {
			for p := s.Parent; p != nil && !mark[p.index]; p = p.Parent {
				mark[p.index] = true
			}
		}
	}
	var sib []int // number of l spans under each parent
	if op == SpansetSibling {
		sib = make([]int, len(t.Spans))
		for _, s := range l {
			if s.Parent != nil {
				sib[s.Parent.index]++
			}
		}
	}
	var out []*Span
	for _, s := range r {
		var ok bool
		switch op {
		case SpansetChild:
			ok = s.Parent != nil && inL[s.Parent.index]
		case SpansetDescendant:
			for p := s.Parent; p != nil; p = p.Parent {
				if inL[p.index] {
					ok = true
					break
				}
			}
		case SpansetParent, SpansetAncestor:
			ok = mark[s.index]
		case SpansetSibling:
			if s.Parent != nil {
				n := sib[s.Parent.index]
				if inL[s.index] {
					n--
				}
				ok = n > 0
			}
		}
		if ok != not {
			out = append(out, s)
		}
	}
	return out
}

func (c *evalCtx) groupBy(g *GroupBy, in []Spanset) ([]Spanset, error) {
	key := "by(" + g.Expr.String() + ")"
	var out []Spanset
	for _, ss := range in {
		var groups []Spanset
		var vals []Value
		for _, s := range ss.Spans {
			v, err := c.field(g.Expr, s)
			if err != nil {
				return nil, err
			}
			gi := -1
			for i := range vals {
				if sameValue(vals[i], v) {
					gi = i
					break
				}
			}
			if gi < 0 {
				gi = len(groups)
				vals = append(vals, v)
				attrs := append(slices.Clip(ss.Attributes), KeyValue{Key: key, Value: v.clone()})
				groups = append(groups, Spanset{Attributes: attrs})
			}
			groups[gi].Spans = append(groups[gi].Spans, s)
		}
		out = append(out, groups...)
	}
	return out, nil
}

// sameValue reports whether two values are the same group key.
func sameValue(a, b Value) bool {
	if a.multi || b.multi {
		if a.multi != b.multi || len(a.list) != len(b.list) {
			return false
		}
		for i := range a.list {
			if !sameValue(a.list[i], b.list[i]) {
				return false
			}
		}
		return true
	}
	if a.Type != b.Type {
		return false
	}
	switch a.Type {
	case TypeNil:
		return true
	case TypeFloat:
		return a.Float == b.Float || (a.Float != a.Float && b.Float != b.Float)
	}
	return a.Int == b.Int && a.Str == b.Str && a.Bool == b.Bool && a.Duration == b.Duration &&
		a.Status == b.Status && a.Kind == b.Kind
}

func (c *evalCtx) scalarFilter(f *ScalarFilter, in []Spanset) ([]Spanset, error) {
	var out []Spanset
	for _, ss := range in {
		l, err := c.scalar(f.LHS, ss)
		if err != nil {
			return nil, err
		}
		r, err := c.scalar(f.RHS, ss)
		if err != nil {
			return nil, err
		}
		if !compare(f.Op, l, r, nil) {
			continue
		}
		ss.Attributes = append(slices.Clip(ss.Attributes), KeyValue{Key: f.LHS.String(), Value: l})
		out = append(out, ss)
	}
	return out, nil
}

func (c *evalCtx) scalar(e ScalarExpr, ss Spanset) (Value, error) {
	switch e := e.(type) {
	case *Static:
		return staticValue(e), nil
	case *ScalarBinary:
		l, err := c.scalar(e.LHS, ss)
		if err != nil {
			return Value{}, err
		}
		r, err := c.scalar(e.RHS, ss)
		if err != nil {
			return Value{}, err
		}
		return arith(e.Op, l, r), nil
	case *Aggregate:
		return c.aggregate(e, ss)
	}
	return Value{}, fmt.Errorf("traceql: %w: scalar %T", ErrUnsupported, e)
}

// aggregate computes an aggregate over a spanset. Spans whose value is
// missing or not numeric are skipped; an aggregate over no values is
// missing (so every comparison with it is false), except count().
func (c *evalCtx) aggregate(a *Aggregate, ss Spanset) (Value, error) {
	if a.Op == AggregateCount || a.Expr == nil {
		return intValue(int64(len(ss.Spans))), nil
	}
	var (
		n        int
		sum      float64
		min, max float64
		allInt   = true
		anyDur   bool
	)
	add := func(v Value) {
		f, ok := v.numeric()
		if !ok {
			return
		}
		if v.Type != TypeInt {
			allInt = false
		}
		if v.Type == TypeDuration {
			anyDur = true
		}
		if n == 0 || f < min {
			min = f
		}
		if n == 0 || f > max {
			max = f
		}
		sum += f
		n++
	}
	for _, s := range ss.Spans {
		v, err := c.field(a.Expr, s)
		if err != nil {
			return Value{}, err
		}
		if v.multi {
			for _, e := range v.list {
				add(e)
			}
		} else {
			add(v)
		}
	}
	if n == 0 {
		return Value{}, nil
	}
	var f float64
	switch a.Op {
	case AggregateAvg:
		f = sum / float64(n)
	case AggregateMin:
		f = min
	case AggregateMax:
		f = max
	case AggregateSum:
		f = sum
	}
	switch {
	case anyDur:
		return durValue(time.Duration(f)), nil
	case allInt && a.Op != AggregateAvg:
		return intValue(int64(f)), nil
	}
	return floatValue(f), nil
}

func (c *evalCtx) selectStage(st *Select, in []Spanset) ([]Spanset, error) {
	out := make([]Spanset, len(in))
	for i, ss := range in {
		spans := make([]*Span, len(ss.Spans))
		for j, s := range ss.Spans {
			cp := *s
			cp.Selected = slices.Clip(s.Selected)
			for _, f := range st.Fields {
				v, err := c.field(f, s)
				if err != nil {
					return nil, err
				}
				if v.IsNil() {
					continue
				}
				cp.Selected = append(cp.Selected, KeyValue{Key: f.String(), Value: v.clone()})
			}
			spans[j] = &cp
		}
		out[i] = Spanset{Spans: spans, Attributes: ss.Attributes}
	}
	return out, nil
}

// field evaluates a field expression against one span.
func (c *evalCtx) field(e FieldExpr, s *Span) (Value, error) {
	switch e := e.(type) {
	case *Static:
		return staticValue(e), nil
	case *Attribute:
		return c.attribute(e, s)
	case *NilCheck:
		v, err := c.attribute(e.Attr, s)
		if err != nil {
			return Value{}, err
		}
		present := !v.IsNil() && !(v.multi && !v.array && len(v.list) == 0)
		return boolValue(present == e.Exists), nil
	case *UnaryExpr:
		v, err := c.field(e.Expr, s)
		if err != nil {
			return Value{}, err
		}
		if e.Op == OpNot {
			if v.multi || v.Type != TypeBoolean {
				if v.multi {
					return boolValue(!v.truthy()), nil
				}
				return Value{}, nil
			}
			return boolValue(!v.Bool), nil
		}
		return negate(v), nil
	case *BinaryExpr:
		l, err := c.field(e.LHS, s)
		if err != nil {
			return Value{}, err
		}
		switch e.Op {
		case OpAnd:
			if !l.truthy() {
				return boolValue(false), nil
			}
			r, err := c.field(e.RHS, s)
			if err != nil {
				return Value{}, err
			}
			return boolValue(r.truthy()), nil
		case OpOr:
			if l.truthy() {
				return boolValue(true), nil
			}
			r, err := c.field(e.RHS, s)
			if err != nil {
				return Value{}, err
			}
			return boolValue(r.truthy()), nil
		}
		r, err := c.field(e.RHS, s)
		if err != nil {
			return Value{}, err
		}
		if e.Op.IsArithmetic() {
			return arith(e.Op, l, r), nil
		}
		if e.Regex != nil {
			return boolValue(compare(e.Op, l, r, e.Regex)), nil
		}
		return boolValue(compare(e.Op, l, r, nil)), nil
	}
	return Value{}, fmt.Errorf("traceql: %w: expression %T", ErrUnsupported, e)
}

func (c *evalCtx) attribute(a *Attribute, s *Span) (Value, error) {
	if c.row != nil {
		return c.rowAttribute(a), nil
	}
	if a.Parent {
		return Value{}, fmt.Errorf("traceql: %w: parent. attributes", ErrUnsupported)
	}
	if a.Intrinsic != IntrinsicNone {
		return c.intrinsic(a.Intrinsic, s)
	}
	switch a.Scope {
	case ScopeSpan:
		return lookup(s.attrs, a.Name), nil
	case ScopeResource:
		return lookup(s.resource.attrs, a.Name), nil
	case ScopeNone:
		if v := lookup(s.attrs, a.Name); !v.IsNil() {
			return v, nil
		}
		return lookup(s.resource.attrs, a.Name), nil
	case ScopeInstrumentation:
		return lookup(s.scope.attrs, a.Name), nil
	case ScopeEvent:
		var l []Value
		for i := range s.events {
			if v := lookup(s.events[i].attrs, a.Name); !v.IsNil() {
				l = append(l, v)
			}
		}
		return eventList(l), nil
	case ScopeLink:
		var l []Value
		for i := range s.links {
			if v := lookup(s.links[i].attrs, a.Name); !v.IsNil() {
				l = append(l, v)
			}
		}
		return eventList(l), nil
	}
	return Value{}, fmt.Errorf("traceql: %w: scope %s", ErrUnsupported, a.Scope)
}

// eventList is the value of an event or link field: missing when no event
// or link has it, the value itself when one has, else a list matched with
// "some element" semantics.
func eventList(l []Value) Value {
	switch len(l) {
	case 0:
		return Value{}
	case 1:
		return l[0]
	}
	return multiValue(l, false)
}

func lookup(attrs []wireAttr, name string) Value {
	for i := range attrs {
		if bstr(attrs[i].key) == name {
			return wireValue(attrs[i].val)
		}
	}
	return Value{}
}

// OTLP span kinds and status codes, by their protobuf numbers.
var otlpKinds = [...]Kind{KindUnspecified, KindInternal, KindServer, KindClient, KindProducer, KindConsumer}

func (c *evalCtx) intrinsic(in Intrinsic, s *Span) (Value, error) {
	f := &s.Fields
	switch in {
	case IntrinsicDuration:
		return durValue(time.Duration(s.DurationNanos())), nil
	case IntrinsicName:
		return strValue(s.Name), nil
	case IntrinsicStatus:
		st := StatusUnset
		switch f.StatusCode {
		case 1:
			st = StatusOk
		case 2:
			st = StatusError
		}
		return Value{Type: TypeStatus, Status: st}, nil
	case IntrinsicStatusMessage:
		return strValue(bstr(f.StatusMessage)), nil
	case IntrinsicKind:
		k := KindUnspecified
		if f.Kind >= 0 && int(f.Kind) < len(otlpKinds) {
			k = otlpKinds[f.Kind]
		}
		return Value{Type: TypeKind, Kind: k}, nil
	case IntrinsicChildCount:
		return intValue(int64(len(s.Children))), nil
	case IntrinsicNestedSetLeft:
		return intValue(int64(c.t.nestedSet(s).left)), nil
	case IntrinsicNestedSetRight:
		return intValue(int64(c.t.nestedSet(s).right)), nil
	case IntrinsicNestedSetParent:
		return intValue(int64(c.t.nestedSet(s).parent)), nil
	case IntrinsicSpanID:
		return strValue(hex.EncodeToString(f.SpanID)), nil
	case IntrinsicParentID:
		return strValue(hex.EncodeToString(f.ParentSpanID)), nil
	case IntrinsicTraceRootName:
		if c.t.Root == nil {
			return Value{}, nil
		}
		return strValue(c.t.rootName), nil
	case IntrinsicTraceRootService:
		if c.t.Root == nil {
			return Value{}, nil
		}
		return strValue(c.t.rootSvc), nil
	case IntrinsicTraceDuration:
		return durValue(time.Duration(c.t.DurationNanos())), nil
	case IntrinsicTraceID:
		return strValue(c.t.traceIDHex), nil
	case IntrinsicEventName:
		l := make([]Value, len(s.events))
		for i := range s.events {
			l[i] = strValue(s.events[i].name)
		}
		return eventList(l), nil
	case IntrinsicEventTimeSinceStart:
		l := make([]Value, len(s.events))
		for i := range s.events {
			l[i] = durValue(time.Duration(s.events[i].time) - time.Duration(f.StartTimeUnixNano))
		}
		return eventList(l), nil
	case IntrinsicLinkTraceID:
		l := make([]Value, len(s.links))
		for i := range s.links {
			l[i] = strValue(hex.EncodeToString(s.links[i].traceID))
		}
		return eventList(l), nil
	case IntrinsicLinkSpanID:
		l := make([]Value, len(s.links))
		for i := range s.links {
			l[i] = strValue(hex.EncodeToString(s.links[i].spanID))
		}
		return eventList(l), nil
	case IntrinsicInstrumentationName:
		return strValue(s.scope.name), nil
	case IntrinsicInstrumentationVersion:
		return strValue(s.scope.version), nil
	}
	return Value{}, fmt.Errorf("traceql: %w: intrinsic %s", ErrUnsupported, in)
}
