package traceql

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

type tokKind uint8

const (
	tokEOF     tokKind = iota
	tokError           // lexing failed here; msg says why
	tokIdent           // a word that is not a keyword
	tokLiteral         // lit holds the value (never nil)
	tokNil
	tokAttr // attr holds the attribute or intrinsic
	tokCount
	tokAvg
	tokMin
	tokMax
	tokSum
	tokBy
	tokCoalesce
	tokSelect
	tokWith
	tokMetrics // a metrics function name: rate, count_over_time, ...
	tokLBrace
	tokRBrace
	tokLParen
	tokRParen
	tokComma
	tokPipe
	tokAnd
	tokOr
	tokNot
	tokEq
	tokNeq
	tokLt
	tokLte
	tokGt
	tokGte
	tokRe
	tokNre
	tokAdd
	tokSub
	tokMul
	tokDiv
	tokMod
	tokPow
	tokDesc
	tokAnce
	tokTilde
	tokNotChild
	tokNotParent
	tokNotDesc
	tokNotAnce
	tokUnionChild
	tokUnionParent
	tokUnionDesc
	tokUnionAnce
	tokUnionSibl
)

type token struct {
	kind tokKind
	pos  Position
	text string     // source text
	msg  string     // tokError only
	lit  *Static    // tokLiteral only
	attr *Attribute // tokAttr only
}

// describe names the token for an error message.
func (t *token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of query"
	case tokError:
		return "invalid input"
	}
	return strconv.Quote(shorten(t.text))
}

// shorten cuts s to 40 runes for an error message.
func shorten(s string) string {
	if len(s) > 40 && utf8.RuneCountInString(s) > 40 {
		return string([]rune(s)[:37]) + "..."
	}
	return s
}

var keywords = map[string]tokKind{
	"count":    tokCount,
	"avg":      tokAvg,
	"min":      tokMin,
	"max":      tokMax,
	"sum":      tokSum,
	"by":       tokBy,
	"coalesce": tokCoalesce,
	"select":   tokSelect,
	"with":     tokWith,
	"nil":      tokNil,
	// metrics functions (first and second stage)
	"rate":                tokMetrics,
	"count_over_time":     tokMetrics,
	"min_over_time":       tokMetrics,
	"max_over_time":       tokMetrics,
	"sum_over_time":       tokMetrics,
	"avg_over_time":       tokMetrics,
	"quantile_over_time":  tokMetrics,
	"histogram_over_time": tokMetrics,
	"compare":             tokMetrics,
	"topk":                tokMetrics,
	"bottomk":             tokMetrics,
}

var literalKeywords = map[string]Static{
	"true":        {Type: TypeBoolean, Bool: true},
	"false":       {Type: TypeBoolean, Bool: false},
	"ok":          {Type: TypeStatus, Status: StatusOk},
	"error":       {Type: TypeStatus, Status: StatusError},
	"unset":       {Type: TypeStatus, Status: StatusUnset},
	"unspecified": {Type: TypeKind, Kind: KindUnspecified},
	"internal":    {Type: TypeKind, Kind: KindInternal},
	"server":      {Type: TypeKind, Kind: KindServer},
	"client":      {Type: TypeKind, Kind: KindClient},
	"producer":    {Type: TypeKind, Kind: KindProducer},
	"consumer":    {Type: TypeKind, Kind: KindConsumer},
	"minInt":      {Type: TypeInt, Int: math.MinInt64},
	"maxInt":      {Type: TypeInt, Int: math.MaxInt64},
}

// attribute scopes introduced by `word.`
var dotScopes = map[string]Scope{
	"span":            ScopeSpan,
	"resource":        ScopeResource,
	"event":           ScopeEvent,
	"link":            ScopeLink,
	"instrumentation": ScopeInstrumentation,
}

// intrinsic scopes introduced by `word:`
var colonScopes = map[string]bool{
	"span": true, "trace": true, "event": true, "link": true, "instrumentation": true,
}

type lexer struct {
	src  string
	off  int
	line int
	col  int
	toks []token
}

// lex splits src into tokens. It always ends with a tokEOF or tokError
// token; the parser reports a tokError only if it gets that far, so a
// syntax error earlier in the query wins.
func lex(src string) []token {
	l := &lexer{src: src, line: 1, col: 1}
	l.toks = make([]token, 0, len(src)/4+8)
	for l.next() {
	}
	return l.toks
}

func (l *lexer) pos() Position { return Position{Offset: l.off, Line: l.line, Column: l.col} }

// peek returns the rune k runes ahead (0 = current), or -1 at the end.
func (l *lexer) peek(k int) rune {
	if k == 0 && l.off < len(l.src) && l.src[l.off] < utf8.RuneSelf {
		return rune(l.src[l.off])
	}
	off := l.off
	for ; k > 0 && off < len(l.src); k-- {
		_, size := utf8.DecodeRuneInString(l.src[off:])
		off += size
	}
	if off >= len(l.src) {
		return -1
	}
	r, _ := utf8.DecodeRuneInString(l.src[off:])
	return r
}

// advance consumes one rune.
func (l *lexer) advance() {
	if c := l.src[l.off]; c < utf8.RuneSelf {
		l.off++
		if c == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		return
	}
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += size
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
}

func (l *lexer) emit(kind tokKind, start Position) *token {
	l.toks = append(l.toks, token{kind: kind, pos: start, text: l.src[start.Offset:l.off]})
	return &l.toks[len(l.toks)-1]
}

func (l *lexer) fail(at Position, format string, args ...any) bool {
	l.toks = append(l.toks, token{kind: tokError, pos: at, msg: fmt.Sprintf(format, args...)})
	return false
}

// next lexes one token; it returns false after the final token.
func (l *lexer) next() bool {
	for l.off < len(l.src) {
		r := l.peek(0)
		if !unicode.IsSpace(r) {
			break
		}
		l.advance()
	}
	start := l.pos()
	if l.off >= len(l.src) {
		l.emit(tokEOF, start)
		return false
	}
	r := l.peek(0)
	switch {
	case r == '"' || r == '`':
		return l.lexString(start)
	case isDigit(r) || (r == '.' && isDigit(l.peek(1))):
		return l.lexNumber(start)
	case r == '.':
		l.advance()
		return l.lexAttribute(start, ScopeNone, false)
	case r == '_' || unicode.IsLetter(r):
		return l.lexWord(start)
	}
	return l.lexOperator(start, r)
}

// operators and punctuation, longest first
var operators = [...]struct {
	s    string
	kind tokKind
}{
	{"!>>", tokNotDesc}, {"!<<", tokNotAnce}, {"&>>", tokUnionDesc}, {"&<<", tokUnionAnce},
	{"&&", tokAnd}, {"||", tokOr}, {"!=", tokNeq}, {"!~", tokNre}, {"!>", tokNotChild},
	{"!<", tokNotParent}, {"=~", tokRe}, {">=", tokGte}, {"<=", tokLte}, {">>", tokDesc},
	{"<<", tokAnce}, {"&>", tokUnionChild}, {"&<", tokUnionParent}, {"&~", tokUnionSibl},
	{"{", tokLBrace}, {"}", tokRBrace}, {"(", tokLParen}, {")", tokRParen}, {",", tokComma},
	{"|", tokPipe}, {"!", tokNot}, {"=", tokEq}, {"<", tokLt}, {">", tokGt}, {"+", tokAdd},
	{"-", tokSub}, {"*", tokMul}, {"/", tokDiv}, {"%", tokMod}, {"^", tokPow}, {"~", tokTilde},
}

func (l *lexer) lexOperator(start Position, r rune) bool {
	rest := l.src[l.off:]
	for _, op := range operators {
		if strings.HasPrefix(rest, op.s) {
			for range op.s {
				l.advance()
			}
			l.emit(op.kind, start)
			return true
		}
	}
	switch r {
	case '&':
		return l.fail(start, `unexpected "&"; did you mean "&&"?`)
	case '\'':
		return l.fail(start, `unexpected "'": strings are written in double quotes or backticks`)
	case '#':
		return l.fail(start, "unexpected character '#' (TraceQL has no comments)")
	case ':':
		return l.fail(start, `unexpected ":"; intrinsics are written span:name, trace:id, event:name, link:traceID or instrumentation:name`)
	}
	if unicode.IsPrint(r) {
		return l.fail(start, "unexpected character %q", r)
	}
	return l.fail(start, "unexpected character %U", r)
}

// lexString lexes a "double-quoted" string (Go escapes) or a `raw` one.
func (l *lexer) lexString(start Position) bool {
	text, ok := l.scanQuoted(start, "string")
	if !ok {
		return false
	}
	s, err := strconv.Unquote(text)
	if err != nil {
		return l.fail(start, "invalid escape sequence in string %s", text)
	}
	t := l.emit(tokLiteral, start)
	t.lit = &Static{Type: TypeString, Str: s}
	return true
}

// scanQuoted consumes a quoted literal starting at the current quote rune
// and returns its source text. what names it in errors.
func (l *lexer) scanQuoted(start Position, what string) (string, bool) {
	quote := l.peek(0)
	l.advance()
	for {
		if l.off >= len(l.src) {
			l.fail(start, "unterminated %s: missing closing %c", what, quote)
			return "", false
		}
		r := l.peek(0)
		switch {
		case r == quote:
			l.advance()
			return l.src[start.Offset:l.off], true
		case r == '\n' && quote == '"':
			l.fail(start, "unterminated %s: missing closing %c before the end of the line", what, quote)
			return "", false
		case r == '\\' && quote == '"':
			at := l.pos()
			l.advance()
			e := l.peek(0)
			if !strings.ContainsRune(`abfnrtv\"xuU01234567`, e) {
				if e < 0 {
					l.fail(start, "unterminated %s: missing closing %c", what, quote)
				} else {
					l.fail(at, `invalid escape sequence "\%c" in %s`, e, what)
				}
				return "", false
			}
			l.advance()
		default:
			l.advance()
		}
	}
}

// lexNumber lexes an integer, a float or a duration.
func (l *lexer) lexNumber(start Position) bool {
	isFloat := false
	for isDigit(l.peek(0)) {
		l.advance()
	}
	if l.peek(0) == '.' && isDigit(l.peek(1)) {
		isFloat = true
		l.advance()
		for isDigit(l.peek(0)) {
			l.advance()
		}
	}
	if e := l.peek(0); e == 'e' || e == 'E' {
		n := l.peek(1)
		if isDigit(n) || ((n == '+' || n == '-') && isDigit(l.peek(2))) {
			isFloat = true
			l.advance()
			l.advance()
			for isDigit(l.peek(0)) {
				l.advance()
			}
		}
	}
	if unicode.IsLetter(l.peek(0)) {
		// a duration such as 1h30m or 1.5s: take the whole run
		l.off, l.line, l.col = start.Offset, start.Line, start.Column
		for r := l.peek(0); isDigit(r) || r == '.' || unicode.IsLetter(r); r = l.peek(0) {
			l.advance()
		}
		text := l.src[start.Offset:l.off]
		d, err := parseDuration(text)
		if err != nil {
			return l.fail(start, "invalid duration %q: %v", shorten(text), err)
		}
		t := l.emit(tokLiteral, start)
		t.lit = &Static{Type: TypeDuration, Duration: d}
		return true
	}
	text := l.src[start.Offset:l.off]
	if isFloat {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			return l.fail(start, "number %s is out of range", shorten(text))
		}
		t := l.emit(tokLiteral, start)
		t.lit = &Static{Type: TypeFloat, Float: f}
		return true
	}
	i, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return l.fail(start, "integer %s is out of range (the largest is maxInt, 9223372036854775807)", shorten(text))
	}
	t := l.emit(tokLiteral, start)
	t.lit = &Static{Type: TypeInt, Int: i}
	return true
}

var durationUnits = []struct {
	name string
	d    time.Duration
}{
	// longest first so "ms" is not read as "m" then "s"
	{"ns", time.Nanosecond}, {"us", time.Microsecond}, {"µs", time.Microsecond},
	{"μs", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second},
	{"m", time.Minute}, {"h", time.Hour}, {"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour},
	{"y", 365 * 24 * time.Hour},
}

// parseDuration parses a sequence of <number><unit> terms (1h30m, 1.5s,
// 500ms) and returns their sum. Units: ns us µs ms s m h, and as in
// Prometheus d (24h), w (7d) and y (365d).
func parseDuration(s string) (time.Duration, error) {
	const maxDur = uint64(math.MaxInt64)
	var total uint64
	orig := s
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	for s != "" {
		i := 0
		for i < len(s) && isDigit(rune(s[i])) {
			i++
		}
		intPart := s[:i]
		frac := ""
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && isDigit(rune(s[j])) {
				j++
			}
			frac = s[i+1 : j]
			if frac == "" {
				return 0, fmt.Errorf("a fraction needs digits after the dot")
			}
			i = j
		}
		if intPart == "" {
			return 0, fmt.Errorf("expected a number before %q", shorten(s))
		}
		s = s[i:]
		unit := time.Duration(0)
		for _, u := range durationUnits {
			if strings.HasPrefix(s, u.name) {
				unit = u.d
				s = s[len(u.name):]
				break
			}
		}
		if unit == 0 {
			if s == "" {
				return 0, fmt.Errorf("missing unit after %s (units are ns, us, µs, ms, s, m, h, d, w, y)", shorten(intPart))
			}
			return 0, fmt.Errorf("unknown unit at %q (units are ns, us, µs, ms, s, m, h, d, w, y)", shorten(s))
		}
		v, err := strconv.ParseUint(intPart, 10, 64)
		if err != nil || v > maxDur/uint64(unit) {
			return 0, fmt.Errorf("%s is out of range", shorten(orig))
		}
		term := v * uint64(unit)
		if frac != "" {
			// frac/10^len(frac) of a unit, truncated to nanoseconds (as
			// time.ParseDuration computes it)
			scale := 1.0
			fv := 0.0
			if len(frac) > 18 {
				frac = frac[:18] // beyond nanosecond precision
			}
			for _, c := range frac {
				scale *= 10
				fv = fv*10 + float64(c-'0')
			}
			term += uint64(fv * (float64(unit) / scale))
		}
		if term > maxDur || total > maxDur-term {
			return 0, fmt.Errorf("%s is out of range", shorten(orig))
		}
		total += term
	}
	return time.Duration(total), nil
}

// lexWord lexes a keyword, a literal keyword, an intrinsic, a scoped
// attribute (`span.x`) or intrinsic (`span:id`), or an unknown word.
func (l *lexer) lexWord(start Position) bool {
	for r := l.peek(0); r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r); r = l.peek(0) {
		l.advance()
	}
	word := l.src[start.Offset:l.off]
	next := l.peek(0)
	if next == '.' {
		if word == "parent" {
			l.advance()
			return l.lexParentAttribute(start)
		}
		if scope, ok := dotScopes[word]; ok {
			l.advance()
			return l.lexAttribute(start, scope, false)
		}
	}
	if next == ':' && colonScopes[word] {
		l.advance()
		nameStart := l.off
		for r := l.peek(0); r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r); r = l.peek(0) {
			l.advance()
		}
		full := l.src[start.Offset:l.off]
		in, ok := scopedIntrinsics[full]
		if !ok {
			if nameStart == l.off {
				return l.fail(start, "expected an intrinsic name after %q (one of %s)", word+":", scopedIntrinsicNames(word+":"))
			}
			return l.fail(start, "unknown intrinsic %q (%s: has %s)", shorten(full), word, scopedIntrinsicNames(word+":"))
		}
		t := l.emit(tokAttr, start)
		t.attr = &Attribute{Scope: in.Scope(), Name: in.String(), Intrinsic: in}
		return true
	}
	if in, ok := unscopedIntrinsics[word]; ok {
		t := l.emit(tokAttr, start)
		t.attr = &Attribute{Scope: in.Scope(), Name: in.String(), Intrinsic: in}
		return true
	}
	if lit, ok := literalKeywords[word]; ok {
		t := l.emit(tokLiteral, start)
		t.lit = &lit
		return true
	}
	if k, ok := keywords[word]; ok {
		l.emit(k, start)
		return true
	}
	l.emit(tokIdent, start)
	return true
}

// lexParentAttribute lexes what follows `parent.`: `span.x`,
// `resource.x` or an unscoped name.
func (l *lexer) lexParentAttribute(start Position) bool {
	rest := l.src[l.off:]
	scope := ScopeNone
	for _, s := range []struct {
		prefix string
		scope  Scope
	}{{"span.", ScopeSpan}, {"resource.", ScopeResource}} {
		if strings.HasPrefix(rest, s.prefix) {
			for range s.prefix {
				l.advance()
			}
			scope = s.scope
			break
		}
	}
	return l.lexAttribute(start, scope, true)
}

// lexAttribute lexes an attribute name after its scope prefix (`.`,
// `span.`, `parent.`...): an unquoted run of attribute runes, or a
// "quoted" name.
func (l *lexer) lexAttribute(start Position, scope Scope, parent bool) bool {
	var name string
	if l.peek(0) == '"' {
		qstart := l.pos()
		text, ok := l.scanQuoted(qstart, "attribute name")
		if !ok {
			return false
		}
		s, err := strconv.Unquote(text)
		if err != nil {
			return l.fail(qstart, "invalid escape sequence in attribute name %s", text)
		}
		name = s
	} else {
		nameStart := l.off
		for r := l.peek(0); r >= 0 && isAttributeRune(r); r = l.peek(0) {
			l.advance()
		}
		name = l.src[nameStart:l.off]
		if name == "" {
			prefix := l.src[start.Offset:l.off]
			return l.fail(start, "expected an attribute name after %q", prefix)
		}
	}
	if name == "" {
		return l.fail(start, "attribute names cannot be empty")
	}
	t := l.emit(tokAttr, start)
	t.attr = &Attribute{Scope: scope, Name: name, Parent: parent}
	return true
}
