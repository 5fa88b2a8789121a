package traceql

import (
	"errors"
	"testing"
)

// validQueries are accepted queries with their canonical String().
var validQueries = []struct{ query, canonical string }{
	// spanset filters
	{`{}`, `{}`},
	{`{ }`, `{}`},
	{"{\n}", `{}`},
	{`{ true }`, `{ true }`},
	{`{ false }`, `{ false }`},
	{`{ .flag }`, `{ .flag }`},
	{`{.a=1}`, `{ .a = 1 }`},
	{`{ .a != 1 }`, `{ .a != 1 }`},
	{`{ .a < 1 }`, `{ .a < 1 }`},
	{`{ .a <= 1 }`, `{ .a <= 1 }`},
	{`{ .a > 1 }`, `{ .a > 1 }`},
	{`{ .a >= 1 }`, `{ .a >= 1 }`},
	{`{ .a =~ "x.*" }`, `{ .a =~ "x.*" }`},
	{`{ .a !~ "x.*" }`, `{ .a !~ "x.*" }`},
	{`{ .a = 1 && .b = 2 }`, `{ .a = 1 && .b = 2 }`},
	{`{ .a = 1 || .b = 2 }`, `{ .a = 1 || .b = 2 }`},
	{`{ !(.a = 1) }`, `{ !(.a = 1) }`},
	{`{ !.flag }`, `{ !.flag }`},
	{`{ !!.flag }`, `{ !!.flag }`},
	{`{ (.a = 1) }`, `{ .a = 1 }`},
	{`{ ((.a)) = 1 }`, `{ .a = 1 }`},
	{`{ 1 = 1 }`, `{ 1 = 1 }`},

	// arithmetic
	{`{ .a + 1 = 2 }`, `{ .a + 1 = 2 }`},
	{`{ .a - 1 = 2 }`, `{ .a - 1 = 2 }`},
	{`{ .a * 2 = 2 }`, `{ .a * 2 = 2 }`},
	{`{ .a / 2 > 1.5 }`, `{ .a / 2 > 1.5 }`},
	{`{ .a % 2 = 0 }`, `{ .a % 2 = 0 }`},
	{`{ .a ^ 2 = 4 }`, `{ .a ^ 2 = 4 }`},
	{`{ .a + .b * .c = 1 }`, `{ .a + .b * .c = 1 }`},
	{`{ (.a + .b) * .c = 1 }`, `{ (.a + .b) * .c = 1 }`},
	{`{ .a - .b - .c = 1 }`, `{ .a - .b - .c = 1 }`},
	{`{ .a - (.b - .c) = 1 }`, `{ .a - (.b - .c) = 1 }`},
	{`{ 2 ^ 3 ^ 2 = 512 }`, `{ 2 ^ 3 ^ 2 = 512 }`},
	{`{ (2 ^ 3) ^ 2 = 64 }`, `{ (2 ^ 3) ^ 2 = 64 }`},
	{`{ -.a = 1 }`, `{ -.a = 1 }`},
	{`{ .a = -1 }`, `{ .a = -1 }`},
	{`{ .a = - 1.5 }`, `{ .a = -1.5 }`},
	{`{ -.a * 2 = 1 }`, `{ -(.a * 2) = 1 }`},
	{`{ (-.a) * 2 = 1 }`, `{ (-.a) * 2 = 1 }`},
	{`{ -.a + 2 = 1 }`, `{ -.a + 2 = 1 }`},
	{`{ -1 ^ 2 = -1 }`, `{ -(1 ^ 2) = -1 }`},
	{`{ .a - -1 = 0 }`, `{ .a - -1 = 0 }`},
	{`{ --.a = 1 }`, `{ --.a = 1 }`},
	{`{ duration * 2 > 1s }`, `{ duration * 2 > 1s }`},
	{`{ duration - 5ms > 100 }`, `{ duration - 5ms > 100 }`},

	// boolean precedence (&& and || share one level, as in Tempo)
	{`{ .a = 1 || .b = 2 && .c = 3 }`, `{ .a = 1 || .b = 2 && .c = 3 }`},
	{`{ (.a = 1 || .b = 2) && .c = 3 }`, `{ .a = 1 || .b = 2 && .c = 3 }`},
	{`{ .a = 1 || (.b = 2 && .c = 3) }`, `{ .a = 1 || (.b = 2 && .c = 3) }`},
	{`{ .a = (.b = .c) }`, `{ .a = (.b = .c) }`},
	{`{ !.a = true }`, `{ !.a = true }`},
	{`{ !.a && .b }`, `{ !.a && .b }`},

	// nil
	{`{ .a = nil }`, `{ .a = nil }`},
	{`{ .a != nil }`, `{ .a != nil }`},
	{`{ nil != .a }`, `{ .a != nil }`},
	{`{ nil = span.a }`, `{ span.a = nil }`},
	{`{ resource.host.name != nil && .b = 1 }`, `{ resource.host.name != nil && .b = 1 }`},
	{`{ (.a) = nil }`, `{ .a = nil }`},

	// literals
	{`{ .a = "x" }`, `{ .a = "x" }`},
	{`{ .a = "q\"b\\s\nt\t" }`, `{ .a = "q\"b\\s\nt\t" }`},
	{"{ .a = `raw\\n\"` }", `{ .a = "raw\\n\"" }`},
	{`{ .a = "\u00e9\x41" }`, `{ .a = "éA" }`},
	{`{ .a = "" }`, `{ .a = "" }`},
	{`{ .a = 1.5 }`, `{ .a = 1.5 }`},
	{`{ .a = .5 }`, `{ .a = 0.5 }`},
	{`{ .a = 1e3 }`, `{ .a = 1000.0 }`},
	{`{ .a = 2.0 }`, `{ .a = 2.0 }`},
	{`{ .a = 1.5e-7 }`, `{ .a = 1.5e-07 }`},
	{`{ .a = 1e21 }`, `{ .a = 1e+21 }`},
	{`{ .a = 0 }`, `{ .a = 0 }`},
	{`{ .a = true }`, `{ .a = true }`},
	{`{ .a != false }`, `{ .a != false }`},
	{`{ .a > minInt }`, `{ .a > minInt }`},
	{`{ .a < maxInt }`, `{ .a < maxInt }`},
	{`{ .a = 9223372036854775807 }`, `{ .a = maxInt }`},
	{`{ .a = -maxInt }`, `{ .a = -maxInt }`},
	{`{ duration > 100ms }`, `{ duration > 100ms }`},
	{`{ duration > 1h30m }`, `{ duration > 1h30m0s }`},
	{`{ duration > 1.5s }`, `{ duration > 1.5s }`},
	{`{ duration > 500us }`, `{ duration > 500µs }`},
	{`{ duration > 500µs }`, `{ duration > 500µs }`},
	{`{ duration > 10ns }`, `{ duration > 10ns }`},
	{`{ duration > 2m }`, `{ duration > 2m0s }`},
	{`{ duration > 90s }`, `{ duration > 1m30s }`},
	{`{ duration > 1h }`, `{ duration > 1h0m0s }`},
	{`{ duration > 1d }`, `{ duration > 24h0m0s }`},
	{`{ duration > 1m30s500ms }`, `{ duration > 1m30.5s }`},
	{`{ status = ok }`, `{ status = ok }`},
	{`{ status = error }`, `{ status = error }`},
	{`{ status != unset }`, `{ status != unset }`},
	{`{ kind = unspecified }`, `{ kind = unspecified }`},
	{`{ kind = internal }`, `{ kind = internal }`},
	{`{ kind = server }`, `{ kind = server }`},
	{`{ kind = client }`, `{ kind = client }`},
	{`{ kind = producer }`, `{ kind = producer }`},
	{`{ kind != consumer }`, `{ kind != consumer }`},
	{`{ .a = ok }`, `{ .a = ok }`},
	{`{ name > "a" }`, `{ name > "a" }`},
	{`{ duration > 100 }`, `{ duration > 100 }`},

	// attributes
	{`{ span.http.status_code = 200 }`, `{ span.http.status_code = 200 }`},
	{`{ resource.service.name = "api" }`, `{ resource.service.name = "api" }`},
	{`{ event.exception.message =~ ".*timeout.*" }`, `{ event.exception.message =~ ".*timeout.*" }`},
	{`{ link.opentracing.ref_type = "follows_from" }`, `{ link.opentracing.ref_type = "follows_from" }`},
	{`{ instrumentation.library = "x" }`, `{ instrumentation.library = "x" }`},
	{`{ span."attr with space" = 1 }`, `{ span."attr with space" = 1 }`},
	{`{ ."a b" = 1 }`, `{ ."a b" = 1 }`},
	{`{ ."a\"b" = 1 }`, `{ ."a\"b" = 1 }`},
	{`{ ."\x80" != nil }`, `{ ."\x80" != nil }`},
	{`{ span."\ufffd" = 1 }`, `{ span."�" = 1 }`},
	{`{ ."x=y" != nil }`, `{ ."x=y" != nil }`},
	{`{ .k8s.pod-name = "x" }`, `{ .k8s.pod-name = "x" }`},
	{`{ ."1abc" = 1 }`, `{ ."1abc" = 1 }`},
	{`{ span.5xx = 1 }`, `{ span."5xx" = 1 }`},
	{`{ resource."service.name" = "x" }`, `{ resource.service.name = "x" }`},
	{`{ .a.b.c = 1 }`, `{ .a.b.c = 1 }`},
	{`{ span.duration = 1 }`, `{ span.duration = 1 }`},
	{`{ .resource.x = 1 }`, `{ .resource.x = 1 }`},
	{`{ .名前 = "値" }`, `{ .名前 = "値" }`},
	{`{ span.ümlaut = 1 }`, `{ span.ümlaut = 1 }`},

	// intrinsics
	{`{ duration > 1s }`, `{ duration > 1s }`},
	{`{ span:duration > 1s }`, `{ duration > 1s }`},
	{`{ name = "GET" }`, `{ name = "GET" }`},
	{`{ span:name = "GET" }`, `{ name = "GET" }`},
	{`{ span:status = error }`, `{ status = error }`},
	{`{ statusMessage = "x" }`, `{ statusMessage = "x" }`},
	{`{ span:statusMessage = "x" }`, `{ statusMessage = "x" }`},
	{`{ span:kind = server }`, `{ kind = server }`},
	{`{ rootName = "x" }`, `{ rootName = "x" }`},
	{`{ trace:rootName = "x" }`, `{ rootName = "x" }`},
	{`{ rootServiceName = "x" }`, `{ rootServiceName = "x" }`},
	{`{ trace:rootService = "x" }`, `{ rootServiceName = "x" }`},
	{`{ traceDuration > 1s }`, `{ traceDuration > 1s }`},
	{`{ trace:duration > 1s }`, `{ traceDuration > 1s }`},
	{`{ trace:id = "abc" }`, `{ trace:id = "abc" }`},
	{`{ span:id = "abc" }`, `{ span:id = "abc" }`},
	{`{ span:parentID = "abc" }`, `{ span:parentID = "abc" }`},
	{`{ span:childCount > 2 }`, `{ childCount > 2 }`},
	{`{ childCount = 0 }`, `{ childCount = 0 }`},
	{`{ event:name = "exception" }`, `{ event:name = "exception" }`},
	{`{ event:timeSinceStart > 1ms }`, `{ event:timeSinceStart > 1ms }`},
	{`{ link:traceID = "x" }`, `{ link:traceID = "x" }`},
	{`{ link:spanID = "y" }`, `{ link:spanID = "y" }`},
	{`{ instrumentation:name = "otel" }`, `{ instrumentation:name = "otel" }`},
	{`{ instrumentation:version = "1.0" }`, `{ instrumentation:version = "1.0" }`},
	{`{ nestedSetLeft > 1 }`, `{ nestedSetLeft > 1 }`},
	{`{ nestedSetRight < 10 }`, `{ nestedSetRight < 10 }`},
	{`{ nestedSetParent = -1 }`, `{ nestedSetParent = -1 }`},
	{`{ .a != nil && span:id != "x" }`, `{ .a != nil && span:id != "x" }`},

	// spanset operators
	{`{ .a } && { .b }`, `{ .a } && { .b }`},
	{`{ .a } || { .b }`, `{ .a } || { .b }`},
	{`{ .a } > { .b }`, `{ .a } > { .b }`},
	{`{ .a } < { .b }`, `{ .a } < { .b }`},
	{`{ .a } >> { .b }`, `{ .a } >> { .b }`},
	{`{ .a } << { .b }`, `{ .a } << { .b }`},
	{`{ .a } ~ { .b }`, `{ .a } ~ { .b }`},
	{`{ .a } !> { .b }`, `{ .a } !> { .b }`},
	{`{ .a } !< { .b }`, `{ .a } !< { .b }`},
	{`{ .a } !>> { .b }`, `{ .a } !>> { .b }`},
	{`{ .a } !<< { .b }`, `{ .a } !<< { .b }`},
	{`{ .a } !~ { .b }`, `{ .a } !~ { .b }`},
	{`{ .a } &> { .b }`, `{ .a } &> { .b }`},
	{`{ .a } &< { .b }`, `{ .a } &< { .b }`},
	{`{ .a } &>> { .b }`, `{ .a } &>> { .b }`},
	{`{ .a } &<< { .b }`, `{ .a } &<< { .b }`},
	{`{ .a } &~ { .b }`, `{ .a } &~ { .b }`},
	{`{.a}>>{.b}`, `{ .a } >> { .b }`},
	{`({ .a } && { .b }) >> { .c }`, `({ .a } && { .b }) >> { .c }`},
	{`{ .a } && ({ .b } >> { .c })`, `{ .a } && { .b } >> { .c }`},
	{`({ .a } > { .b }) > { .c }`, `{ .a } > { .b } > { .c }`},
	{`{ .a } > ({ .b } > { .c })`, `{ .a } > ({ .b } > { .c })`},
	{`{ .a } || { .b } && { .c }`, `{ .a } || { .b } && { .c }`},
	{`(({ .a }))`, `{ .a }`},

	// pipelines
	{`{ .a } | count() > 1`, `{ .a } | count() > 1`},
	{`{ } | count() = 0`, `{} | count() = 0`},
	{`{ } | count() != 0`, `{} | count() != 0`},
	{`{ } | count() < 3`, `{} | count() < 3`},
	{`{ } | count() <= 3`, `{} | count() <= 3`},
	{`{ } | count() >= 3`, `{} | count() >= 3`},
	{`{ } | avg(duration) > 1s`, `{} | avg(duration) > 1s`},
	{`{ } | min(duration) < 10ms`, `{} | min(duration) < 10ms`},
	{`{ } | max(span.bytes) >= 1000`, `{} | max(span.bytes) >= 1000`},
	{`{ } | sum(.x) > 1.5`, `{} | sum(.x) > 1.5`},
	{`{ } | sum(.x * 2) > 1`, `{} | sum(.x * 2) > 1`},
	{`{ } | count() > 1 | avg(duration) > 100ms`, `{} | count() > 1 | avg(duration) > 100ms`},
	{`{ } | count() > 1 + 1`, `{} | count() > 1 + 1`},
	{`{ } | count() > max(duration) / 2`, `{} | count() > max(duration) / 2`},
	{`{ } | avg(duration) > -1s`, `{} | avg(duration) > -1s`},
	{`{ } | count() > -1`, `{} | count() > -1`},
	{`{ } | sum(.a) > (1 + 2) * 3`, `{} | sum(.a) > (1 + 2) * 3`},
	{`{ } | (count()) > 1`, `{} | count() > 1`},
	{`{ } | by(resource.service.name)`, `{} | by(resource.service.name)`},
	{`{ } | by(.a = 1)`, `{} | by(.a = 1)`},
	{`{ } | by(span.http.method) | count() > 2`, `{} | by(span.http.method) | count() > 2`},
	{`{ status = error } | by(resource.service.name) | count() > 1`, `{ status = error } | by(resource.service.name) | count() > 1`},
	{`{ } | by(.a) | coalesce()`, `{} | by(.a) | coalesce()`},
	{`{ } | select(span.http.method, resource.service.name, duration)`, `{} | select(span.http.method, resource.service.name, duration)`},
	{`{ } | select(span:id)`, `{} | select(span:id)`},
	{`{ .a } | { .b }`, `{ .a } | { .b }`},
	{`{ .a } | { .b } && { .c } | count() > 1`, `{ .a } | { .b } && { .c } | count() > 1`},
	{`count() > 1`, `count() > 1`},
	{`by(.a)`, `by(.a)`},
	{`select(.a)`, `select(.a)`},
	{`({ .a } | count() > 1) && ({ .b } | count() > 1)`, `({ .a } | count() > 1) && ({ .b } | count() > 1)`},
	{`({ .a } | count() > 1)`, `{ .a } | count() > 1`},
	{`({ .a } | by(.x)) >> ({ .b })`, `({ .a } | by(.x)) >> { .b }`},
	{`(count() > 1) && ({ .b })`, `(count() > 1) && { .b }`},
	{`(by(.a)) || ({ .b } | coalesce())`, `(by(.a)) || ({ .b } | coalesce())`},

	// hints
	{`{ } with (most_recent=true)`, `{} with (most_recent=true)`},
	{`{ } | count() > 1 with (sample=0.1)`, `{} | count() > 1 with (sample=0.1)`},
	{`{ } with(span_sample = 0.5 , trace_sample=0.1)`, `{} with (span_sample=0.5, trace_sample=0.1)`},
	{`{ } with (exemplars=10, extrapolate=true, job_size=100, time_overlap_cutoff=0.2, concurrent_blocks=20)`,
		`{} with (exemplars=10, extrapolate=true, job_size=100, time_overlap_cutoff=0.2, concurrent_blocks=20)`},
	{`{ } with (spanonly_fetch=true, debug=true, info=false, skip_ast_transformations=true)`,
		`{} with (spanonly_fetch=true, debug=true, info=false, skip_ast_transformations=true)`},
	{`{ } with (sample=true)`, `{} with (sample=true)`},
	{`{ } with (job_size=5m)`, `{} with (job_size=5m0s)`},

	// metrics: every function, with and without by
	{`{ } | rate()`, `{} | rate()`},
	{`{ status = error } | rate() by (resource.service.name)`, `{ status = error } | rate() by (resource.service.name)`},
	{`{ } | count_over_time()`, `{} | count_over_time()`},
	{`{ } | count_over_time() by(name, span.http.route)`, `{} | count_over_time() by (name, span.http.route)`},
	{`{ } | sum_over_time(span.bytes)`, `{} | sum_over_time(span.bytes)`},
	{`{ } | sum_over_time(.bytes) by (.a)`, `{} | sum_over_time(.bytes) by (.a)`},
	{`{ } | avg_over_time(duration)`, `{} | avg_over_time(duration)`},
	{`{ } | avg_over_time(span:duration) by (kind, status)`, `{} | avg_over_time(duration) by (kind, status)`},
	{`{ } | min_over_time(span.http.response.status_code)`, `{} | min_over_time(span.http.response.status_code)`},
	{`{ } | min_over_time(childCount) by (resource.k8s.pod-name)`, `{} | min_over_time(childCount) by (resource.k8s.pod-name)`},
	{`{ } | max_over_time(traceDuration)`, `{} | max_over_time(traceDuration)`},
	{`{ } | max_over_time(.x) by (.a, .b, .c, .d, .e)`, `{} | max_over_time(.x) by (.a, .b, .c, .d, .e)`},
	{`{ } | quantile_over_time(duration, .9)`, `{} | quantile_over_time(duration, 0.9)`},
	{`{ } | quantile_over_time(duration, 0, 0.5, .99, 1) by (resource.service.name)`, `{} | quantile_over_time(duration, 0, 0.5, 0.99, 1) by (resource.service.name)`},
	{`{ } | quantile_over_time(.x, 1e-5, 0.00001, -0)`, `{} | quantile_over_time(.x, 1e-05, 1e-05, -0)`},
	{`{ } | histogram_over_time(duration)`, `{} | histogram_over_time(duration)`},
	{`{ } | histogram_over_time(span."a b") by (span:name)`, `{} | histogram_over_time(span."a b") by (name)`},
	// metrics: search pipelines before the function
	{`{ .a } >> { .b } | rate()`, `{ .a } >> { .b } | rate()`},
	{`{ } | by(.a) | count() > 1 | select(.b) | rate()`, `{} | by(.a) | count() > 1 | select(.b) | rate()`},
	{`({ .a } | count() > 1) && ({ .b }) | rate()`, `({ .a } | count() > 1) && { .b } | rate()`},
	{`({ .a } | count() > 1) | rate()`, `{ .a } | count() > 1 | rate()`},
	// metrics: filters and topk/bottomk chains
	{`{ } | rate() > 10`, `{} | rate() > 10`},
	{`{ } | rate() by (.a) >= 1.5`, `{} | rate() by (.a) >= 1.5`},
	{`{ } | rate() = 0`, `{} | rate() = 0`},
	{`{ } | rate() != -2`, `{} | rate() != -2`},
	{`{ } | rate() < - 0.25`, `{} | rate() < -0.25`},
	{`{ } | rate() <= 1e20`, `{} | rate() <= 1e+20`},
	{`{ } | rate() <= 1e21`, `{} | rate() <= 1e+21`},
	{`{ } | rate() > maxInt`, `{} | rate() > 9.223372036854776e+18`},
	{`{ } | rate() by (.a) | topk(5)`, `{} | rate() by (.a) | topk(5)`},
	{`{ } | rate() by (.a) | bottomk(3)`, `{} | rate() by (.a) | bottomk(3)`},
	{`{ } | rate() by (.a) > 1 | topk(10) < 100 | bottomk(2) | topk(1) >= 0.5`, `{} | rate() by (.a) > 1 | topk(10) < 100 | bottomk(2) | topk(1) >= 0.5`},
	// metrics: compare
	{`{ } | compare({ status = error })`, `{} | compare({ status = error })`},
	{`{ } | compare({})`, `{} | compare({})`},
	{`{ } | compare({ .a = 1 }, 10)`, `{} | compare({ .a = 1 })`},
	{`{ } | compare({ .a = 1 }, 3)`, `{} | compare({ .a = 1 }, 3)`},
	{`{ } | compare({ .a = 1 }, 10, 1700000000000000000, 1700000060000000000)`, `{} | compare({ .a = 1 }, 10, 1700000000000000000, 1700000060000000000)`},
	{`{ } | compare({ .a = 1 }, 4, 0, 1) | topk(2)`, `{} | compare({ .a = 1 }, 4, 0, 1) | topk(2)`},
	// metrics: hints after the metrics stages, layout
	{`{ } | rate() with (sample=0.1)`, `{} | rate() with (sample=0.1)`},
	{`{ } | rate() by (.a) > 2 | topk(5) with (exemplars=10, most_recent=true)`, `{} | rate() by (.a) > 2 | topk(5) with (exemplars=10, most_recent=true)`},
	{"{ }\n| quantile_over_time(\n  duration,\n  .5\n)\nby(\n.a\n)\n|\ntopk(\n3\n)", `{} | quantile_over_time(duration, 0.5) by (.a) | topk(3)`},

	// layout
	{"{\n  .a = 1\n  && .b = 2\n}", `{ .a = 1 && .b = 2 }`},
	{"\t{ .a = 1 }\n|\ncount() > 1\n", `{ .a = 1 } | count() > 1`},
	{"{ span.http.method = \"GET\" }\r\n  >> { status = error }", `{ span.http.method = "GET" } >> { status = error }`},
}

func TestParseValid(t *testing.T) {
	if len(validQueries) < 120 {
		t.Fatalf("only %d valid queries", len(validQueries))
	}
	for _, c := range validQueries {
		r, err := Parse(c.query)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.query, err)
			continue
		}
		if got := r.String(); got != c.canonical {
			t.Errorf("Parse(%q).String() = %q, want %q", c.query, got, c.canonical)
			continue
		}
		r2, err := Parse(c.canonical)
		if err != nil {
			t.Errorf("Parse(canonical %q): %v", c.canonical, err)
			continue
		}
		if got := r2.String(); got != c.canonical {
			t.Errorf("canonical %q is not stable: %q", c.canonical, got)
		}
		if d1, d2 := dump(r), dump(r2); d1 != d2 {
			t.Errorf("%q and its canonical form parse differently:\n%s\n%s", c.query, d1, d2)
		}
	}
}

func TestParseErrorType(t *testing.T) {
	_, err := Parse(`{ .a = }`)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %T %v is not a *ParseError", err, err)
	}
	want := `parse error at line 1, column 8: expected an attribute, intrinsic or literal, found "}"`
	if err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	if pe.Pos != (Position{Offset: 7, Line: 1, Column: 8}) {
		t.Fatalf("position = %+v", pe.Pos)
	}
}

func TestMustParse(t *testing.T) {
	if got := MustParse(`{ .a = 1 }`).String(); got != `{ .a = 1 }` {
		t.Fatalf("MustParse = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse of an invalid query did not panic")
		}
	}()
	MustParse(`{`)
}

// TestRegexAnchored checks that regular expressions are compiled at parse
// time and fully anchored.
func TestRegexAnchored(t *testing.T) {
	r := MustParse(`{ .a =~ "GET|POST" && .b !~ "x.*" }`)
	conj := r.Pipeline.Stages[0].(*SpansetFilter).Conjuncts()
	re := conj[0].(*BinaryExpr).Regex
	for s, want := range map[string]bool{"GET": true, "POST": true, "xGET": false, "GETx": false, "GE": false} {
		if got := re.MatchString(s); got != want {
			t.Errorf("%q matches %q = %v, want %v", re, s, got, want)
		}
	}
	if !conj[1].(*BinaryExpr).Regex.MatchString("x\ny") {
		t.Errorf("dot does not match a newline")
	}
}

// TestPositions checks the positions nodes carry, across lines.
func TestPositions(t *testing.T) {
	r := MustParse("{ .a = 1 }\n  | count() > 2\n  | { duration > 1s }")
	f := r.Pipeline.Stages[0].(*SpansetFilter)
	b := f.Expr.(*BinaryExpr)
	sf := r.Pipeline.Stages[1].(*ScalarFilter)
	f2 := r.Pipeline.Stages[2].(*SpansetFilter)
	b2 := f2.Expr.(*BinaryExpr)
	for _, c := range []struct {
		name string
		n    Node
		want Position
	}{
		{"root", r, Position{0, 1, 1}},
		{"filter", f, Position{0, 1, 1}},
		{"=", b, Position{5, 1, 6}},
		{".a", b.LHS, Position{2, 1, 3}},
		{"1", b.RHS, Position{7, 1, 8}},
		{">", sf, Position{23, 2, 13}},
		{"count", sf.LHS, Position{15, 2, 5}},
		{"2", sf.RHS, Position{25, 2, 15}},
		{"filter 2", f2, Position{31, 3, 5}},
		{"duration", b2.LHS, Position{33, 3, 7}},
		{"1s", b2.RHS, Position{44, 3, 18}},
	} {
		if got := c.n.Position(); got != c.want {
			t.Errorf("%s at %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestImpliedTypes checks the static types an engine can rely on.
func TestImpliedTypes(t *testing.T) {
	f := func(expr string, want StaticType) {
		t.Helper()
		r := MustParse("{ " + expr + " = " + expr + " }")
		got := r.Pipeline.Stages[0].(*SpansetFilter).Expr.(*BinaryExpr).LHS.ImpliedType()
		if got != want {
			t.Errorf("type of %s = %s, want %s", expr, got, want)
		}
	}
	f(`1`, TypeInt)
	f(`1.5`, TypeFloat)
	f(`"x"`, TypeString)
	f(`1s`, TypeDuration)
	f(`ok`, TypeStatus)
	f(`server`, TypeKind)
	f(`true`, TypeBoolean)
	f(`.a`, TypeAttribute)
	f(`duration`, TypeDuration)
	f(`name`, TypeString)
	f(`status`, TypeStatus)
	f(`kind`, TypeKind)
	f(`childCount`, TypeInt)
	f(`trace:id`, TypeString)
	f(`duration * 2`, TypeDuration)
	f(`1 + 1.5`, TypeFloat)
	f(`1 + 1`, TypeInt)
	f(`.a + 1`, TypeAttribute)
	f(`-1`, TypeInt)
	f(`(.a = 1)`, TypeBoolean)
}
