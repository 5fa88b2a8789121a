package traceql

import (
	"fmt"
	"strings"
)

// dump prints a tree as an S-expression with every operator explicit and
// no positions: two trees with the same dump are the same query.
func dump(n Node) string {
	var b strings.Builder
	dumpTo(&b, n)
	return b.String()
}

func dumpTo(b *strings.Builder, n Node) {
	bin := func(op string, l, r Node) {
		b.WriteString("(" + op + " ")
		dumpTo(b, l)
		b.WriteByte(' ')
		dumpTo(b, r)
		b.WriteByte(')')
	}
	switch n := n.(type) {
	case *RootExpr:
		dumpTo(b, n.Pipeline)
		if n.Metrics != nil {
			b.WriteString(" |m ")
			dumpTo(b, n.Metrics)
		}
		for _, s := range n.MetricsSecond {
			b.WriteString(" |m2 ")
			dumpTo(b, s)
		}
		if n.Hints != nil {
			b.WriteString(" " + n.Hints.String())
		}
	case *Pipeline:
		b.WriteByte('[')
		for i, s := range n.Stages {
			if i > 0 {
				b.WriteString(" | ")
			}
			dumpTo(b, s)
		}
		b.WriteByte(']')
	case *SpansetFilter:
		b.WriteByte('{')
		if n.Expr != nil {
			dumpTo(b, n.Expr)
		}
		b.WriteByte('}')
	case *SpansetOp:
		bin(n.Op.String(), n.LHS, n.RHS)
	case *ScalarFilter:
		bin(n.Op.String(), n.LHS, n.RHS)
	case *ScalarBinary:
		bin(n.Op.String(), n.LHS, n.RHS)
	case *BinaryExpr:
		op := n.Op.String()
		if n.Regex != nil {
			op += "/" + n.Regex.String() + "/"
		}
		bin(op, n.LHS, n.RHS)
	case *UnaryExpr:
		op := "!"
		if n.Op == OpNeg {
			op = "neg"
		}
		b.WriteString("(" + op + " ")
		dumpTo(b, n.Expr)
		b.WriteByte(')')
	case *NilCheck:
		if n.Exists {
			b.WriteString("(exists ")
		} else {
			b.WriteString("(absent ")
		}
		dumpTo(b, n.Attr)
		b.WriteByte(')')
	case *Aggregate:
		b.WriteString(n.Op.String() + "(")
		if n.Expr != nil {
			dumpTo(b, n.Expr)
		}
		b.WriteByte(')')
	case *GroupBy:
		b.WriteString("by(")
		dumpTo(b, n.Expr)
		b.WriteByte(')')
	case *Coalesce:
		b.WriteString("coalesce()")
	case *Select:
		b.WriteString("select(")
		for i, f := range n.Fields {
			if i > 0 {
				b.WriteString(", ")
			}
			dumpTo(b, f)
		}
		b.WriteByte(')')
	case *MetricsStage:
		// every field explicit, %v printing floats exactly (shortest
		// representation that reads back the same)
		fmt.Fprintf(b, "(metrics %d attr=", n.Func)
		if n.Attr != nil {
			dumpTo(b, n.Attr)
		}
		fmt.Fprintf(b, " q=%v by=[", n.Quantiles)
		for i, a := range n.By {
			if i > 0 {
				b.WriteByte(' ')
			}
			dumpTo(b, a)
		}
		b.WriteString("] sel=")
		if n.Selection != nil {
			dumpTo(b, n.Selection)
		}
		fmt.Fprintf(b, " top=%d range=%d..%d filter=", n.TopN, n.CompareStart, n.CompareEnd)
		if n.Filter != nil {
			dumpTo(b, n.Filter)
		}
		b.WriteByte(')')
	case *TopK:
		fmt.Fprintf(b, "(topk bottom=%v n=%d filter=", n.Bottom, n.N)
		if n.Filter != nil {
			dumpTo(b, n.Filter)
		}
		b.WriteByte(')')
	case *MetricsFilter:
		fmt.Fprintf(b, "(%s %v)", n.Op, n.Value)
	default: // attributes and literals print unambiguously

		b.WriteString(n.String())
	}
}
