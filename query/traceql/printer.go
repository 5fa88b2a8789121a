package traceql

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Canonical TraceQL printing. Parentheses are written only where
// precedence needs them, plus around the compound operand of a unary
// operator, so the String of a parsed query parses back to the same tree.
// Every String method shares one builder, so printing is linear in the
// size of the tree. The String methods below implement Node.

func (n *RootExpr) String() string      { return printNode(n) }
func (n *Pipeline) String() string      { return printNode(n) }
func (n *SpansetFilter) String() string { return printNode(n) }
func (n *SpansetOp) String() string     { return printNode(n) }
func (n *ScalarFilter) String() string  { return printNode(n) }
func (n *GroupBy) String() string       { return printNode(n) }
func (n *Coalesce) String() string      { return printNode(n) }
func (n *Select) String() string        { return printNode(n) }
func (n *Aggregate) String() string     { return printNode(n) }
func (n *ScalarBinary) String() string  { return printNode(n) }
func (n *BinaryExpr) String() string    { return printNode(n) }
func (n *UnaryExpr) String() string     { return printNode(n) }
func (n *NilCheck) String() string      { return printNode(n) }
func (n *Attribute) String() string     { return printNode(n) }
func (n *Static) String() string        { return printNode(n) }
func (n *Hints) String() string         { return printNode(n) }
func (n *Hint) String() string          { return printNode(n) }
func (n *MetricsStage) String() string  { return printNode(n) }
func (n *TopK) String() string          { return printNode(n) }
func (n *MetricsFilter) String() string { return printNode(n) }

func printNode(n Node) string {
	var b strings.Builder
	writeNode(&b, n)
	return b.String()
}

// snippet prints n for an error message, shortened when long.
func snippet(n Node) string {
	s := printNode(n)
	if len(s) > 80 {
		r := []rune(s)
		if len(r) > 77 {
			s = string(r[:77]) + "..."
		}
	}
	return s
}

func writeNode(b *strings.Builder, n Node) {
	switch n := n.(type) {
	case *RootExpr:
		writeStages(b, n.Pipeline)
		if n.Metrics != nil {
			b.WriteString(" | ")
			writeNode(b, n.Metrics)
		}
		for _, s := range n.MetricsSecond {
			b.WriteString(" | ")
			writeNode(b, s)
		}
		if n.Hints != nil {
			b.WriteByte(' ')
			writeNode(b, n.Hints)
		}
	case *Pipeline:
		b.WriteByte('(')
		writeStages(b, n)
		b.WriteByte(')')
	case *SpansetFilter:
		if n.Expr == nil {
			b.WriteString("{}")
			return
		}
		b.WriteString("{ ")
		writeNode(b, n.Expr)
		b.WriteString(" }")
	case *SpansetOp:
		p := n.Op.precedence()
		writeWrapped(b, n.LHS, spansetPrec(n.LHS) < p)
		b.WriteByte(' ')
		b.WriteString(n.Op.String())
		b.WriteByte(' ')
		writeWrapped(b, n.RHS, spansetPrec(n.RHS) <= p)
	case *ScalarFilter:
		writeNode(b, n.LHS)
		b.WriteByte(' ')
		b.WriteString(n.Op.String())
		b.WriteByte(' ')
		writeNode(b, n.RHS)
	case *GroupBy:
		b.WriteString("by(")
		writeNode(b, n.Expr)
		b.WriteByte(')')
	case *Coalesce:
		b.WriteString("coalesce()")
	case *Select:
		b.WriteString("select(")
		for i, f := range n.Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			writeNode(b, f)
		}
		b.WriteByte(')')
	case *Aggregate:
		b.WriteString(n.Op.String())
		b.WriteByte('(')
		if n.Expr != nil {
			writeNode(b, n.Expr)
		}
		b.WriteByte(')')
	case *ScalarBinary:
		p, right := n.Op.precedence(), n.Op.rightAssociative()
		lp, rp := scalarPrec(n.LHS), scalarPrec(n.RHS)
		writeBinary(b, n.LHS, n.Op, n.RHS, lp < p || (lp == p && right), rp < p || (rp == p && !right))
	case *BinaryExpr:
		p, right := n.Op.precedence(), n.Op.rightAssociative()
		lp, rp := fieldPrec(n.LHS), fieldPrec(n.RHS)
		writeBinary(b, n.LHS, n.Op, n.RHS, lp < p || (lp == p && right), rp < p || (rp == p && !right))
	case *UnaryExpr:
		// `-(a * b)` rather than the equivalent but misleading `-a * b`
		_, nested := n.Expr.(*UnaryExpr)
		b.WriteString(n.Op.String())
		writeWrapped(b, n.Expr, fieldPrec(n.Expr) < 10 && !nested)
	case *NilCheck:
		writeNode(b, n.Attr)
		if n.Exists {
			b.WriteString(" != nil")
		} else {
			b.WriteString(" = nil")
		}
	case *Attribute:
		writeAttribute(b, n)
	case *Static:
		writeStatic(b, n)
	case *Hints:
		b.WriteString("with (")
		for i, h := range n.Hints {
			if i > 0 {
				b.WriteString(", ")
			}
			writeNode(b, h)
		}
		b.WriteByte(')')
	case *Hint:
		b.WriteString(n.Name)
		b.WriteByte('=')
		writeNode(b, n.Value)
	case *MetricsStage:
		writeMetricsStage(b, n)
	case *TopK:
		if n.Bottom {
			b.WriteString("bottomk(")
		} else {
			b.WriteString("topk(")
		}
		b.WriteString(strconv.Itoa(n.N))
		b.WriteByte(')')
		if n.Filter != nil {
			b.WriteByte(' ')
			writeNode(b, n.Filter)
		}
	case *MetricsFilter:
		b.WriteString(n.Op.String())
		b.WriteByte(' ')
		b.WriteString(formatMetricsNumber(n.Value))
	case nil:
		b.WriteString("<nil>")
	default:
		b.WriteString("<unknown node>")
	}
}

func writeStages(b *strings.Builder, n *Pipeline) {
	for i, s := range n.Stages {
		if i > 0 {
			b.WriteString(" | ")
		}
		writeNode(b, s)
	}
}

func writeWrapped(b *strings.Builder, n Node, wrap bool) {
	if wrap {
		b.WriteByte('(')
	}
	writeNode(b, n)
	if wrap {
		b.WriteByte(')')
	}
}

func writeBinary(b *strings.Builder, lhs Node, op Operator, rhs Node, wrapL, wrapR bool) {
	writeWrapped(b, lhs, wrapL)
	b.WriteByte(' ')
	b.WriteString(op.String())
	b.WriteByte(' ')
	writeWrapped(b, rhs, wrapR)
}

func spansetPrec(e SpansetExpr) int {
	if op, ok := e.(*SpansetOp); ok {
		return op.Op.precedence()
	}
	return 10
}

func scalarPrec(e ScalarExpr) int {
	if b, ok := e.(*ScalarBinary); ok {
		return b.Op.precedence()
	}
	return 10
}

// fieldPrec is how strongly a field expression binds when printed. Unary
// operators sit between + - and * / % as in Tempo's grammar.
func fieldPrec(e FieldExpr) int {
	switch e := e.(type) {
	case *BinaryExpr:
		return e.Op.precedence()
	case *NilCheck:
		return precComparison
	case *UnaryExpr:
		return precUnary
	}
	return 10
}

func writeAttribute(b *strings.Builder, n *Attribute) {
	if n.Intrinsic != IntrinsicNone {
		b.WriteString(n.Intrinsic.String())
		return
	}
	if n.Parent {
		b.WriteString("parent.")
	}
	if n.Scope != ScopeNone {
		b.WriteString(n.Scope.String())
		b.WriteByte('.')
	} else if !n.Parent {
		b.WriteByte('.')
	}
	if attributeNeedsQuotes(n.Name, n.Parent && n.Scope == ScopeNone) {
		b.WriteString(strconv.Quote(n.Name))
	} else {
		b.WriteString(n.Name)
	}
}

// attributeNeedsQuotes reports whether name must be written "quoted" to
// lex back as the same name.
func attributeNeedsQuotes(name string, afterParent bool) bool {
	if name == "" || isDigit(rune(name[0])) {
		return true
	}
	if afterParent && (strings.HasPrefix(name, "span.") || strings.HasPrefix(name, "resource.")) {
		return true
	}
	for _, r := range name {
		// utf8.RuneError also stands for a byte that is not UTF-8 (a name
		// may hold one through an escape such as ."\x80")
		if r == utf8.RuneError || !isAttributeRune(r) {
			return true
		}
	}
	return false
}

func writeStatic(b *strings.Builder, n *Static) {
	switch n.Type {
	case TypeNil:
		b.WriteString("nil")
	case TypeInt:
		switch n.Int {
		case math.MinInt64:
			b.WriteString("minInt")
		case math.MaxInt64:
			b.WriteString("maxInt")
		default:
			b.WriteString(strconv.FormatInt(n.Int, 10))
		}
	case TypeFloat:
		s := strconv.FormatFloat(n.Float, 'g', -1, 64)
		b.WriteString(s)
		if !strings.ContainsAny(s, ".eIN") {
			b.WriteString(".0")
		}
	case TypeString:
		b.WriteString(strconv.Quote(n.Str))
	case TypeBoolean:
		b.WriteString(strconv.FormatBool(n.Bool))
	case TypeDuration:
		b.WriteString(n.Duration.String())
	case TypeStatus:
		b.WriteString(n.Status.String())
	case TypeKind:
		b.WriteString(n.Kind.String())
	default:
		b.WriteString("<invalid literal>")
	}
}

// writeMetricsStage prints `fn(args) [by (a, b)] [op number]`. compare
// prints topN only when it is not the default or start and end follow.
func writeMetricsStage(b *strings.Builder, n *MetricsStage) {
	b.WriteString(n.Func.String())
	b.WriteByte('(')
	if n.Func == MetricsCompare {
		writeNode(b, n.Selection)
		hasRange := n.CompareStart != 0 || n.CompareEnd != 0
		if n.TopN != DefaultCompareTopN || hasRange {
			b.WriteString(", ")
			b.WriteString(strconv.Itoa(n.TopN))
		}
		if hasRange {
			b.WriteString(", ")
			b.WriteString(strconv.FormatInt(n.CompareStart, 10))
			b.WriteString(", ")
			b.WriteString(strconv.FormatInt(n.CompareEnd, 10))
		}
	} else if n.Attr != nil {
		writeNode(b, n.Attr)
		for _, q := range n.Quantiles {
			b.WriteString(", ")
			b.WriteString(formatMetricsNumber(q))
		}
	}
	b.WriteByte(')')
	if len(n.By) > 0 {
		b.WriteString(" by (")
		for i, a := range n.By {
			if i > 0 {
				b.WriteString(", ")
			}
			writeNode(b, a)
		}
		b.WriteByte(')')
	}
	if n.Filter != nil {
		b.WriteByte(' ')
		writeNode(b, n.Filter)
	}
}
