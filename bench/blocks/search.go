package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/query/frontend"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// searchLimit is the limit of every measured search (Tempo's default).
const searchLimit = 20

// searchCases are the measured searches, over spangen's attributes.
var searchCases = []struct{ name, query string }{
	{"service", `{ resource.service.name = "service-3" }`},
	{"errors, slow", `{ span.http.response.status_code >= 500 && duration > 100ms }`},
	{"db >> error", `{ span.db.system = "postgresql" } >> { status = error }`},
	{"rare", `{ span.http.response.status_code >= 500 && duration > 495ms && name = "GET /healthz" }`},
	{"no match", `{ resource.service.name = "absent" }`},
	{"service, most recent", `{ resource.service.name = "service-3" } with (most_recent=true)`},
}

// profileDir, when set (-cpuprofile), receives a CPU profile of the
// measured runs of each search, named after the search and the label.
var profileDir string

// startProfile starts the CPU profile of search name; the function it
// returns stops it and closes the file.
func startProfile(name, label string) (func() error, error) {
	slug := strings.NewReplacer(" ", "-", ",", "", ">", "").Replace(name + label)
	f, err := os.Create(filepath.Join(profileDir, slug+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// tagValueCases are the measured tag values requests (v2 names).
var tagValueCases = []string{"resource.service.name", "span.http.response.status_code", "name"}

// searchResult is what the runs of one search found.
type searchResult struct {
	first   time.Duration   // the warm-up run
	lat     []time.Duration // the measured runs, sorted
	traces  []*search.Trace // of the last run
	metrics []search.Metrics
	// running is the most jobs still running on the querier when a search
	// returned; drain the longest they took to end after it.
	running int64
	drain   time.Duration
}

// countingQuerier counts the jobs running on a querier.
type countingQuerier struct {
	q       frontend.Querier
	running atomic.Int64
}

func (c *countingQuerier) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	c.running.Add(1)
	defer c.running.Add(-1)
	return c.q.SearchJob(ctx, tenant, job)
}

// settle waits until no job runs and returns how long that took.
func (c *countingQuerier) settle() time.Duration {
	t0 := time.Now()
	for c.running.Load() > 0 {
		time.Sleep(100 * time.Microsecond)
	}
	return time.Since(t0)
}

// timeRange is the span time range of the tenant's blocks.
func timeRange(list *blocklist.List, tenant string) (start, end time.Time) {
	for _, e := range list.Blocks(tenant, time.Time{}, time.Time{}) {
		if start.IsZero() || e.Meta.StartTime.Before(start) {
			start = e.Meta.StartTime
		}
		if e.Meta.EndTime.After(end) {
			end = e.Meta.EndTime
		}
	}
	return start, end
}

// benchSearch measures the searches and the tag requests through the read
// path a single-binary weft runs: query-frontend → querier job runner →
// searcher → block readers, whole traces read back by the querier.
func benchSearch(ctx context.Context, list *blocklist.List, bkt objstore.BucketReader, tenant string, runs, concurrentJobs int, check bool, label string, fig *figures) error {
	reg := prometheus.NewRegistry()
	s := search.New(nil, list, bkt)
	finder := querier.New(querier.DefaultConfig(), nil, list, bkt, reg)
	s.SetFinder(finder)
	runner := querier.NewJobRunner(s, querier.DefaultConfig(), reg)
	cfg := frontend.DefaultConfig()
	cfg.QueryEndCutoff = 0
	start, end := timeRange(list, tenant)
	cfg.Search.MaxDuration = max(cfg.Search.MaxDuration, end.Sub(start)+time.Hour)
	cfg.Search.QueryTimeout = 0 // a slow search is a result, not an error
	if concurrentJobs > 0 {
		cfg.Search.ConcurrentJobs = concurrentJobs
	}
	cq := &countingQuerier{q: runner}
	fe := frontend.New(cfg, s, cq, s.Finder(), reg)

	fmt.Printf("\n### Search%s (query-frontend → querier, in process)\n\n", label)
	fmt.Printf("limit %d, %d runs after one warm-up; time range %s – %s (all %d blocks); query_frontend.search.concurrent_jobs %d,\n",
		searchLimit, runs, start.UTC().Format(time.TimeOnly), end.UTC().Format(time.TimeOnly), list.Count(tenant), cfg.Search.ConcurrentJobs)
	fmt.Printf("querier.max_concurrent_queries %d, query_timeout off (weft's default of %s would fail slower searches with 504).\n",
		querier.DefaultConfig().MaxConcurrentQueries, frontend.DefaultConfig().Search.QueryTimeout)
	fmt.Printf("Warm: each block reader caches the Parquet footer after first use, as in a long-running querier;\n")
	fmt.Printf("\"first\" is the warm-up run (footers cold unless trace-by-ID ran before). p95 and p99 of %d runs are their maximum when runs < 20 and < 100.\n", runs)
	fmt.Printf("Bytes read from the bucket when a footer is first loaded are not counted in inspectedBytes.\n\n")
	fmt.Printf("Jobs the frontend no longer needs are canceled and may still be running when it returns: \"left running\" is the most\n")
	fmt.Printf("such jobs and how long the slowest took to end; each run waits for them, so runs do not slow each other down.\n\n")
	fmt.Println("| query | p50 | p95 | p99 | first | traces | inspectedBytes | inspectedSpans | inspectedTraces | jobs done/total | totalBlocks | totalBlockBytes | left running |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	results := make([]searchResult, len(searchCases))
	for i, c := range searchCases {
		req := search.Request{Query: c.query, Limit: searchLimit, Start: start, End: end}
		r := &results[i]
		var stopProfile func() error
		for k := 0; k <= runs; k++ {
			if k == 1 && profileDir != "" {
				var err error
				if stopProfile, err = startProfile(c.name, label); err != nil {
					return err
				}
			}
			t0 := time.Now()
			resp, err := fe.Search(ctx, req, tenant)
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("search %s: %w", c.query, err)
			}
			// The frontend cancels the jobs it no longer needs and returns
			// without waiting for them: let them end before the next run.
			r.running = max(r.running, cq.running.Load())
			r.drain = max(r.drain, cq.settle())
			if k == 0 {
				r.first = d
				continue
			}
			r.lat = append(r.lat, d)
			r.traces = resp.Traces
			r.metrics = append(r.metrics, *resp.Metrics)
		}
		if stopProfile != nil {
			if err := stopProfile(); err != nil {
				return err
			}
		}
		slices.Sort(r.lat)
		fig.searches[c.name] = r.lat
		m := func(f func(search.Metrics) uint64, unit func(uint64) string) string {
			return spread(r.metrics, f, unit)
		}
		fmt.Printf("| `%s` | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %d jobs, %s |\n", c.query,
			ms(latencies(r.lat).at(0.5)), ms(latencies(r.lat).at(0.95)), ms(latencies(r.lat).at(0.99)), ms(r.first), len(r.traces),
			m(func(m search.Metrics) uint64 { return m.InspectedBytes }, mb),
			m(func(m search.Metrics) uint64 { return m.InspectedSpans }, num),
			m(func(m search.Metrics) uint64 { return uint64(m.InspectedTraces) }, num),
			m(func(m search.Metrics) uint64 { return uint64(m.CompletedJobs) }, num)+"/"+
				m(func(m search.Metrics) uint64 { return uint64(m.TotalJobs) }, num),
			m(func(m search.Metrics) uint64 { return uint64(m.TotalBlocks) }, num),
			m(func(m search.Metrics) uint64 { return m.TotalBlockBytes }, mb), r.running, ms(r.drain))
	}
	fmt.Println("\nA range a–b is the least and the most over the runs (jobs run concurrently and stop once the limit is reached).")

	if err := benchTags(ctx, s, tenant, start, end, runs); err != nil {
		return err
	}
	if check {
		return checkSearches(ctx, list, bkt, tenant, results)
	}
	return nil
}

// benchTags measures TagValuesV2 and TagNamesV2 on the searcher.
func benchTags(ctx context.Context, s *search.Searcher, tenant string, start, end time.Time, runs int) error {
	fmt.Printf("\n### Tag values and names (searcher, blocks of the time range)\n\n")
	fmt.Printf("%d runs after one warm-up (footers cached).\n\n", runs)
	fmt.Println("| request | p50 | p99 | first | values | inspectedBytes | blocks | totalBlockBytes |")
	fmt.Println("|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, name := range tagValueCases {
		req := search.TagsRequest{Name: name, Start: start, End: end}
		var first time.Duration
		var lat []time.Duration
		var resp *search.TagValuesV2Response
		for k := 0; k <= runs; k++ {
			t0 := time.Now()
			var err error
			resp, err = s.TagValuesV2(ctx, req, tenant)
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("tag values %s: %w", name, err)
			}
			if k == 0 {
				first = d
			} else {
				lat = append(lat, d)
			}
		}
		slices.Sort(lat)
		var vals []string
		for _, v := range resp.TagValues {
			vals = append(vals, v.Value)
		}
		desc := fmt.Sprintf("%d", len(vals))
		if len(vals) > 0 {
			desc += fmt.Sprintf(" (%s %s)", resp.TagValues[0].Type, abbrev(vals, 4))
		}
		if resp.Truncated != "" {
			desc += ", " + resp.Truncated
		}
		fmt.Printf("| values of `%s` | %s | %s | %s | %s | %s | %d | %s |\n", name,
			ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), ms(first), desc,
			mb(resp.Metrics.InspectedBytes), resp.Metrics.TotalBlocks, mb(resp.Metrics.TotalBlockBytes))
	}
	t0 := time.Now()
	names, err := s.TagNamesV2(ctx, search.TagsRequest{Start: start, End: end}, tenant)
	d := time.Since(t0)
	if err != nil {
		return fmt.Errorf("tag names: %w", err)
	}
	var per []string
	for _, sc := range names.Scopes {
		per = append(per, fmt.Sprintf("%s %d", sc.Name, len(sc.Tags)))
	}
	fmt.Printf("| names (v2, all scopes), once | %s | | | %s | %s | %d | %s |\n",
		ms(d), strings.Join(per, ", "), mb(names.Metrics.InspectedBytes), names.Metrics.TotalBlocks, mb(names.Metrics.TotalBlockBytes))
	return nil
}

// checkSearches evaluates every search on every whole trace of the blocks
// and checks the results of the last runs against that: each trace
// returned matches, as many as min(limit, matches) are returned, and with
// most_recent they are the most recent matches.
func checkSearches(ctx context.Context, list *blocklist.List, bkt objstore.BucketReader, tenant string, results []searchResult) error {
	type match struct {
		id    string
		start uint64
	}
	roots := make([]*traceql.RootExpr, len(searchCases))
	for i, c := range searchCases {
		var err error
		if roots[i], err = traceql.Parse(c.query); err != nil {
			return err
		}
	}
	matches := make([][]match, len(searchCases))
	t0 := time.Now()
	total := 0
	for _, e := range list.Blocks(tenant, time.Time{}, time.Time{}) {
		r, err := e.Reader(ctx, bkt)
		if err != nil {
			return err
		}
		_, err = r.Scan(ctx, block.ScanRequest{}, func(id [16]byte, data []byte) error {
			t, err := traceql.NewTrace(data)
			if err != nil {
				return err
			}
			total++
			for i, root := range roots {
				sets, err := root.Eval(t)
				if err != nil {
					return fmt.Errorf("%s on trace %x: %w", searchCases[i].query, id, err)
				}
				if len(sets) > 0 {
					matches[i] = append(matches[i], match{hex.EncodeToString(id[:]), t.StartUnixNano})
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("check: block %s: %w", e.Meta.BlockID, err)
		}
	}
	fmt.Printf("\n### Check (every whole trace evaluated, %d traces, %s)\n\n", total, time.Since(t0).Round(time.Millisecond))
	fmt.Println("| query | matching traces | returned | check |")
	fmt.Println("|---|--:|--:|---|")
	bad := 0
	for i, c := range searchCases {
		want := map[string]uint64{}
		for _, m := range matches[i] {
			want[m.id] = m.start
		}
		var problems []string
		got := results[i].traces
		if n := min(searchLimit, len(want)); len(got) != n {
			problems = append(problems, fmt.Sprintf("%d traces returned, want %d", len(got), n))
		}
		for _, t := range got {
			if _, ok := want[padID(t.TraceID)]; !ok {
				problems = append(problems, "returned "+t.TraceID+", which does not match")
			}
		}
		if strings.Contains(c.query, "most_recent=true") && len(matches[i]) > 0 {
			sorted := slices.Clone(matches[i])
			slices.SortFunc(sorted, func(a, b match) int {
				if a.start != b.start {
					return -compare(a.start, b.start)
				}
				return strings.Compare(a.id, b.id)
			})
			// Traces starting at the same time as the limit-th are interchangeable.
			cut := sorted[min(searchLimit, len(sorted))-1].start
			for _, t := range got {
				if want[padID(t.TraceID)] < cut {
					problems = append(problems, fmt.Sprintf("returned %s (start %d), older than the %d most recent matches (from %d)", t.TraceID, want[padID(t.TraceID)], searchLimit, cut))
				}
			}
		}
		res := "ok"
		if len(problems) > 0 {
			bad++
			res = "**" + abbrev(problems, 3) + "**"
		}
		fmt.Printf("| `%s` | %d | %d | %s |\n", c.query, len(want), len(got), res)
	}
	if bad > 0 {
		return fmt.Errorf("check: %d searches returned wrong results", bad)
	}
	return nil
}

func compare(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// padID pads a trace ID without leading zeros back to 32 digits.
func padID(id string) string {
	if len(id) >= 32 {
		return id
	}
	return strings.Repeat("0", 32-len(id)) + id
}

// spread formats a metric over the runs: its value, or min–max.
func spread(ms []search.Metrics, f func(search.Metrics) uint64, unit func(uint64) string) string {
	lo, hi := uint64(math.MaxUint64), uint64(0)
	for _, m := range ms {
		lo, hi = min(lo, f(m)), max(hi, f(m))
	}
	if lo == hi {
		return unit(lo)
	}
	return unit(lo) + "–" + unit(hi)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func mb(n uint64) string {
	if n < 1e6 {
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func num(n uint64) string { return fmt.Sprintf("%d", n) }

// abbrev joins the first n of ss.
func abbrev(ss []string, n int) string {
	if len(ss) <= n {
		return strings.Join(ss, ", ")
	}
	return strings.Join(ss[:n], ", ") + fmt.Sprintf(", … (%d more)", len(ss)-n)
}
