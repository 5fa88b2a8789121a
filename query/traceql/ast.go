package traceql

import (
	"regexp"
	"time"
	"unicode"
)

// Node is implemented by every AST node.
type Node interface {
	// Position is where the node is in the query. For operators (binary
	// field, scalar and spanset operations, scalar filters, nil checks) it
	// is the operator; for everything else it is the node's first token.
	Position() Position
	// String returns the node as canonical TraceQL.
	String() string
}

// RootExpr is a parsed and validated query: a pipeline, for a metrics
// query its metrics stages, and optional hints.
type RootExpr struct {
	Pos      Position
	Pipeline *Pipeline
	// Metrics is the first metrics stage of a metrics query (`{ } |
	// rate()`), nil for a search; Pipeline is then the search part
	// before it.
	Metrics *MetricsStage
	// MetricsSecond are the stages after Metrics (`| topk(5)`), in order.
	MetricsSecond []MetricsSecondStage
	// Hints holds the trailing `with (...)` clause, or nil.
	Hints *Hints
}

// Pipeline is a sequence of stages joined by `|`; every stage consumes the
// spansets the previous one produced (the first one consumes all spans of
// the trace). A Pipeline is also a SpansetExpr: a parenthesised pipeline
// such as `({ .a } | count() > 1)` can be an operand of a spanset operator,
// but only at the top level of a query (as in Tempo).
type Pipeline struct {
	Pos    Position
	Stages []Stage
}

// Stage is one element of a Pipeline: a SpansetExpr, *ScalarFilter,
// *GroupBy, *Coalesce or *Select.
type Stage interface {
	Node
	stage()
}

// SpansetExpr produces spansets: *SpansetFilter, *SpansetOp or *Pipeline.
type SpansetExpr interface {
	Stage
	spansetExpr()
}

// SpansetFilter is `{ expr }`: the spans for which Expr is true. Expr is
// nil for `{}`, which keeps every span.
type SpansetFilter struct {
	Pos  Position
	Expr FieldExpr
}

// SpansetOp combines two spanset expressions, e.g. `{ .a } >> { .b }`.
type SpansetOp struct {
	Pos Position
	Op  SpansetOperator
	LHS SpansetExpr
	RHS SpansetExpr
}

// ScalarFilter keeps the spansets for which `LHS Op RHS` holds, e.g.
// `count() > 2`. LHS is always an *Aggregate; RHS is a number or arithmetic
// of aggregates and numbers. Op is a comparison.
type ScalarFilter struct {
	Pos Position
	Op  Operator
	LHS ScalarExpr
	RHS ScalarExpr
}

// GroupBy is `by(expr)`: it splits every spanset by the value of Expr.
type GroupBy struct {
	Pos  Position
	Expr FieldExpr
}

// Coalesce is `coalesce()`: it merges the spansets of a trace into one.
type Coalesce struct {
	Pos Position
}

// Select is `select(a, b, ...)`: it adds those fields to the returned spans.
type Select struct {
	Pos    Position
	Fields []*Attribute
}

// ScalarExpr is a numeric expression over spansets: *Aggregate,
// *ScalarBinary or *Static.
type ScalarExpr interface {
	Node
	// ImpliedType is the static type of the value, TypeAttribute when it
	// depends on an attribute's runtime type.
	ImpliedType() StaticType
	scalarExpr()
}

// Aggregate is count(), avg(x), min(x), max(x) or sum(x) over a spanset.
// Expr is nil for count().
type Aggregate struct {
	Pos  Position
	Op   AggregateOp
	Expr FieldExpr
}

// ScalarBinary is arithmetic between scalar expressions, e.g.
// `max(duration) - min(duration)`.
type ScalarBinary struct {
	Pos Position
	Op  Operator
	LHS ScalarExpr
	RHS ScalarExpr
}

// FieldExpr is an expression evaluated against one span: *BinaryExpr,
// *UnaryExpr, *NilCheck, *Attribute or *Static.
type FieldExpr interface {
	Node
	// ImpliedType is the static type of the value, TypeAttribute when it
	// depends on an attribute's runtime type.
	ImpliedType() StaticType
	fieldExpr()
}

// BinaryExpr is `LHS Op RHS` inside a spanset filter (logical, comparison,
// regular-expression or arithmetic operator).
type BinaryExpr struct {
	Pos Position
	Op  Operator
	LHS FieldExpr
	RHS FieldExpr
	// Regex is the compiled, fully anchored pattern for OpRegex and
	// OpNotRegex (RHS is then the pattern as a string *Static); nil
	// otherwise.
	Regex *regexp.Regexp
}

// UnaryExpr is `!Expr` (OpNot) or `-Expr` (OpNeg).
type UnaryExpr struct {
	Pos  Position
	Op   Operator
	Expr FieldExpr
}

// NilCheck is `attr != nil` (Exists) or `attr = nil` (!Exists): whether the
// span has the attribute at all. Attr is never an intrinsic.
type NilCheck struct {
	Pos    Position
	Attr   *Attribute
	Exists bool
}

// Attribute references a span field: an attribute (Intrinsic is
// IntrinsicNone; Scope and Name say which) or an intrinsic (Intrinsic is
// set, Scope is the intrinsic's scope and Name its canonical spelling).
type Attribute struct {
	Pos       Position
	Scope     Scope
	Name      string
	Intrinsic Intrinsic
	// Parent is set for `parent.` attributes, which parse but are rejected
	// as unsupported.
	Parent bool
}

// Static is a literal. Type says which value field is meaningful.
type Static struct {
	Pos      Position
	Type     StaticType
	Int      int64
	Float    float64
	Str      string
	Bool     bool
	Duration time.Duration
	Status   Status
	Kind     Kind
}

// Hints is the `with (name=value, ...)` clause.
type Hints struct {
	Pos   Position
	Hints []*Hint
}

// Hint is one `name=value` of a with clause.
type Hint struct {
	Pos   Position
	Name  string
	Value *Static
}

// Position implementations (see Node).

func (n *RootExpr) Position() Position      { return n.Pos }
func (n *Pipeline) Position() Position      { return n.Pos }
func (n *SpansetFilter) Position() Position { return n.Pos }
func (n *SpansetOp) Position() Position     { return n.Pos }
func (n *ScalarFilter) Position() Position  { return n.Pos }
func (n *GroupBy) Position() Position       { return n.Pos }
func (n *Coalesce) Position() Position      { return n.Pos }
func (n *Select) Position() Position        { return n.Pos }
func (n *Aggregate) Position() Position     { return n.Pos }
func (n *ScalarBinary) Position() Position  { return n.Pos }
func (n *BinaryExpr) Position() Position    { return n.Pos }
func (n *UnaryExpr) Position() Position     { return n.Pos }
func (n *NilCheck) Position() Position      { return n.Pos }
func (n *Attribute) Position() Position     { return n.Pos }
func (n *Static) Position() Position        { return n.Pos }
func (n *Hints) Position() Position         { return n.Pos }
func (n *Hint) Position() Position          { return n.Pos }

// Interface markers.

func (*Pipeline) stage()      {}
func (*SpansetFilter) stage() {}
func (*SpansetOp) stage()     {}
func (*ScalarFilter) stage()  {}
func (*GroupBy) stage()       {}
func (*Coalesce) stage()      {}
func (*Select) stage()        {}

func (*Pipeline) spansetExpr()      {}
func (*SpansetFilter) spansetExpr() {}
func (*SpansetOp) spansetExpr()     {}

func (*Aggregate) scalarExpr()    {}
func (*ScalarBinary) scalarExpr() {}
func (*Static) scalarExpr()       {}

func (*BinaryExpr) fieldExpr() {}
func (*UnaryExpr) fieldExpr()  {}
func (*NilCheck) fieldExpr()   {}
func (*Attribute) fieldExpr()  {}
func (*Static) fieldExpr()     {}

// Conjuncts returns the top-level `&&` operands of the filter's expression,
// left to right (the whole expression when it is not an `&&`; nil for
// `{}`). Each conjunct must hold for a span to match, so an engine can push
// simple ones (attribute compared with a literal) down to storage.
func (n *SpansetFilter) Conjuncts() []FieldExpr {
	if n.Expr == nil {
		return nil
	}
	var out []FieldExpr
	var walk func(e FieldExpr)
	walk = func(e FieldExpr) {
		if b, ok := e.(*BinaryExpr); ok && b.Op == OpAnd {
			walk(b.LHS)
			walk(b.RHS)
			return
		}
		out = append(out, e)
	}
	walk(n.Expr)
	return out
}

// ImpliedType implementations.

// ImpliedType returns the literal's type.
func (n *Static) ImpliedType() StaticType { return n.Type }

// ImpliedType returns the intrinsic's type, or TypeAttribute for an
// attribute (known only at query time).
func (n *Attribute) ImpliedType() StaticType {
	if n.Intrinsic != IntrinsicNone {
		return n.Intrinsic.Type()
	}
	return TypeAttribute
}

// ImpliedType returns TypeBoolean.
func (n *NilCheck) ImpliedType() StaticType { return TypeBoolean }

// ImpliedType returns TypeBoolean for `!` and the operand's type for `-`.
func (n *UnaryExpr) ImpliedType() StaticType {
	if n.Op == OpNot {
		return TypeBoolean
	}
	return n.Expr.ImpliedType()
}

// ImpliedType returns TypeBoolean for logical and comparison operators and
// the arithmetic result type otherwise.
func (n *BinaryExpr) ImpliedType() StaticType {
	if n.Op.IsArithmetic() {
		return arithmeticType(n.LHS.ImpliedType(), n.RHS.ImpliedType())
	}
	return TypeBoolean
}

// ImpliedType returns the arithmetic result type.
func (n *ScalarBinary) ImpliedType() StaticType {
	return arithmeticType(n.LHS.ImpliedType(), n.RHS.ImpliedType())
}

// ImpliedType returns TypeInt for count(), TypeFloat for avg() of a number
// and the argument's type otherwise.
func (n *Aggregate) ImpliedType() StaticType {
	if n.Op == AggregateCount || n.Expr == nil {
		return TypeInt
	}
	t := n.Expr.ImpliedType()
	if n.Op == AggregateAvg && (t == TypeInt || t == TypeFloat) {
		return TypeFloat
	}
	return t
}

func arithmeticType(l, r StaticType) StaticType {
	switch {
	case l == TypeAttribute || r == TypeAttribute:
		return TypeAttribute
	case l == TypeDuration || r == TypeDuration:
		return TypeDuration
	case l == TypeFloat || r == TypeFloat:
		return TypeFloat
	case l == TypeInt && r == TypeInt:
		return TypeInt
	}
	return l // not numeric: validation rejects it
}

// Ref returns the attribute as a FieldRef.
func (n *Attribute) Ref() FieldRef {
	return FieldRef{Scope: n.Scope, Name: n.Name, Intrinsic: n.Intrinsic, Parent: n.Parent}
}

// isAttributeRune reports whether r may appear in an unquoted attribute
// name. As in Tempo, names run until whitespace or one of `{}()=~!<>&|^,`
// (so `.http.status-code` and `.a+b` are single names); unlike Tempo, `"`
// and non-printable runes also end a name.
func isAttributeRune(r rune) bool {
	if !unicode.IsPrint(r) || unicode.IsSpace(r) {
		return false
	}
	switch r {
	case '{', '}', '(', ')', '=', '~', '!', '<', '>', '&', '|', '^', ',', '"':
		return false
	}
	return true
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }
