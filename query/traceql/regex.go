package traceql

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"sync"
)

// A regular expression costs memory and time by the size of the program
// it compiles to: Go's regexp is linear in the input, but a pattern of
// counted repetitions is not small (33 KB of `[a-z]{1000}` compile to 3
// million instructions: 900 MB allocated and a second to compile, and
// every concurrent match holds queues of that size). The parser bounds the
// size before compiling (Limits.MaxRegexSize), and compiled patterns are
// shared through a small cache, as every job of a search parses its query
// again.

// regexSize estimates the instructions the pattern's parse tree compiles
// to (an upper bound of Go's count within a few percent: the parser has
// already factored alternations), saturating at math.MaxInt32.
func regexSize(re *syntax.Regexp) int64 {
	const limit = math.MaxInt32
	sat := func(n int64) int64 { return min(n, limit) }
	subs := func() int64 {
		var n int64
		for _, s := range re.Sub {
			n = sat(n + regexSize(s))
		}
		return n
	}
	switch re.Op {
	case syntax.OpLiteral:
		return int64(max(1, len(re.Rune)))
	case syntax.OpConcat:
		return subs()
	case syntax.OpAlternate:
		return sat(subs() + int64(len(re.Sub)))
	case syntax.OpCapture:
		return sat(2 + subs())
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return sat(1 + subs())
	case syntax.OpRepeat: // x{min,max} is min copies of x, then max−min optional ones
		sub, lo := subs(), int64(re.Min)
		if re.Max < 0 {
			return sat(lo*sub + sub + 1)
		}
		return sat(lo*sub + (int64(re.Max)-lo)*(sub+1))
	}
	return 1 // one-instruction operators: classes, any, anchors, empty
}

// maxRegexCache bounds the compiled patterns kept.
const maxRegexCache = 256

// compiledRegex is a cached pattern and its estimated size.
type compiledRegex struct {
	re   *regexp.Regexp
	size int64
}

var regexCache = struct {
	sync.Mutex
	m map[string]compiledRegex
}{m: map[string]compiledRegex{}}

// compileRegexLimited is compileRegex, refusing with a *ParseError naming
// LimitMaxRegexSize (at pos) a pattern estimated to compile to more than
// maxSize instructions, and sharing compiled patterns (a *regexp.Regexp is
// safe for concurrent use).
func compileRegexLimited(pattern string, maxSize int, pos Position) (*regexp.Regexp, error) {
	regexCache.Lock()
	c, ok := regexCache.m[pattern]
	regexCache.Unlock()
	if !ok {
		tree, err := syntax.Parse(pattern, syntax.Perl)
		if err != nil {
			return nil, err
		}
		c.size = regexSize(tree)
	}
	if c.size > int64(maxSize) {
		return nil, &ParseError{
			Pos:   pos,
			Msg:   fmt.Sprintf("regular expression compiles to about %d instructions, more than the limit of %d (%s)", c.size, maxSize, LimitMaxRegexSize),
			Limit: LimitMaxRegexSize,
		}
	}
	if ok {
		return c.re, nil
	}
	var err error
	if c.re, err = compileRegex(pattern); err != nil {
		return nil, err
	}
	regexCache.Lock()
	if len(regexCache.m) >= maxRegexCache {
		clear(regexCache.m)
	}
	regexCache.m[pattern] = c
	regexCache.Unlock()
	return c.re, nil
}
