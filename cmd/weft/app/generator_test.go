package app

import (
	"context"
	"strings"
	"testing"
	"time"

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
