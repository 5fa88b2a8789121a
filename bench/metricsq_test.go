package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftdb/weft/cmd/weft/config"
)

// Backfilled traces end at [end−span, end−20m], linearly with the ingest's
// progress and clamped outside it, and each is at least 20m old when sent.
func TestBackfillTime(t *testing.T) {
	start := time.Date(2026, 12, 7, 18, 0, 0, 0, time.UTC)
	dur, span := 10*time.Minute, 24*time.Hour
	end := start.Add(dur)
	for _, c := range []struct {
		at   time.Duration // since start
		want time.Time
	}{
		{0, end.Add(-span)},
		{-time.Minute, end.Add(-span)}, // clamped
		{dur / 2, end.Add(-span + (span-backfillLag)/2)},
		{dur, end.Add(-backfillLag)},
		{dur + time.Hour, end.Add(-backfillLag)}, // clamped
	} {
		if got := backfillTime(start, dur, span, start.Add(c.at)); !got.Equal(c.want) {
			t.Errorf("at start%+v: %s, want %s", c.at, got, c.want)
		}
	}
	prev := time.Time{}
	for i := range 101 {
		now := start.Add(dur * time.Duration(i) / 100)
		got := backfillTime(start, dur, span, now)
		if got.Before(prev) {
			t.Fatalf("at %d%%: %s, before the previous %s", i, got, prev)
		}
		if now.Sub(got) < backfillLag {
			t.Fatalf("at %d%%: a trace sent at %s ends at %s, less than %s before", i, now, got, backfillLag)
		}
		prev = got
	}
}

// The generator's traces end at its clock's time.
func TestGeneratorClock(t *testing.T) {
	o := genOptions{Seed: 1, Services: 3, SpansPerTrace: 5, Depth: 4, Batch: 20}
	g := newGenerator(o, 0)
	at := time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)
	g.clock = func() time.Time { return at }
	req, _, _ := g.next()
	roots := 0
	for _, rs := range req.ResourceSpans {
		for _, sp := range rs.ScopeSpans[0].Spans {
			if sp.EndTimeUnixNano > uint64(at.UnixNano()) || sp.StartTimeUnixNano < uint64(at.Add(-10*time.Second).UnixNano()) {
				t.Fatalf("span %q from %d to %d: outside the 10s before the clock's %d", sp.Name, sp.StartTimeUnixNano, sp.EndTimeUnixNano, at.UnixNano())
			}
			if len(sp.ParentSpanId) == 0 {
				roots++
				if sp.EndTimeUnixNano != uint64(at.UnixNano()) {
					t.Fatalf("a root ends at %d, want the clock's %d", sp.EndTimeUnixNano, at.UnixNano())
				}
			}
		}
	}
	if roots != 4 {
		t.Fatalf("%d roots, want 4 traces", roots)
	}
}

// The -backfill config is one weft loads and validates, with a 1m
// live-store window; without it, the window is the default. With
// -metrics-query-timeout, the metrics query timeout is the flag's and the
// HTTP server writes for 30s more; without it, both are weft's defaults.
func TestMonolithicConfigOptions(t *testing.T) {
	ports := []int{3200, 9095, 4317, 4318}
	for _, mo := range []monoOptions{{}, {backfill: true}, {backfill: true, metricsQueryTimeout: 2 * time.Minute}, {metricsQueryTimeout: time.Minute}} {
		cfg, _, err := config.Load("bench.yaml", []byte(monolithicConfig(ports, t.TempDir(), 5*time.Second, nil, mo)), false)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			t.Fatalf("%+v: %v", mo, err)
		}
		window := 20 * time.Minute
		if mo.backfill {
			window = time.Minute
		}
		if cfg.LiveStore.Window != window {
			t.Errorf("%+v: live_store.window %s, want %s", mo, cfg.LiveStore.Window, window)
		}
		qt, wt := 25*time.Second, 30*time.Second
		if mo.metricsQueryTimeout > 0 {
			qt, wt = mo.metricsQueryTimeout, mo.metricsQueryTimeout+30*time.Second
		}
		if cfg.QueryFrontend.Metrics.QueryTimeout != qt || cfg.Server.HTTPServerWriteTimeout != wt {
			t.Errorf("%+v: query_frontend.metrics.query_timeout %s, server.http_server_write_timeout %s; want %s and %s", mo,
				cfg.QueryFrontend.Metrics.QueryTimeout, cfg.Server.HTTPServerWriteTimeout, qt, wt)
		}
		if cfg.QueryFrontend.QueryEndCutoff != 0 {
			t.Errorf("%+v: query_end_cutoff %s", mo, cfg.QueryFrontend.QueryEndCutoff)
		}
		if cfg.QueryFrontend.Metrics.QueryBackendAfter >= backfillLag {
			t.Errorf("query_backend_after %s: the backfilled spans (%s old) would be read from the live-store", cfg.QueryFrontend.Metrics.QueryBackendAfter, backfillLag)
		}
	}
}

// The phase asks each metrics query and the search over the newest
// backfilled hour and the last 24h, without a step.
func TestMetricsSpecs(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	specs := metricsSpecs("checkout", now)
	if len(specs) != 8 {
		t.Fatalf("%d specs, want 3 metrics queries and a search for 2 ranges", len(specs))
	}
	ranges := map[string][2]int64{"1h": {now.Unix() - 4800, now.Unix() - 1200}, "24h": {now.Unix() - 86400, now.Unix()}}
	metrics := 0
	for _, s := range specs {
		r, ok := ranges[s.Range]
		if !ok {
			t.Fatalf("%s: range %q", s.Name, s.Range)
		}
		if s.Params.Get("start") != strconv.FormatInt(r[0], 10) || s.Params.Get("end") != strconv.FormatInt(r[1], 10) {
			t.Errorf("%s over %s: start %s end %s, want %d %d", s.Name, s.Range, s.Params.Get("start"), s.Params.Get("end"), r[0], r[1])
		}
		if s.Params.Has("step") {
			t.Errorf("%s: a step, want the default", s.Name)
		}
		if s.Metrics {
			metrics++
			if s.Path != "/api/metrics/query_range" || !strings.Contains(s.Params.Get("q"), "|") {
				t.Errorf("%s: %s q=%s", s.Name, s.Path, s.Params.Get("q"))
			}
		} else if s.Path != "/api/search" || s.Params.Get("limit") != "20" || s.Params.Get("q") != `{ resource.service.name = "checkout" }` {
			t.Errorf("search: %s %v", s.Path, s.Params)
		}
	}
	if metrics != 6 {
		t.Errorf("%d metrics specs, want 6", metrics)
	}
	if q := metricsQueries("checkout")[1]; q != `{ resource.service.name = "checkout" && status = error } | count_over_time()` {
		t.Errorf("filtered query %s", q)
	}
}

// A query_range answer gives its series, status, message, and counts
// written as numbers or strings; a search answer its traces.
func TestParseMetricsAnswer(t *testing.T) {
	a, err := parseMetricsAnswer([]byte(`{"series":[{"labels":[{"key":"span:id","value":{"stringValue":"a"}}],"samples":[{"timestampMs":"1000","value":1}]},
		{"labels":[],"samples":[]}],"metrics":{"inspectedBytes":"123456","totalJobs":17,"completedJobs":12},
		"status":"PARTIAL","message":"the answer reached 1000 series (query_frontend.metrics.max_response_series)"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Series) != 2 || a.Status != "PARTIAL" || !strings.Contains(a.Message, "max_response_series") {
		t.Errorf("series %d, status %q, message %q", len(a.Series), a.Status, a.Message)
	}
	if b, j := metricUint(a.Metrics, "inspectedBytes"), metricUint(a.Metrics, "totalJobs"); b != 123456 || j != 17 {
		t.Errorf("inspectedBytes %d, totalJobs %d", b, j)
	}
	if n := metricUint(a.Metrics, "totalBlocks"); n != 0 {
		t.Errorf("an absent count is %d", n)
	}
	a, err = parseMetricsAnswer([]byte(`{"traces":[{"traceID":"1"},{"traceID":"2"},{"traceID":"3"}],"metrics":{"totalJobs":"4"}}`))
	if err != nil || len(a.Traces) != 3 || len(a.Series) != 0 || metricUint(a.Metrics, "totalJobs") != 4 {
		t.Errorf("search answer: %+v, %v", a, err)
	}
	if _, err := parseMetricsAnswer([]byte(`<html>`)); err == nil {
		t.Error("an HTML answer decoded")
	}
}

// p95 is the 19th of 20 runs (nearest rank): with 2 slow runs it is
// slow, with 1 it is not; answers other than a 200
// with JSON are failures, named in the first error, and left out of the
// latencies but not of the requests.
func TestRunMetricsQuery(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/metrics/query_range" || r.URL.Query().Get("q") != "{ } | rate()" {
			http.Error(w, "wrong request "+r.URL.String(), http.StatusBadRequest)
			return
		}
		i := n.Add(1)
		switch {
		case i <= 2 || i == 40:
			time.Sleep(500 * time.Millisecond)
		case i == 41:
			http.Error(w, "engine exploded", http.StatusInternalServerError)
			return
		case i == 42:
			w.Write([]byte("not json"))
			return
		}
		if i > 40 { // a complete answer, as proto JSON writes it: no status
			fmt.Fprint(w, `{"series":[{},{},{}],"metrics":{"inspectedBytes":"99","totalJobs":2}}`)
			return
		}
		fmt.Fprint(w, `{"series":[{},{},{}],"metrics":{"inspectedBytes":"99","totalJobs":2},"status":"PARTIAL"}`)
	}))
	defer srv.Close()
	spec := querySpec{Name: "rate", Path: "/api/metrics/query_range", Metrics: true, Range: "1h", Params: rangeParams(metricsRange{Start: time.Unix(100, 0), End: time.Unix(200, 0)}, "q", "{ } | rate()")}
	self := func() []int { return []int{os.Getpid()} }
	r := runMetricsQuery(srv.URL, spec, 20, 0, self)
	if r.Requests != 20 || r.Failures != 0 || r.Series != 3 || r.Status != "PARTIAL" || r.Partial != 20 || r.PartialMessage != "(no message)" || r.InspectedBytes != 99 || r.TotalJobs != 2 {
		t.Fatalf("%+v", r)
	}
	if r.P95 < 500*time.Millisecond || r.P50 >= 500*time.Millisecond {
		t.Errorf("p50 %s, p95 %s: want the 10th and the 19th of 20, 2 of which took 500ms", r.P50, r.P95)
	}
	if !r.CPUMeasured || r.ServerCPUPerQuery < 0 {
		t.Errorf("CPU measured %v, %g s/query", r.CPUMeasured, r.ServerCPUPerQuery)
	}
	r = runMetricsQuery(srv.URL, spec, 20, 0, nil) // one slow run
	if r.P95 >= 500*time.Millisecond || r.P50 >= 500*time.Millisecond {
		t.Errorf("p50 %s, p95 %s: want the 10th and the 19th of 20, 1 of which took 500ms", r.P50, r.P95)
	}
	r = runMetricsQuery(srv.URL, spec, 3, 0, nil)
	if r.Requests != 3 || r.Failures != 2 || !strings.Contains(r.FirstError, "500 engine exploded") || r.Series != 3 || r.Status != "COMPLETE" || r.Partial != 0 || r.CPUMeasured {
		t.Fatalf("%+v", r)
	}
	// The budget stops the runs after the first, which always runs.
	n.Store(0)
	r = runMetricsQuery(srv.URL, spec, 20, time.Millisecond, nil)
	if r.Requests != 1 {
		t.Errorf("%d requests with a spent budget, want 1", r.Requests)
	}
}

// -backfill must leave every trace 20m old when sent, and is refused where
// the bench cannot set the live-store's window or counts current spans.
func TestBackfillFlags(t *testing.T) {
	saved := os.Args
	defer func() { os.Args = saved }()
	for _, c := range []struct {
		args string
		bad  string // in the error; "" for none
	}{
		{"-duration 40s -backfill 24h -metrics", ""},
		{"-duration 10m -backfill 30m", ""},
		{"-duration 11m -backfill 30m", "at least -duration + 20m"},
		{"-backfill -1h", "must not be negative"},
		{"-backfill 24h -generator-ab 2", "-generator-ab"},
		{"-metrics -generator-ab 2", "-generator-ab"},
		{"-backfill 24h -profile microservices", "live_store.window"},
		{"-backfill 24h -endpoint 127.0.0.1:4317 -query-url http://127.0.0.1:3200", ""},
		{"-metrics -metrics-query-timeout 5m", ""},
		{"-metrics-query-timeout 10m", "under 10m0s"},
		{"-metrics-query-timeout -1s", "must not be negative"},
		{"-metrics-query-timeout 1m -endpoint 127.0.0.1:4317 -query-url http://127.0.0.1:3200", "weft monolithic"},
	} {
		os.Args = append([]string{"bench"}, strings.Fields(c.args)...)
		f, err := parseFlags()
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%s: %v", c.args, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%s: error %v, want one with %q", c.args, err, c.bad)
		case err == nil && strings.Contains(c.args, "-backfill 24h") && f.ingest.Backfill != 24*time.Hour:
			t.Errorf("%s: backfill %s", c.args, f.ingest.Backfill)
		}
	}
}

// The report gives the series-per-span query's status, series and peak
// RSS, and a row per request, with "–" for the latency of a request
// never answered.
func TestMetricsReport(t *testing.T) {
	var b strings.Builder
	writeMarkdown(&b, &results{Metrics: &metricsPhase{
		Restarted: true, PeakRSSBefore: 100 << 20, PeakRSSAfter: 700 << 20,
		MillionSeries: &metricsResult{Name: "`" + millionSeriesQuery + "`", Range: "24h", Metrics: true, Requests: 1, Status: "PARTIAL", Message: "reached 1000 series", Series: 1000, P50: 4 * time.Second, CPUMeasured: true, ServerCPUPerQuery: 6.5},
		Queries: []metricsResult{
			{Name: "`{ } | rate()`", Range: "1h", Metrics: true, Requests: 5, Series: 10, Status: "COMPLETE", P50: 30 * time.Millisecond, P95: 45 * time.Millisecond, CPUMeasured: true, ServerCPUPerQuery: 0.25, TotalJobs: 3, InspectedBytes: 12345},
			{Name: "search x", Range: "24h", Requests: 2, Failures: 2, FirstError: "504 query_frontend.metrics.query_timeout"},
			{Name: "`{ } | count_over_time()`", Range: "24h", Metrics: true, Requests: 4, Failures: 1, Status: "COMPLETE", Partial: 2, PartialMessage: "block b could not be read"},
		},
	}})
	out := b.String()
	for _, want := range []string{
		"## TraceQL metrics (on blocks, after a restart)",
		"| status | PARTIAL |", "| series | 1000 |", "| message | reached 1000 series |",
		"| server peak RSS (VmHWM) before / right after | 100 MiB / 700 MiB |", "| server CPU seconds | 6.50 |",
		"| 1h | `{ } \\| rate()` | 5 | 0 | COMPLETE | 10 series | 12345 | 3 | 30.0 ms | 45.0 ms | 0.25 |",
		"| 24h | search x | 2 | 2 | – | 0 traces | 0 | 0 | – | – | n/a |",
		"first error: 504 query_frontend.metrics.query_timeout",
		"- 24h, `{ } | count_over_time()`: 2 of 3 answers PARTIAL; the first said: block b could not be read",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}
