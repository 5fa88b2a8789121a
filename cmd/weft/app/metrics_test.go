package app

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/metricstest"
)

// metricsData is the data of one tenant of the reference test: spans
// starting in [from, to), queried over [start, end] with step.
type metricsData struct {
	tenant           string
	from, to         time.Duration // before now
	start, end, step time.Duration // start and end before now
	wantBlocks       bool
}

// The three places a metrics query reads: only the live-stores (spans
// newer than query_backend_after), only blocks, and both.
var metricsPlaces = []metricsData{
	{tenant: "recent", from: 10 * time.Minute, to: 2 * time.Minute, start: 12 * time.Minute, end: time.Minute, step: 30 * time.Second},
	{tenant: "blocks", from: 3 * time.Hour, to: 2 * time.Hour, start: 3*time.Hour + 5*time.Minute, end: 115 * time.Minute, step: 2 * time.Minute, wantBlocks: true},
	{tenant: "across", from: 40 * time.Minute, to: 2 * time.Minute, start: 45 * time.Minute, end: time.Minute, step: time.Minute, wantBlocks: true},
}

// pushMetricsData pushes each place's spans as its tenant, with the SDK's
// OTLP/HTTP exporter, and waits until the blocks hold them all, so that
// the older ones are in blocks when queried.
func pushMetricsData(t *testing.T, httpAddr string, now time.Time, spansInBlocks func(tenant string) int) map[string][]metricstest.Span {
	t.Helper()
	out := map[string][]metricstest.Span{}
	for i, d := range metricsPlaces {
		spans := metricstest.Generate(uint64(i+1), 400, now.Add(-d.from), now.Add(-d.to))
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
			otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": d.tenant}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := metricstest.Push(ctx, exp, spans); err != nil {
			t.Fatal(err)
		}
		cancel()
		out[d.tenant] = spans
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, d := range metricsPlaces {
		for spansInBlocks(d.tenant) < len(out[d.tenant]) {
			if time.Now().After(deadline) {
				t.Fatalf("tenant %s: %d of %d spans in blocks after 60s", d.tenant, spansInBlocks(d.tenant), len(out[d.tenant]))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

// checkMetricsReference runs every reference case on every place, range
// and instant, against api (the HTTP address of a query-frontend), and
// compares the answers with what the spans say.
func checkMetricsReference(t *testing.T, api string, now time.Time, data map[string][]metricstest.Span) {
	t.Helper()
	for _, d := range metricsPlaces {
		start, end := now.Add(-d.start), now.Add(-d.end)
		for _, c := range metricstest.Cases() {
			for _, instant := range []bool{false, true} {
				if instant && (c.Fn == "histogram_over_time" || c.By == "name") {
					continue // the range cases cover them
				}
				name := fmt.Sprintf("%s/%s/instant=%v", d.tenant, c.Query, instant)
				r := metricstest.Range{Start: uint64(start.UnixNano()), End: uint64(end.UnixNano()), Step: uint64(d.step), Instant: instant}
				route := "/api/metrics/query_range"
				params := url.Values{"q": {c.Query}, "start": {strconv.FormatInt(start.UnixNano(), 10)}, "end": {strconv.FormatInt(end.UnixNano(), 10)}}
				if instant {
					route = "/api/metrics/query"
					r.Step = r.End - r.Start
				} else {
					params.Set("step", d.step.String())
				}
				code, body := getAs(t, "http://"+api+route+"?"+params.Encode(), d.tenant)
				if code != http.StatusOK {
					t.Errorf("%s: status %d: %s", name, code, body)
					continue
				}
				want := metricstest.Expect(data[d.tenant], c, r)
				var got metricstest.Series
				var ans metricstest.Answer
				var err error
				if instant {
					ans, got, err = metricstest.ParseInstant(body, int64(r.Start/1e6))
				} else {
					ans, got, err = metricstest.Parse(body)
				}
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if diff := metricstest.Diff(want, got, 8); len(diff) > 0 {
					t.Errorf("%s: %d series, want %d:\n  %s", name, len(got), len(want), strings.Join(diff, "\n  "))
				}
				if ans.Status != "" || ans.Metrics.CompletedJobs != ans.Metrics.TotalJobs || ans.Metrics.TotalJobs == 0 {
					t.Errorf("%s: status %q, metrics %+v", name, ans.Status, ans.Metrics)
				}
				if (ans.Metrics.TotalBlocks > 0) != d.wantBlocks {
					t.Errorf("%s: %d blocks read, want blocks %v", name, ans.Metrics.TotalBlocks, d.wantBlocks)
				}
			}
		}
	}
}

// TestMetricsMatchReferenceMonolithic pushes spans of three tenants
// (recent, in blocks only, across the boundary) to monolithic weft and
// checks every metrics function, with and without by(), range and
// instant, against the series computed from the spans themselves.
func TestMetricsMatchReferenceMonolithic(t *testing.T) {
	a := startWeft(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.BlockBuilder.MaxBlockDuration = 500 * time.Millisecond
	})
	_, httpAddr := a.OTLPAddrs()
	now := time.Now()
	data := pushMetricsData(t, httpAddr, now, func(tenant string) int {
		n := 0
		for _, e := range a.blocks.Blocks(tenant, time.Time{}, time.Time{}) {
			n += int(e.Meta.TotalSpans)
		}
		return n
	})
	checkMetricsReference(t, a.HTTPAddr(), now, data)
}
