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
	{`{ } | rate()`, 1, 7, "metrics queries are not supported yet: rate is a TraceQL metrics function"},
	{`{ } | quantile_over_time(duration, .9) by (resource.service.name)`, 1, 7, "metrics queries are not supported yet"},
	{`{ } | count_over_time() | topk(5)`, 1, 7, "metrics queries are not supported yet"},
	{`{ } | compare({ status = error })`, 1, 7, "metrics queries are not supported yet"},
	{`({ } | rate()) / ({ } | rate())`, 1, 8, "metrics queries are not supported yet"},
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
