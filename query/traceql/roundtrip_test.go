package traceql

import (
	"math"
	"math/rand"
	"testing"
)

// treeGen builds random well-typed trees to check that String prints
// exactly the parentheses the parser needs to rebuild the same tree.
type treeGen struct{ r *rand.Rand }

func (g treeGen) attr() *Attribute {
	switch g.r.Intn(4) {
	case 0:
		return &Attribute{Scope: ScopeSpan, Name: "s"}
	case 1:
		return &Attribute{Scope: ScopeResource, Name: "r.x"}
	case 2:
		return &Attribute{Name: "a b"}
	}
	return &Attribute{Name: "u"}
}

func (g treeGen) num(depth int) FieldExpr {
	if depth <= 0 || g.r.Intn(4) == 0 {
		if g.r.Intn(2) == 0 {
			return g.attr()
		}
		return &Static{Type: TypeInt, Int: int64(g.r.Intn(10))}
	}
	if g.r.Intn(5) == 0 {
		return &UnaryExpr{Op: OpNeg, Expr: g.num(depth - 1)}
	}
	ops := []Operator{OpAdd, OpSub, OpMul, OpDiv, OpMod, OpPow}
	return &BinaryExpr{Op: ops[g.r.Intn(len(ops))], LHS: g.num(depth - 1), RHS: g.num(depth - 1)}
}

func (g treeGen) boolean(depth int) FieldExpr {
	if depth <= 0 {
		return g.attr()
	}
	switch g.r.Intn(7) {
	case 0:
		return g.attr()
	case 1:
		return &NilCheck{Attr: g.attr(), Exists: g.r.Intn(2) == 0}
	case 2:
		return &UnaryExpr{Op: OpNot, Expr: g.boolean(depth - 1)}
	case 3:
		ops := []Operator{OpEqual, OpNotEqual, OpLess, OpLessEqual, OpGreater, OpGreaterEqual}
		return &BinaryExpr{Op: ops[g.r.Intn(len(ops))], LHS: g.num(depth - 1), RHS: g.num(depth - 1)}
	case 4:
		op := []Operator{OpRegex, OpNotRegex}[g.r.Intn(2)]
		re, _ := compileRegex("a.*")
		return &BinaryExpr{Op: op, LHS: g.attr(), RHS: &Static{Type: TypeString, Str: "a.*"}, Regex: re}
	case 5:
		op := []Operator{OpEqual, OpNotEqual}[g.r.Intn(2)]
		return &BinaryExpr{Op: op, LHS: g.boolean(depth - 1), RHS: g.boolean(depth - 1)}
	}
	op := []Operator{OpAnd, OpOr}[g.r.Intn(2)]
	return &BinaryExpr{Op: op, LHS: g.boolean(depth - 1), RHS: g.boolean(depth - 1)}
}

func (g treeGen) spanset(depth int) SpansetExpr {
	if depth <= 0 || g.r.Intn(3) == 0 {
		return &SpansetFilter{Expr: g.boolean(3)}
	}
	op := SpansetOperator(1 + g.r.Intn(int(SpansetUnionSibling)))
	return &SpansetOp{Op: op, LHS: g.spanset(depth - 1), RHS: g.spanset(depth - 1)}
}

func (g treeGen) scalar(depth int) ScalarExpr {
	if depth <= 0 || g.r.Intn(3) == 0 {
		switch g.r.Intn(3) {
		case 0:
			return &Aggregate{Op: AggregateCount}
		case 1:
			return &Aggregate{Op: AggregateMax, Expr: &Attribute{Scope: ScopeSpan, Intrinsic: IntrinsicDuration, Name: "duration"}}
		}
		return &Static{Type: TypeInt, Int: int64(g.r.Intn(7) - 3)}
	}
	ops := []Operator{OpAdd, OpSub, OpMul, OpDiv, OpMod, OpPow}
	return &ScalarBinary{Op: ops[g.r.Intn(len(ops))], LHS: g.scalar(depth - 1), RHS: g.scalar(depth - 1)}
}

// metricsFilter returns nil or a filter with a random comparison and a
// value of random magnitude and sign.
func (g treeGen) metricsFilter() *MetricsFilter {
	if g.r.Intn(2) == 0 {
		return nil
	}
	ops := []Operator{OpEqual, OpNotEqual, OpLess, OpLessEqual, OpGreater, OpGreaterEqual}
	v := []float64{0, 1, 0.5, 1e-7, 123456.789, 1e15, 3e300, math.MaxInt64, float64(g.r.Intn(100))}[g.r.Intn(9)] * g.r.NormFloat64()
	return &MetricsFilter{Op: ops[g.r.Intn(len(ops))], Value: v}
}

// metrics fills root's metrics stages with a random function and chain.
func (g treeGen) metrics(root *RootExpr) {
	fn := MetricsFunc(1 + g.r.Intn(int(MetricsCompare)))
	m := &MetricsStage{Func: fn, Filter: g.metricsFilter()}
	switch {
	case fn == MetricsCompare:
		m.Selection = &SpansetFilter{Expr: g.boolean(2)}
		m.TopN = []int{DefaultCompareTopN, 1, 25}[g.r.Intn(3)]
		if g.r.Intn(2) == 0 {
			m.CompareStart = g.r.Int63n(1 << 61)
			m.CompareEnd = m.CompareStart + 1 + g.r.Int63n(1<<40)
		}
	case fn.TakesAttribute():
		m.Attr = g.attr()
		if g.r.Intn(3) == 0 {
			m.Attr = &Attribute{Scope: ScopeSpan, Intrinsic: IntrinsicDuration, Name: "duration"}
		}
		if fn == MetricsQuantileOverTime {
			for i := 0; i <= g.r.Intn(4); i++ {
				m.Quantiles = append(m.Quantiles, []float64{0, 1, 0.5, 0.99, 1e-9, g.r.Float64()}[g.r.Intn(6)])
			}
		}
	}
	if fn != MetricsCompare {
		for i := g.r.Intn(MaxMetricsGroupBy + 1); i > 0; i-- {
			m.By = append(m.By, g.attr())
		}
	}
	root.Metrics = m
	for i := g.r.Intn(3); i > 0; i-- {
		root.MetricsSecond = append(root.MetricsSecond, &TopK{Bottom: g.r.Intn(2) == 0, N: 1 + g.r.Intn(20), Filter: g.metricsFilter()})
	}
}

func TestRoundTripGenerated(t *testing.T) {
	g := treeGen{rand.New(rand.NewSource(1))}
	for i := 0; i < 3000; i++ {
		root := &RootExpr{Pipeline: &Pipeline{Stages: []Stage{g.spanset(3)}}}
		if i%2 == 0 {
			root.Pipeline.Stages = append(root.Pipeline.Stages,
				&ScalarFilter{Op: OpGreater, LHS: &Aggregate{Op: AggregateCount}, RHS: g.scalar(4)})
		}
		if i%3 == 0 {
			g.metrics(root)
		}
		s := root.String()
		parsed, err := ParseWithLimits(s, Limits{MaxDepth: 1000})
		if err != nil {
			t.Fatalf("%s\ndoes not parse: %v", s, err)
		}
		if want, got := dump(root), dump(parsed); want != got {
			t.Fatalf("%s\nparses to another tree:\nwant %s\n got %s", s, want, got)
		}
	}
}
