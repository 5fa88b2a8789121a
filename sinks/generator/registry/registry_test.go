package registry

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

// key renders a time series' labels as name{a="b",...} (labels in the
// order given, which must be sorted).
func key(t *testing.T, ts prompb.TimeSeries) string {
	t.Helper()
	if !sort.SliceIsSorted(ts.Labels, func(i, j int) bool { return ts.Labels[i].Name < ts.Labels[j].Name }) {
		t.Fatalf("labels not sorted: %v", ts.Labels)
	}
	var name string
	var parts []string
	for _, l := range ts.Labels {
		if l.Name == "__name__" {
			name = l.Value
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// last maps each series to its last sample value.
func last(t *testing.T, out []prompb.TimeSeries) map[string]float64 {
	m := map[string]float64{}
	for _, ts := range out {
		k := key(t, ts)
		if _, dup := m[k]; dup {
			t.Fatalf("series %s twice", k)
		}
		m[k] = ts.Samples[len(ts.Samples)-1].Value
	}
	return m
}

func newTest(t *testing.T, cfg Config) (*Registry, *prometheus.Registry) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	preg := prometheus.NewRegistry()
	return New(cfg, "t1", preg), preg
}

func TestCounterAndHistogram(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ExternalLabels = map[string]string{"cluster": "c1", "service": "ext"}
	cfg.InjectTenantIDAs = "tenant"
	r, _ := newTest(t, cfg)
	c := r.NewCounter("calls_total", []string{"service", "http.method"})
	h := r.NewHistogram("latency", []string{"service"}, []float64{0.1, 1})
	c.Inc([]string{"a", "GET"}, 1)
	c.Inc([]string{"a", "GET"}, 2)
	c.Inc([]string{"b", ""}, 1)
	h.Observe([]string{"a"}, 0.05, []byte{1, 2}, 1)
	h.Observe([]string{"a"}, 0.5, nil, 1)
	h.Observe([]string{"a"}, 5, []byte{3, 4}, 2)

	now := time.Unix(1000, 0)
	out := r.Collect(now, CollectOptions{Exemplars: true})
	got := last(t, out)
	want := map[string]float64{
		`calls_total{cluster="c1",http_method="GET",service="a",tenant="t1"}`: 3,
		`calls_total{cluster="c1",service="b",tenant="t1"}`:                   1,
		`latency_bucket{cluster="c1",le="0.1",service="a",tenant="t1"}`:       1,
		`latency_bucket{cluster="c1",le="1",service="a",tenant="t1"}`:         2,
		`latency_bucket{cluster="c1",le="+Inf",service="a",tenant="t1"}`:      4,
		`latency_sum{cluster="c1",service="a",tenant="t1"}`:                   10.55,
		`latency_count{cluster="c1",service="a",tenant="t1"}`:                 4,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	// First collection: a 0 sample 1 ms earlier; the last exemplar on its bucket.
	exemplars := 0
	for _, ts := range out {
		if len(ts.Samples) != 2 || ts.Samples[0].Value != 0 || ts.Samples[0].Timestamp != now.UnixMilli()-1 || ts.Samples[1].Timestamp != now.UnixMilli() {
			t.Errorf("%s: samples %v, want a 0 at t-1ms then the value at t", key(t, ts), ts.Samples)
		}
		for _, ex := range ts.Exemplars {
			exemplars++
			k := key(t, ts)
			switch ex.Labels[0].Value {
			case "0304":
				if !strings.Contains(k, `le="+Inf"`) || ex.Value != 5 {
					t.Errorf("exemplar 0304 on %s value %v", k, ex.Value)
				}
			default:
				t.Errorf("unexpected exemplar %v", ex)
			}
			if ex.Labels[0].Name != ExemplarLabel {
				t.Errorf("exemplar label %q", ex.Labels[0].Name)
			}
		}
	}
	if exemplars != 1 {
		t.Errorf("%d exemplars, want 1 (the series' last)", exemplars)
	}
	// Second collection: one sample each, cumulative, no exemplars left.
	c.Inc([]string{"a", "GET"}, 1)
	out = r.Collect(now.Add(15*time.Second), CollectOptions{Exemplars: true})
	for _, ts := range out {
		if len(ts.Samples) != 1 || len(ts.Exemplars) != 0 {
			t.Errorf("%s: %d samples %d exemplars on the second collect", key(t, ts), len(ts.Samples), len(ts.Exemplars))
		}
	}
	if g := last(t, out)[`calls_total{cluster="c1",http_method="GET",service="a",tenant="t1"}`]; g != 4 {
		t.Errorf("counter after second collect = %v, want 4", g)
	}
	if n := r.ActiveSeries(); n != 2+5 {
		t.Errorf("active series %d, want 7", n)
	}
}

func TestLabelLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxLabelNameLength = 5
	cfg.MaxLabelValueLength = 4
	r, _ := newTest(t, cfg)
	c := r.NewCounter("m", []string{"k8s.pod.name"})
	c.Inc([]string{"abcdefgh"}, 1)
	c.Inc([]string{"abcdxyz"}, 1) // same after truncation
	c.Inc([]string{"ééé"}, 1)     // 6 bytes: cut to 4 without splitting a rune
	got := last(t, r.Collect(time.Unix(1, 0), CollectOptions{}))
	want := map[string]float64{`m{k8s_p="abcd"}`: 2, `m{k8s_p="éé"}`: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestOverflowAndMetrics(t *testing.T) {
	r, preg := newTest(t, DefaultConfig())
	r.SetMaxActiveSeries(3)
	c := r.NewCounter("calls_total", []string{"service"})
	h := r.NewHistogram("lat", []string{"service"}, []float64{1})
	for i := 0; i < 5; i++ {
		c.Inc([]string{fmt.Sprint("s", i)}, 1)
	}
	h.Observe([]string{"s0"}, 0.5, nil, 1) // costs 4 > what is left: overflow
	got := last(t, r.Collect(time.Unix(1, 0), CollectOptions{}))
	want := map[string]float64{
		`calls_total{service="s0"}`:                    1,
		`calls_total{service="s1"}`:                    1,
		`calls_total{service="s2"}`:                    1,
		`calls_total{metric_overflow="true"}`:          2,
		`lat_bucket{le="1",metric_overflow="true"}`:    1,
		`lat_bucket{le="+Inf",metric_overflow="true"}`: 1,
		`lat_sum{metric_overflow="true"}`:              0.5,
		`lat_count{metric_overflow="true"}`:            1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if v := testutil.ToFloat64(r.limited); v != 3 {
		t.Errorf("series_limited_total = %v, want 3", v)
	}
	if n, err := testutil.GatherAndCount(preg, "weft_metrics_generator_registry_active_series"); err != nil || n != 1 {
		t.Errorf("active_series gauge: %d %v", n, err)
	}
	if v := testutil.ToFloat64(r.activeGauge); v != 3+1+4 {
		t.Errorf("active series gauge %v, want 8 (3 + 2 overflow series)", v)
	}
	if v := testutil.ToFloat64(r.maxGauge); v != 3 {
		t.Errorf("max active gauge %v", v)
	}
	// Raising the limit at runtime lets new series in.
	r.SetMaxActiveSeries(100)
	c.Inc([]string{"s9"}, 1)
	if _, ok := last(t, r.Collect(time.Unix(2, 0), CollectOptions{}))[`calls_total{service="s9"}`]; !ok {
		t.Error("a new series is still refused after the limit was raised")
	}
}

// TestOverflowMemoryFlat pushes ten times the limit's series and checks that
// the refused ones cost neither series nor heap.
func TestOverflowMemoryFlat(t *testing.T) {
	const limit = 1000
	r, _ := newTest(t, DefaultConfig())
	r.SetMaxActiveSeries(limit)
	c := r.NewCounter("calls_total", []string{"service", "span_name"})
	values := make([][]string, 10*limit)
	for i := range values {
		values[i] = []string{"svc", fmt.Sprintf("span-%06d-with-a-longish-name", i)}
	}
	for i := 0; i < limit; i++ {
		c.Inc(values[i], 1)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := limit; i < len(values); i++ {
		c.Inc(values[i], 1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 9000 refused series of ~200 bytes each would be ~1.8 MB; allow 64 KiB
	// of noise (the overflow series, runtime bookkeeping).
	if grow := int64(after.HeapAlloc) - int64(before.HeapAlloc); grow > 64<<10 {
		t.Errorf("heap grew by %d bytes while refusing %d series", grow, len(values)-limit)
	}
	if n := r.ActiveSeries(); n != limit+1 {
		t.Errorf("active series %d, want %d (the limit and the overflow series)", n, limit+1)
	}
	allocs := testing.AllocsPerRun(100, func() { c.Inc(values[len(values)-1], 1) })
	if allocs != 0 {
		t.Errorf("a refused series allocates %v times per update", allocs)
	}
	got := last(t, r.Collect(time.Unix(1, 0), CollectOptions{}))
	if len(got) != limit+1 || got[`calls_total{metric_overflow="true"}`] != float64(9*limit+101) {
		t.Errorf("%d series, overflow %v", len(got), got[`calls_total{metric_overflow="true"}`])
	}
}

func TestStale(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StaleDuration = time.Minute
	r, _ := newTest(t, cfg)
	c := r.NewCounter("calls_total", []string{"service"})
	c.Inc([]string{"old"}, 1)
	now := time.Now()
	r.Collect(now, CollectOptions{})
	// "old" was updated now-ish; collect two minutes later: stale.
	c.Inc([]string{"new"}, 1)
	// Make "old" look old by collecting far in the future relative to its
	// update, while "new" is refreshed just before.
	later := now.Add(2 * time.Minute)
	c.m.mu.Lock()
	c.m.series[c.m.hash(c.m.labelNames, []string{"new"})].lastUpdate = later.UnixMilli()
	c.m.mu.Unlock()
	out := r.Collect(later, CollectOptions{})
	var staleSeen bool
	for _, ts := range out {
		k := key(t, ts)
		if k == `calls_total{service="old"}` {
			if len(ts.Samples) != 1 || !value.IsStaleNaN(ts.Samples[0].Value) {
				t.Errorf("stale series samples %v, want one stale marker", ts.Samples)
			}
			staleSeen = true
		}
	}
	if !staleSeen {
		t.Error("no stale marker for the stale series")
	}
	if v := testutil.ToFloat64(r.removed); v != 1 {
		t.Errorf("series_removed_total %v", v)
	}
	out = r.Collect(later.Add(time.Second), CollectOptions{})
	if got := last(t, out); len(got) != 1 || got[`calls_total{service="new"}`] != 1 {
		t.Errorf("after the stale marker: %v", got)
	}
	if r.ActiveSeries() != 1 {
		t.Errorf("active %d", r.ActiveSeries())
	}
}

func TestTargetInfoGaugeAndReplace(t *testing.T) {
	r, _ := newTest(t, DefaultConfig())
	g := r.NewGauge("info", nil)
	g.SetLabels([]string{"job", "k8s_pod"}, []string{"a", "p1"}, 1)
	g.SetLabels([]string{"job", "region"}, []string{"b", "eu"}, 1)
	got := last(t, r.Collect(time.Unix(1, 0), CollectOptions{}))
	if len(got) != 2 || got[`info{job="a",k8s_pod="p1"}`] != 1 || got[`info{job="b",region="eu"}`] != 1 {
		t.Errorf("got %v", got)
	}
	// Same name, same labels: same metric; other labels: old series end stale.
	c1 := r.NewCounter("c", []string{"a"})
	c1.Inc([]string{"x"}, 1)
	if r.NewCounter("c", []string{"a"}).m != c1.m {
		t.Error("NewCounter with the same labels made a new metric")
	}
	r.Collect(time.Unix(2, 0), CollectOptions{})
	c2 := r.NewCounter("c", []string{"a", "b"})
	c2.Inc([]string{"x", "y"}, 1)
	out := r.Collect(time.Unix(3, 0), CollectOptions{})
	var stale, fresh bool
	for _, ts := range out {
		switch key(t, ts) {
		case `c{a="x"}`:
			stale = value.IsStaleNaN(ts.Samples[len(ts.Samples)-1].Value)
		case `c{a="x",b="y"}`:
			fresh = true
		}
	}
	if !stale || !fresh {
		t.Errorf("replaced metric: stale marker %v, new series %v", stale, fresh)
	}
}

func TestConcurrent(t *testing.T) {
	r, _ := newTest(t, DefaultConfig())
	c := r.NewCounter("c", []string{"g"})
	h := r.NewHistogram("h", []string{"g"}, []float64{1})
	var wg sync.WaitGroup
	const n = 2000
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				c.Inc([]string{fmt.Sprint(i % 7)}, 1)
				h.Observe([]string{fmt.Sprint(i % 7)}, 0.5, []byte("ab"), 1)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		r.Collect(time.Now(), CollectOptions{Exemplars: true})
	}
	wg.Wait()
	sum := 0.0
	for k, v := range last(t, r.Collect(time.Now(), CollectOptions{})) {
		if strings.HasPrefix(k, "c{") {
			sum += v
		}
	}
	if sum != 4*n {
		t.Errorf("counter sum %v, want %d", sum, 4*n)
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StaleDuration = 0
	cfg.ExternalLabels = map[string]string{"bad.name": "x"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "metrics_generator.registry.stale_duration") || !strings.Contains(err.Error(), "external_labels") {
		t.Errorf("Validate: %v", err)
	}
	if SanitizeLabelName("http.status-code/é") != "http_status_code__" {
		t.Errorf("sanitise: %q", SanitizeLabelName("http.status-code/é"))
	}
}

// BenchmarkSeriesMemory measures the heap held per active series: a
// counter with the span-metrics labels (five values), and a histogram with
// the same labels and the default 14 buckets (17 Prometheus series).
func BenchmarkSeriesMemory(b *testing.B) {
	const n = 20000
	names := []string{"service", "span_name", "span_kind", "status_code", "http_route"}
	values := make([][]string, n)
	for i := range values {
		values[i] = []string{"checkout", fmt.Sprintf("GET /api/v1/items/%d", i), "SPAN_KIND_SERVER", "STATUS_CODE_OK", fmt.Sprintf("/api/v1/items/%d", i)}
	}
	buckets := []float64{0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384}
	measure := func(fill func(r *Registry)) float64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := New(DefaultConfig(), "t", nil)
		fill(r)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(r)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	var counter, histogram float64
	for i := 0; i < b.N; i++ {
		counter = measure(func(r *Registry) {
			c := r.NewCounter("calls_total", names)
			for _, v := range values {
				c.Inc(v, 1)
			}
		})
		histogram = measure(func(r *Registry) {
			h := r.NewHistogram("latency", names, buckets)
			for _, v := range values {
				h.Observe(v, 0.1, []byte("0123456789abcdef"), 1)
			}
		})
	}
	b.ReportMetric(counter, "B/counter-series")
	b.ReportMetric(histogram, "B/histogram-series")
}

// BenchmarkCollect collects 5000 span-metrics-like label sets: a counter
// and a 14-bucket histogram each, 100,000 Prometheus series in all.
func BenchmarkCollect(b *testing.B) {
	r := New(DefaultConfig(), "t", nil)
	names := []string{"service", "span_name", "span_kind", "status_code"}
	c := r.NewCounter("calls_total", names)
	h := r.NewHistogram("latency", names, []float64{0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384})
	for i := 0; i < 5000; i++ {
		v := []string{fmt.Sprint("svc-", i%20), fmt.Sprint("op-", i), "SPAN_KIND_SERVER", "STATUS_CODE_OK"}
		c.Inc(v, 1)
		h.Observe(v, 0.01, []byte("0123456789abcdef"), 1)
	}
	if n := r.ActiveSeries(); n != 5000*18 {
		b.Fatalf("%d series", n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var out []prompb.TimeSeries
	for i := 0; i < b.N; i++ {
		out = r.Collect(time.Now(), CollectOptions{Exemplars: true})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(out)), "ns/series")
}

// TestInvalidUTF8 checks that a new series with a label value that is not
// valid UTF-8 is refused and counted instead of poisoning a remote write.
func TestInvalidUTF8(t *testing.T) {
	r, _ := newTest(t, DefaultConfig())
	c := r.NewCounter("c", []string{"a"})
	h := r.NewHistogram("h", []string{"a"}, []float64{1})
	c.Inc([]string{"ok"}, 1)
	c.Inc([]string{"bad\xff"}, 1)
	h.Observe([]string{"bad\xfe"}, 1, nil, 1)
	got := last(t, r.Collect(time.Unix(1, 0), CollectOptions{}))
	if len(got) != 1 || got[`c{a="ok"}`] != 1 {
		t.Errorf("got %v", got)
	}
	if v := testutil.ToFloat64(r.invalid); v != 2 {
		t.Errorf("invalid_utf8_total %v, want 2", v)
	}
}
