package traceql

import (
	"math"
	"strconv"
)

// MaxMetricsGroupBy is the most fields the by (...) of a metrics function
// may name. It is fixed, as in Tempo.
const MaxMetricsGroupBy = 5

// DefaultCompareTopN is compare()'s topN when the query does not give one,
// as in Tempo.
const DefaultCompareTopN = 10

var metricsFuncsByName = func() map[string]MetricsFunc {
	m := make(map[string]MetricsFunc, len(metricsFuncNames))
	for f, name := range metricsFuncNames {
		m[name] = f
	}
	return m
}()

func isTopK(t *token) bool {
	return t.kind == tokMetrics && (t.text == "topk" || t.text == "bottomk")
}

// parseMetrics parses the metrics stages of a query, from the "|" before
// the metrics function: `| fn(...) [by (...)] [cmp number]` then any
// number of `| topk(n) [cmp number]` or `| bottomk(n) [cmp number]`.
func (p *parser) parseMetrics(root *RootExpr) {
	p.countStage(p.advance())
	t := p.cur()
	if isTopK(t) {
		fail(t.pos, "%s() must follow a metrics function, as in { } | rate() by (resource.service.name) | %s(5)", t.text, t.text)
	}
	root.Metrics = p.parseMetricsStage()
	for p.cur().kind == tokPipe {
		p.countStage(p.advance())
		t := p.cur()
		switch {
		case isTopK(t):
			root.MetricsSecond = append(root.MetricsSecond, p.parseTopK())
		case t.kind == tokMetrics:
			fail(t.pos, "a query has at most one metrics function: %s() cannot follow %s(); only topk(n) or bottomk(n) can", t.text, root.Metrics.Func)
		default:
			fail(t.pos, "only topk(n) or bottomk(n) can follow the metrics function %s(), found %s", root.Metrics.Func, t.describe())
		}
	}
}

func (p *parser) parseMetricsStage() *MetricsStage {
	t := p.advance()
	fn := metricsFuncsByName[t.text]
	lp := p.openCall(t)
	m := &MetricsStage{Pos: t.pos, Func: fn}
	switch {
	case fn == MetricsCompare:
		p.parseCompareArgs(m)
	case fn.TakesAttribute():
		a := p.cur()
		if a.kind != tokAttr {
			if a.kind == tokRParen {
				fail(a.pos, "%s() needs an attribute or intrinsic to measure, e.g. %s(duration)", fn, fn)
			}
			fail(a.pos, "%s() takes an attribute or intrinsic such as duration or span.http.response.status_code, found %s", fn, a.describe())
		}
		p.advance()
		attr := *a.attr
		attr.Pos = a.pos
		m.Attr = &attr
		if fn == MetricsQuantileOverTime {
			if c := p.cur(); c.kind != tokComma {
				fail(c.pos, `quantile_over_time() needs at least one quantile after the attribute, e.g. quantile_over_time(duration, 0.9, 0.99), found %s`, c.describe())
			}
			for p.cur().kind == tokComma {
				p.advance()
				n := p.parseNumber("as a quantile")
				q := n.float()
				if !(q >= 0 && q <= 1) {
					fail(n.pos, "quantile %s is outside [0, 1]", formatMetricsNumber(q))
				}
				m.Quantiles = append(m.Quantiles, q)
			}
		}
		if c := p.cur(); c.kind != tokRParen {
			if fn == MetricsQuantileOverTime {
				fail(c.pos, `expected "," and a quantile or ")" in quantile_over_time(), found %s`, c.describe())
			}
			fail(c.pos, `%s() takes one attribute or intrinsic, not an expression: expected ")", found %s`, fn, c.describe())
		}
	default: // rate, count_over_time
		if c := p.cur(); c.kind != tokRParen {
			fail(c.pos, "%s() takes no arguments, found %s", fn, c.describe())
		}
	}
	p.expectClose(tokRParen, lp)
	p.leave()
	if b := p.cur(); b.kind == tokBy {
		if fn == MetricsCompare {
			fail(b.pos, "compare() takes no by (...): it compares the values of every attribute")
		}
		p.advance()
		blp := p.openCall(b)
		for {
			a := p.cur()
			if a.kind != tokAttr {
				fail(a.pos, "by (...) after a metrics function takes attributes or intrinsics such as resource.service.name or name, found %s", a.describe())
			}
			if len(m.By) == MaxMetricsGroupBy {
				fail(a.pos, "by (...) takes at most %d fields (a fixed limit, as in Tempo)", MaxMetricsGroupBy)
			}
			p.advance()
			attr := *a.attr
			attr.Pos = a.pos
			m.By = append(m.By, &attr)
			c := p.cur()
			if c.kind == tokComma {
				p.advance()
				continue
			}
			if c.kind != tokRParen {
				fail(c.pos, `expected "," or ")" in by (...), found %s`, c.describe())
			}
			break
		}
		p.expectClose(tokRParen, blp)
		p.leave()
	}
	m.Filter = p.parseMetricsFilter()
	return m
}

// parseCompareArgs parses `{ selection }[, topN[, start, end]]`.
func (p *parser) parseCompareArgs(m *MetricsStage) {
	c := p.cur()
	if c.kind != tokLBrace {
		fail(c.pos, "compare() needs a spanset filter selecting the spans to compare with the others, e.g. compare({ status = error }), found %s", c.describe())
	}
	m.Selection = p.parseSpansetFilter()
	m.TopN = DefaultCompareTopN
	if p.cur().kind == tokComma {
		p.advance()
		m.TopN = int(p.parsePositiveInt("compare()'s topN"))
		if p.cur().kind == tokComma {
			p.advance()
			start := p.parseNumber("as compare()'s start (unix nanoseconds)")
			if !start.isNonNegativeInt() {
				fail(start.pos, "compare()'s start must be an integer of unix nanoseconds, found %s", formatMetricsNumber(start.float()))
			}
			if c := p.cur(); c.kind != tokComma {
				fail(c.pos, `compare() takes both a start and an end, or neither: expected "," and the end, found %s`, c.describe())
			}
			p.advance()
			end := p.parseNumber("as compare()'s end (unix nanoseconds)")
			if !end.isNonNegativeInt() {
				fail(end.pos, "compare()'s end must be an integer of unix nanoseconds, found %s", formatMetricsNumber(end.float()))
			}
			if end.lit.Int <= start.lit.Int {
				fail(end.pos, "compare()'s end (%d) must be after its start (%d)", end.lit.Int, start.lit.Int)
			}
			m.CompareStart, m.CompareEnd = start.lit.Int, end.lit.Int
		}
	}
	if c := p.cur(); c.kind != tokRParen {
		fail(c.pos, `compare() takes one spanset filter { ... }, then optionally topN, start and end: expected "," or ")", found %s`, c.describe())
	}
}

func (p *parser) parseTopK() *TopK {
	t := p.advance()
	lp := p.openCall(t)
	if c := p.cur(); c.kind == tokRParen {
		fail(c.pos, "%s() needs the number of series to keep, e.g. %s(5)", t.text, t.text)
	}
	tk := &TopK{Pos: t.pos, Bottom: t.text == "bottomk", N: int(p.parsePositiveInt(t.text + "()'s argument"))}
	if c := p.cur(); c.kind != tokRParen {
		fail(c.pos, `%s() takes one number: expected ")", found %s`, t.text, c.describe())
	}
	p.expectClose(tokRParen, lp)
	p.leave()
	tk.Filter = p.parseMetricsFilter()
	return tk
}

// parseMetricsFilter parses an optional `<cmp> <number>`; nil without one.
func (p *parser) parseMetricsFilter() *MetricsFilter {
	t := p.cur()
	op, ok := scalarCmpOps[t.kind]
	if !ok {
		return nil
	}
	p.advance()
	n := p.parseNumber("after " + op.String())
	return &MetricsFilter{Pos: t.pos, Op: op, Value: n.float()}
}

// number is a number literal of a metrics function, with its sign.
type number struct {
	pos Position // of the "-", or of the literal without one
	neg bool
	lit *Static // TypeInt or TypeFloat
}

func (n number) float() float64 {
	f := n.lit.Float
	if n.lit.Type == TypeInt {
		f = float64(n.lit.Int)
	}
	if n.neg {
		f = -f
	}
	return f
}

func (n number) isNonNegativeInt() bool { return n.lit.Type == TypeInt && (!n.neg || n.lit.Int == 0) }

// parseNumber parses an integer or float literal with an optional leading
// "-"; what says where, for the error message.
func (p *parser) parseNumber(what string) number {
	t := p.cur()
	n := number{pos: t.pos}
	if t.kind == tokSub {
		n.neg = true
		p.advance()
		t = p.cur()
	}
	if t.kind != tokLiteral || (t.lit.Type != TypeInt && t.lit.Type != TypeFloat) {
		fail(t.pos, "expected a number %s, found %s", what, t.describe())
	}
	p.advance()
	n.lit = t.lit
	return n
}

// parsePositiveInt parses an integer literal above 0.
func (p *parser) parsePositiveInt(what string) int64 {
	n := p.parseNumber("as " + what)
	if n.lit.Type != TypeInt || n.neg || n.lit.Int <= 0 {
		fail(n.pos, "%s must be a positive integer, found %s", what, formatMetricsNumber(n.float()))
	}
	return n.lit.Int
}

// formatMetricsNumber prints v so that it lexes back to the same float64:
// plainly when that is short, in exponent form otherwise.
func formatMetricsNumber(v float64) string {
	if a := math.Abs(v); a == 0 || (a >= 1e-4 && a < 1e15) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
