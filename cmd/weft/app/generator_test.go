package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/gentopo"
	"github.com/weftdb/weft/internal/promtest"
	"github.com/weftdb/weft/sinks/generator/remotewrite"
)

// Buckets of the generator tests, spread over the topology's latencies.
var (
	spanBuckets  = []float64{0.005, 0.01, 0.02, 0.04, 0.08}
	graphBuckets = []float64{0.01, 0.02, 0.05, 0.1}
)

// generatorConfig points the generator at prom, collecting every 500ms,
// with every tenant's processors given.
func generatorConfig(t *testing.T, prom *promtest.Server, processors ...string) func(*config.Config) {
	dir := t.TempDir()
	return func(c *config.Config) {
		g := &c.MetricsGenerator
		g.Registry.CollectionInterval = 500 * time.Millisecond
		g.Storage.Path = dir
		g.Storage.RemoteWrite = []remotewrite.Endpoint{{URL: prom.WriteURL(), RemoteTimeout: 5 * time.Second}}
		g.Processor.SpanMetrics.HistogramBuckets = spanBuckets
		g.Processor.ServiceGraphs.HistogramBuckets = graphBuckets
		g.Processor.ServiceGraphs.Wait = time.Second
		c.Overrides.Defaults.MetricsGenerator.Processors = processors
	}
}

// scrape reads every series of the given metric name prefixes from prom,
// keyed as gentopo.Key does, without __name__ and the labels in drop.
func scrape(ctx context.Context, prom *promtest.Server, prefixes []string, drop ...string) (map[string]float64, error) {
	got := map[string]float64{}
	for _, p := range prefixes {
		samples, err := prom.Query(ctx, `{__name__=~"`+p+`.*"}`)
		if err != nil {
			return nil, err
		}
		for _, s := range samples {
			l := map[string]string{}
			for k, v := range s.Metric {
				l[k] = v
			}
			name := l["__name__"]
			delete(l, "__name__")
			for _, d := range drop {
				delete(l, d)
			}
			got[gentopo.Key(name, l)] = s.Value
		}
	}
	return got, nil
}

// waitSeries polls prom until the series of prefixes equal want, or fails
// the test after timeout with the differences.
func waitSeries(t *testing.T, prom *promtest.Server, want gentopo.Expectations, prefixes []string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var diffs []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := scrape(ctx, prom, prefixes)
		cancel()
		if err == nil {
			if diffs = gentopo.Compare(want, got, 20); len(diffs) == 0 {
				return
			}
		} else {
			diffs = []string{err.Error()}
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("the series in Prometheus after %s differ from the spans pushed:\n%s", timeout, strings.Join(diffs, "\n"))
}

// TestGeneratorExactMonolithic pushes the known topology to a monolithic
// weft with span metrics and service graphs on, and reads the series back
// from a real Prometheus by PromQL: every call count, latency bucket, size,
// service-graph edge (paired, messaging, database, "user"), failed count
// and histogram equals what the pushed spans give.
func TestGeneratorExactMonolithic(t *testing.T) {
	prom := promtest.Start(t)
	a := startWeft(t, generatorConfig(t, prom, "span-metrics", "service-graphs"))
	_, httpAddr := a.OTLPAddrs()
	rec, err := gentopo.NewRecorder(httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spans, err := gentopo.Push(ctx, rec.Addr(), nil, 40, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := gentopo.SpanMetrics(spans, spanBuckets, rec.Sizes())
	for k, v := range gentopo.ServiceGraph(spans, graphBuckets) {
		want[k] = v
	}
	waitSeries(t, prom, want, []string{"traces_spanmetrics_", "traces_service_graph_request"}, 30*time.Second)
	t.Logf("%d spans pushed; %d series in Prometheus as the spans give them", len(spans), len(want))
}

// tenantCheck is a remote-write proxy in front of Prometheus that checks
// every request's series against its X-Scope-OrgID (the tenant label
// injected by registry.inject_tenant_id_as).
type tenantCheck struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests map[string]int    // by X-Scope-OrgID
	teams    map[string]string // X-Team header by X-Scope-OrgID
	wrong    []string
}

func newTenantCheck(t *testing.T, prom *promtest.Server) *tenantCheck {
	c := &tenantCheck{requests: map[string]int{}, teams: map[string]string{}}
	target, _ := url.Parse(prom.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		org := r.Header.Get("X-Scope-OrgID")
		var req prompb.WriteRequest
		raw, err := snappy.Decode(nil, body)
		if err == nil {
			err = req.Unmarshal(raw)
		}
		c.mu.Lock()
		c.requests[org]++
		c.teams[org] = r.Header.Get("X-Team")
		if err != nil {
			c.wrong = append(c.wrong, "a request that does not decode: "+err.Error())
		}
		for _, ts := range req.Timeseries {
			for _, l := range ts.Labels {
				if l.Name == "tenant" && l.Value != org {
					c.wrong = append(c.wrong, fmt.Sprintf("a series of tenant %s sent with X-Scope-OrgID %q", l.Value, org))
				}
			}
		}
		c.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// TestGeneratorTenants runs two tenants with different processors and
// dimensions (runtime overrides): each gets only its own series, labelled
// with its dimensions, each sent with its own X-Scope-OrgID.
func TestGeneratorTenants(t *testing.T) {
	prom := promtest.Start(t)
	check := newTenantCheck(t, prom)
	rt := filepath.Join(t.TempDir(), "overrides.yaml")
	if err := os.WriteFile(rt, []byte(`overrides:
  team-a:
    metrics_generator:
      processors: [span-metrics]
      remote_write_headers: {X-Team: alpha}
      processor:
        span_metrics:
          dimensions: [db.system]
  team-b:
    metrics_generator:
      processors: [service-graphs]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startWeft(t, func(c *config.Config) {
		generatorConfig(t, prom)(c)
		c.MultitenancyEnabled = true
		c.MetricsGenerator.Storage.RemoteWrite[0].URL = check.srv.URL + "/api/v1/write"
		c.MetricsGenerator.Registry.InjectTenantIDAs = "tenant"
		c.Overrides.PerTenantOverrideConfig = rt
	})
	_, httpAddr := a.OTLPAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wantA, wantB := gentopo.Expectations{}, gentopo.Expectations{}
	for _, ten := range []string{"team-a", "team-b", "team-c"} {
		spans, err := gentopo.Push(ctx, httpAddr, map[string]string{"X-Scope-OrgID": ten}, 20, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		switch ten {
		case "team-a":
			for k, v := range gentopo.SpanMetrics(spans, spanBuckets, nil) {
				wantA[k] = v
			}
		case "team-b":
			wantB = gentopo.ServiceGraph(spans, graphBuckets)
		}
	}
	// team-a's series carry db_system where the span has db.system.
	wantA = relabel(wantA, func(name string, l map[string]string) {
		l["tenant"] = "team-a"
		if l["span_name"] == "SELECT balance" {
			l["db_system"] = "postgresql"
		}
	})
	wantB = relabel(wantB, func(_ string, l map[string]string) { l["tenant"] = "team-b" })
	want := gentopo.Expectations{}
	for _, w := range []gentopo.Expectations{wantA, wantB} {
		for k, v := range w {
			want[k] = v
		}
	}
	waitSeries(t, prom, want, []string{"traces_spanmetrics_calls", "traces_spanmetrics_latency", "traces_service_graph_request"}, 30*time.Second)
	// No series of team-c (no processors), none of team-a's kind for
	// team-b or the other way round: waitSeries saw no extra series.
	check.mu.Lock()
	defer check.mu.Unlock()
	if len(check.wrong) > 0 {
		t.Fatalf("%d series or requests sent under the wrong tenant, first: %s", len(check.wrong), check.wrong[0])
	}
	if check.requests["team-a"] == 0 || check.requests["team-b"] == 0 || check.requests["team-c"] != 0 || len(check.requests) != 2 {
		t.Fatalf("remote-write requests by X-Scope-OrgID: %v, want some of team-a and team-b only", check.requests)
	}
	// team-a's remote_write_headers reach the endpoint with its requests only.
	if check.teams["team-a"] != "alpha" || check.teams["team-b"] != "" {
		t.Fatalf("X-Team by tenant: %v, want alpha for team-a only", check.teams)
	}
}

// relabel rewrites the labels of every series of e.
func relabel(e gentopo.Expectations, fn func(name string, l map[string]string)) gentopo.Expectations {
	out := gentopo.Expectations{}
	for k, v := range e {
		name, l := gentopo.ParseKey(k)
		fn(name, l)
		out[gentopo.Key(name, l)] += v
	}
	return out
}

// TestGeneratorSeriesLimit sets max_active_series low: the series past it
// go to the overflow series (metric_overflow="true") in Prometheus, the
// refusals are counted in weft's metrics, and the active series stay at
// the limit while new series keep coming.
func TestGeneratorSeriesLimit(t *testing.T) {
	prom := promtest.Start(t)
	a := startWeft(t, func(c *config.Config) {
		generatorConfig(t, prom, "span-metrics")(c)
		c.Overrides.Defaults.MetricsGenerator.MaxActiveSeries = 20
	})
	_, httpAddr := a.OTLPAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for range 5 {
		if _, err := gentopo.Push(ctx, httpAddr, nil, 20, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	var overflow float64
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s, err := prom.Query(ctx, `sum(traces_spanmetrics_calls_total{metric_overflow="true"})`)
		if err == nil && len(s) == 1 && s[0].Value > 0 {
			overflow = s[0].Value
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if overflow == 0 {
		t.Fatal("no overflow series of traces_spanmetrics_calls_total in Prometheus")
	}
	// Every call is counted: in its series or in the overflow one.
	var sum []promtest.Sample
	for time.Now().Before(deadline) {
		if sum, err = prom.Query(ctx, `sum(traces_spanmetrics_calls_total)`); err == nil && len(sum) == 1 && sum[0].Value == 5*20*8 {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil || len(sum) != 1 || sum[0].Value != 5*20*8 {
		t.Fatalf("sum of calls_total = %v (%v), want %d", sum, err, 5*20*8)
	}
	gauges := func() (limited, active float64) {
		mfs, err := a.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				switch mf.GetName() {
				case "weft_metrics_generator_registry_series_limited_total":
					limited += m.GetCounter().GetValue()
				case "weft_metrics_generator_registry_active_series":
					active += m.GetGauge().GetValue()
				}
			}
		}
		return limited, active
	}
	// The limit, plus one overflow series per Prometheus series of a
	// metric: calls and size, and the latency histogram's buckets, +Inf,
	// _sum and _count.
	bound := float64(20 + 2 + len(spanBuckets) + 3)
	limited, active := gauges()
	if limited == 0 || active > bound {
		t.Fatalf("weft_metrics_generator_registry_series_limited_total = %g (want > 0), active series = %g (want at most %g)", limited, active, bound)
	}
	// New series keep coming (a span name each): the active series and
	// the heap stay where they were.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for round := range 4 {
		pushNamed(t, httpAddr, round*2000, 2000)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	limited2, active2 := gauges()
	if active2 != active || limited2 < limited+8000 {
		t.Fatalf("after 8,000 new series: active series %g (was %g), limited %g (was %g, want 8,000 more)", active2, active, limited2, limited)
	}
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 32<<20 {
		t.Fatalf("the heap grew by %d MiB while 8,000 series were refused", grew>>20)
	}
	t.Logf("overflow series: %g calls; limited updates: %g; active series: %g", overflow, limited2, active2)
}

// pushNamed pushes n spans named op-<first+i>, ending now, one trace each.
func pushNamed(t *testing.T, addr string, first, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(addr), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(resource.NewWithAttributes("", attribute.String("service.name", "many"))),
		sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(500)))
	tr := tp.Tracer("many")
	now := time.Now()
	for i := range n {
		_, sp := tr.Start(context.Background(), fmt.Sprintf("op-%d", first+i), trace.WithTimestamp(now.Add(-time.Millisecond)))
		sp.End(trace.WithTimestamp(now))
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
