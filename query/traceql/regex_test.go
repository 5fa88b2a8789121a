package traceql

import (
	"fmt"
	"regexp/syntax"
	"strings"
	"testing"
)

// routeAlternation is an alternation of n URL paths, as a dashboard
// variable listing many values makes.
func routeAlternation(n int) string {
	var alts []string
	for i := range n {
		alts = append(alts, fmt.Sprintf("/api/v1/products/item-%04d/detail", i))
	}
	return strings.Join(alts, "|")
}

// A regular expression that compiles to more instructions than
// MaxRegexSize is refused before it is compiled, naming the key (33 KB of
// counted repetition compiled to 3 million instructions, 900 MB).
func TestMaxRegexSize(t *testing.T) {
	huge := `{ span.http.route !~ "` + strings.Repeat("[a-z]{1000}", 3000) + `" }`
	pe := parseErr(t, huge, Limits{})
	if pe.Limit != LimitMaxRegexSize || pe.Pos.Column != 22 ||
		!strings.Contains(pe.Msg, "regular expression compiles to about 3000000 instructions, more than the limit of 20000 (query_frontend.max_query_regex_size)") {
		t.Fatalf("error = %v (limit %q)", pe, pe.Limit)
	}
	for _, q := range []string{
		`{ span.http.route =~ "` + routeAlternation(300) + `" }`,
		`{ name !~ ".*foo.*" }`,
		`{ span.a =~ "` + strings.Repeat("[a-z]{1000}", 19) + `" }`,
	} {
		if _, err := Parse(q); err != nil {
			t.Errorf("%.60s...: %v", q, err)
		}
	}
	// A cached pattern is checked against the limit of each parse.
	small := `{ span.a =~ "[a-z]{1000}" }`
	if _, err := Parse(small); err != nil {
		t.Fatal(err)
	}
	if pe := parseErr(t, small, Limits{MaxRegexSize: 500}); pe.Limit != LimitMaxRegexSize {
		t.Fatalf("cached pattern over a lower limit: %v", pe)
	}
}

// The estimate bounds Go's instruction count from above, closely.
func TestRegexSizeEstimate(t *testing.T) {
	for _, p := range []string{
		"a", ".*foo.*", "(GET|POST) /api/.*", "[a-z]{1000}", "(ab){2,5}c+d?", "x{3,}", routeAlternation(300),
		strings.Repeat("[a-z/]{100}", 100), `\d+\.\d+`, "(?i)error|warn(ing)?",
	} {
		tree, err := syntax.Parse("^(?s:"+p+")$", syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		prog, err := syntax.Compile(tree.Simplify())
		if err != nil {
			t.Fatal(err)
		}
		est, got := regexSize(tree), int64(len(prog.Inst))
		if est < got-2 || est > got*3/2+10 {
			t.Errorf("%.40s: estimate %d, compiled %d", p, est, got)
		}
	}
}

// BenchmarkParseRegex parses a query whose regular expression compiles to
// 10,000 instructions, as every job of a search does:
//
//	go test ./query/traceql -run '^$' -bench BenchmarkParseRegex -benchmem
func BenchmarkParseRegex(b *testing.B) {
	q := `{ span.http.route !~ "` + strings.Repeat("[a-z/]{100}", 100) + `" }`
	for b.Loop() {
		if _, err := Parse(q); err != nil {
			b.Fatal(err)
		}
	}
}
