package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/gentopo"
	"github.com/weftdb/weft/internal/promtest"
	"github.com/weftdb/weft/internal/testlong"
)

// TestGeneratorPrometheusOutageLong stops Prometheus for 60s while spans
// keep coming at a steady rate, then starts it again: once the queue has
// drained, every series, read as its increase over the whole run, equals
// what the pushed spans give: nothing lost in the outage, nothing counted
// twice by the resends.
func TestGeneratorPrometheusOutageLong(t *testing.T) {
	testlong.Skip(t)
	prom := promtest.Start(t)
	a := startWeft(t, generatorConfig(t, prom, "span-metrics", "service-graphs"))
	_, httpAddr := a.OTLPAddrs()
	rec, err := gentopo.NewRecorder(httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()

	load := gentopo.StartLoad(rec.Addr(), 5, 200*time.Millisecond) // 40 spans every 200ms
	time.Sleep(10 * time.Second)
	prom.Stop()
	t.Logf("Prometheus stopped for 60s")
	time.Sleep(60 * time.Second)
	prom.Restart()
	time.Sleep(10 * time.Second)
	spans, err := load.Stop()
	if err != nil {
		t.Fatalf("push: %v", err)
	}

	want := gentopo.SpanMetrics(spans, spanBuckets, rec.Sizes())
	for k, v := range gentopo.ServiceGraph(spans, graphBuckets) {
		want[k] = v
	}
	deadline := time.Now().Add(90 * time.Second)
	var diffs []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got, err := gentopo.Increases(ctx, prom, "traces_spanmetrics_", "traces_service_graph_request")
		if err != nil {
			diffs = []string{err.Error()}
		}
		cancel()
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		if diffs = gentopo.Compare(want, got, 20); len(diffs) == 0 {
			t.Logf("%d spans pushed over 80s with a 60s Prometheus outage: %d series, each as the spans give it", len(spans), len(want))
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("after the outage, the series in Prometheus differ from the spans pushed:\n%s", strings.Join(diffs, "\n"))
}
