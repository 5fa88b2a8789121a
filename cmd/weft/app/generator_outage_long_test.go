package app

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

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

	var mu sync.Mutex
	var spans []tracetest.SpanStub
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // 5 iterations (40 spans) every 200ms
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := gentopo.Push(ctx, rec.Addr(), nil, 5, time.Now())
			cancel()
			if err != nil {
				t.Errorf("push: %v", err)
				return
			}
			mu.Lock()
			spans = append(spans, s...)
			mu.Unlock()
		}
	}()
	time.Sleep(10 * time.Second)
	prom.Stop()
	t.Logf("Prometheus stopped for 60s")
	time.Sleep(60 * time.Second)
	prom.Restart()
	time.Sleep(10 * time.Second)
	close(stop)
	<-done

	want := gentopo.SpanMetrics(spans, spanBuckets, rec.Sizes())
	for k, v := range gentopo.ServiceGraph(spans, graphBuckets) {
		want[k] = v
	}
	deadline := time.Now().Add(90 * time.Second)
	var diffs []string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		got := map[string]float64{}
		for _, p := range []string{"traces_spanmetrics_", "traces_service_graph_request"} {
			series, err := prom.Series(ctx, `{__name__=~"`+p+`.*"}`, 10*time.Minute)
			if err != nil {
				diffs = []string{err.Error()}
				break
			}
			for _, s := range series {
				l := map[string]string{}
				for k, v := range s.Metric {
					l[k] = v
				}
				name := l["__name__"]
				delete(l, "__name__")
				if !strings.HasSuffix(name, "_sum") {
					got[gentopo.Key(name, l)] += s.Increase(true)
				}
			}
		}
		cancel()
		if diffs = gentopo.Compare(want, got, 20); len(diffs) == 0 {
			t.Logf("%d spans pushed over 80s with a 60s Prometheus outage: %d series, each as the spans give it", len(spans), len(want))
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("after the outage, the series in Prometheus differ from the spans pushed:\n%s", strings.Join(diffs, "\n"))
}
