package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/weftdb/weft/internal/gentopo"
	"github.com/weftdb/weft/internal/promtest"
)

type gentopoSpans = []tracetest.SpanStub

var (
	genSpanBuckets  = []float64{0.005, 0.01, 0.02, 0.04, 0.08}
	genGraphBuckets = []float64{0.01, 0.02, 0.05, 0.1}
)

// generatorYAML is the metrics_generator block and the overrides of the
// generator tests: collection every 500ms to prom, span metrics and
// service graphs for every tenant.
func generatorYAML(prom *promtest.Server, dir string) string {
	return fmt.Sprintf(`metrics_generator:
  registry:
    collection_interval: 500ms
  processor:
    span_metrics:
      histogram_buckets: %s
    service_graphs:
      histogram_buckets: %s
      wait: 1s
  storage:
    path: %s
    remote_write:
      - url: %s
        remote_timeout: 5s
overrides:
  defaults:
    metrics_generator:
      processors: [span-metrics, service-graphs]
`, yamlList(genSpanBuckets), yamlList(genGraphBuckets), dir, prom.WriteURL())
}

func yamlList(fs []float64) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprint(f))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// increases reads the raw samples of every series of the prefixes over the
// last 10 minutes and sums each one's increase, resets included (a
// restarted generator starts its counters at 0).
func increases(ctx context.Context, prom *promtest.Server, prefixes ...string) (map[string]float64, error) {
	got := map[string]float64{}
	for _, p := range prefixes {
		series, err := prom.Series(ctx, `{__name__=~"`+p+`.*"}`, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		for _, s := range series {
			l := map[string]string{}
			for k, v := range s.Metric {
				l[k] = v
			}
			name := l["__name__"]
			delete(l, "__name__")
			if strings.HasSuffix(name, "_sum") {
				continue
			}
			got[gentopo.Key(name, l)] += s.Increase(true)
		}
	}
	return got, nil
}

// TestGeneratorMicroservices runs the generator as its own process reading
// the distributor's Kafka topic: the series in Prometheus equal what the
// pushed spans give. Then the generator is killed (SIGKILL) twice while
// spans keep coming, and started again: the span metrics, read as
// increases over resets, still equal the spans pushed (nothing lost,
// nothing counted twice), and no service-graph edge is counted more than
// its calls.
func TestGeneratorMicroservices(t *testing.T) {
	prom := promtest.Start(t)
	broker := startDevKafka(t)
	data := t.TempDir()
	dps, gps := newPorts(t), newPorts(t)
	dcfg := writeFile(t, "distributor.yaml", kafkaConfig(dps, data, broker))
	gcfg := writeFile(t, "generator.yaml", kafkaConfig(gps, data, broker)+generatorYAML(prom, t.TempDir()))
	gen := startWeft(t, nil, "-config.file="+gcfg, "-target=metrics-generator")
	gen.waitReady(t, loopback(gps.http))
	dist := startWeft(t, nil, "-config.file="+dcfg, "-target=distributor")
	dist.waitReady(t, loopback(dps.http))

	rec, err := gentopo.NewRecorder(loopback(dps.otlpHTTP))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var spans []gentopoSpans
	push := func(n int) {
		s, err := gentopo.Push(ctx, rec.Addr(), nil, n, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		spans = append(spans, s)
	}
	want := func(graphs bool) gentopo.Expectations {
		var all gentopoSpans
		for _, s := range spans {
			all = append(all, s...)
		}
		w := gentopo.SpanMetrics(all, genSpanBuckets, rec.Sizes())
		if graphs {
			for k, v := range gentopo.ServiceGraph(all, genGraphBuckets) {
				w[k] = v
			}
		}
		return w
	}
	check := func(phase string, w gentopo.Expectations, prefixes []string, cmp func(want gentopo.Expectations, got map[string]float64) []string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var diffs []string
		for time.Now().Before(deadline) {
			got, err := increases(ctx, prom, prefixes...)
			if err != nil {
				diffs = []string{err.Error()}
			} else if diffs = cmp(w, got); len(diffs) == 0 {
				t.Logf("%s: %d series as the spans give them", phase, len(w))
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		var own []string
		for _, l := range strings.Split(getBody(t, "http://"+loopback(gps.http)+"/metrics"), "\n") {
			if strings.HasPrefix(l, "weft_metrics_generator_") {
				own = append(own, l)
			}
		}
		if series, err := prom.Series(ctx, `traces_spanmetrics_calls_total{service="frontend",span_kind="SPAN_KIND_SERVER"}`, 10*time.Minute); err == nil {
			for _, s := range series {
				t.Logf("raw samples of %v: %v", s.Metric, s.Points)
			}
		}
		t.Fatalf("%s: the series in Prometheus differ from the spans pushed:\n%s\nthe generator's metrics:\n%s", phase, strings.Join(diffs, "\n"), strings.Join(own, "\n"))
	}
	exact := func(w gentopo.Expectations, got map[string]float64) []string { return gentopo.Compare(w, got, 20) }

	push(30)
	check("over Kafka", want(true), []string{"traces_spanmetrics_", "traces_service_graph_request"}, exact)

	spanMetrics := []string{"traces_spanmetrics_calls", "traces_spanmetrics_latency", "traces_spanmetrics_size"}
	for kill := range 2 {
		push(30)
		time.Sleep(time.Duration(200+300*kill) * time.Millisecond)
		if err := gen.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-gen.done
		push(20) // while the generator is down
		gen = startWeft(t, nil, "-config.file="+gcfg, "-target=metrics-generator")
		gen.waitReady(t, loopback(gps.http))
		// Caught up before the next kill: the broker hands the killed
		// member's partitions over once its session times out.
		check(fmt.Sprintf("after kill %d", kill+1), want(false), spanMetrics, exact)
	}
	push(20)
	check("after two kills", want(false), spanMetrics, exact)
	// Service-graph halves waiting for their other half when the process
	// was killed are lost (see docs/metrics-generator.md): edges may be
	// short, never counted twice.
	check("service graph after two kills", want(true), []string{"traces_service_graph_request_total"}, func(w gentopo.Expectations, got map[string]float64) []string {
		var diffs []string
		for k, v := range got {
			if v > w[k] {
				diffs = append(diffs, fmt.Sprintf("%s = %g, more than the %g calls pushed", k, v, w[k]))
			}
		}
		return diffs
	})
	if code := gen.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("generator exited %d", code)
	}
}
