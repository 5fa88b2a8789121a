package traceql

import (
	"fmt"
	"unicode/utf8"
)

// Position is a place in the query text.
type Position struct {
	// Offset is the byte offset from the start of the query, starting at 0.
	Offset int
	// Line is the line number, starting at 1.
	Line int
	// Column is the column on that line counted in runes (a tab is one
	// rune), starting at 1.
	Column int
}

// String returns "line L, column C".
func (p Position) String() string {
	return fmt.Sprintf("line %d, column %d", p.Line, p.Column)
}

// ParseError is the error Parse returns for a query it rejects, whether the
// query is malformed (syntax), uses something weft does not support, breaks
// a typing rule or goes over a limit. Pos is where the problem is: the
// offending token, or the end of the query when it stops too early.
type ParseError struct {
	Pos Position
	Msg string
	// Limit is the config key of the limit the query went over
	// (LimitMaxBytes, LimitMaxDepth, LimitMaxStages, LimitMaxRegexSize),
	// empty for any other problem.
	Limit string
}

// Config keys of the parse limits, as ParseError.Limit names them.
const (
	LimitMaxBytes = "query_frontend.max_query_expression_size_bytes"
	LimitMaxDepth = "query_frontend.max_query_nesting_depth"
	// LimitMaxStages is weft's: Tempo has no bound on pipeline stages.
	LimitMaxStages = "query_frontend.max_query_pipeline_stages"
	// LimitMaxRegexSize is weft's: Tempo does not bound regular
	// expressions beyond Go's own limits.
	LimitMaxRegexSize = "query_frontend.max_query_regex_size"
)

// Error returns "parse error at line L, column C: msg".
func (e *ParseError) Error() string {
	return fmt.Sprintf("parse error at line %d, column %d: %s", e.Pos.Line, e.Pos.Column, e.Msg)
}

// Default limits, matching Tempo's query-frontend defaults.
const (
	// DefaultMaxBytes is the default largest query, in bytes (128 KiB).
	DefaultMaxBytes = 128 << 10
	// DefaultMaxDepth is the default deepest nesting.
	DefaultMaxDepth = 64
	// DefaultMaxStages is the default most pipeline stages. Every stage
	// walks the spansets of every trace the query reads, so a query's
	// evaluation cost grows with its stages: 6,000 stages (72 KB, within
	// the size limit) kept a search busy until its timeout. Real queries
	// have a handful.
	DefaultMaxStages = 64
	// DefaultMaxRegexSize is the default largest regular expression, in
	// instructions of its compiled program (about 300 bytes of memory
	// each while compiling): an alternation of 300 URL paths is under
	// 3,000, `.*foo.*` is 11.
	DefaultMaxRegexSize = 20000

	// HardMaxDepth bounds MaxDepth whatever the caller asks for, so the
	// recursive-descent parser never gets near the goroutine stack limit.
	HardMaxDepth = 1000
	// maxOperators bounds the number of operator nodes in one query. Every
	// tree walk (validation, String, Inspect) recurses at most this deep.
	// A query within DefaultMaxBytes cannot reach it.
	maxOperators = 100000
)

// Limits bounds what a query may cost to parse.
type Limits struct {
	// MaxBytes is the largest accepted query, in bytes; 0 or less means
	// DefaultMaxBytes. It is Tempo's
	// query_frontend.max_query_expression_size_bytes.
	MaxBytes int
	// MaxDepth is the deepest accepted nesting: every spanset filter body,
	// parenthesised group, function argument list, unary operator and
	// right-hand side of ^ opens one level. 0 or less means DefaultMaxDepth;
	// values above 1000 are treated as 1000.
	MaxDepth int
	// MaxStages is the most pipeline stages a query may have: one more
	// than the pipes ("|") it holds, nested pipelines and metrics stages
	// included (`{ } | { } | count() > 1` and `{ } | rate() | topk(5)`
	// have three); 0 or less means
	// DefaultMaxStages.
	MaxStages int
	// MaxRegexSize is the most instructions a regular expression of the
	// query may compile to (estimated from its parse before compiling);
	// 0 or less means DefaultMaxRegexSize.
	MaxRegexSize int
}

// DefaultLimits returns the limits Parse uses.
func DefaultLimits() Limits {
	return Limits{MaxBytes: DefaultMaxBytes, MaxDepth: DefaultMaxDepth, MaxStages: DefaultMaxStages, MaxRegexSize: DefaultMaxRegexSize}
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxStages <= 0 {
		l.MaxStages = DefaultMaxStages
	}
	if l.MaxRegexSize <= 0 {
		l.MaxRegexSize = DefaultMaxRegexSize
	}
	if l.MaxDepth > HardMaxDepth {
		l.MaxDepth = HardMaxDepth
	}
	return l
}

// positionAt computes the Position of byte offset off in src.
func positionAt(src string, off int) Position {
	p := Position{Line: 1, Column: 1}
	for i, r := range src {
		if i >= off {
			break
		}
		if r == '\n' {
			p.Line++
			p.Column = 1
		} else {
			p.Column++
		}
	}
	p.Offset = off
	return p
}

// firstInvalidUTF8 returns the offset of the first byte of src that is not
// valid UTF-8, or -1.
func firstInvalidUTF8(src string) int {
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRuneInString(src[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}
