package traceql

import "strings"

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
	default: // attributes and literals print unambiguously

		b.WriteString(n.String())
	}
}
