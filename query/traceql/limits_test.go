package traceql

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func parseErr(t *testing.T, q string, l Limits) *ParseError {
	t.Helper()
	_, err := ParseWithLimits(q, l)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("ParseWithLimits(%.60q...) = %v, want a *ParseError", q, err)
	}
	return pe
}

func TestMaxBytes(t *testing.T) {
	pad := func(n int) string { // a valid query of exactly n bytes
		q := `{ .a = "" }`
		return q[:8] + strings.Repeat("x", n-len(q)) + q[8:]
	}
	if _, err := Parse(pad(DefaultMaxBytes)); err != nil {
		t.Fatalf("a query of exactly %d bytes: %v", DefaultMaxBytes, err)
	}
	pe := parseErr(t, pad(140000), Limits{})
	want := "parse error at line 1, column 1: query is 140000 bytes, over the limit of 131072 (query_frontend.max_query_expression_size_bytes)"
	if pe.Error() != want {
		t.Fatalf("error = %q\nwant %q", pe.Error(), want)
	}
	pe = parseErr(t, pad(20), Limits{MaxBytes: 19})
	if !strings.Contains(pe.Msg, "query is 20 bytes, over the limit of 19") {
		t.Fatalf("error = %v", pe)
	}
	if _, err := ParseWithLimits(pad(140000), Limits{MaxBytes: 200000}); err != nil {
		t.Fatalf("with a larger limit: %v", err)
	}
}

func TestMaxDepth(t *testing.T) {
	nest := func(n int) string { // the spanset filter is one level, each "(" one more
		return "{ " + strings.Repeat("(", n-1) + ".a = 1" + strings.Repeat(")", n-1) + " }"
	}
	if _, err := Parse(nest(DefaultMaxDepth)); err != nil {
		t.Fatalf("depth %d: %v", DefaultMaxDepth, err)
	}
	pe := parseErr(t, nest(DefaultMaxDepth+1), Limits{})
	if pe.Pos.Line != 1 || pe.Pos.Column != 2+DefaultMaxDepth ||
		pe.Msg != "query nests deeper than the limit of 64 levels (query_frontend.max_query_nesting_depth)" {
		t.Fatalf("error = %v", pe)
	}

	f := func(q string, depth int, ok bool) {
		t.Helper()
		_, err := ParseWithLimits(q, Limits{MaxDepth: depth})
		if (err == nil) != ok {
			t.Errorf("ParseWithLimits(%q, depth %d) = %v, want ok=%v", q, depth, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "max_query_nesting_depth") {
			t.Errorf("ParseWithLimits(%q, depth %d) = %v, want a depth error", q, depth, err)
		}
	}
	f(`{ .a = 1 }`, 1, true)
	f(`{ (.a = 1) }`, 1, false)
	f(`{ (.a = 1) }`, 2, true)
	f(`({ .a }) && { .b }`, 2, true)
	f(`(({ .a })) && { .b }`, 2, false)
	f(`{ !.a }`, 2, true)
	f(`{ !!.a }`, 2, false)
	f(`{ 2 ^ 2 ^ 2 = 16 }`, 3, true)
	f(`{ 2 ^ 2 ^ 2 ^ 2 = 16 }`, 3, false)
	f(`{ } | avg((duration)) > 1s`, 2, true)
	f(`{ } | avg(((duration))) > 1s`, 2, false)
	f(`{ } | count() > ((1))`, 2, true)
	f(`{ } | count() > (((1)))`, 2, false)
	f(`{ } with (debug=true)`, 1, true)
	// flat chains do not nest
	f(`{ .a = 1 || .a = 2 || .a = 3 || .a = 4 || .a = 5 }`, 1, true)
	f(`{ .a } >> { .b } >> { .c } && { .d }`, 1, true)
}

// TestHostileInput feeds inputs built to exhaust a naive recursive-descent
// parser; each must fail (or pass) quickly without crashing.
func TestHostileInput(t *testing.T) {
	big := Limits{MaxBytes: 4 << 20, MaxDepth: 1 << 30}
	for name, q := range map[string]string{
		"parens":        strings.Repeat("(", 100000),
		"braces":        strings.Repeat("{", 100000),
		"field parens":  "{ " + strings.Repeat("(", 100000) + ".a",
		"nots":          "{ " + strings.Repeat("!", 100000) + ".a }",
		"minus":         "{ " + strings.Repeat("-", 100000) + "1 = 1 }",
		"pow chain":     "{ 1" + strings.Repeat(" ^ 1", 30000) + " = 1 }",
		"scalar parens": "{ } | count() > " + strings.Repeat("(", 100000) + "1",
		"hint parens":   "{ } with " + strings.Repeat("(", 100000),
		"long or chain": "{ .a = 1" + strings.Repeat(" || .a = 1", 10000) + " }",
		"long spanset":  "{}" + strings.Repeat(" >> {}", 20000),
		"long pipeline": "{}" + strings.Repeat(" | {}", 20000),
		"long sum":      "{ 1" + strings.Repeat("+1", 60000) + " = 1 }",
		"scalar retry":  strings.Repeat("(", 2000) + "count() > 1" + strings.Repeat(")", 2000) + " && ({ })",
	} {
		for _, l := range []Limits{{}, big} {
			start := time.Now()
			r, err := ParseWithLimits(q, l)
			if testing.Verbose() {
				t.Logf("%s %+v: %v", name, l, time.Since(start))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("%s: took %v", name, d)
			}
			if err == nil {
				// the tree of a long chain must print and walk without trouble
				if s := r.String(); s == "" {
					t.Errorf("%s: empty String", name)
				}
				_ = r.Fields()
			}
		}
	}
}

func TestMaxOperators(t *testing.T) {
	q := "{ 1" + strings.Repeat("+1", maxOperators) + " = 1 }"
	pe := parseErr(t, q, Limits{MaxBytes: 1 << 20})
	if !strings.Contains(pe.Msg, "more than 100000 operators") {
		t.Fatalf("error = %v", pe)
	}
}

func TestMaxStages(t *testing.T) {
	pipeline := func(n int) string { // n stages
		return "{ .a = 1 }" + strings.Repeat(" | { .a = 1 }", n-1)
	}
	if _, err := Parse(pipeline(DefaultMaxStages)); err != nil {
		t.Fatalf("%d stages: %v", DefaultMaxStages, err)
	}
	pe := parseErr(t, pipeline(6000), Limits{})
	if pe.Limit != LimitMaxStages ||
		pe.Msg != "query has more than 64 pipeline stages, the limit (query_frontend.max_query_pipeline_stages)" {
		t.Fatalf("error = %v (limit %q)", pe, pe.Limit)
	}
	// Pipes of nested pipelines count too.
	nested := "(" + pipeline(3) + ") && (" + pipeline(3) + ")"
	if pe := parseErr(t, nested, Limits{MaxStages: 4}); pe.Limit != LimitMaxStages {
		t.Fatalf("nested: %v", pe)
	}
	if _, err := ParseWithLimits(nested, Limits{MaxStages: 5}); err != nil {
		t.Fatalf("nested within the limit: %v", err)
	}
	if _, err := ParseWithLimits(pipeline(6000), Limits{MaxBytes: 1 << 20, MaxStages: 6000}); err != nil {
		t.Fatalf("with a larger limit: %v", err)
	}
}
