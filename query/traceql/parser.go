package traceql

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
)

// Parse parses and validates a TraceQL query with DefaultLimits. A non-nil
// error is always a *ParseError.
func Parse(query string) (*RootExpr, error) {
	return ParseWithLimits(query, Limits{})
}

// MustParse is Parse for queries known to be valid; it panics on error.
func MustParse(query string) *RootExpr {
	r, err := Parse(query)
	if err != nil {
		panic(fmt.Sprintf("traceql.MustParse(%q): %v", query, err))
	}
	return r
}

// ParseWithLimits parses and validates a TraceQL query, rejecting queries
// larger or more deeply nested than limits allow (zero fields mean the
// defaults). A non-nil error is always a *ParseError.
func ParseWithLimits(query string, limits Limits) (root *RootExpr, err error) {
	limits = limits.withDefaults()
	if len(query) > limits.MaxBytes {
		return nil, &ParseError{
			Pos:   Position{Line: 1, Column: 1},
			Msg:   fmt.Sprintf("query is %d bytes, over the limit of %d (%s)", len(query), limits.MaxBytes, LimitMaxBytes),
			Limit: LimitMaxBytes,
		}
	}
	if off := firstInvalidUTF8(query); off >= 0 {
		return nil, &ParseError{Pos: positionAt(query, off), Msg: "query is not valid UTF-8"}
	}
	p := newParser(lex(query), limits.MaxDepth)
	p.maxStages = limits.MaxStages
	p.maxRegex = limits.MaxRegexSize
	defer func() {
		if r := recover(); r != nil {
			if b, ok := r.(bailout); ok {
				root, err = nil, b.err
				return
			}
			// a broken invariant: reject the query rather than crash the
			// server that parses it (FuzzParse fails on these)
			root, err = nil, &ParseError{Pos: Position{Line: 1, Column: 1}, Msg: fmt.Sprintf("BUG: internal parser error: %v", r)}
		}
	}()
	root = p.parseRoot()
	validate(root)
	return root, nil
}

// bailout carries a *ParseError up the parser's and validator's call
// stacks; ParseWithLimits recovers it.
type bailout struct{ err *ParseError }

func fail(pos Position, format string, args ...any) {
	panic(bailout{&ParseError{Pos: pos, Msg: fmt.Sprintf(format, args...)}})
}

type parser struct {
	toks     []token
	i        int
	depth    int
	maxDepth int
	ops      int
	// stages counts the pipes parsed: the query has stages+1 stages, at
	// most maxStages.
	stages, maxStages int
	// maxRegex bounds the estimated program size of a regular expression.
	maxRegex int
	// afterParens[i] is the index of the first token at or after i that is
	// not "(", so looking past a run of parentheses costs O(1).
	afterParens []int32
	// nest counts the parenthesised pipelines being parsed: a metrics
	// function is accepted only at the top level (nest 0).
	nest int
}

func newParser(toks []token, maxDepth int) *parser {
	p := &parser{toks: toks, maxDepth: maxDepth, afterParens: make([]int32, len(toks))}
	for i := len(toks) - 1; i >= 0; i-- {
		p.afterParens[i] = int32(i)
		if toks[i].kind == tokLParen && i+1 < len(toks) {
			p.afterParens[i] = p.afterParens[i+1]
		}
	}
	return p
}

// cur returns the current token, reporting a lexing error when the parser
// reaches one.
func (p *parser) cur() *token {
	t := &p.toks[p.i]
	if t.kind == tokError {
		fail(t.pos, "%s", t.msg)
	}
	return t
}

func (p *parser) advance() *token {
	t := p.cur()
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// enter opens one nesting level at t.
func (p *parser) enter(t *token) {
	p.depth++
	if p.depth > p.maxDepth {
		panic(bailout{&ParseError{
			Pos:   t.pos,
			Msg:   fmt.Sprintf("query nests deeper than the limit of %d levels (%s)", p.maxDepth, LimitMaxDepth),
			Limit: LimitMaxDepth,
		}})
	}
}

func (p *parser) leave() { p.depth-- }

// countOp counts one operator node, bounding the height of the tree.
func (p *parser) countOp(t *token) {
	p.ops++
	if p.ops > maxOperators {
		fail(t.pos, "query has more than %d operators", maxOperators)
	}
}

// expectClose consumes the closing token matching open ( "(" or "{" ).
func (p *parser) expectClose(kind tokKind, open *token) {
	t := p.cur()
	if t.kind == kind {
		p.advance()
		return
	}
	closing := ")"
	if kind == tokRBrace {
		closing = "}"
	}
	if t.kind == tokEOF {
		fail(t.pos, "expected %q to close the %q at %s, found end of query", closing, open.text, open.pos)
	}
	fail(t.pos, "expected an operator or %q to close the %q at %s, found %s", closing, open.text, open.pos, t.describe())
}

// failMisplacedMetrics reports a metrics function (or topk/bottomk) where
// none may be: inside a spanset filter, an aggregate filter, a spanset
// operand or a parenthesised pipeline.
func failMisplacedMetrics(t *token) {
	fail(t.pos, "%s() is a TraceQL metrics function: it must be the last stage of the query, outside parentheses, as in { status = error } | rate() by (resource.service.name) (metrics arithmetic such as (q1) / (q2) is not supported)", t.text)
}

func (p *parser) parseRoot() *RootExpr {
	first := p.cur()
	if first.kind == tokEOF {
		fail(first.pos, "empty query: expected a spanset filter such as { } or { span.http.status_code = 500 }")
	}
	root := &RootExpr{Pos: first.pos, Pipeline: p.parsePipeline()}
	if p.cur().kind == tokPipe {
		// parsePipeline stops only before "| <metrics function>"
		p.parseMetrics(root)
	}
	if p.cur().kind == tokWith {
		root.Hints = p.parseHints()
	}
	switch t := p.cur(); t.kind {
	case tokEOF:
	case tokRParen:
		fail(t.pos, `unexpected ")" without a matching "("`)
	case tokRBrace:
		fail(t.pos, `unexpected "}" without a matching "{"`)
	case tokLBrace:
		fail(t.pos, `unexpected "{": join spanset filters with an operator such as &&, ||, >> or |`)
	case tokWith:
		fail(t.pos, "unexpected %s: a query has at most one with (...) clause, at its end", t.describe())
	default:
		if root.Hints != nil {
			fail(t.pos, "unexpected %s after the with (...) clause, which must end the query", t.describe())
		}
		if root.Metrics != nil {
			fail(t.pos, `unexpected %s after the metrics function; expected "| topk(n)", "| bottomk(n)", a comparison with a number such as > 10, "with (...)" or the end of the query`, t.describe())
		}
		fail(t.pos, `unexpected %s; expected "|", an operator, "with (...)" or the end of the query`, t.describe())
	}
	p.checkPipelineOperands(root)
	return root
}

func (p *parser) parsePipeline() *Pipeline {
	pl := &Pipeline{Pos: p.cur().pos}
	pl.Stages = append(pl.Stages, p.parseStage(true))
	for p.cur().kind == tokPipe {
		if p.nest == 0 && p.toks[p.i+1].kind == tokMetrics {
			return pl // the metrics stages; parseRoot takes them
		}
		p.countStage(p.advance())
		pl.Stages = append(pl.Stages, p.parseStage(false))
	}
	return pl
}

// countStage counts the stage the pipe t starts: a query has one stage
// more than its pipes.
func (p *parser) countStage(t *token) {
	p.stages++
	if p.stages+1 > p.maxStages {
		panic(bailout{&ParseError{
			Pos:   t.pos,
			Msg:   fmt.Sprintf("query has more than %d pipeline stages, the limit (%s)", p.maxStages, LimitMaxStages),
			Limit: LimitMaxStages,
		}})
	}
}

func isAggregateToken(k tokKind) bool { return k >= tokCount && k <= tokSum }

// startsScalar reports whether t can start a scalar (aggregate) expression.
func startsScalar(t *token) bool {
	return isAggregateToken(t.kind) || t.kind == tokSub || (t.kind == tokLiteral && t.lit.Type.IsNumeric())
}

func (p *parser) parseStage(first bool) Stage {
	t := p.cur()
	switch {
	case t.kind == tokLBrace:
		return p.parseSpansetExpr(0)
	case t.kind == tokLParen:
		if startsScalar(&p.toks[p.afterParens[p.i]]) {
			return p.parseParenthesisedScalarStage()
		}
		return p.parseSpansetExpr(0)
	case startsScalar(t):
		return p.parseScalarFilter()
	case t.kind == tokBy:
		return p.parseGroupBy()
	case t.kind == tokCoalesce:
		if first {
			fail(t.pos, "coalesce() must follow another pipeline stage, e.g. { } | coalesce()")
		}
		return p.parseCoalesce()
	case t.kind == tokSelect:
		return p.parseSelect()
	case t.kind == tokMetrics:
		if first && p.nest == 0 {
			fail(t.pos, "%s() must follow a spanset filter, as in { } | %s(...)", t.text, t.text)
		}
		failMisplacedMetrics(t)
	case t.kind == tokIdent:
		failUnknownIdent(t)
	case t.kind == tokAttr || t.kind == tokNil || t.kind == tokNot || t.kind == tokLiteral:
		fail(t.pos, "expected a spanset filter, found %s: conditions go inside braces, e.g. { %s ... }", t.describe(), shorten(t.text))
	}
	if first {
		fail(t.pos, "expected a spanset filter such as { span.http.status_code = 500 }, found %s", t.describe())
	}
	fail(t.pos, `expected a pipeline stage after "|" (a spanset filter { ... }, an aggregate filter such as count() > 1, by(...), coalesce() or select(...)), found %s`, t.describe())
	return nil
}

// parseParenthesisedScalarStage parses a stage that starts with "(" and
// then an aggregate or a number. That is usually a scalar filter such as
// `(count() + 1) > 2`, but may be a parenthesised pipeline such as
// `(count() > 1) && ({ .a })`: try the first, then the second, and report
// the error that got further.
func (p *parser) parseParenthesisedScalarStage() (stage Stage) {
	saveI, saveDepth, saveOps, saveNest := p.i, p.depth, p.ops, p.nest
	scalarErr := func() (err *ParseError) {
		defer func() {
			if r := recover(); r != nil {
				b, ok := r.(bailout)
				if !ok {
					panic(r)
				}
				err = b.err
			}
		}()
		stage = p.parseScalarFilter()
		return nil
	}()
	if scalarErr == nil {
		return stage
	}
	p.i, p.depth, p.ops, p.nest = saveI, saveDepth, saveOps, saveNest
	defer func() {
		if r := recover(); r != nil {
			b, ok := r.(bailout)
			if !ok {
				panic(r)
			}
			if scalarErr.Pos.Offset >= b.err.Pos.Offset {
				panic(bailout{scalarErr})
			}
			panic(r)
		}
	}()
	return p.parseSpansetExpr(0)
}

var spansetOps = map[tokKind]SpansetOperator{
	tokAnd:         SpansetAnd,
	tokOr:          SpansetUnion,
	tokGt:          SpansetChild,
	tokLt:          SpansetParent,
	tokDesc:        SpansetDescendant,
	tokAnce:        SpansetAncestor,
	tokTilde:       SpansetSibling,
	tokNotChild:    SpansetNotChild,
	tokNotParent:   SpansetNotParent,
	tokNotDesc:     SpansetNotDescendant,
	tokNotAnce:     SpansetNotAncestor,
	tokNre:         SpansetNotSibling,
	tokUnionChild:  SpansetUnionChild,
	tokUnionParent: SpansetUnionParent,
	tokUnionDesc:   SpansetUnionDescendant,
	tokUnionAnce:   SpansetUnionAncestor,
	tokUnionSibl:   SpansetUnionSibling,
}

// parseSpansetExpr parses spanset operands joined by spanset operators
// binding at least as strongly as minPrec (precedence climbing; all
// spanset operators are left-associative).
func (p *parser) parseSpansetExpr(minPrec int) SpansetExpr {
	lhs := p.parseSpansetOperand()
	for {
		t := p.cur()
		op, ok := spansetOps[t.kind]
		if !ok || op.precedence() < minPrec {
			return lhs
		}
		p.advance()
		p.countOp(t)
		rhs := p.parseSpansetExpr(op.precedence() + 1)
		lhs = &SpansetOp{Pos: t.pos, Op: op, LHS: lhs, RHS: rhs}
	}
}

func (p *parser) parseSpansetOperand() SpansetExpr {
	t := p.cur()
	switch t.kind {
	case tokLBrace:
		return p.parseSpansetFilter()
	case tokLParen:
		p.enter(t)
		p.advance()
		p.nest++
		pl := p.parsePipeline()
		p.nest--
		p.expectClose(tokRParen, t)
		p.leave()
		if len(pl.Stages) == 1 {
			if se, ok := pl.Stages[0].(SpansetExpr); ok {
				return se // plain grouping
			}
		}
		pl.Pos = t.pos
		return pl
	case tokMetrics:
		failMisplacedMetrics(t)
	case tokEOF:
		fail(t.pos, "expected a spanset filter { ... } or \"(\", found end of query")
	}
	fail(t.pos, "expected a spanset filter { ... } or \"(\", found %s", t.describe())
	return nil
}

func (p *parser) parseSpansetFilter() *SpansetFilter {
	lb := p.cur()
	p.enter(lb)
	p.advance()
	f := &SpansetFilter{Pos: lb.pos}
	if p.cur().kind != tokRBrace {
		f.Expr = p.parseField(0)
	}
	p.expectClose(tokRBrace, lb)
	p.leave()
	return f
}

var fieldOps = map[tokKind]Operator{
	tokAnd: OpAnd,
	tokOr:  OpOr,
	tokEq:  OpEqual,
	tokNeq: OpNotEqual,
	tokLt:  OpLess,
	tokLte: OpLessEqual,
	tokGt:  OpGreater,
	tokGte: OpGreaterEqual,
	tokRe:  OpRegex,
	tokNre: OpNotRegex,
	tokAdd: OpAdd,
	tokSub: OpSub,
	tokMul: OpMul,
	tokDiv: OpDiv,
	tokMod: OpMod,
	tokPow: OpPow,
}

// parseField parses a field expression whose binary operators bind at
// least as strongly as minPrec.
func (p *parser) parseField(minPrec int) FieldExpr {
	lhs := p.parseFieldUnary()
	for {
		t := p.cur()
		op, ok := fieldOps[t.kind]
		if !ok || op.precedence() < minPrec {
			return lhs
		}
		p.advance()
		var rhs FieldExpr
		if op.rightAssociative() {
			p.enter(t)
			rhs = p.parseField(op.precedence())
			p.leave()
		} else {
			rhs = p.parseField(op.precedence() + 1)
		}
		lhs = p.makeBinary(t, op, lhs, rhs)
	}
}

// parseFieldUnary parses `!x`, `-x` or a primary. As in Tempo's grammar the
// operand of a unary operator takes in * / % and ^ but not + - or
// comparisons: `-a * b` is `-(a * b)`, `!a = b` is `(!a) = b`.
func (p *parser) parseFieldUnary() FieldExpr {
	t := p.cur()
	if t.kind != tokNot && t.kind != tokSub {
		return p.parseFieldPrimary()
	}
	p.enter(t)
	p.advance()
	operand := p.parseField(precMultiply)
	p.leave()
	p.countOp(t)
	op := OpNot
	if t.kind == tokSub {
		op = OpNeg
	}
	return &UnaryExpr{Pos: t.pos, Op: op, Expr: operand}
}

func (p *parser) parseFieldPrimary() FieldExpr {
	t := p.cur()
	switch t.kind {
	case tokLParen:
		p.enter(t)
		p.advance()
		e := p.parseField(0)
		p.expectClose(tokRParen, t)
		p.leave()
		return e
	case tokLiteral:
		p.advance()
		s := *t.lit
		s.Pos = t.pos
		return &s
	case tokNil:
		p.advance()
		return &Static{Pos: t.pos, Type: TypeNil}
	case tokAttr:
		p.advance()
		a := *t.attr
		a.Pos = t.pos
		return &a
	case tokIdent:
		failUnknownIdent(t)
	case tokCount, tokAvg, tokMin, tokMax, tokSum:
		fail(t.pos, `%s() is an aggregate: use it in a pipeline stage after "|", as in { ... } | count() > 1, not inside a spanset filter`, t.text)
	case tokBy, tokCoalesce, tokSelect:
		fail(t.pos, `%s() is a pipeline stage: use it after "|", not inside a spanset filter`, t.text)
	case tokMetrics:
		failMisplacedMetrics(t)
	case tokLBrace:
		fail(t.pos, `unexpected "{": spanset filters cannot be nested`)
	case tokEOF:
		fail(t.pos, "expected an attribute, intrinsic or literal, found end of query")
	}
	fail(t.pos, "expected an attribute, intrinsic or literal, found %s", t.describe())
	return nil
}

func failUnknownIdent(t *token) {
	_, dot := dotScopes[t.text]
	colon := colonScopes[t.text]
	switch {
	case dot && colon:
		fail(t.pos, `%q must be followed by "." and an attribute name (%s.foo) or ":" and an intrinsic name (%s)`, t.text, t.text, scopedIntrinsicNames(t.text+":"))
	case dot:
		fail(t.pos, `%q must be followed by "." and an attribute name (%s.foo)`, t.text, t.text)
	case colon:
		fail(t.pos, `%q must be followed by ":" and an intrinsic name (%s)`, t.text, scopedIntrinsicNames(t.text+":"))
	}
	w := shorten(t.text)
	fail(t.pos, "unknown identifier %q: attributes are written with a scope or a leading dot (.%s, span.%s, resource.%s)", w, w, w, w)
}

func isNilStatic(e FieldExpr) bool {
	s, ok := e.(*Static)
	return ok && s.Type == TypeNil
}

// makeBinary builds `lhs op rhs`, turning comparisons with nil into
// NilChecks and compiling regular expressions.
func (p *parser) makeBinary(t *token, op Operator, lhs, rhs FieldExpr) FieldExpr {
	p.countOp(t)
	if op == OpEqual || op == OpNotEqual {
		lnil, rnil := isNilStatic(lhs), isNilStatic(rhs)
		if lnil || rnil {
			other := lhs
			if lnil {
				other = rhs
			}
			a, ok := other.(*Attribute)
			if !ok {
				fail(other.Position(), "nil can only be compared with an attribute (span.foo = nil, span.foo != nil), not with %s", snippet(other))
			}
			return &NilCheck{Pos: t.pos, Attr: a, Exists: op == OpNotEqual}
		}
	}
	b := &BinaryExpr{Pos: t.pos, Op: op, LHS: lhs, RHS: rhs}
	if op == OpRegex || op == OpNotRegex {
		s, ok := rhs.(*Static)
		if !ok || s.Type != TypeString {
			fail(rhs.Position(), "the right side of %s must be a string literal holding a regular expression, found %s", op, snippet(rhs))
		}
		re, err := compileRegexLimited(s.Str, p.maxRegex, s.Pos)
		if pe, ok := err.(*ParseError); ok {
			panic(bailout{pe})
		}
		if err != nil {
			fail(s.Pos, "invalid regular expression %s: %v", snippet(s), err)
		}
		b.Regex = re
	}
	return b
}

// compileRegex compiles a TraceQL regular expression: RE2 syntax, fully
// anchored, `.` matching newlines too (as Prometheus label matchers and
// Tempo do). The pattern is first checked on its own so that something
// like `a)|(b` is rejected rather than balanced by the anchoring group.
func compileRegex(pattern string) (*regexp.Regexp, error) {
	if _, err := syntax.Parse(pattern, syntax.Perl); err != nil {
		return nil, err
	}
	return regexp.Compile("^(?s:" + pattern + ")$")
}

var scalarCmpOps = map[tokKind]Operator{
	tokEq:  OpEqual,
	tokNeq: OpNotEqual,
	tokLt:  OpLess,
	tokLte: OpLessEqual,
	tokGt:  OpGreater,
	tokGte: OpGreaterEqual,
}

var scalarArithOps = map[tokKind]Operator{
	tokAdd: OpAdd,
	tokSub: OpSub,
	tokMul: OpMul,
	tokDiv: OpDiv,
	tokMod: OpMod,
	tokPow: OpPow,
}

func (p *parser) parseScalarFilter() *ScalarFilter {
	lhs := p.parseScalar(0)
	t := p.cur()
	op, ok := scalarCmpOps[t.kind]
	if !ok {
		fail(t.pos, "expected a comparison operator (=, !=, <, <=, >, >=) after %s, found %s", snippet(lhs), t.describe())
	}
	p.advance()
	rhs := p.parseScalar(0)
	p.countOp(t)
	return &ScalarFilter{Pos: t.pos, Op: op, LHS: lhs, RHS: rhs}
}

func (p *parser) parseScalar(minPrec int) ScalarExpr {
	lhs := p.parseScalarPrimary()
	for {
		t := p.cur()
		op, ok := scalarArithOps[t.kind]
		if !ok || op.precedence() < minPrec {
			return lhs
		}
		p.advance()
		var rhs ScalarExpr
		if op.rightAssociative() {
			p.enter(t)
			rhs = p.parseScalar(op.precedence())
			p.leave()
		} else {
			rhs = p.parseScalar(op.precedence() + 1)
		}
		p.countOp(t)
		lhs = &ScalarBinary{Pos: t.pos, Op: op, LHS: lhs, RHS: rhs}
	}
}

func (p *parser) parseScalarPrimary() ScalarExpr {
	t := p.cur()
	switch t.kind {
	case tokLParen:
		p.enter(t)
		p.advance()
		e := p.parseScalar(0)
		p.expectClose(tokRParen, t)
		p.leave()
		return e
	case tokCount, tokAvg, tokMin, tokMax, tokSum:
		return p.parseAggregate()
	case tokLiteral:
		if t.lit.Type.IsNumeric() {
			p.advance()
			s := *t.lit
			s.Pos = t.pos
			return &s
		}
	case tokSub:
		// a negative number; Tempo has no other unary operator here
		p.advance()
		n := p.cur()
		if n.kind != tokLiteral || !n.lit.Type.IsNumeric() {
			fail(t.pos, `"-" in an aggregate filter must be followed by a number, found %s`, n.describe())
		}
		p.advance()
		s := *n.lit
		s.Pos = t.pos
		switch s.Type {
		case TypeInt:
			if s.Int == math.MinInt64 {
				fail(t.pos, "integer -minInt is out of range")
			}
			s.Int = -s.Int
		case TypeFloat:
			s.Float = -s.Float
		case TypeDuration:
			s.Duration = -s.Duration
		}
		return &s
	case tokMetrics:
		failMisplacedMetrics(t)
	case tokAttr:
		fail(t.pos, "expected an aggregate such as count() or avg(%s), or a number, found %s: conditions on span fields go in a spanset filter { ... }", shorten(t.text), t.describe())
	case tokEOF:
		fail(t.pos, "expected an aggregate (count(), avg(x), min(x), max(x), sum(x)) or a number, found end of query")
	}
	fail(t.pos, "expected an aggregate (count(), avg(x), min(x), max(x), sum(x)) or a number, found %s", t.describe())
	return nil
}

var aggregateOps = map[tokKind]AggregateOp{
	tokCount: AggregateCount,
	tokAvg:   AggregateAvg,
	tokMin:   AggregateMin,
	tokMax:   AggregateMax,
	tokSum:   AggregateSum,
}

// openCall consumes the "(" after the function name fn.
func (p *parser) openCall(fn *token) *token {
	lp := p.cur()
	if lp.kind != tokLParen {
		fail(lp.pos, "expected \"(\" after %s, found %s", fn.text, lp.describe())
	}
	p.enter(lp)
	p.advance()
	return lp
}

func (p *parser) parseAggregate() *Aggregate {
	t := p.advance()
	lp := p.openCall(t)
	agg := &Aggregate{Pos: t.pos, Op: aggregateOps[t.kind]}
	c := p.cur()
	if t.kind == tokCount {
		if c.kind != tokRParen {
			fail(c.pos, "count() takes no arguments, found %s", c.describe())
		}
	} else {
		if c.kind == tokRParen {
			fail(c.pos, "%s() needs an argument, e.g. %s(duration)", t.text, t.text)
		}
		agg.Expr = p.parseField(0)
	}
	p.expectClose(tokRParen, lp)
	p.leave()
	return agg
}

func (p *parser) parseGroupBy() *GroupBy {
	t := p.advance()
	lp := p.openCall(t)
	if c := p.cur(); c.kind == tokRParen {
		fail(c.pos, "by() needs a field expression, e.g. by(resource.service.name)")
	}
	g := &GroupBy{Pos: t.pos, Expr: p.parseField(0)}
	p.expectClose(tokRParen, lp)
	p.leave()
	return g
}

func (p *parser) parseCoalesce() *Coalesce {
	t := p.advance()
	lp := p.openCall(t)
	if c := p.cur(); c.kind != tokRParen {
		fail(c.pos, "coalesce() takes no arguments, found %s", c.describe())
	}
	p.expectClose(tokRParen, lp)
	p.leave()
	return &Coalesce{Pos: t.pos}
}

func (p *parser) parseSelect() *Select {
	t := p.advance()
	lp := p.openCall(t)
	s := &Select{Pos: t.pos}
	for {
		a := p.cur()
		if a.kind != tokAttr {
			fail(a.pos, "select() takes attributes or intrinsics such as span.http.method or duration, found %s", a.describe())
		}
		p.advance()
		attr := *a.attr
		attr.Pos = a.pos
		s.Fields = append(s.Fields, &attr)
		if p.cur().kind != tokComma {
			break
		}
		p.advance()
	}
	p.expectClose(tokRParen, lp)
	p.leave()
	return s
}

func (p *parser) parseHints() *Hints {
	w := p.advance()
	lp := p.openCall(w)
	h := &Hints{Pos: w.pos}
	for {
		n := p.cur()
		if n.kind != tokIdent {
			if n.kind == tokRParen && len(h.Hints) == 0 {
				fail(n.pos, "with () needs at least one hint, e.g. with (most_recent=true)")
			}
			fail(n.pos, "expected a hint name such as most_recent, found %s", n.describe())
		}
		p.advance()
		if eq := p.cur(); eq.kind != tokEq {
			fail(eq.pos, "expected \"=\" after hint %s, found %s", shorten(n.text), eq.describe())
		}
		p.advance()
		v := p.cur()
		if v.kind != tokLiteral {
			fail(v.pos, "expected a literal value for hint %s, found %s", shorten(n.text), v.describe())
		}
		p.advance()
		val := *v.lit
		val.Pos = v.pos
		h.Hints = append(h.Hints, &Hint{Pos: n.pos, Name: n.text, Value: &val})
		c := p.cur()
		if c.kind == tokComma {
			p.advance()
			continue
		}
		if c.kind != tokRParen {
			fail(c.pos, "expected \",\" or \")\" in with (...), found %s", c.describe())
		}
		break
	}
	p.expectClose(tokRParen, lp)
	p.leave()
	return h
}

// checkPipelineOperands unwraps a query that is one parenthesised
// pipeline, and rejects parenthesised pipelines used as spanset operands
// anywhere but at the top level of the query (Tempo's grammar allows them
// only there).
func (p *parser) checkPipelineOperands(root *RootExpr) {
	for len(root.Pipeline.Stages) == 1 {
		inner, ok := root.Pipeline.Stages[0].(*Pipeline)
		if !ok {
			break
		}
		root.Pipeline = inner
	}
	top := len(root.Pipeline.Stages) == 1
	for i, s := range root.Pipeline.Stages {
		if se, ok := s.(SpansetExpr); ok {
			checkOperands(se, top && i == 0)
		}
	}
}

func checkOperands(e SpansetExpr, allowed bool) {
	switch e := e.(type) {
	case *SpansetOp:
		checkOperands(e.LHS, allowed)
		checkOperands(e.RHS, allowed)
	case *Pipeline:
		if !allowed {
			fail(e.Pos, "a parenthesised pipeline can only be an operand of a spanset operator at the top level of a query, as in ({ .a } | count() > 1) && ({ .b } | count() > 1)")
		}
		for _, s := range e.Stages {
			if se, ok := s.(SpansetExpr); ok {
				checkOperands(se, false)
			}
		}
	}
}
