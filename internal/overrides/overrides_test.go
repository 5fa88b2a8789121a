package overrides

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	// Write beside and rename, as a config management tool does, so a
	// concurrent reload never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestParseOnTopOfDefaults(t *testing.T) {
	m, _, err := Parse("rt.yaml", []byte(`
overrides:
  team-a:
    ingestion:
      rate_limit_bytes: 1000
      burst_size_bytes: 2000
    read:
      max_bytes_per_tag_values_query: 123
  "*":
    ingestion:
      max_attribute_bytes: 7
`), DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := m["team-a"]
	if a == nil || a.Ingestion.RateLimitBytes != 1000 || a.Ingestion.BurstSizeBytes != 2000 || a.Read.MaxBytesPerTagValuesQuery != 123 {
		t.Fatalf("team-a = %+v", a)
	}
	// Keys the tenant does not set keep the defaults.
	if a.Ingestion.RateStrategy != RateStrategyLocal || a.Ingestion.MaxAttributeBytes != 0 {
		t.Fatalf("team-a lost its defaults: %+v", a)
	}
	if w := m[Wildcard]; w == nil || w.Ingestion.MaxAttributeBytes != 7 || w.Ingestion.RateLimitBytes != 30_000_000 {
		t.Fatalf("* = %+v", w)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"unknown key in a tenant", "overrides:\n  a:\n    ingestion:\n      rate_limit: 5\n", `rt.yaml:4: overrides.a.ingestion.rate_limit: unknown key`},
		{"unknown top-level key", "limits:\n  a: {}\n", `rt.yaml:1: limits: unknown key`},
		{"path-like tenant", "overrides:\n  ../x:\n    ingestion: {}\n", `rt.yaml:2: overrides.../x: invalid tenant ID`},
		{"type error", "overrides:\n  a:\n    ingestion:\n      rate_limit_bytes: lots\n", `rt.yaml:4`},
		{"invalid value", "overrides:\n  a:\n    ingestion:\n      rate_limit_bytes: -1\n", `rate_limit_bytes: must not be negative`},
		{"rate without burst", "overrides:\n  a:\n    ingestion:\n      burst_size_bytes: 0\n", `burst_size_bytes: must be positive`},
		{"unsupported strategy", "overrides:\n  a:\n    ingestion:\n      rate_strategy: global\n", `rate_strategy: "global" is not supported`},
		{"duplicate tenant", "overrides:\n  a: {}\n  a: {}\n", `rt.yaml:3: overrides.a: duplicate tenant`},
		{"not YAML", "overrides: [", `cannot parse YAML`},
		{"unknown processor", "overrides:\n  a:\n    metrics_generator:\n      processors: [span-metrics, spanmetrics]\n", `metrics_generator.processors: unknown processor "spanmetrics"`},
		{"negative series limit", "overrides:\n  a:\n    metrics_generator:\n      max_active_series: -1\n", `metrics_generator.max_active_series: must not be negative`},
		{"buckets out of order", "overrides:\n  a:\n    metrics_generator:\n      processor:\n        span_metrics:\n          histogram_buckets: [1, 0.5]\n", `span_metrics.histogram_buckets: buckets must increase`},
		{"unknown intrinsic dimension", "overrides:\n  a:\n    metrics_generator:\n      processor:\n        span_metrics:\n          intrinsic_dimensions: {kind: true}\n", `unknown dimension "kind"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse("rt.yaml", []byte(tc.file), DefaultLimits(), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	m, _, err := Parse("rt.yaml", []byte("overrides:\n  a:\n    metrics_generator:\n      processors: [service-graphs]\n      max_active_series: 10\n      processor:\n        span_metrics:\n          dimensions: [http.method]\n          enable_target_info: true\n"), DefaultLimits(), nil)
	if g := m["a"].MetricsGenerator; err != nil || len(g.Processors) != 1 || g.MaxActiveSeries != 10 || len(g.Processor.SpanMetrics.Dimensions) != 1 || g.Processor.SpanMetrics.EnableTargetInfo == nil || !*g.Processor.SpanMetrics.EnableTargetInfo {
		t.Fatalf("metrics_generator overrides: %+v, %v", m["a"], err)
	}
	if m, _, err := Parse("rt.yaml", []byte("# nothing yet\n"), DefaultLimits(), nil); err != nil || len(m) != 0 {
		t.Fatalf("empty file: %v, %v", m, err)
	}
}

func TestForFallsBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.yaml")
	writeFile(t, path, "overrides:\n  a:\n    ingestion:\n      rate_limit_bytes: 5\n      burst_size_bytes: 5\n")
	cfg := DefaultConfig()
	cfg.Defaults.Ingestion.MaxAttributeBytes = 42
	cfg.PerTenantOverrideConfig = path
	o, err := New(cfg, nil, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if got := o.For("a").Ingestion.RateLimitBytes; got != 5 {
		t.Fatalf("a: rate = %d, want 5", got)
	}
	if got := o.For("a").Ingestion.MaxAttributeBytes; got != 42 {
		t.Fatalf("a: max attribute bytes = %d, want the default 42", got)
	}
	if got := o.For("b").Ingestion.RateLimitBytes; got != 30_000_000 {
		t.Fatalf("b: rate = %d, want the default", got)
	}
}

func TestBadFileAtStartIsAnError(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.PerTenantOverrideConfig = filepath.Join(dir, "missing.yaml")
	if _, err := New(cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "overrides.per_tenant_override_config") {
		t.Fatalf("err = %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "overrides:\n  a:\n    nope: 1\n")
	cfg.PerTenantOverrideConfig = bad
	if _, err := New(cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "overrides.a.nope: unknown key") {
		t.Fatalf("err = %v", err)
	}
}

// TestReloadKeepsLastGood changes the runtime file under a running
// Overrides: a good change is taken up within the period, a bad one is
// refused with a log line and a metric while the last good limits stay.
func TestReloadKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.yaml")
	writeFile(t, path, "overrides:\n  a:\n    ingestion:\n      rate_limit_bytes: 100\n")
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	cfg := DefaultConfig()
	cfg.PerTenantOverrideConfig = path
	cfg.PerTenantOverridePeriod = 20 * time.Millisecond
	o, err := New(cfg, nil, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Shutdown(context.Background())

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	writeFile(t, path, "overrides:\n  a:\n    ingestion:\n      rate_limit_bytes: 200\n")
	waitFor("the new rate", func() bool { return o.For("a").Ingestion.RateLimitBytes == 200 })

	writeFile(t, path, "overrides:\n  a:\n    ingestion:\n      rate_limit_bytes: -5\n")
	failures := o.reloads.WithLabelValues("failure")
	waitFor("a failed reload", func() bool { return testutil.ToFloat64(failures) >= 1 })
	if got := o.For("a").Ingestion.RateLimitBytes; got != 200 {
		t.Fatalf("after a bad file rate = %d, want the last good 200", got)
	}
	if err := o.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); !strings.Contains(s, "the last good ones stay in force") || !strings.Contains(s, "must not be negative") {
		t.Fatalf("log does not say why:\n%s", s)
	}
	if n, err := testutil.GatherAndCount(reg, "weft_overrides_reloads_total"); err != nil || n != 2 {
		t.Fatalf("reload series = %d, %v; want success and failure", n, err)
	}
}

// syncWriter lets the reload goroutine log while the test runs.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestParseToleratesKeysKnownElsewhere(t *testing.T) {
	tempo := func(key string) bool { return key == "ingestion.tenant_shard_size" }
	m, ignored, err := Parse("rt.yaml", []byte("overrides:\n  a:\n    ingestion:\n      tenant_shard_size: 5\n      rate_limit_bytes: 9\n"), DefaultLimits(), tempo)
	if err != nil {
		t.Fatal(err)
	}
	if len(ignored) != 1 || ignored[0] != "overrides.a.ingestion.tenant_shard_size" || m["a"].Ingestion.RateLimitBytes != 9 {
		t.Fatalf("ignored %v, limits %+v", ignored, m["a"])
	}
	if _, _, err := Parse("rt.yaml", []byte("overrides:\n  a:\n    ingestion:\n      max_trace_per_user: 5\n"), DefaultLimits(), tempo); err == nil {
		t.Fatal("a key neither system knows was accepted")
	}
}

// A runtime file in Tempo 2's flat form is put in force, with one warning
// naming its flat keys, not repeated while the file says the same.
func TestFlatFormRuntimeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rt.yaml")
	writeFile(t, path, "overrides:\n  a:\n    max_traces_per_user: 7\n    ingestion_rate_limit_bytes: 300\n")
	var logs bytes.Buffer
	cfg := DefaultConfig()
	cfg.PerTenantOverrideConfig = path
	o, err := New(cfg, nil, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if l := o.For("a").Ingestion; l.MaxTracesPerUser != 7 || l.RateLimitBytes != 300 {
		t.Fatalf("tenant a: %+v", l)
	}
	if err := o.Reload(); err != nil {
		t.Fatal(err)
	}
	s := logs.String()
	if strings.Count(s, "flat form") != 1 || !strings.Contains(s, "overrides.a.max_traces_per_user: mapped to ingestion.max_traces_per_user") {
		t.Fatalf("want one warning naming the flat keys:\n%s", s)
	}
}
