package traceql

import "testing"

// TestPrecedence shows the tree each query parses to, with every operator
// explicit (see dump).
func TestPrecedence(t *testing.T) {
	f := func(query, want string) {
		t.Helper()
		r, err := Parse(query)
		if err != nil {
			t.Errorf("Parse(%q): %v", query, err)
			return
		}
		if got := dump(r); got != want {
			t.Errorf("Parse(%q)\n got %s\nwant %s", query, got, want)
		}
	}
	// field expressions
	f(`{ .a = 1 && .b = 2 }`, `[{(&& (= .a 1) (= .b 2))}]`)
	f(`{ .a = 1 || .b = 2 && .c = 3 }`, `[{(&& (|| (= .a 1) (= .b 2)) (= .c 3))}]`)
	f(`{ .a = 1 && .b = 2 || .c = 3 }`, `[{(|| (&& (= .a 1) (= .b 2)) (= .c 3))}]`)
	f(`{ .a = 1 || (.b = 2 && .c = 3) }`, `[{(|| (= .a 1) (&& (= .b 2) (= .c 3)))}]`)
	f(`{ .a + .b * .c = 1 }`, `[{(= (+ .a (* .b .c)) 1)}]`)
	f(`{ .a * .b + .c = 1 }`, `[{(= (+ (* .a .b) .c) 1)}]`)
	f(`{ .a - .b - .c = 1 }`, `[{(= (- (- .a .b) .c) 1)}]`)
	f(`{ .a / .b % .c = 1 }`, `[{(= (% (/ .a .b) .c) 1)}]`)
	f(`{ 2 ^ 3 ^ 2 = 1 }`, `[{(= (^ 2 (^ 3 2)) 1)}]`)
	f(`{ .a * .b ^ .c = 1 }`, `[{(= (* .a (^ .b .c)) 1)}]`)
	f(`{ .a ^ .b * .c = 1 }`, `[{(= (* (^ .a .b) .c) 1)}]`)
	f(`{ .a + 1 > .b - 1 }`, `[{(> (+ .a 1) (- .b 1))}]`)
	f(`{ .a < 1 = true }`, `[{(= (< .a 1) true)}]`)
	f(`{ .a =~ "x" && .b !~ "y" }`, `[{(&& (=~/^(?s:x)$/ .a "x") (!~/^(?s:y)$/ .b "y"))}]`)
	// unary operators take * / % ^ into their operand, not + - or comparisons
	f(`{ -.a * .b = 1 }`, `[{(= (neg (* .a .b)) 1)}]`)
	f(`{ -.a + .b = 1 }`, `[{(= (+ (neg .a) .b) 1)}]`)
	f(`{ -1 ^ 2 = -1 }`, `[{(= (neg (^ 1 2)) (neg 1))}]`)
	f(`{ .a * -.b * .c = 1 }`, `[{(= (* .a (neg (* .b .c))) 1)}]`)
	f(`{ !.a = true }`, `[{(= (! .a) true)}]`)
	f(`{ !.a && .b }`, `[{(&& (! .a) .b)}]`)
	f(`{ !(.a = 1) }`, `[{(! (= .a 1))}]`)
	f(`{ !-.a = true }`, `[{(= (! (neg .a)) true)}]`)
	// nil checks sit at comparison level
	f(`{ .a = 1 && .b != nil }`, `[{(&& (= .a 1) (exists .b))}]`)
	f(`{ nil = .a || .b }`, `[{(|| (absent .a) .b)}]`)
	// spanset operators: && and || loosest, structural ones tighter
	f(`{ .a } && { .b } >> { .c }`, `[(&& {.a} (>> {.b} {.c}))]`)
	f(`{ .a } >> { .b } && { .c }`, `[(&& (>> {.a} {.b}) {.c})]`)
	f(`{ .a } >> { .b } > { .c }`, `[(> (>> {.a} {.b}) {.c})]`)
	f(`{ .a } || { .b } && { .c }`, `[(&& (|| {.a} {.b}) {.c})]`)
	f(`{ .a } !>> { .b } &~ { .c }`, `[(&~ (!>> {.a} {.b}) {.c})]`)
	f(`{ .a } ~ ({ .b } < { .c })`, `[(~ {.a} (< {.b} {.c}))]`)
	// the pipe is loosest of all
	f(`{ .a } | { .b } && { .c } | count() > 1`, `[{.a} | (&& {.b} {.c}) | (> count() 1)]`)
	f(`({ .a } | count() > 1) && { .b }`, `[(&& [{.a} | (> count() 1)] {.b})]`)
	// aggregate filters: ordinary arithmetic; "-" only negates a number and binds tightest
	f(`{ } | count() > 1 + 2 * 3`, `[{} | (> count() (+ 1 (* 2 3)))]`)
	f(`{ } | count() > (1 + 2) * 3`, `[{} | (> count() (* (+ 1 2) 3))]`)
	f(`{ } | avg(duration) > 2 ^ 2 ^ 3`, `[{} | (> avg(duration) (^ 2 (^ 2 3)))]`)
	f(`{ } | count() > -2 ^ 2`, `[{} | (> count() (^ -2 2))]`)
	f(`{ } | count() > 1 - -2`, `[{} | (> count() (- 1 -2))]`)
	f(`{ } | sum(.a + .b) >= max(duration) - min(duration)`, `[{} | (>= sum((+ .a .b)) (- max(duration) min(duration)))]`)
}
