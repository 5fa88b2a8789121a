package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/metricstest"
	"github.com/weftdb/weft/query/search"
)

// pushNow exports one trace of service (a root and a child span, started
// 2s ago and ended 1s ago, so inside a range whose end is now in whole
// seconds) through exp with the OpenTelemetry SDK, synchronously, and
// returns its trace ID (hex, without leading zeros) once the export has
// returned, that is once weft answered the push.
func pushNow(t *testing.T, exp sdktrace.SpanExporter, service string) string {
	t.Helper()
	res := resource.NewWithAttributes("", attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp))
	tracer := tp.Tracer("weft.cutoff")
	start := time.Now().Add(-2 * time.Second)
	ctx, root := tracer.Start(context.Background(), "GET /fresh", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
	_, child := tracer.Start(ctx, "SELECT fresh", trace.WithTimestamp(start.Add(time.Millisecond)))
	child.End(trace.WithTimestamp(start.Add(500 * time.Millisecond)))
	// With a syncer, End returns once the export has: the push's answer.
	root.End(trace.WithTimestamp(start.Add(time.Second)))
	id := strings.TrimLeft(root.SpanContext().TraceID().String(), "0")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(sctx); err != nil {
		t.Fatalf("export to weft failed: %v", err)
	}
	return id
}

// within1s runs check until it returns "" or 1s has passed since pushed,
// and fails the test with check's last answer then.
func within1s(t *testing.T, pushed time.Time, what string, check func() string) {
	t.Helper()
	deadline := pushed.Add(time.Second)
	for attempt := 1; ; attempt++ {
		problem := check()
		if problem == "" {
			t.Logf("%s: found %s after the push's answer (attempt %d)", what, time.Since(pushed).Round(time.Millisecond), attempt)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not found within 1s of the push's answer (%d attempts): %s", what, attempt, problem)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPushedTraceSearchableAtOnce is `make run`'s process (the embedded
// default config: -target=all, no config file; only the ports are loopback
// and free): a trace pushed with the OpenTelemetry SDK over OTLP/gRPC and
// OTLP/HTTP is found by /api/search (without a range, and with one ending
// now), by the tag values route and by a TraceQL metrics query over the
// last minute within 1s of the push's answer. Tempo's 30s
// query_end_cutoff would hide it.
func TestPushedTraceSearchableAtOnce(t *testing.T) {
	a := startWeft(t, nil)
	if got := EffectiveQueryEndCutoff(a.cfg); got != 0 {
		t.Fatalf("monolithic default: effective query_end_cutoff %s, want 0", got)
	}
	api := "http://" + a.HTTPAddr()
	grpcExp, httpExp := exporters(t, a)
	for _, c := range []struct {
		proto string
		exp   sdktrace.SpanExporter
	}{{"grpc", grpcExp}, {"http", httpExp}} {
		service := "fresh-over-" + c.proto
		id := pushNow(t, c.exp, service)
		pushed := time.Now()

		q := url.QueryEscape(`{ resource.service.name = "` + service + `" }`)
		findTrace := func(rawURL string) func() string {
			return func() string {
				code, body := getAs(t, rawURL, "")
				if code != http.StatusOK {
					return strconv.Itoa(code) + " " + string(body)
				}
				var resp search.Response
				if err := json.Unmarshal(body, &resp); err != nil {
					return err.Error()
				}
				for _, tr := range resp.Traces {
					if tr.TraceID == id {
						return ""
					}
				}
				return "trace " + id + " not in " + string(body)
			}
		}
		within1s(t, pushed, c.proto+": /api/search without a range", findTrace(api+"/api/search?q="+q))
		now := time.Now().Unix()
		rng := "&start=" + strconv.FormatInt(now-60, 10) + "&end=" + strconv.FormatInt(now, 10)
		within1s(t, pushed, c.proto+": /api/search ending now", findTrace(api+"/api/search?q="+q+rng))
		within1s(t, pushed, c.proto+": /api/search?tags= ending now", findTrace(api+"/api/search?tags="+url.QueryEscape("service.name="+service)+rng))

		within1s(t, pushed, c.proto+": tag values", func() string {
			code, body := getAs(t, api+"/api/v2/search/tag/resource.service.name/values?"+rng[1:], "")
			if code != http.StatusOK || !strings.Contains(string(body), `"`+service+`"`) {
				return strconv.Itoa(code) + " " + string(body)
			}
			return ""
		})

		within1s(t, pushed, c.proto+": metrics query_range over the last minute", func() string {
			end := time.Now().Unix()
			params := url.Values{"q": {`{ resource.service.name = "` + service + `" } | count_over_time()`},
				"start": {strconv.FormatInt(end-60, 10)}, "end": {strconv.FormatInt(end, 10)}, "step": {"5"}}
			code, body := getAs(t, api+"/api/metrics/query_range?"+params.Encode(), "")
			if code != http.StatusOK {
				return strconv.Itoa(code) + " " + string(body)
			}
			_, series, err := metricstest.Parse(body)
			if err != nil {
				return err.Error()
			}
			total := 0.0
			for _, s := range series {
				for _, v := range s {
					total += v
				}
			}
			if total != 2 {
				return "counted " + strconv.FormatFloat(total, 'g', -1, 64) + " spans, want 2: " + string(body)
			}
			return ""
		})
	}
}

// The query-frontend's cutoff is Tempo's where live-stores read their
// spans from Kafka (any target but all), and whatever the file sets, even
// in monolithic mode. A process's frontend applies it: a metrics range
// ending now is refused when the cutoff is 30s, naming the key.
func TestQueryEndCutoffWhereNeeded(t *testing.T) {
	load := func(yaml string) config.Config {
		t.Helper()
		cfg, _, err := config.Load("test.yaml", []byte(yaml), false)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, c := range []struct {
		name string
		cfg  config.Config
		want time.Duration
	}{
		{"monolithic default", config.Default(), 0},
		{"monolithic, file without the key", load("target: all\n"), 0},
		{"monolithic, key set to 30s", load("query_frontend:\n  query_end_cutoff: 30s\n"), 30 * time.Second},
		{"monolithic, key set to 5s", load("query_frontend:\n  query_end_cutoff: 5s\n"), 5 * time.Second},
		{"query-frontend", load("target: query-frontend\n"), 30 * time.Second},
		{"querier and query-frontend", load("target: querier,query-frontend\n"), 30 * time.Second},
		{"live-store and query-frontend", load("target: live-store,query-frontend\n"), 30 * time.Second},
		{"query-frontend, key set to 0", load("target: query-frontend\nquery_frontend:\n  query_end_cutoff: 0s\n"), 0},
	} {
		if got := EffectiveQueryEndCutoff(c.cfg); got != c.want {
			t.Errorf("%s: effective query_end_cutoff %s, want %s", c.name, got, c.want)
		}
	}

	// The process's frontend gets the effective cutoff: a metrics range
	// ending now is refused by a microservices query-frontend and by a
	// monolithic process whose file sets the key, answered otherwise.
	now := time.Now().Unix()
	params := url.Values{"q": {"{ } | count_over_time()"}, "start": {strconv.FormatInt(now-10, 10)}, "end": {strconv.FormatInt(now, 10)}}
	for _, c := range []struct {
		name   string
		mutate func(*config.Config)
		code   int
	}{
		{"query-frontend (live-stores fed by Kafka)", func(c *config.Config) { c.Target = "query-frontend" }, http.StatusBadRequest},
		{"monolithic, key set", func(c *config.Config) { c.QueryEndCutoffSet = true }, http.StatusBadRequest},
		{"monolithic", nil, http.StatusOK},
	} {
		a := startWeft(t, c.mutate)
		code, body := getAs(t, "http://"+a.HTTPAddr()+"/api/metrics/query_range?"+params.Encode(), "")
		if code != c.code || (code == http.StatusBadRequest && !strings.Contains(string(body), "query_frontend.query_end_cutoff (30s)")) {
			t.Errorf("%s: metrics range ending now: %d %s, want %d", c.name, code, body, c.code)
		}
	}
}
