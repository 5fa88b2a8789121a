package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

const queryTimeout = 60 * time.Second

// lookupResult is trace-by-ID over a sample of pushed trace IDs.
type lookupResult struct {
	Phase    string        `json:"phase"`
	Note     string        `json:"note,omitempty"`
	Requests int           `json:"requests"`
	Found    int           `json:"found"`    // 200
	Complete int           `json:"complete"` // 200 with every span of the trace
	NotFound int           `json:"not_found"`
	Errors   int           `json:"errors"`
	P50      time.Duration `json:"p50_ns"`
	P95      time.Duration `json:"p95_ns"`
	P99      time.Duration `json:"p99_ns"`
}

// lookupTraces fetches each trace once from /api/traces/<id> as protobuf
// (Tempo's Trace and OTLP's TracesData share their first field) and
// counts its spans.
func lookupTraces(queryURL, phase string, ids [][16]byte, spansPerTrace int) lookupResult {
	client := &http.Client{Timeout: queryTimeout}
	r := lookupResult{Phase: phase}
	var lats []time.Duration
	for _, id := range ids {
		req, err := http.NewRequest(http.MethodGet, queryURL+"/api/traces/"+hex.EncodeToString(id[:]), nil)
		if err != nil {
			r.Errors++
			continue
		}
		req.Header.Set("Accept", "application/protobuf")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			r.Errors++
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		lats = append(lats, time.Since(t0))
		r.Requests++
		switch {
		case err != nil:
			r.Errors++
		case resp.StatusCode == http.StatusNotFound:
			r.NotFound++
		case resp.StatusCode != http.StatusOK:
			r.Errors++
		default:
			r.Found++
			var td tracepb.TracesData
			if proto.Unmarshal(body, &td) == nil && countSpans(&td) == spansPerTrace {
				r.Complete++
			}
		}
	}
	r.P50, r.P95, r.P99 = percentile(lats, 0.50), percentile(lats, 0.95), percentile(lats, 0.99)
	return r
}

func countSpans(td *tracepb.TracesData) int {
	n := 0
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

// querySpec is one measured query request.
type querySpec struct {
	Name   string
	Path   string
	Params url.Values
	// Range names the time range (the -metrics phase: 1h or 24h).
	Range string
	// Metrics: a TraceQL metrics query (else a search).
	Metrics bool
}

// queryResult is one query run n times.
type queryResult struct {
	Phase          string `json:"phase"`
	Name           string `json:"name"`
	URL            string `json:"url"`
	Runs           int    `json:"runs"`
	Failures       int    `json:"failures"`
	FirstError     string `json:"first_error,omitempty"`
	Results        int    `json:"results"` // traces, tag names or values of the last run
	InspectedBytes uint64 `json:"inspected_bytes"`
	// CompletedJobs is the answer's metrics.completedJobs (of the last
	// run): with a limit, the jobs that ran before it was reached.
	CompletedJobs uint64        `json:"completed_jobs,omitempty"`
	P50           time.Duration `json:"p50_ns"`
	P95           time.Duration `json:"p95_ns"`
	P99           time.Duration `json:"p99_ns"`
}

// searchSpecs is the fixed set of searches, over [start, end]; traceID
// is one of the pushed traces.
func searchSpecs(service string, traceID [16]byte, start, end time.Time) []querySpec {
	rng := url.Values{"start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range rng {
			v[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	search := func(q string) querySpec {
		return querySpec{Name: "search `" + q + "`", Path: "/api/search", Params: with("q", q, "limit", "20")}
	}
	return []querySpec{
		search(fmt.Sprintf(`{ resource.service.name = "%s" }`, service)),
		search(`{ span.http.response.status_code >= 500 && duration > 100ms }`),
		search(`{ status = error } >> { kind = client }`),
		search(`{ span.db.statement =~ "INSERT.*" && resource.k8s.namespace.name = "shop" }`),
		search(`{ resource.service.name = "no-such-service" }`),
		search(fmt.Sprintf(`{ trace:id = "%s" }`, hex.EncodeToString(traceID[:]))),
		{Name: "tag names (v2)", Path: "/api/v2/search/tags", Params: with()},
		{Name: "tag values resource.service.name (v2)", Path: "/api/v2/search/tag/resource.service.name/values", Params: with()},
	}
}

// queryResponse holds the parts of search and tag answers that are measured.
type queryResponse struct {
	Traces    []json.RawMessage         `json:"traces"`
	Scopes    []struct{ Tags []string } `json:"scopes"`
	TagValues []json.RawMessage         `json:"tagValues"`
	Metrics   map[string]any            `json:"metrics"`
}

func (q *queryResponse) results() int {
	n := len(q.Traces) + len(q.TagValues)
	for _, s := range q.Scopes {
		n += len(s.Tags)
	}
	return n
}

// inspectedBytes reads metrics.inspectedBytes, a string in Tempo's JSON.
func (q *queryResponse) inspectedBytes() uint64 { return metricUint(q.Metrics, "inspectedBytes") }

// runQuery runs spec n times in a row, or fewer (at least once) when the
// runs so far took budget.
func runQuery(queryURL string, spec querySpec, n int, budget time.Duration) queryResult {
	client := &http.Client{Timeout: queryTimeout}
	u := queryURL + spec.Path + "?" + spec.Params.Encode()
	r := queryResult{Name: spec.Name, URL: spec.Path + "?" + spec.Params.Encode()}
	var lats []time.Duration
	began := time.Now()
	for i := range n {
		if i > 0 && budget > 0 && time.Since(began) >= budget {
			break
		}
		t0 := time.Now()
		resp, err := client.Get(u)
		if err != nil {
			r.Failures++
			r.FirstError = firstOf(r.FirstError, err.Error())
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat := time.Since(t0)
		r.Runs++
		if err != nil || resp.StatusCode != http.StatusOK {
			r.Failures++
			r.FirstError = firstOf(r.FirstError, fmt.Sprintf("%d %.200s", resp.StatusCode, body))
			continue
		}
		lats = append(lats, lat)
		var qr queryResponse
		if err := json.Unmarshal(body, &qr); err != nil {
			r.Failures++
			r.FirstError = firstOf(r.FirstError, "cannot decode the answer: "+err.Error())
			continue
		}
		r.Results, r.InspectedBytes = qr.results(), qr.inspectedBytes()
		r.CompletedJobs = metricUint(qr.Metrics, "completedJobs")
	}
	r.P50, r.P95, r.P99 = percentile(lats, 0.50), percentile(lats, 0.95), percentile(lats, 0.99)
	return r
}

// firstOf returns a if it is set, else b.
func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// liveStoreTraces sums weft_live_store_traces from /metrics; ok is false
// when /metrics has no weft metric (another backend).
func liveStoreTraces(queryURL string) (n float64, ok bool) {
	body, ok := readMetrics(queryURL)
	if !ok {
		return 0, false
	}
	// A gauge vector without series is left out: no tenant, no traces.
	n, _ = sumMetric(body, "weft_live_store_traces")
	return n, strings.Contains(body, "\nweft_")
}
