package app

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/metricstest"
)

// TestMetricsLimits checks each limit of the metrics routes over HTTP: the
// range (the config's and a tenant's override), the intervals, the series
// (a query grouping by span ID answers maxSeries series, PARTIAL, with a
// message naming the limit), bad queries and parameters; each refusal
// names its key and is counted. It also checks the protobuf answer and
// that exemplars are capped.
func TestMetricsLimits(t *testing.T) {
	rt := filepath.Join(t.TempDir(), "overrides.yaml")
	if err := os.WriteFile(rt, []byte("overrides:\n  short:\n    read:\n      max_metrics_duration: 30m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startWeft(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.Overrides.PerTenantOverrideConfig = rt
		c.QueryFrontend.Metrics.MaxExemplars = 3
	})
	_, httpAddr := a.OTLPAddrs()
	now := time.Now()
	spans := metricstest.Generate(7, 300, now.Add(-10*time.Minute), now.Add(-2*time.Minute))
	for _, tenant := range []string{"t", "short"} {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
			otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": tenant}))
		if err != nil {
			t.Fatal(err)
		}
		if err := metricstest.Push(context.Background(), exp, spans); err != nil {
			t.Fatal(err)
		}
	}
	api := "http://" + a.HTTPAddr()
	rangeOf := func(start, end time.Time) url.Values {
		return url.Values{"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}}
	}
	query := func(route, tenant, q string, params url.Values) (int, string) {
		t.Helper()
		params.Set("q", q)
		code, body := getAs(t, api+route+"?"+params.Encode(), tenant)
		return code, string(body)
	}
	const rng = "/api/metrics/query_range"
	for _, c := range []struct {
		name, tenant, q string
		params          url.Values
		code            int
		want            string
		limit           string // the refusal counted, if any
	}{
		{"range too long", "t", "{ } | rate()", rangeOf(now.Add(-25*time.Hour), now), 400,
			"longer than the maximum of 24h0m0s (query_frontend.metrics.max_duration)", "query_frontend.metrics.max_duration"},
		{"tenant's range", "short", "{ } | rate()", rangeOf(now.Add(-time.Hour), now), 400,
			"longer than the maximum of 30m0s (overrides.read.max_metrics_duration)", "overrides.read.max_metrics_duration"},
		{"step too small", "t", "{ } | rate()", func() url.Values {
			v := rangeOf(now.Add(-2*time.Hour), now)
			v.Set("step", "0.5")
			return v
		}(), 400, "is too small", "query_frontend.metrics.max_intervals"},
		{"not a metrics query", "t", "{ }", url.Values{}, 400, "not a metrics query", ""},
		{"syntax error", "t", "{ } | rate(", url.Values{}, 400, "invalid TraceQL query", ""},
		{"bad step", "t", "{ } | rate()", url.Values{"step": {"-1"}}, 400, "invalid step", ""},
		{"bad maxSeries", "t", "{ } | rate()", url.Values{"maxSeries": {"x"}}, 400, "invalid maxSeries", ""},
		{"one of start and end", "t", "{ } | rate()", url.Values{"start": {"1700000000"}}, 400, "only one of start and end", ""},
		{"end before start", "t", "{ } | rate()", rangeOf(now, now.Add(-time.Hour)), 400, "end", ""},
		{"no tenant", "", "{ } | rate()", url.Values{}, 401, "no org id", ""},
	} {
		before := 0.0
		if c.limit != "" {
			before = max(0, metricValue(t, a, "weft_query_frontend_limit_refusals_total", "limit", c.limit))
		}
		code, body := query(rng, c.tenant, c.q, c.params)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, body, c.code, c.want)
		}
		if c.limit != "" {
			if got := metricValue(t, a, "weft_query_frontend_limit_refusals_total", "limit", c.limit); got != before+1 {
				t.Errorf("%s: refusals of %s counted %v, want %v", c.name, c.limit, got, before+1)
			}
		}
	}

	// A series per span, more than maxSeries: PARTIAL with maxSeries
	// series and a message naming the limit.
	params := rangeOf(now.Add(-15*time.Minute), now)
	params.Set("maxSeries", "50")
	code, body := query(rng, "t", "{ } | count_over_time() by (span:id)", params)
	ans, series, err := metricstest.Parse([]byte(body))
	if code != 200 || err != nil || ans.Status != "PARTIAL" || len(series) != 50 || !strings.Contains(ans.Message, "50") {
		t.Errorf("by (span:id), maxSeries 50: %d, %v, status %q, %d series, message %q", code, err, ans.Status, len(series), ans.Message)
	}
	if got := metricValue(t, a, "weft_query_frontend_metrics_queries_total", "kind", "range", "result", "partial"); got < 1 {
		t.Errorf("partial answers counted %v, want at least 1", got)
	}
	// Exemplars: at most query_frontend.metrics.max_exemplars (3) however
	// many are asked for.
	params = rangeOf(now.Add(-15*time.Minute), now)
	params.Set("exemplars", "100")
	_, body = query(rng, "t", "{ } | rate()", params)
	if ans, _, err := metricstest.Parse([]byte(body)); err != nil || len(ans.Series) != 1 || len(ans.Series[0].Exemplars) == 0 || len(ans.Series[0].Exemplars) > 3 {
		t.Errorf("exemplars capped at 3: %v %s", err, body)
	}
	// Protobuf: a QueryRangeResponse whose field 1 is the one series.
	params = rangeOf(now.Add(-15*time.Minute), now)
	params.Set("q", "{ } | rate()")
	code, pb, hdr := fetch(t, api+rng+"?"+params.Encode(), "application/protobuf", "t")
	if code != 200 || hdr.Get("Content-Type") != "application/protobuf" {
		t.Fatalf("protobuf: %d %s", code, hdr.Get("Content-Type"))
	}
	n := len(protoFields(t, pb)[1])
	if n != 1 {
		t.Errorf("protobuf answer has %d series, want 1", n)
	}
}

// A query_backend_after longer than the live-store's window would count
// some spans from live-stores that no longer hold them: weft says so at
// start, naming both keys; with the defaults it says nothing.
func TestMetricsBackendAfterWindowWarning(t *testing.T) {
	for _, c := range []struct {
		after time.Duration
		warn  bool
	}{{30 * time.Minute, true}, {15 * time.Minute, false}} {
		var logs strings.Builder
		cfg := config.Default()
		cfg.UseLoopback(t.TempDir())
		cfg.QueryFrontend.Metrics.QueryBackendAfter = c.after
		a, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), BuildInfo{Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		cancel()
		got := strings.Contains(logs.String(), "query_frontend.metrics.query_backend_after is longer than live_store.window")
		if got != c.warn {
			t.Errorf("query_backend_after %s, window %s: warned %v, want %v\n%s", c.after, cfg.LiveStore.Window, got, c.warn, logs.String())
		}
	}
}
