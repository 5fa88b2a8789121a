package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/weftdb/weft/internal/procstat"
)

// The -metrics phase measures TraceQL metrics (/api/metrics/query_range)
// on blocks, beside a search over the same ranges: the latency, the
// server's CPU per query, what the backend read, and, for a query with a
// series per span, that the answer stops at the series cap (PARTIAL) and
// what the server's memory peaked at.

// issueSpans is the fewest spans in blocks that the metrics figures are
// asked over (weft issue 17): fewer gets a note in the report.
const issueSpans = 10_000_000

// metricsQueryTimeout bounds a request of the phase: more than the
// server's own bounds (query_frontend.metrics.query_timeout, 25s by
// default, or -metrics-query-timeout), so that the figures are the
// server's answers.
const metricsQueryTimeout = 10 * time.Minute

// millionSeriesQuery has one series per span: over ≥ 10M spans, far more
// than query_frontend.metrics.max_response_series.
const millionSeriesQuery = `{ } | count_over_time() by (span:id)`

// metricsRange is one time range of the phase.
type metricsRange struct {
	Name       string
	Start, End time.Time
}

// metricsRanges are the phase's ranges at now: 1h ending backfillLag ago
// (the newest backfilled hour) and the last 24h.
func metricsRanges(now time.Time) []metricsRange {
	return []metricsRange{
		{Name: "1h", Start: now.Add(-time.Hour - backfillLag), End: now.Add(-backfillLag)},
		{Name: "24h", Start: now.Add(-24 * time.Hour), End: now},
	}
}

// metricsQueries are the measured metrics queries; service is the
// generated service the filtered one selects.
func metricsQueries(service string) []string {
	return []string{
		`{ } | rate() by (resource.service.name)`,
		fmt.Sprintf(`{ resource.service.name = %q && status = error } | count_over_time()`, service),
		`{ } | quantile_over_time(duration, .99)`,
	}
}

// metricsSpecs are the phase's measured requests: each metrics query,
// then the search, for each range. step is left out: the backend's default.
func metricsSpecs(service string, now time.Time) []querySpec {
	var specs []querySpec
	for _, r := range metricsRanges(now) {
		for _, q := range metricsQueries(service) {
			specs = append(specs, metricsSpec(q, r))
		}
		specs = append(specs, querySpec{
			Name:   fmt.Sprintf("search `{ resource.service.name = %q }` (limit 20)", service),
			Path:   "/api/search",
			Range:  r.Name,
			Params: rangeParams(r, "q", fmt.Sprintf(`{ resource.service.name = %q }`, service), "limit", "20"),
		})
	}
	return specs
}

func metricsSpec(q string, r metricsRange) querySpec {
	return querySpec{Name: "`" + q + "`", Path: "/api/metrics/query_range", Range: r.Name, Metrics: true, Params: rangeParams(r, "q", q)}
}

// rangeParams are r as start and end in unix seconds, and kv.
func rangeParams(r metricsRange, kv ...string) url.Values {
	v := url.Values{"start": {strconv.FormatInt(r.Start.Unix(), 10)}, "end": {strconv.FormatInt(r.End.Unix(), 10)}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// metricsAnswer is the part of a query_range or search JSON answer that
// the phase reads.
type metricsAnswer struct {
	Series  []json.RawMessage `json:"series"`
	Traces  []json.RawMessage `json:"traces"`
	Metrics map[string]any    `json:"metrics"`
	Status  string            `json:"status"`
	Message string            `json:"message"`
}

// parseMetricsAnswer decodes a JSON answer of /api/metrics/query_range or
// /api/search.
func parseMetricsAnswer(body []byte) (metricsAnswer, error) {
	var a metricsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, fmt.Errorf("cannot decode the answer: %w", err)
	}
	return a, nil
}

// metricUint reads a number of an answer's metrics: Tempo writes 64-bit
// counts as strings and 32-bit ones as numbers. 0 when absent or not a
// count.
func metricUint(m map[string]any, key string) uint64 {
	switch v := m[key].(type) {
	case string:
		n, _ := strconv.ParseUint(v, 10, 64)
		return n
	case float64:
		if v >= 0 {
			return uint64(v)
		}
	}
	return 0
}

// metricsResult is one request of the phase run n times.
type metricsResult struct {
	Name       string `json:"name"`
	Range      string `json:"range"` // 1h, 24h
	Metrics    bool   `json:"metrics"`
	URL        string `json:"url"`
	Requests   int    `json:"requests"` // sent, answered or not
	Failures   int    `json:"failures"`
	FirstError string `json:"first_error,omitempty"`
	// Of the last answer that decoded:
	Status         string `json:"status,omitempty"`
	Message        string `json:"message,omitempty"`
	Series         int    `json:"series"`
	Traces         int    `json:"traces"`
	InspectedBytes uint64 `json:"inspected_bytes"`
	TotalJobs      uint64 `json:"total_jobs"`
	// Partial counts the answers with status PARTIAL; PartialMessage is
	// the message of the first.
	Partial        int    `json:"partial"`
	PartialMessage string `json:"partial_message,omitempty"`
	// Latencies of the answers with status 200.
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	// ServerCPUPerQuery is the server's utime+stime over the runs ÷
	// Requests; CPUMeasured is false when the server's PIDs are unknown.
	ServerCPUPerQuery float64 `json:"server_cpu_seconds_per_query"`
	CPUMeasured       bool    `json:"cpu_measured"`
}

// metricsPhase is what the -metrics phase measured.
type metricsPhase struct {
	Note string `json:"note,omitempty"`
	// Restarted: the server was restarted just before (every read is from
	// blocks, and its VmHWM is that of the phase only).
	Restarted bool `json:"restarted"`
	// Settle is the wait for compaction before the phase (-settle).
	Settle *settleResult `json:"settle,omitempty"`
	// The server's memory around the million-series query (0: not
	// measured): PeakRSSBefore is VmHWM before it (since the process
	// started), RSSBefore VmRSS just before it, and PeakRSSAfter VmHWM
	// right after it: since just before it when PeakReset (VmHWM was
	// reset to VmRSS through /proc/<pid>/clear_refs), else since the
	// process started.
	PeakRSSBefore int64           `json:"peak_rss_since_start_bytes"`
	RSSBefore     int64           `json:"rss_before_million_series_bytes"`
	PeakRSSAfter  int64           `json:"peak_rss_after_million_series_bytes"`
	PeakReset     bool            `json:"peak_rss_reset"`
	MillionSeries *metricsResult  `json:"million_series,omitempty"`
	Queries       []metricsResult `json:"queries"`
	Now           time.Time       `json:"now"` // the "now" of the ranges
}

// runMetricsQuery runs spec up to n times in a row, fewer (at least once)
// once the runs took budget, and measures the server's CPU over the runs
// when pids is not nil.
func runMetricsQuery(queryURL string, spec querySpec, n int, budget time.Duration, pids func() []int) metricsResult {
	client := &http.Client{Timeout: metricsQueryTimeout}
	enc := spec.Params.Encode()
	r := metricsResult{Name: spec.Name, Range: spec.Range, Metrics: spec.Metrics, URL: spec.Path + "?" + enc}
	var before procStat
	if pids != nil {
		before = measure(pids())
	}
	var lats []time.Duration
	began := time.Now()
	for i := range max(n, 1) {
		if i > 0 && budget > 0 && time.Since(began) >= budget {
			break
		}
		r.Requests++
		t0 := time.Now()
		resp, err := client.Get(queryURL + spec.Path + "?" + enc)
		if err != nil {
			r.Failures++
			r.FirstError = firstOf(r.FirstError, err.Error())
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat := time.Since(t0)
		if err != nil || resp.StatusCode != http.StatusOK {
			r.Failures++
			r.FirstError = firstOf(r.FirstError, fmt.Sprintf("%d %.300s", resp.StatusCode, body))
			continue
		}
		a, err := parseMetricsAnswer(body)
		if err != nil {
			r.Failures++
			r.FirstError = firstOf(r.FirstError, fmt.Sprintf("%v: %.200s", err, body))
			continue
		}
		lats = append(lats, lat)
		r.Status, r.Message, r.Series, r.Traces = a.Status, a.Message, len(a.Series), len(a.Traces)
		if spec.Metrics && r.Status == "" {
			// PartialStatus's zero value, which proto JSON leaves out.
			r.Status = "COMPLETE"
		}
		if r.Status == "PARTIAL" {
			r.Partial++
			r.PartialMessage = firstOf(r.PartialMessage, firstOf(r.Message, "(no message)"))
		}
		r.InspectedBytes, r.TotalJobs = metricUint(a.Metrics, "inspectedBytes"), metricUint(a.Metrics, "totalJobs")
	}
	if pids != nil {
		after := measure(pids())
		r.CPUMeasured = after.procs > 0 && after.procs == before.procs
		if r.CPUMeasured {
			r.ServerCPUPerQuery = (after.cpuSeconds - before.cpuSeconds) / float64(r.Requests)
		}
	}
	r.P50, r.P95 = percentile(lats, 0.50), percentile(lats, 0.95)
	return r
}

// rss is the summed field (procstat.RSS, procstat.PeakRSS) of pids; 0
// when pids is nil.
func rss(pids func() []int, field string) int64 {
	if pids == nil {
		return 0
	}
	var n int64
	for _, pid := range pids() {
		n += procstat.Bytes(pid, field)
	}
	return n
}

// resetPeakRSS sets the VmHWM of pids to their VmRSS (Linux's
// /proc/<pid>/clear_refs, value 5), so that a later VmHWM is the peak
// since now.
func resetPeakRSS(pids func() []int) error {
	if pids == nil {
		return errors.New("the server's processes are not known")
	}
	for _, pid := range pids() {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			return fmt.Errorf("cannot reset the peak RSS of process %d: %w", pid, err)
		}
	}
	return nil
}

// runMetricsPhase waits up to settle for compaction to settle (0: not at
// all), then measures the million-series query once, then each of
// metricsSpecs; once ctx is done (Ctrl-C) it skips the rest.
func runMetricsPhase(ctx context.Context, t *target, service string, queries int, queryTime, settle time.Duration, restarted bool) *metricsPhase {
	ph := &metricsPhase{Restarted: restarted}
	if settle > 0 {
		progress("metrics: waiting up to %s for compaction to settle (tempodb_compaction_outstanding_blocks 0 and weft_blocklist_blocks steady for %s)", settle, settleQuiet)
		s := waitSettled(ctx, t.queryURL, settle, settleQuiet, 5*time.Second)
		ph.Settle = &s
		progress("metrics: compaction settled %v after %s: %.0f blocks, %.0f outstanding", s.Settled, s.Waited.Round(time.Second), s.Blocks, s.Outstanding)
	}
	now := time.Now()
	ph.Now = now
	ranges := metricsRanges(now)
	big := metricsSpec(millionSeriesQuery, ranges[len(ranges)-1])
	progress("metrics: %s over %s, once", big.Name, big.Range)
	ph.PeakRSSBefore = rss(t.pids, procstat.PeakRSS)
	if err := resetPeakRSS(t.pids); err != nil {
		ph.Note = firstOf(ph.Note, err.Error()+": the peak RSS after the series-per-span query is since the process started")
	} else {
		ph.PeakReset = true
	}
	ph.RSSBefore = rss(t.pids, procstat.RSS)
	m := runMetricsQuery(t.queryURL, big, 1, 0, t.pids)
	ph.PeakRSSAfter = rss(t.pids, procstat.PeakRSS)
	if ph.PeakRSSAfter == 0 && ph.PeakRSSBefore > 0 {
		ph.Note = firstOf(ph.Note, "the server's process was gone right after the series-per-span query (a crash, or killed for its memory?): see its log (-keep)")
	}
	ph.MillionSeries = &m
	for _, spec := range metricsSpecs(service, now) {
		if ctx.Err() != nil {
			ph.Note = "interrupted: the rest of the metrics phase was skipped"
			break
		}
		progress("metrics: %s over %s", spec.Name, spec.Range)
		ph.Queries = append(ph.Queries, runMetricsQuery(t.queryURL, spec, queries, queryTime, t.pids))
	}
	return ph
}

// settleQuiet is how long compaction must have had nothing to do, and
// the block list stayed the same, for the blocks to be settled: a
// compaction cycle (backend_scheduler...compaction_cycle, 30s) and a bit.
const settleQuiet = 35 * time.Second

// settleSample is one read of the server's compaction state.
type settleSample struct {
	at time.Time
	// outstanding is tempodb_compaction_outstanding_blocks summed over
	// tenants, −1 when the server has not reported it (yet).
	outstanding float64
	blocks      float64 // weft_blocklist_blocks, summed over tenants
}

// settled tells whether samples, oldest first, end quiet or more with no
// outstanding compaction and the same number of blocks.
func settled(samples []settleSample, quiet time.Duration) bool {
	if len(samples) == 0 {
		return false
	}
	last := samples[len(samples)-1]
	for i := len(samples) - 1; i >= 0; i-- {
		s := samples[i]
		if s.outstanding != 0 || s.blocks != last.blocks {
			return false
		}
		if last.at.Sub(s.at) >= quiet {
			return true
		}
	}
	return false
}

// settleResult is what the wait for compaction saw.
type settleResult struct {
	Settled     bool          `json:"settled"`
	Waited      time.Duration `json:"waited_ns"`
	Outstanding float64       `json:"outstanding_blocks"` // at the end; −1 unknown
	Blocks      float64       `json:"blocks"`             // at the end
}

// waitSettled polls queryURL's /metrics every so often, up to limit,
// until settled for quiet: so that the phase measures queries over
// compacted blocks with compaction idle, not compaction's CPU and a block
// list that changes under the queries.
func waitSettled(ctx context.Context, queryURL string, limit, quiet, every time.Duration) settleResult {
	began := time.Now()
	var samples []settleSample
	for {
		s := settleSample{at: time.Now(), outstanding: -1}
		if body, ok := readMetrics(queryURL); ok {
			if v, ok := sumMetric(body, "tempodb_compaction_outstanding_blocks"); ok {
				s.outstanding = v
			}
			s.blocks, _ = sumMetric(body, "weft_blocklist_blocks")
		}
		samples = append(samples, s)
		r := settleResult{Settled: settled(samples, quiet), Waited: time.Since(began), Outstanding: s.outstanding, Blocks: s.blocks}
		if r.Settled || r.Waited >= limit {
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(min(every, limit-r.Waited)):
		}
	}
}

// readMetrics is the text of queryURL's /metrics.
func readMetrics(queryURL string) (string, bool) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(queryURL + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", false
	}
	return string(body), true
}

// sumMetric sums the samples of the metric name (every label set) in a
// Prometheus text exposition; ok is false when it has none.
func sumMetric(body, name string) (sum float64, ok bool) {
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			ok = true
		}
	}
	return sum, ok
}
