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
		if n.Metrics != nil {
			Inspect(n.Metrics, f)
		}
		for _, s := range n.MetricsSecond {
			Inspect(s, f)
		}
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
	case *MetricsStage:
		if n.Attr != nil {
			Inspect(n.Attr, f)
		}
		for _, a := range n.By {
			Inspect(a, f)
		}
		if n.Selection != nil {
			Inspect(n.Selection, f)
		}
		if n.Filter != nil {
			Inspect(n.Filter, f)
		}
	case *TopK:
		if n.Filter != nil {
			Inspect(n.Filter, f)
		}
	}
}

// Fields lists the attributes and intrinsics the query reads, each once, in
// the order they first appear: what an engine must fetch. For a metrics
// query that includes the measured attribute, the by (...) fields and the
// fields of compare()'s selection.
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

// SpansetFilters returns every spanset filter of the query's pipeline
// (its search part) in source order, e.g. to push their Conjuncts down to
// storage. compare()'s selection is not one of them: it splits the spans
// the pipeline returns, it does not drop any.
func (r *RootExpr) SpansetFilters() []*SpansetFilter {
	var out []*SpansetFilter
	Inspect(r.Pipeline, func(n Node) bool {
		if f, ok := n.(*SpansetFilter); ok {
			out = append(out, f)
			return false
		}
		return true
	})
	return out
}
