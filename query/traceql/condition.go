package traceql

import (
	"encoding/hex"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/weftdb/weft/internal/spanpred"
)

// This file derives from a query what storage can test on single spans
// before the evaluator sees whole traces: a Condition. Storage reads only
// the columns of the condition's fields, skips row groups and pages whose
// value ranges or dictionaries rule the condition out (MayMatch), tests
// each remaining span (Match), and hands the evaluator only the traces with
// a span that passed. The evaluator still decides; the condition only has
// to be necessary, never sufficient, so the two paths cannot disagree.
//
// Why a per-span condition is necessary: every span of every spanset a
// query returns passed one of the spanset filters of its first stage (the
// structural, && and || operators only choose among the spans their
// operands returned). So a trace with no span satisfying any of those
// filters cannot match. Each filter is weakened to the conjuncts whose
// fields storage can read per span; the condition is the disjunction of
// the weakened filters.

// Condition is a necessary condition on single spans for a trace to match
// a query; see RootExpr.Condition.
type Condition struct {
	fields  []FieldRef
	pfields []spanpred.Field // fields, as storage names them
	filters []FieldExpr      // the disjuncts
	// attrs maps each Attribute node of the filters to its field indexes;
	// the second is -1 except for unscoped attributes (span, then
	// resource).
	attrs map[*Attribute][2]int
}

// Condition returns the per-span condition of the query, or nil when there
// is none that storage could test (an empty filter {} or filters on fields
// storage does not read per span only).
func (r *RootExpr) Condition() *Condition {
	if r == nil || r.Pipeline == nil || len(r.Pipeline.Stages) == 0 {
		return nil
	}
	first, ok := r.Pipeline.Stages[0].(SpansetExpr)
	if !ok {
		return nil
	}
	var leaves []*SpansetFilter
	if !collectLeaves(first, &leaves) {
		return nil
	}
	c := &Condition{attrs: map[*Attribute][2]int{}}
	for _, f := range leaves {
		var kept []FieldExpr
		for _, e := range conjuncts(f.Expr) {
			if readable(e) {
				kept = append(kept, e)
			}
		}
		if len(kept) == 0 {
			return nil // this filter may hold on any span
		}
		expr := kept[0]
		for _, e := range kept[1:] {
			expr = &BinaryExpr{Op: OpAnd, LHS: expr, RHS: e}
		}
		c.filters = append(c.filters, expr)
		Inspect(expr, func(n Node) bool {
			if a, ok := n.(*Attribute); ok {
				c.addAttr(a)
			}
			return true
		})
	}
	return c
}

// collectLeaves appends the spanset filters whose spans e can return; it
// reports false when e's spans may come from elsewhere.
func collectLeaves(e SpansetExpr, out *[]*SpansetFilter) bool {
	switch e := e.(type) {
	case *SpansetFilter:
		if e.Expr == nil {
			return false
		}
		*out = append(*out, e)
		return true
	case *SpansetOp:
		return collectLeaves(e.LHS, out) && collectLeaves(e.RHS, out)
	case *Pipeline:
		if len(e.Stages) == 0 {
			return false
		}
		first, ok := e.Stages[0].(SpansetExpr)
		return ok && collectLeaves(first, out)
	}
	return false
}

// conjuncts splits e at its top-level &&.
func conjuncts(e FieldExpr) []FieldExpr {
	if b, ok := e.(*BinaryExpr); ok && b.Op == OpAnd {
		return append(conjuncts(b.LHS), conjuncts(b.RHS)...)
	}
	return []FieldExpr{e}
}

// readable reports whether every field e reads is one storage reads per
// span.
func readable(e FieldExpr) bool {
	ok := true
	Inspect(e, func(n Node) bool {
		if a, isAttr := n.(*Attribute); isAttr && !readableAttr(a) {
			ok = false
		}
		return ok
	})
	return ok
}

func readableAttr(a *Attribute) bool {
	if a.Parent {
		return false
	}
	switch a.Intrinsic {
	case IntrinsicDuration, IntrinsicName, IntrinsicStatus, IntrinsicStatusMessage, IntrinsicKind:
		return true
	case IntrinsicNone:
		return a.Scope == ScopeSpan || a.Scope == ScopeResource || a.Scope == ScopeNone
	}
	return false
}

func (c *Condition) field(f FieldRef) int {
	for i, g := range c.fields {
		if g == f {
			return i
		}
	}
	c.fields = append(c.fields, f)
	c.pfields = append(c.pfields, predField(f))
	return len(c.fields) - 1
}

func (c *Condition) addAttr(a *Attribute) {
	idx := [2]int{-1, -1}
	switch {
	case a.Intrinsic != IntrinsicNone:
		idx[0] = c.field(a.Ref())
	case a.Scope == ScopeNone:
		idx[0] = c.field(FieldRef{Scope: ScopeSpan, Name: a.Name})
		idx[1] = c.field(FieldRef{Scope: ScopeResource, Name: a.Name})
	default:
		idx[0] = c.field(FieldRef{Scope: a.Scope, Name: a.Name})
	}
	c.attrs[a] = idx
}

// Fields are the fields the condition reads, in the order Match and
// MayMatch take their values: intrinsics stored per span (duration, name,
// status, statusMessage, kind) and span or resource attributes (an
// unscoped attribute reads both).
func (c *Condition) Fields() []spanpred.Field { return c.pfields }

// predField is f as storage names it; f is readable.
func predField(f FieldRef) spanpred.Field {
	switch f.Intrinsic {
	case IntrinsicDuration:
		return spanpred.Field{Intrinsic: spanpred.IntrinsicDuration}
	case IntrinsicName:
		return spanpred.Field{Intrinsic: spanpred.IntrinsicName}
	case IntrinsicStatus:
		return spanpred.Field{Intrinsic: spanpred.IntrinsicStatus}
	case IntrinsicStatusMessage:
		return spanpred.Field{Intrinsic: spanpred.IntrinsicStatusMessage}
	case IntrinsicKind:
		return spanpred.Field{Intrinsic: spanpred.IntrinsicKind}
	}
	return spanpred.Field{Resource: f.Scope == ScopeResource, Name: f.Name}
}

// Predicate is the condition as storage takes it, or nil when the query
// has none (see Condition).
func (r *RootExpr) Predicate() spanpred.Predicate {
	if c := r.Condition(); c != nil {
		return c
	}
	return nil
}

// String renders the condition as TraceQL-like text, for debugging.
func (c *Condition) String() string {
	s := ""
	for i, f := range c.filters {
		if i > 0 {
			s += " || "
		}
		s += "(" + printNode(f) + ")"
	}
	return s
}

// typeUnknown marks a value storage cannot give exactly (an array or a
// kvlist attribute read from its text form): a filter reading it is taken
// to hold.
const typeUnknown StaticType = -1

// predValue is the engine's value of a value storage read.
func predValue(v spanpred.Value) Value {
	switch v.Kind {
	case spanpred.String:
		return strValue(v.Str)
	case spanpred.Int:
		return intValue(v.Int)
	case spanpred.Float:
		return floatValue(v.Float)
	case spanpred.Bool:
		return boolValue(v.Int != 0)
	case spanpred.Duration:
		return durValue(time.Duration(v.Int))
	case spanpred.Status:
		st := StatusUnset
		switch v.Int {
		case 1:
			st = StatusOk
		case 2:
			st = StatusError
		}
		return Value{Type: TypeStatus, Status: st}
	case spanpred.SpanKind:
		k := KindUnspecified
		if v.Int >= 0 && v.Int < int64(len(otlpKinds)) {
			k = otlpKinds[v.Int]
		}
		return Value{Type: TypeKind, Kind: k}
	case spanpred.Unknown:
		return Value{Type: typeUnknown}
	}
	return Value{}
}

// toPredValue is storage's value of a literal, for the types an attribute
// can be equal to (ok false for the others).
func toPredValue(v Value) (spanpred.Value, bool) {
	if v.multi {
		return spanpred.Value{}, false
	}
	switch v.Type {
	case TypeString:
		return spanpred.StringValue(v.Str), true
	case TypeInt:
		return spanpred.IntValue(v.Int), true
	case TypeFloat:
		return spanpred.FloatValue(v.Float), true
	case TypeBoolean:
		return spanpred.BoolValue(v.Bool), true
	case TypeDuration:
		return spanpred.DurationValue(int64(v.Duration)), true
	}
	return spanpred.Value{}, false
}

// predDomain is the engine's view of a domain storage read.
func predDomain(d spanpred.Domain) domain {
	out := domain{Known: d.Known, Bounded: d.Bounded, Min: predValue(d.Min), Max: predValue(d.Max), mayHold: d.MayHold}
	if len(d.Values) > 0 {
		out.Values = make([]Value, len(d.Values))
		for i, v := range d.Values {
			out.Values[i] = predValue(v)
		}
	}
	return out
}

// Match reports whether a span whose field values are row (in Fields
// order) may satisfy the condition.
func (c *Condition) Match(row []spanpred.Value) bool {
	buf, _ := rowPool.Get().(*[]Value)
	if buf == nil {
		buf = new([]Value)
	}
	vals := (*buf)[:0]
	for _, v := range row {
		vals = append(vals, predValue(v))
	}
	ok := c.match(vals)
	clear(vals) // drop the strings, which point into storage's data
	*buf = vals
	rowPool.Put(buf)
	return ok
}

// rowPool holds the rows Match converts into: a row escapes into the
// evaluator, and a span's row is too short-lived to allocate.
var rowPool sync.Pool

// match is Match on the engine's values.
func (c *Condition) match(row []Value) bool {
	ctx := evalCtx{row: row, cond: c}
	for _, f := range c.filters {
		ctx.unknown = false
		v, err := ctx.field(f, nil)
		if err != nil || ctx.unknown || v.truthy() {
			return true
		}
	}
	return false
}

// rowAttribute is the value of a in the row being matched.
func (c *evalCtx) rowAttribute(a *Attribute) Value {
	idx, ok := c.cond.attrs[a]
	if !ok {
		c.unknown = true
		return Value{}
	}
	v := c.row[idx[0]]
	if v.IsNil() && idx[1] >= 0 {
		v = c.row[idx[1]]
	}
	if v.Type == typeUnknown {
		c.unknown = true
		return Value{}
	}
	return v
}

// domain is spanpred.Domain with the engine's values.
type domain struct {
	// Known is false when storage knows nothing.
	Known bool
	// Values are all the values present (missing ones aside), when Known
	// and not Bounded. Empty means the field is missing from every span.
	Values []Value
	// Bounded says Min and Max bound every present value (ints, floats or
	// durations).
	Bounded  bool
	Min, Max Value
	// mayHold, when set (and not Known), is spanpred.Domain.MayHold.
	mayHold func(spanpred.Value) bool
}

// MayMatch reports whether some span could satisfy the condition given
// the domains of its fields (in Fields order). False lets storage skip the
// spans the domains describe.
func (c *Condition) MayMatch(domains []spanpred.Domain) bool {
	d := make([]domain, len(domains))
	for i := range domains {
		d[i] = predDomain(domains[i])
	}
	for _, f := range c.filters {
		if c.possible(f, d) {
			return true
		}
	}
	return false
}

// possible is false only when no values of the domains can make e true.
func (c *Condition) possible(e FieldExpr, d []domain) bool {
	b, ok := e.(*BinaryExpr)
	if !ok {
		return true
	}
	switch {
	case b.Op == OpAnd:
		return c.possible(b.LHS, d) && c.possible(b.RHS, d)
	case b.Op == OpOr:
		return c.possible(b.LHS, d) || c.possible(b.RHS, d)
	case !b.Op.IsComparison():
		return true
	}
	attr, lok := b.LHS.(*Attribute)
	lit, rok := b.RHS.(*Static)
	op := b.Op
	if !lok || !rok {
		var ok1, ok2 bool
		attr, ok1 = b.RHS.(*Attribute)
		lit, ok2 = b.LHS.(*Static)
		if !ok1 || !ok2 || op == OpRegex || op == OpNotRegex {
			return true
		}
		op = flip(op)
	}
	idx := c.attrs[attr]
	s := staticValue(lit)
	for _, i := range idx {
		if i >= 0 && domainPossible(d[i], op, s, b.Regex) {
			return true
		}
	}
	return false
}

// flip mirrors a comparison: a op b is b flip(op) a.
func flip(op Operator) Operator {
	switch op {
	case OpGreater:
		return OpLess
	case OpGreaterEqual:
		return OpLessEqual
	case OpLess:
		return OpGreater
	case OpLessEqual:
		return OpGreaterEqual
	}
	return op
}

func domainPossible(d domain, op Operator, s Value, re interface{ MatchString(string) bool }) bool {
	if !d.Known {
		if d.mayHold != nil && op == OpEqual {
			if v, ok := toPredValue(s); ok {
				return d.mayHold(v)
			}
		}
		return true
	}
	if d.Bounded {
		switch op {
		case OpEqual:
			return compare(OpLessEqual, d.Min, s, nil) && compare(OpGreaterEqual, d.Max, s, nil)
		case OpLess, OpLessEqual:
			return compare(op, d.Min, s, nil)
		case OpGreater, OpGreaterEqual:
			return compare(op, d.Max, s, nil)
		}
		return true
	}
	for _, v := range d.Values {
		if v.Type == typeUnknown || compare(op, v, s, re) {
			return true
		}
	}
	return false
}

// TraceIDs returns the only traces the query can match when every spanset
// filter of its first stage requires `trace:id = "<id>"` (ok true; the
// set may be empty when no literal is a trace ID as the engine renders
// one: 32 lowercase hex digits). Storage then looks the traces up instead
// of scanning. ok is false when the query may match other traces.
func (r *RootExpr) TraceIDs() (ids [][16]byte, ok bool) {
	if r == nil || r.Pipeline == nil || len(r.Pipeline.Stages) == 0 {
		return nil, false
	}
	first, isSpanset := r.Pipeline.Stages[0].(SpansetExpr)
	if !isSpanset {
		return nil, false
	}
	var leaves []*SpansetFilter
	if !collectLeaves(first, &leaves) {
		return nil, false
	}
	for _, f := range leaves {
		found := false
		for _, e := range conjuncts(f.Expr) {
			lit, isID := traceIDLiteral(e)
			if !isID {
				continue
			}
			found = true
			var id [16]byte
			if n, err := hex.Decode(id[:], []byte(lit)); err == nil && n == 16 && hex.EncodeToString(id[:]) == lit &&
				!slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			break
		}
		if !found {
			return nil, false
		}
	}
	return ids, true
}

// traceIDLiteral returns the literal of `trace:id = "<literal>"` (either
// way round).
func traceIDLiteral(e FieldExpr) (string, bool) {
	b, ok := e.(*BinaryExpr)
	if !ok || b.Op != OpEqual {
		return "", false
	}
	attr, lit := b.LHS, b.RHS
	if _, isStatic := attr.(*Static); isStatic {
		attr, lit = lit, attr
	}
	a, aok := attr.(*Attribute)
	s, sok := lit.(*Static)
	if !aok || !sok || a.Intrinsic != IntrinsicTraceID || a.Parent || s.Type != TypeString {
		return "", false
	}
	return s.Str, true
}

// MinSpans is the fewest spans of a trace that must pass the first
// stage's condition for the query to match it, when the query is a
// spanset filter then a count, as in `{ status = error } | count() > 2`
// (3): storage can skip the traces with fewer spans passing Predicate
// (spanpred.Selection.MinSpans). 0 when the query has no such bound.
func (r *RootExpr) MinSpans() int {
	if r == nil || r.Pipeline == nil || len(r.Pipeline.Stages) < 2 {
		return 0
	}
	if _, ok := r.Pipeline.Stages[0].(*SpansetFilter); !ok {
		return 0
	}
	sf, ok := r.Pipeline.Stages[1].(*ScalarFilter)
	if !ok {
		return 0
	}
	agg, ok := sf.LHS.(*Aggregate)
	if !ok || agg.Op != AggregateCount {
		return 0
	}
	lit, ok := sf.RHS.(*Static)
	if !ok || lit.Type != TypeInt || lit.Int < 1 || lit.Int > math.MaxInt32 {
		return 0
	}
	switch sf.Op {
	case OpGreater:
		return int(lit.Int) + 1
	case OpGreaterEqual, OpEqual:
		return int(lit.Int)
	}
	return 0
}
