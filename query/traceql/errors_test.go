package traceql

import (
	"errors"
	"strings"
	"testing"
)

// invalidQueries are rejected queries with the exact position of the error
// and a substring of its message.
var invalidQueries = []struct {
	query     string
	line, col int
	msg       string
}{
	// syntax
	{``, 1, 1, "empty query"},
	{`   `, 1, 4, "empty query"},
	{`{`, 1, 2, "expected an attribute, intrinsic or literal, found end of query"},
	{`{ .a = 1`, 1, 9, `expected "}" to close the "{" at line 1, column 1, found end of query`},
	{`{ .a = }`, 1, 8, `expected an attribute, intrinsic or literal, found "}"`},
	{`{ .a = 1 } |`, 1, 13, `expected a pipeline stage after "|"`},
	{`{ foo = 1 }`, 1, 3, `unknown identifier "foo"`},
	{`{ span = 1 }`, 1, 3, `"span" must be followed by "."`},
	{`{ .a = 1 } { .b = 2 }`, 1, 12, "join spanset filters with an operator"},
	{`{ .a = 1 }}`, 1, 11, `unexpected "}" without a matching "{"`},
	{`{ .a = 1 })`, 1, 11, `unexpected ")" without a matching "("`},
	{`{ .a = 1 .b = 2 }`, 1, 10, `expected an operator or "}" to close the "{" at line 1, column 1, found ".b"`},
	{`{ .a = 1 } >> `, 1, 15, `expected a spanset filter { ... } or "(", found end of query`},
	{`{ .a = 1 } > count() > 1`, 1, 14, `expected a spanset filter { ... } or "(", found "count"`},
	{`{ ! }`, 1, 5, `expected an attribute, intrinsic or literal, found "}"`},
	{`{ { .a } }`, 1, 3, "spanset filters cannot be nested"},
	{`{ count() > 1 }`, 1, 3, "count() is an aggregate"},
	{`{ .a >> 1 }`, 1, 6, `expected an operator or "}"`},
	{`.a = 1`, 1, 1, "conditions go inside braces"},
	{`{ .a = 1 } | by(.a`, 1, 19, `expected ")" to close the "(" at line 1, column 16, found end of query`},
	{`{ .a = 1 } | count() > 1 && count() < 5`, 1, 26, `unexpected "&&"`},
	{`{ .a = 1 } | avg(duration) > "1s"`, 1, 30, "expected an aggregate (count(), avg(x), min(x), max(x), sum(x)) or a number"},
	{`{ } | count()`, 1, 14, "expected a comparison operator (=, !=, <, <=, >, >=) after count(), found end of query"},
	{`{ } | count(.a) > 1`, 1, 13, "count() takes no arguments"},
	{`{ } | avg() > 1`, 1, 11, "avg() needs an argument"},
	{`{ } | count > 1`, 1, 13, `expected "(" after count`},
	{`{ } | - count() > 1`, 1, 7, `"-" in an aggregate filter must be followed by a number`},
	{`coalesce()`, 1, 1, "coalesce() must follow another pipeline stage"},
	{`{ } | coalesce(1)`, 1, 16, "coalesce() takes no arguments"},
	{`{ } | by()`, 1, 10, "by() needs a field expression"},
	{`{ } | select(1)`, 1, 14, "select() takes attributes or intrinsics"},
	{`{ } | select(.a,)`, 1, 17, "select() takes attributes or intrinsics"},
	{`{ .a } | ({ .b } | count() > 1)`, 1, 10, "a parenthesised pipeline can only be an operand of a spanset operator at the top level"},
	{`({ .a } | count() > 1) | by(.x)`, 1, 1, "a parenthesised pipeline can only be an operand"},
	{`{ } with ()`, 1, 11, "with () needs at least one hint"},
	{`{ } with (sample=)`, 1, 18, "expected a literal value for hint sample"},
	{`{ } with (sample 1)`, 1, 18, `expected "=" after hint sample`},
	{`{ } with (sample=1) | count() > 1`, 1, 21, "after the with (...) clause"},
	{`{ } with (a=1) with (b=2)`, 1, 16, "at most one with (...) clause"},
	{`{ } with sample=1`, 1, 10, `expected "(" after with`},

	// lexing
	{`{ .a = "unterminated }`, 1, 8, "unterminated string"},
	{`{ .a = "\q" }`, 1, 9, `invalid escape sequence "\q"`},
	{`{ .a = 'x' }`, 1, 8, `strings are written in double quotes or backticks`},
	{`{ .a & .b }`, 1, 6, `unexpected "&"; did you mean "&&"?`},
	{`{ .a = 10xyz }`, 1, 8, `invalid duration "10xyz"`},
	{`{ duration > 1.5q }`, 1, 14, `invalid duration "1.5q"`},
	{`{ .a = 99999999999999999999 }`, 1, 8, "integer 99999999999999999999 is out of range"},
	{`{ .a = 1e400 }`, 1, 8, "number 1e400 is out of range"},
	{`{ duration > 9999999h }`, 1, 14, "out of range"},
	{`{ span. = 1 }`, 1, 3, `expected an attribute name after "span."`},
	{`{ . = 1 }`, 1, 3, `expected an attribute name after "."`},
	{`{ span:foo = 1 }`, 1, 3, `unknown intrinsic "span:foo"`},
	{`{ trace: = 1 }`, 1, 3, `expected an intrinsic name after "trace:"`},
	{`{ ."unterminated = 1 }`, 1, 4, "unterminated attribute name"},
	{`{ .a = 1 } # comment`, 1, 12, `unexpected character '#'`},
	{"{ .a = \"\xff\" }", 1, 9, "not valid UTF-8"},

	// regular expressions
	{`{ .a =~ "(" }`, 1, 9, `invalid regular expression "("`},
	{`{ .a =~ "a)|(b" }`, 1, 9, "invalid regular expression"},
	{`{ .a =~ 1 }`, 1, 9, "the right side of =~ must be a string literal"},
	{`{ .a !~ .b }`, 1, 9, "the right side of !~ must be a string literal"},

	// static types
	{`{ duration > "x" }`, 1, 12, "mismatched types duration and string"},
	{`{ status = 200 }`, 1, 10, "mismatched types status and int"},
	{`{ kind = ok }`, 1, 8, "mismatched types kind and status"},
	{`{ name = 1 }`, 1, 8, "mismatched types string and int"},
	{`{ .a + "x" = "y" }`, 1, 6, "operator + is not defined on string values"},
	{`{ name * 2 = 1 }`, 1, 8, "operator * is not defined on string values"},
	{`{ duration =~ "1s" }`, 1, 12, "operator =~ is not defined on duration values"},
	{`{ status > ok }`, 1, 10, "operator > is not defined on status values"},
	{`{ .a = 1 && 2 }`, 1, 10, "operator && is not defined on int values"},
	{`{ 1 }`, 1, 3, "a spanset filter needs a boolean condition, but 1 is an int"},
	{`{ duration }`, 1, 3, "a spanset filter needs a boolean condition, but duration is a duration"},
	{`{ -"x" = 1 }`, 1, 3, "- needs a numeric operand"},
	{`{ !1 }`, 1, 3, "! needs a boolean operand"},
	{`{ } | avg(name) > 1`, 1, 11, "avg() needs a numeric argument, but name is a string"},
	{`{ } | max(status) > 1`, 1, 11, "max() needs a numeric argument"},
	{`{ } | avg(1) > 1`, 1, 11, "avg() must reference a span field"},
	{`{ } | 1 > count()`, 1, 7, "the left side of an aggregate filter must be one aggregate"},
	{`{ } | (count() + 1) > 2`, 1, 16, "the left side of an aggregate filter must be one aggregate"},
	{`{ } | by(1)`, 1, 10, "by() must reference a span field"},

	// nil
	{`{ duration = nil }`, 1, 3, "intrinsic duration cannot be compared with nil"},
	{`{ span:id != nil }`, 1, 3, "intrinsic span:id cannot be compared with nil"},
	{`{ resource.service.name = nil }`, 1, 3, "resource.service.name cannot be compared with nil"},
	{`{ .a > nil }`, 1, 8, "nil can only be compared with an attribute"},
	{`{ nil }`, 1, 3, "nil can only be compared with an attribute"},
	{`{ nil = nil }`, 1, 9, "nil can only be compared with an attribute"},
	{`{ 1 = nil }`, 1, 3, "nil can only be compared with an attribute"},

	// unsupported
	{`{ parent.foo = 1 }`, 1, 3, "parent-scoped attributes are unsupported: parent.foo"},
	{`{ parent.span.foo = 1 }`, 1, 3, "parent-scoped attributes are unsupported: parent.span.foo"},
	{`{ parent = 1 }`, 1, 3, "the parent intrinsic is unsupported"},
	{`({ } | rate()) / ({ } | rate())`, 1, 8, "rate() is a TraceQL metrics function: it must be the last stage of the query, outside parentheses"},
	{`({ } | rate()) / ({ } | rate())`, 1, 8, "metrics arithmetic such as (q1) / (q2) is not supported"},

	// metrics: placement
	{`rate()`, 1, 1, "rate() must follow a spanset filter, as in { } | rate(...)"},
	{`({ } | rate())`, 1, 8, "rate() is a TraceQL metrics function: it must be the last stage"},
	{`({ } | rate()) && { }`, 1, 8, "rate() is a TraceQL metrics function"},
	{`{ } && rate()`, 1, 8, "rate() is a TraceQL metrics function"},
	{`{ } | { } && (rate())`, 1, 15, "rate() is a TraceQL metrics function"},
	{`{ rate() > 1 }`, 1, 3, "rate() is a TraceQL metrics function"},
	{`{ } | count() > rate()`, 1, 17, "rate() is a TraceQL metrics function"},
	{`{ } | (topk(5))`, 1, 8, "topk() is a TraceQL metrics function"},
	{`{ } | rate() | rate()`, 1, 16, "a query has at most one metrics function: rate() cannot follow rate()"},
	{`{ } | rate() | quantile_over_time(duration, .5)`, 1, 16, "quantile_over_time() cannot follow rate()"},
	{`{ } | rate() | { .a }`, 1, 16, `only topk(n) or bottomk(n) can follow the metrics function rate(), found "{"`},
	{`{ } | rate() | count() > 1`, 1, 16, `only topk(n) or bottomk(n) can follow the metrics function rate(), found "count"`},
	{`{ } | rate() |`, 1, 15, "only topk(n) or bottomk(n) can follow the metrics function rate(), found end of query"},
	{`{ } | topk(5)`, 1, 7, "topk() must follow a metrics function"},
	{`{ } | bottomk(5) | rate()`, 1, 7, "bottomk() must follow a metrics function"},
	{`{ } | rate() / 2`, 1, 14, `unexpected "/" after the metrics function`},
	{`{ } | rate() by (.a) by (.b)`, 1, 22, `unexpected "by" after the metrics function`},
	{`{ } | rate() > 1 > 2`, 1, 18, `unexpected ">" after the metrics function`},
	{`{ } | rate() with (sample=0.1) | topk(1)`, 1, 32, "after the with (...) clause"},
	{`{ } | rate() { .a }`, 1, 14, `unexpected "{": join spanset filters`},

	// metrics: arguments
	{`{ } | rate(duration)`, 1, 12, `rate() takes no arguments, found "duration"`},
	{`{ } | count_over_time(1)`, 1, 23, `count_over_time() takes no arguments, found "1"`},
	{`{ } | rate`, 1, 11, `expected "(" after rate, found end of query`},
	{`{ } | rate(`, 1, 12, "rate() takes no arguments, found end of query"},
	{`{ } | sum_over_time()`, 1, 21, "sum_over_time() needs an attribute or intrinsic to measure, e.g. sum_over_time(duration)"},
	{`{ } | avg_over_time(1)`, 1, 21, `avg_over_time() takes an attribute or intrinsic such as duration or span.http.response.status_code, found "1"`},
	{`{ } | max_over_time(.a + 1)`, 1, 24, `max_over_time() takes one attribute or intrinsic, not an expression: expected ")", found "+"`},
	{`{ } | min_over_time(.a, .b)`, 1, 23, `min_over_time() takes one attribute or intrinsic, not an expression`},
	{`{ } | sum_over_time(name)`, 1, 21, "sum_over_time() needs a numeric attribute or intrinsic such as duration or span.http.response.status_code, but name is a string"},
	{`{ } | avg_over_time(status)`, 1, 21, "but status is a status"},
	{`{ } | histogram_over_time(kind)`, 1, 27, "but kind is a kind"},
	{`{ } | quantile_over_time(span:id, .5)`, 1, 26, "but span:id is a string"},
	{`{ } | sum_over_time(parent.x)`, 1, 21, "parent-scoped attributes are unsupported"},
	{`{ } | quantile_over_time(duration)`, 1, 34, "quantile_over_time() needs at least one quantile after the attribute"},
	{`{ } | quantile_over_time(duration, )`, 1, 36, `expected a number as a quantile, found ")"`},
	{`{ } | quantile_over_time(duration, 1.5)`, 1, 36, "quantile 1.5 is outside [0, 1]"},
	{`{ } | quantile_over_time(duration, .5, -0.1)`, 1, 40, "quantile -0.1 is outside [0, 1]"},
	{`{ } | quantile_over_time(duration, 2)`, 1, 36, "quantile 2 is outside [0, 1]"},
	{`{ } | quantile_over_time(duration, .5 .6)`, 1, 39, `expected "," and a quantile or ")" in quantile_over_time(), found ".6"`},
	{`{ } | quantile_over_time(duration, "x")`, 1, 36, `expected a number as a quantile, found "\"x\""`},
	{`{ } | quantile_over_time(duration, 1s)`, 1, 36, `expected a number as a quantile, found "1s"`},

	// metrics: by
	{`{ } | rate() by ()`, 1, 18, "by (...) after a metrics function takes attributes or intrinsics"},
	{`{ } | rate() by (.a = 1)`, 1, 21, `expected "," or ")" in by (...), found "="`},
	{`{ } | rate() by (1)`, 1, 18, `takes attributes or intrinsics such as resource.service.name or name, found "1"`},
	{`{ } | rate() by (.a, .b, .c, .d, .e, .f)`, 1, 38, "by (...) takes at most 5 fields"},
	{`{ } | rate() by .a`, 1, 17, `expected "(" after by, found ".a"`},
	{`{ } | rate() by (.a`, 1, 20, `expected "," or ")" in by (...), found end of query`},
	{`{ } | rate() by (parent.a)`, 1, 18, "parent-scoped attributes are unsupported"},
	{`{ } | rate() by (parent)`, 1, 18, "the parent intrinsic is unsupported"},
	{`{ } | compare({ .a }) by (.b)`, 1, 23, "compare() takes no by (...)"},

	// metrics: filters
	{`{ } | rate() >`, 1, 15, "expected a number after >, found end of query"},
	{`{ } | rate() > .a`, 1, 16, `expected a number after >, found ".a"`},
	{`{ } | rate() > 1s`, 1, 16, `expected a number after >, found "1s"`},
	{`{ } | rate() =~ 1`, 1, 14, `unexpected "=~" after the metrics function`},
	{`{ } | rate() > count()`, 1, 16, `expected a number after >, found "count"`},
	{`{ } | rate() | topk(1) <= `, 1, 27, "expected a number after <=, found end of query"},

	// metrics: topk and bottomk
	{`{ } | rate() | topk(0)`, 1, 21, "topk()'s argument must be a positive integer, found 0"},
	{`{ } | rate() | bottomk(-1)`, 1, 24, "bottomk()'s argument must be a positive integer, found -1"},
	{`{ } | rate() | topk(1.5)`, 1, 21, "topk()'s argument must be a positive integer, found 1.5"},
	{`{ } | rate() | topk()`, 1, 21, "topk() needs the number of series to keep, e.g. topk(5)"},
	{`{ } | rate() | topk(.a)`, 1, 21, `expected a number as topk()'s argument, found ".a"`},
	{`{ } | rate() | topk(1, 2)`, 1, 22, `topk() takes one number: expected ")", found ","`},
	{`{ } | rate() | topk(1) | { }`, 1, 26, "only topk(n) or bottomk(n) can follow"},

	// metrics: compare
	{`{ } | compare()`, 1, 15, `compare() needs a spanset filter selecting the spans to compare with the others, e.g. compare({ status = error }), found ")"`},
	{`{ } | compare(.a = 1)`, 1, 15, "compare() needs a spanset filter"},
	{`{ } | compare({ .a } && { .b })`, 1, 22, `compare() takes one spanset filter { ... }, then optionally topN, start and end: expected "," or ")", found "&&"`},
	{`{ } | compare({ .a }, 0)`, 1, 23, "compare()'s topN must be a positive integer, found 0"},
	{`{ } | compare({ .a }, 2.5)`, 1, 23, "compare()'s topN must be a positive integer, found 2.5"},
	{`{ } | compare({ .a }, 10, 100)`, 1, 30, `compare() takes both a start and an end, or neither: expected "," and the end, found ")"`},
	{`{ } | compare({ .a }, 10, 100, 50)`, 1, 32, "compare()'s end (50) must be after its start (100)"},
	{`{ } | compare({ .a }, 10, 100, 100)`, 1, 32, "compare()'s end (100) must be after its start (100)"},
	{`{ } | compare({ .a }, 10, -1, 5)`, 1, 27, "compare()'s start must be an integer of unix nanoseconds, found -1"},
	{`{ } | compare({ .a }, 10, 1.5, 5)`, 1, 27, "compare()'s start must be an integer of unix nanoseconds, found 1.5"},
	{`{ } | compare({ .a }, 10, 1, 5e3)`, 1, 30, "compare()'s end must be an integer of unix nanoseconds, found 5000"},
	{`{ } | compare({ .a }, 10, 1, 2, 3)`, 1, 31, `expected "," or ")", found ","`},
	{`{ } | compare({ .a = "x" + 1 })`, 1, 26, "operator + is not defined on string values"},
	{`{ } | compare({ status = 1 })`, 1, 24, "mismatched types status and int"},
	{`{ } | compare({ parent.a = 1 })`, 1, 17, "parent-scoped attributes are unsupported"},
	{`{ } | compare({ .a }`, 1, 21, `compare() takes one spanset filter { ... }, then optionally topN, start and end: expected "," or ")", found end of query`},
	{`{ } with (foo=1)`, 1, 11, `unknown hint "foo"`},

	// multi-line
	{"{\n  .a = 1 &&\n  foo = 2\n}", 3, 3, `unknown identifier "foo"`},
	{"{ .a = 1 }\n| count() >\n", 3, 1, "or a number, found end of query"},
	{"{\n\t.a = \"x\n\"}", 2, 7, "unterminated string"},
	{"{ .a = 1 }\n\n  && { .b =~ \"[\" }", 3, 14, "invalid regular expression"},
	{"{ .a = 1 }\n| by(.x)\n| coalesce()\n| select(.a, \n   duration, 42)", 5, 14, "select() takes attributes or intrinsics"},
	{"{ span.ü = 1 }\n  | avg(name) > 2", 2, 9, "avg() needs a numeric argument"},
	{"{ .é = \"é\" &&\n  .b = 1 } >\n  { status = 200 }", 3, 12, "mismatched types status and int"},
}

func TestParseInvalid(t *testing.T) {
	if len(invalidQueries) < 40 {
		t.Fatalf("only %d invalid queries", len(invalidQueries))
	}
	for _, c := range invalidQueries {
		r, err := Parse(c.query)
		if err == nil {
			t.Errorf("Parse(%q) = %q, want an error", c.query, r)
			continue
		}
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q): error %T is not a *ParseError", c.query, err)
			continue
		}
		if pe.Pos.Line != c.line || pe.Pos.Column != c.col || !strings.Contains(pe.Msg, c.msg) {
			t.Errorf("Parse(%q):\n got %v\nwant line %d, column %d: ...%s...", c.query, err, c.line, c.col, c.msg)
		}
		if want := positionAt(c.query, pe.Pos.Offset); want != pe.Pos {
			t.Errorf("Parse(%q): offset %d is at %+v, error says %+v", c.query, pe.Pos.Offset, want, pe.Pos)
		}
	}
}
