package traceql

import (
	"slices"
	"strings"
)

// validate applies the static rules Tempo applies after parsing: types of
// intrinsics and literals, operators valid for their operand types,
// aggregate and by() arguments that reference span fields, unsupported
// features and known hints. It reports the first problem via fail.
func validate(root *RootExpr) {
	validatePipeline(root.Pipeline)
	if root.Metrics != nil {
		validateMetrics(root.Metrics)
	}
	if root.Hints != nil {
		for _, h := range root.Hints.Hints {
			if !slices.Contains(knownHints, h.Name) {
				fail(h.Pos, "unknown hint %q (known hints: %s)", shorten(h.Name), strings.Join(knownHints, ", "))
			}
		}
	}
}

func validatePipeline(pl *Pipeline) {
	for _, s := range pl.Stages {
		switch s := s.(type) {
		case SpansetExpr:
			validateSpanset(s)
		case *ScalarFilter:
			validateScalarFilter(s)
		case *GroupBy:
			validateField(s.Expr)
			if !referencesSpan(s.Expr) {
				fail(s.Expr.Position(), "by() must reference a span field (an attribute or intrinsic), e.g. by(resource.service.name), found %s", snippet(s.Expr))
			}
		case *Select:
			for _, a := range s.Fields {
				validateAttribute(a)
			}
		}
	}
}

func validateSpanset(e SpansetExpr) {
	switch e := e.(type) {
	case *SpansetFilter:
		if e.Expr == nil {
			return
		}
		if t := validateField(e.Expr); t != TypeBoolean && t != TypeAttribute {
			fail(e.Expr.Position(), "a spanset filter needs a boolean condition, but %s is %s", snippet(e.Expr), withArticle(t))
		}
	case *SpansetOp:
		validateSpanset(e.LHS)
		validateSpanset(e.RHS)
	case *Pipeline:
		validatePipeline(e)
	}
}

// validateField checks e and returns its type (computed bottom-up once,
// rather than by calling ImpliedType at every level).
func validateField(e FieldExpr) StaticType {
	switch e := e.(type) {
	case *Static:
		if e.Type == TypeNil {
			fail(e.Pos, "nil can only be compared with an attribute, as in span.foo = nil or span.foo != nil")
		}
		return e.Type
	case *Attribute:
		validateAttribute(e)
		return e.ImpliedType()
	case *NilCheck:
		validateAttribute(e.Attr)
		switch {
		case e.Attr.Intrinsic != IntrinsicNone:
			fail(e.Attr.Pos, "intrinsic %s cannot be compared with nil: intrinsics are always present", e.Attr)
		case e.Attr.Scope == ScopeResource && e.Attr.Name == "service.name" && !e.Attr.Parent:
			fail(e.Attr.Pos, "resource.service.name cannot be compared with nil: it is always present")
		}
		return TypeBoolean
	case *UnaryExpr:
		t := validateField(e.Expr)
		if !e.Op.accepts(t) {
			if e.Op == OpNot {
				fail(e.Pos, "! needs a boolean operand, but %s is %s", snippet(e.Expr), withArticle(t))
			}
			fail(e.Pos, "- needs a numeric operand, but %s is %s", snippet(e.Expr), withArticle(t))
		}
		if e.Op == OpNot {
			return TypeBoolean
		}
		return t
	case *BinaryExpr:
		lt := validateField(e.LHS)
		rt := validateField(e.RHS)
		checkOperandTypes(e.Pos, e.Op, lt, rt, e)
		if e.Op.IsArithmetic() {
			return arithmeticType(lt, rt)
		}
		return TypeBoolean
	}
	return TypeAttribute
}

// checkOperandTypes reports an operator applied to types it does not take, or
// to two types that cannot meet (status = 200, duration > "1s").
func checkOperandTypes(pos Position, op Operator, lt, rt StaticType, n Node) {
	for _, t := range []StaticType{lt, rt} {
		if !op.accepts(t) {
			fail(pos, "operator %s is not defined on %s values: %s", op, t, snippet(n))
		}
	}
	if !lt.compatible(rt) {
		fail(pos, "mismatched types %s and %s: %s", lt, rt, snippet(n))
	}
}

func validateAttribute(a *Attribute) {
	if a.Parent {
		fail(a.Pos, "parent-scoped attributes are unsupported: %s", snippet(a))
	}
	if a.Intrinsic == IntrinsicParent {
		fail(a.Pos, "the parent intrinsic is unsupported")
	}
}

func validateScalarFilter(f *ScalarFilter) {
	lt := validateScalar(f.LHS)
	rt := validateScalar(f.RHS)
	if _, ok := f.LHS.(*Aggregate); !ok {
		fail(f.LHS.Position(), "the left side of an aggregate filter must be one aggregate such as count() or avg(duration), found %s", snippet(f.LHS))
	}
	checkOperandTypes(f.Pos, f.Op, lt, rt, f)
}

func validateScalar(e ScalarExpr) StaticType {
	switch e := e.(type) {
	case *Aggregate:
		if e.Expr == nil {
			return TypeInt
		}
		t := validateField(e.Expr)
		if !t.IsNumeric() && t != TypeAttribute {
			fail(e.Expr.Position(), "%s() needs a numeric argument, but %s is %s", e.Op, snippet(e.Expr), withArticle(t))
		}
		if !referencesSpan(e.Expr) {
			fail(e.Expr.Position(), "%s() must reference a span field (an attribute or intrinsic), e.g. %s(duration), found %s", e.Op, e.Op, snippet(e.Expr))
		}
		return e.ImpliedType()
	case *ScalarBinary:
		lt := validateScalar(e.LHS)
		rt := validateScalar(e.RHS)
		checkOperandTypes(e.Pos, e.Op, lt, rt, e)
		return arithmeticType(lt, rt)
	case *Static:
		return e.Type
	}
	return TypeAttribute
}

// referencesSpan reports whether e reads an attribute or intrinsic.
func referencesSpan(e FieldExpr) bool {
	found := false
	Inspect(e, func(n Node) bool {
		if _, ok := n.(*Attribute); ok {
			found = true
		}
		return !found
	})
	return found
}

// withArticle returns "an int", "a string"...
func withArticle(t StaticType) string {
	switch t {
	case TypeInt, TypeAttribute:
		return "an " + t.String()
	}
	return "a " + t.String()
}

// validateMetrics checks the metrics function's fields: no parent
// attributes, a measured field that may be numeric, a well-typed compare
// selection.
func validateMetrics(m *MetricsStage) {
	if m.Attr != nil {
		validateAttribute(m.Attr)
		if t := m.Attr.ImpliedType(); !t.IsNumeric() && t != TypeAttribute {
			fail(m.Attr.Pos, "%s() needs a numeric attribute or intrinsic such as duration or span.http.response.status_code, but %s is %s", m.Func, m.Attr, withArticle(t))
		}
	}
	for _, a := range m.By {
		validateAttribute(a)
	}
	if m.Selection != nil {
		validateSpanset(m.Selection)
	}
}
