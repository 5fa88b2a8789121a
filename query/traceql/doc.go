// Package traceql parses TraceQL, the trace query language of Grafana
// Tempo, for weft's search API (the q parameter of /api/search) and its
// TraceQL metrics API (/api/metrics/query_range and /api/metrics/query).
// It turns a query into a typed, validated syntax tree that an engine can
// evaluate:
// every node carries its Position, String prints canonical TraceQL that
// parses back to the same tree, RootExpr.Fields lists the attributes and
// intrinsics to fetch, and SpansetFilter.Conjuncts exposes the top-level
// `&&` terms an engine can push down to storage. RootExpr.Eval evaluates a
// query over one trace (NewTrace reads it from OTLP TracesData bytes), so
// the live-store and the block path share one evaluator; choosing the
// traces to evaluate is the caller's job. A metrics query (RootExpr.IsMetrics)
// is a search pipeline followed by metrics stages (RootExpr.Metrics and
// RootExpr.MetricsSecond); Eval evaluates its search part, and the metrics
// engine turns the spans it returns into time series.
//
// The lexer is hand-written and the parser is recursive descent with
// precedence climbing; both use only the standard library. Parse rejects
// bad queries with a *ParseError naming the line and column (in runes) of
// the offending token and what was expected there.
//
// # Language
//
// A query is a pipeline of stages joined by `|`, for a metrics query
// followed by its metrics stages, then optionally hints:
//
//	query    = pipeline [ metrics ] [ "with" "(" hint { "," hint } ")" ] .
//	pipeline = stage { "|" stage } .
//	stage    = spansetExpr | scalarFilter | "by" "(" fieldExpr ")"
//	         | "coalesce" "(" ")" | "select" "(" field { "," field } ")" .
//	spansetExpr  = operand { spansetOp operand } .
//	operand      = "{" [ fieldExpr ] "}" | "(" pipeline ")" .
//	scalarFilter = scalar ( "=" | "!=" | "<" | "<=" | ">" | ">=" ) scalar .
//	scalar       = aggregate | number | "-" number | "(" scalar ")" | scalar arithOp scalar .
//	aggregate    = "count" "(" ")" | ( "avg" | "min" | "max" | "sum" ) "(" fieldExpr ")" .
//	hint         = name "=" literal .
//	metrics      = "|" metricsFunc [ "by" "(" field { "," field } ")" ] [ filter ]
//	               { "|" ( "topk" | "bottomk" ) "(" integer ")" [ filter ] } .
//	metricsFunc  = ( "rate" | "count_over_time" ) "(" ")"
//	             | ( "sum_over_time" | "avg_over_time" | "min_over_time" | "max_over_time"
//	               | "histogram_over_time" ) "(" field ")"
//	             | "quantile_over_time" "(" field "," number { "," number } ")"
//	             | "compare" "(" "{" [ fieldExpr ] "}" [ "," integer [ "," integer "," integer ] ] ")" .
//	filter       = ( "=" | "!=" | "<" | "<=" | ">" | ">=" ) [ "-" ] number .
//
// # Metrics
//
// The metrics function ends the search pipeline, once, at the top level
// of the query (not inside parentheses or a spanset operand); after it
// only topk(n) and bottomk(n) stages may follow, each with n > 0. The
// measured field of sum_over_time, avg_over_time, min_over_time,
// max_over_time, quantile_over_time and histogram_over_time is a single
// attribute or intrinsic that may be numeric: `duration`, `.bytes`,
// `span.http.response.status_code`, not `name`, `status` or `kind`
// (attributes are typed at query time). The quantiles of
// quantile_over_time are numbers in [0, 1]. by (...) takes one to five
// attributes or intrinsics (MaxMetricsGroupBy, Tempo's limit), not
// expressions. compare({ selection }, topN, start, end) compares the
// spans its spanset filter selects with the others; topN, the most values
// kept per attribute, is a positive integer (DefaultCompareTopN, 10, when
// not written); start and end, unix nanoseconds with start < end, are
// given both or not at all; compare takes no by (...). A filter such as
// `> 10` after a function or a topk/bottomk stage drops the samples for
// which it does not hold. Every `|` counts towards the stage limit, and
// every argument list towards the nesting limit. For example:
//
//	{ status = error } | rate() by (resource.service.name) > 0.5 | topk(10)
//	{ span.http.route = "/api" } | quantile_over_time(duration, 0.5, 0.99)
//	{ } | compare({ status = error }, 5) with (sample=0.1)
//
// Field expressions (inside braces, and the arguments of aggregates and
// by) combine attributes, intrinsics and literals with `&& || !`,
// `= != < <= > >=`, `=~ !~`, `+ - * / % ^` and unary `-`. `attr = nil`
// and `attr != nil` test whether an attribute is absent or present; they
// become a NilCheck node.
//
// Attributes: `.name` (span or resource), `span.name`, `resource.name`,
// `event.name`, `link.name`, `instrumentation.name`. As in Tempo an
// unquoted name runs until whitespace or one of `{ } ( ) = ~ ! < > & | ^ ,`
// (weft also stops at `"` and non-printable runes), so it may contain dots
// and dashes (`span.http.status_code`, `.k8s.pod-name`) but also `+` or
// `-`: write `.a - 1`, not `.a-1`. Other names are quoted:
// `span."name with spaces"`, `."x=y"`. `parent.` attributes parse but are
// rejected as unsupported.
//
// Intrinsics: duration, name, status, statusMessage, kind, childCount,
// rootName, rootServiceName, traceDuration, nestedSetLeft, nestedSetRight,
// nestedSetParent, and the scoped trace:duration, trace:rootName,
// trace:rootService, trace:id, span:duration, span:name, span:kind,
// span:status, span:statusMessage, span:id, span:parentID,
// span:childCount, event:name, event:timeSinceStart, link:traceID,
// link:spanID, instrumentation:name, instrumentation:version. Spellings of
// the same intrinsic (duration and span:duration) give the same node;
// String uses the unscoped one when there is one. The `parent` intrinsic
// parses but is rejected as unsupported.
//
// Literals: strings in double quotes with Go escapes (`\"`, `\\`, `\n`,
// `\t`, `\u00e9`, ...) or in backticks (raw); integers; floats (`1.5`,
// `.5`, `1e3`); durations, a sequence of number-unit terms such as `1h30m`
// or `1.5s` with units ns, us, µs, ms, s, m, h and, as in Prometheus and
// Tempo, d, w and y; true, false, nil; statuses ok, error, unset; kinds
// unspecified, internal, server, client, producer, consumer; minInt and
// maxInt (the int64 extremes). There are no comments.
//
// Regular expressions (`=~`, `!~`, right side a string literal) are RE2,
// compiled at parse time and fully anchored (`^(?s:pattern)$`, as Tempo
// and Prometheus do): `.a =~ "GET"` matches only "GET" itself.
//
// # Precedence
//
// From loosest to tightest; binary operators are left-associative except
// `^`:
//
//	|                                   pipeline stages
//	&&  ||                              one level, so a || b && c is (a || b) && c
//	= != < <= > >= =~ !~                field comparisons; for spansets the structural
//	> < >> << ~ !> !< !>> !<< !~        operators, so {a} && {b} >> {c} is
//	&> &< &>> &<< &~                    {a} && ({b} >> {c})
//	+ -
//	! and unary -                       (see below)
//	* / %
//	^                                   right-associative: 2 ^ 3 ^ 2 is 2 ^ (3 ^ 2)
//
// These are Tempo's (its yacc grammar's) rules, including two surprises
// kept for compatibility: `&&` and `||` share one level, and a unary
// operator's operand extends over `* / % ^` but not over `+ -` or
// comparisons, so `-a * b` is `-(a * b)`, `-a + b` is `(-a) + b` and
// `!a = b` is `(!a) = b` (write `!(a = b)`). In aggregate filters `-` only
// negates a number literal and binds tightest. String prints only the
// parentheses precedence needs, plus parentheses around a unary operator's
// compound operand.
//
// # Static rules
//
// After parsing, as Tempo does: intrinsics and literals have types
// (duration, string, int, status, kind...) while attributes are typed at
// query time, so only mismatches known statically are errors: `duration >
// "x"`, `status = 200`, `kind = ok`, `name + 1`, `duration =~ "x"`. Numeric
// types (int, float, duration) mix freely. Strings take = != =~ !~ and the
// ordering comparisons; statuses and kinds only = and !=; `&& || !` need
// booleans. A spanset filter must be a boolean condition. Aggregate
// arguments must be numeric and reference a span field (`avg(duration)`,
// `sum(span.bytes)`; not `avg(name)` or `avg(1)`), and so must by(). The
// left side of an aggregate filter must be a single aggregate; the right
// side a number or arithmetic of aggregates and numbers. nil compares only
// with attributes, never with intrinsics or resource.service.name.
//
// # Not supported
//
// Metrics arithmetic, such as `({ .a } | rate()) / ({ } | rate())` or
// with a scalar on one side: a metrics function inside parentheses is
// rejected with an error saying it must be the last stage of the query,
// outside parentheses. Tempo's scalar pipeline expressions, such as
// `({ .a } | count()) > ({ .b } | count())`, are not accepted either. A
// parenthesised pipeline (`({ .a } | count() > 1)`) may be a spanset
// operand only at the top level of a query, as in Tempo's grammar.
//
// # Limits
//
// Parse rejects queries over 128 KiB (Tempo's
// query_frontend.max_query_expression_size_bytes) and nesting deeper than
// 64 levels (query_frontend.max_query_nesting_depth); ParseWithLimits
// takes other values. Every spanset filter, parenthesis, function argument
// list, unary operator and right operand of `^` is one level. Long flat
// chains such as `a || b || c ...` do not nest. The parser's recursion is
// bounded by these limits, so hostile input cannot exhaust the stack.
package traceql
