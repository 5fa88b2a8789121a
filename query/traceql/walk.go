package traceql

// Inspect walks the tree rooted at n depth-first, calling f for every node
// before its children; when f returns false the node's children are
// skipped.
func Inspect(n Node, f func(Node) bool) {
	if n == nil || !f(n) {
		return
	}
	switch n := n.(type) {
	case *RootExpr:
		Inspect(n.Pipeline, f)
		if n.Hints != nil {
			Inspect(n.Hints, f)
		}
	case *Pipeline:
		for _, s := range n.Stages {
			Inspect(s, f)
		}
	case *SpansetFilter:
		if n.Expr != nil {
			Inspect(n.Expr, f)
		}
	case *SpansetOp:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	case *ScalarFilter:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	case *GroupBy:
		Inspect(n.Expr, f)
	case *Select:
		for _, a := range n.Fields {
			Inspect(a, f)
		}
	case *Aggregate:
		if n.Expr != nil {
			Inspect(n.Expr, f)
		}
	case *ScalarBinary:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	case *BinaryExpr:
		Inspect(n.LHS, f)
		Inspect(n.RHS, f)
	case *UnaryExpr:
		Inspect(n.Expr, f)
	case *NilCheck:
		Inspect(n.Attr, f)
	case *Hints:
		for _, h := range n.Hints {
			Inspect(h, f)
		}
	case *Hint:
		Inspect(n.Value, f)
	}
}

// Fields lists the attributes and intrinsics the query reads, each once, in
// the order they first appear: what an engine must fetch.
func (r *RootExpr) Fields() []FieldRef {
	var out []FieldRef
	seen := map[FieldRef]bool{}
	Inspect(r, func(n Node) bool {
		if a, ok := n.(*Attribute); ok {
			ref := a.Ref()
			if !seen[ref] {
				seen[ref] = true
				out = append(out, ref)
			}
		}
		return true
	})
	return out
}

// SpansetFilters returns every spanset filter of the query in source
// order, e.g. to push their Conjuncts down to storage.
func (r *RootExpr) SpansetFilters() []*SpansetFilter {
	var out []*SpansetFilter
	Inspect(r, func(n Node) bool {
		if f, ok := n.(*SpansetFilter); ok {
			out = append(out, f)
			return false
		}
		return true
	})
	return out
}
