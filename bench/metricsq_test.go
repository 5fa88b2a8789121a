package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/procstat"
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
		{"-metrics -metrics-query-time -1s", "-metrics-query-time must not be negative"},
		{"-metrics -settle -1s", "-settle must not be negative"},
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
		Restarted: true, PeakRSSBefore: 100 << 20, RSSBefore: 90 << 20, PeakRSSAfter: 700 << 20, PeakReset: true,
		Settle:        &settleResult{Settled: true, Waited: 95 * time.Second, Blocks: 24},
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
		"| server RSS just before (VmRSS) / peak during it (VmHWM, reset just before) | 90 MiB / 700 MiB |",
		"| server peak RSS since the restart, before it (VmHWM) | 100 MiB |",
		"Compaction settled 1m35s after the restart, before the phase: 24 blocks, none outstanding.", "| server CPU seconds | 6.50 |",
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

// Settled: no outstanding compaction and the same block count for the
// whole quiet time, up to the last sample.
func TestSettled(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int, outstanding, blocks float64) settleSample {
		return settleSample{at: t0.Add(time.Duration(s) * time.Second), outstanding: outstanding, blocks: blocks}
	}
	for _, c := range []struct {
		name    string
		samples []settleSample
		want    bool
	}{
		{"none", nil, false},
		{"quiet for 35s", []settleSample{at(0, 4, 50), at(5, 0, 20), at(40, 0, 20)}, true},
		{"quiet for 34s", []settleSample{at(0, 4, 50), at(6, 0, 20), at(40, 0, 20)}, false},
		{"blocks changed", []settleSample{at(0, 0, 21), at(20, 0, 20), at(40, 0, 20)}, false},
		{"outstanding again", []settleSample{at(0, 0, 20), at(20, 2, 20), at(40, 0, 20)}, false},
		{"outstanding now", []settleSample{at(0, 0, 20), at(40, 2, 20)}, false},
		{"no gauge", []settleSample{at(0, -1, 20), at(40, -1, 20)}, false},
	} {
		if got := settled(c.samples, 35*time.Second); got != c.want {
			t.Errorf("%s: settled %v, want %v", c.name, got, c.want)
		}
	}
}

// waitSettled reads the server's /metrics until compaction is idle and the
// block count steady, or gives up at its limit.
func TestWaitSettled(t *testing.T) {
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := reads.Add(1)
		outstanding := max(0, 3-n) // 2, 1, then 0
		fmt.Fprintf(w, "# HELP x\ntempodb_compaction_outstanding_blocks{tenant=\"a\"} %d\ntempodb_compaction_outstanding_blocks{tenant=\"b\"} 0\n"+
			"weft_blocklist_blocks{tenant=\"a\"} %d\nweft_blocklist_blocks{tenant=\"b\"} 5\nweft_blocklist_blocks_reopened_total 7\n", outstanding, 10+outstanding)
	}))
	defer srv.Close()
	r := waitSettled(context.Background(), srv.URL, 5*time.Second, 50*time.Millisecond, 10*time.Millisecond)
	if !r.Settled || r.Outstanding != 0 || r.Blocks != 15 || reads.Load() < 4 {
		t.Fatalf("%+v after %d reads", r, reads.Load())
	}
	reads.Store(-1000) // outstanding for a long while
	r = waitSettled(context.Background(), srv.URL, 100*time.Millisecond, 50*time.Millisecond, 10*time.Millisecond)
	if r.Settled || r.Waited < 100*time.Millisecond || r.Outstanding < 900 {
		t.Fatalf("%+v", r)
	}
	if v, ok := sumMetric("weft_x 1\nweft_xy 5\nweft_x{a=\"b\"} 2.5\n", "weft_x"); !ok || v != 3.5 {
		t.Errorf("sum %g %v, want 3.5", v, ok)
	}
	if _, ok := sumMetric("weft_xy 5\n", "weft_x"); ok {
		t.Error("another metric's samples counted")
	}
}

// After resetPeakRSS, VmHWM is the RSS now, not the earlier peak.
func TestResetPeakRSS(t *testing.T) {
	self := func() []int { return []int{os.Getpid()} }
	b := make([]byte, 256<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
	debug.FreeOSMemory()
	if hwm, now := rss(self, procstat.PeakRSS), rss(self, procstat.RSS); hwm-now < 128<<20 {
		t.Skipf("VmHWM %d, VmRSS %d: the freed memory was not given back, cannot test", hwm, now)
	}
	if err := resetPeakRSS(self); err != nil {
		t.Fatal(err)
	}
	if hwm, now := rss(self, procstat.PeakRSS), rss(self, procstat.RSS); hwm-now > 32<<20 {
		t.Fatalf("after the reset VmHWM %d, VmRSS %d", hwm, now)
	}
	if err := resetPeakRSS(nil); err == nil {
		t.Error("no error without processes")
	}
}
