package traceql

import "github.com/weftdb/weft/internal/spanpred"

// This file lets an engine decide on single spans from the values storage
// reads per span (block columns), without whole traces: for a query that
// is one spanset filter on such fields, a span is returned exactly when
// the filter holds on its values. TraceQL metrics use it to count spans
// straight from a block's columns.

// SpanFilter reports whether the query returns exactly the spans of its
// one spanset filter, judged on each span alone from fields storage reads
// per span: the pipeline is a single `{ expr }` (or `{}`) whose every
// field is an intrinsic stored per span (duration, name, status,
// statusMessage, kind) or a span, resource or unscoped attribute. cond is
// the filter as a condition, nil for `{}`, which every span passes.
func (r *RootExpr) SpanFilter() (cond *Condition, ok bool) {
	if r == nil || r.Pipeline == nil || len(r.Pipeline.Stages) != 1 {
		return nil, false
	}
	f, isFilter := r.Pipeline.Stages[0].(*SpansetFilter)
	if !isFilter {
		return nil, false
	}
	if f.Expr == nil {
		return nil, true
	}
	if !readable(f.Expr) {
		return nil, false
	}
	c := r.Condition()
	if c == nil || len(c.filters) != 1 {
		return nil, false
	}
	return c, true
}

// MatchExactBuf evaluates the condition on a span's values (in Fields
// order) as the evaluator would on the span, converting them into *buf
// (reused from call to call). exact is false when a value storage cannot
// give exactly (spanpred.Unknown) was needed, or the evaluation failed:
// then only the whole trace can decide.
func (c *Condition) MatchExactBuf(row []spanpred.Value, buf *[]Value) (match, exact bool) {
	vals := (*buf)[:0]
	for _, v := range row {
		vals = append(vals, predValue(v))
	}
	*buf = vals
	ctx := evalCtx{row: vals, cond: c}
	for _, f := range c.filters {
		ctx.unknown = false
		v, err := ctx.field(f, nil)
		if err != nil || ctx.unknown {
			return false, false
		}
		if v.truthy() {
			return true, true
		}
	}
	return false, true
}

// StoredFields are the fields storage reads per span for attribute a: one,
// or two for an unscoped attribute (its span value, else its resource
// value, as the evaluator looks it up). ok is false when storage does not
// read a per span.
func (a *Attribute) StoredFields() (fields []spanpred.Field, ok bool) {
	if !readableAttr(a) {
		return nil, false
	}
	if a.Intrinsic == IntrinsicNone && a.Scope == ScopeNone {
		return []spanpred.Field{predField(FieldRef{Scope: ScopeSpan, Name: a.Name}), predField(FieldRef{Scope: ScopeResource, Name: a.Name})}, true
	}
	return []spanpred.Field{predField(a.Ref())}, true
}

// StoredValue is the evaluator's value of a value storage read; ok is
// false for a value storage cannot give exactly (spanpred.Unknown).
func StoredValue(v spanpred.Value) (Value, bool) {
	if v.Kind == spanpred.Unknown {
		return Value{}, false
	}
	return predValue(v), true
}
