// Package metricstest is test support for TraceQL metrics: it makes spans
// with known fields, pushes them with the OpenTelemetry SDK's OTLP
// exporters, and computes from those spans alone, independently of the
// query engine, the series a metrics query must answer (Tempo's intervals,
// timestamps and labels), to compare with what /api/metrics/query_range
// answered.
package metricstest

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Span is one generated span, with the fields the queries read.
type Span struct {
	TraceID  trace.TraceID
	SpanID   trace.SpanID
	Parent   trace.SpanID // zero for a root
	Service  string       // resource attribute service.name
	Name     string
	Route    string // span attribute http.route; "" when absent
	Bytes    int64  // span attribute bytes (int), when HasBytes
	HasBytes bool
	Error    bool // status error (else unset)
	Start    time.Time
	Duration time.Duration
}

// Services are the services of the generated spans.
var Services = []string{"checkout", "cart", "payment", "search"}

// Generate makes traces traces of 1 to 5 spans each, whose spans start in
// [from, to), deterministically from seed.
func Generate(seed uint64, traces int, from, to time.Time) []Span {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	routes := []string{"/cart", "/pay", "/search", ""}
	var out []Span
	window := to.Sub(from)
	for i := 0; i < traces; i++ {
		var tid trace.TraceID
		binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rng.Uint64()|1)
		n := 1 + rng.IntN(5)
		var first Span
		for j := 0; j < n; j++ {
			var sid trace.SpanID
			binary.BigEndian.PutUint64(sid[:], rng.Uint64()|1)
			svc := Services[rng.IntN(len(Services))]
			s := Span{
				TraceID: tid, SpanID: sid, Service: svc,
				Name:  fmt.Sprintf("%s-op%d", svc, rng.IntN(3)),
				Route: routes[rng.IntN(len(routes))],
				Error: rng.IntN(10) == 0,
				Start: from.Add(time.Duration(rng.Int64N(int64(window)))),
				// log-uniform from 100µs to about 3s
				Duration: time.Duration(math.Exp(math.Log(1e5) + rng.Float64()*(math.Log(3e9)-math.Log(1e5)))),
			}
			if rng.IntN(5) != 0 {
				s.Bytes, s.HasBytes = rng.Int64N(10000), true
			}
			if j == 0 {
				first = s
			} else {
				s.Parent = first.SpanID
			}
			out = append(out, s)
		}
	}
	return out
}

// Push sends spans with exp (an OTLP exporter of the SDK), in batches.
func Push(ctx context.Context, exp sdktrace.SpanExporter, spans []Span) error {
	resources := map[string]*resource.Resource{}
	for _, svc := range Services {
		resources[svc] = resource.NewWithAttributes("", attribute.String("service.name", svc))
	}
	const batch = 1000
	for i := 0; i < len(spans); i += batch {
		var stubs tracetest.SpanStubs
		for _, s := range spans[i:min(len(spans), i+batch)] {
			st := tracetest.SpanStub{
				Name: s.Name,
				SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
					TraceID: s.TraceID, SpanID: s.SpanID, TraceFlags: trace.FlagsSampled,
				}),
				SpanKind:             trace.SpanKindServer,
				StartTime:            s.Start,
				EndTime:              s.Start.Add(s.Duration),
				Resource:             resources[s.Service],
				InstrumentationScope: instrumentation.Scope{Name: "weft.metricstest"},
			}
			if s.Parent.IsValid() {
				st.Parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: s.TraceID, SpanID: s.Parent, TraceFlags: trace.FlagsSampled})
				st.SpanKind = trace.SpanKindClient
			}
			if s.Route != "" {
				st.Attributes = append(st.Attributes, attribute.String("http.route", s.Route))
			}
			if s.HasBytes {
				st.Attributes = append(st.Attributes, attribute.Int64("bytes", s.Bytes))
			}
			if s.Error {
				st.Status = sdktrace.Status{Code: codes.Error, Description: "failed"}
			}
			stubs = append(stubs, st)
		}
		if err := exp.ExportSpans(ctx, stubs.Snapshots()); err != nil {
			return fmt.Errorf("cannot push spans: %w", err)
		}
	}
	return nil
}

// Case is a metrics query and how to compute its answer from the spans.
type Case struct {
	// Query is the TraceQL metrics query.
	Query string
	// Fn is the function: rate, count_over_time, sum_over_time,
	// avg_over_time, min_over_time, max_over_time, quantile_over_time,
	// histogram_over_time.
	Fn string
	// Value is the measured value of a span, false when it has none.
	Value func(Span) (float64, bool)
	// Quantiles of quantile_over_time.
	Quantiles []float64
	// By is the group-by field's text ("" for none): one of
	// resource.service.name, name, span.http.route.
	By string
	// Match says whether a span is counted (the query's filter); nil
	// counts every span. It sees the whole trace.
	Match func(s Span, trace []Span) bool
}

// DurationSeconds is the value of a span's duration, in seconds.
func DurationSeconds(s Span) (float64, bool) { return s.Duration.Seconds(), true }

// BytesValue is the value of a span's bytes attribute.
func BytesValue(s Span) (float64, bool) { return float64(s.Bytes), s.HasBytes }

// Range is a query's time range: Start, End and Step, in unix
// nanoseconds (Step = End − Start for an instant query).
type Range struct {
	Start, End, Step uint64
	Instant          bool
}

// intervals returns, as Tempo aligns a range query, the timestamp (unix
// ms) of each interval, and the interval of a span start time (-1 when
// out of range). An interval covers (t − step, t]. An instant query has
// one interval, [start, end], at its start.
func (r Range) intervals() (stamps []int64, of func(ts uint64) int) {
	if r.Instant {
		return []int64{int64(r.Start / 1e6)}, func(ts uint64) int {
			if ts >= r.Start && ts <= r.End {
				return 0
			}
			return -1
		}
	}
	start := r.Start - r.Start%r.Step
	end := r.End
	if m := end % r.Step; m != 0 {
		end += r.Step - m
	}
	if start > r.Step {
		start -= r.Step // Tempo's extra first interval
	}
	n := int((end - start) / r.Step)
	for i := 0; i < n; i++ {
		stamps = append(stamps, int64((start+uint64(i+1)*r.Step)/1e6))
	}
	return stamps, func(ts uint64) int {
		if ts <= start || ts > end {
			return -1
		}
		i := int((ts - start) / r.Step)
		if (ts-start)%r.Step == 0 {
			i--
		}
		return i
	}
}

// Series are series by label key (see Key) and then value by
// timestamp (unix ms).
type Series map[string]map[int64]float64

// Key is the text of a label set: name=value pairs sorted by name, joined
// by commas.
func Key(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// Expect computes the answer of c over spans in r.
func Expect(spans []Span, c Case, r Range) Series {
	stamps, of := r.intervals()
	byTrace := map[trace.TraceID][]Span{}
	for _, s := range spans {
		byTrace[s.TraceID] = append(byTrace[s.TraceID], s)
	}
	type cell struct {
		n      int
		sum    float64
		lo, hi float64
		vals   []float64
	}
	cells := map[string][]*cell{}
	series := func(key string) []*cell {
		cs := cells[key]
		if cs == nil {
			cs = make([]*cell, len(stamps))
			cells[key] = cs
		}
		return cs
	}
	for _, s := range spans {
		i := of(uint64(s.Start.UnixNano()))
		if i < 0 || (c.Match != nil && !c.Match(s, byTrace[s.TraceID])) {
			continue
		}
		v, ok := 0.0, true
		if c.Value != nil {
			v, ok = c.Value(s)
		}
		if !ok {
			continue
		}
		labels := map[string]string{}
		switch c.By {
		case "":
			// As Tempo: the quantile and histogram series of a query
			// without by() are labelled p or __bucket only.
			if c.Fn != "quantile_over_time" && c.Fn != "histogram_over_time" {
				labels["__name__"] = c.Fn
			}
		case "resource.service.name":
			labels[c.By] = s.Service
		case "name":
			labels[c.By] = s.Name
		case "span.http.route":
			labels[c.By] = cmp.Or(s.Route, "nil")
		default:
			panic("metricstest: unknown by " + c.By)
		}
		if c.Fn == "histogram_over_time" {
			labels["__bucket"] = formatFloat(log2Bucket(uint64(s.Duration)) / 1e9)
		}
		cs := series(Key(labels))
		if cs[i] == nil {
			cs[i] = &cell{lo: math.Inf(1), hi: math.Inf(-1)}
		}
		cl := cs[i]
		cl.n++
		cl.sum += v
		cl.lo, cl.hi = min(cl.lo, v), max(cl.hi, v)
		cl.vals = append(cl.vals, v)
	}
	stepSeconds := float64(r.Step) / 1e9
	out := Series{}
	for key, cs := range cells {
		if c.Fn == "quantile_over_time" {
			for _, q := range c.Quantiles {
				parts := append(strings.Split(key, ","), "p="+formatFloat(q))
				parts = slices.DeleteFunc(parts, func(p string) bool { return p == "" })
				slices.Sort(parts)
				k := strings.Join(parts, ",")
				// As Tempo: every interval of the series, 0 where it has
				// no span.
				m := map[int64]float64{}
				for i, cl := range cs {
					m[stamps[i]] = 0
					if cl != nil {
						m[stamps[i]] = exactQuantile(cl.vals, q)
					}
				}
				out[k] = m
			}
			continue
		}
		m := map[int64]float64{}
		for i, cl := range cs {
			switch c.Fn {
			case "rate", "count_over_time", "histogram_over_time":
				n := 0.0
				if cl != nil {
					n = float64(cl.n)
				}
				if c.Fn == "rate" {
					n /= stepSeconds
				}
				m[stamps[i]] = n
				continue
			}
			if cl == nil {
				continue
			}
			switch c.Fn {
			case "sum_over_time":
				m[stamps[i]] = cl.sum
			case "avg_over_time":
				m[stamps[i]] = cl.sum / float64(cl.n)
			case "min_over_time":
				m[stamps[i]] = cl.lo
			case "max_over_time":
				m[stamps[i]] = cl.hi
			}
		}
		out[key] = m
	}
	return out
}

// log2Bucket is the power of two at or above v (Tempo's histogram
// buckets), -1 below 2.
func log2Bucket(v uint64) float64 {
	if v < 2 {
		return -1
	}
	return float64(uint64(1) << (64 - bits.LeadingZeros64(v-1)))
}

// exactQuantile is the value at rank q·(n−1) of vals, as a sketch
// estimates it.
func exactQuantile(vals []float64, q float64) float64 {
	s := slices.Clone(vals)
	slices.Sort(s)
	return s[int(math.Floor(q*float64(len(s)-1)))]
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// QuantileRelativeError is the relative error allowed of a quantile: the
// engine's sketch's guarantee (1%), and a little for float rounding.
const QuantileRelativeError = 0.0101

// Answer is the part of a query_range JSON answer the tests read.
type Answer struct {
	Series []struct {
		Labels []struct {
			Key   string `json:"key"`
			Value struct {
				StringValue *string  `json:"stringValue"`
				IntValue    *string  `json:"intValue"`
				DoubleValue *float64 `json:"doubleValue"`
				BoolValue   *bool    `json:"boolValue"`
			} `json:"value"`
		} `json:"labels"`
		Samples []struct {
			TimestampMs string  `json:"timestampMs"`
			Value       float64 `json:"value"`
		} `json:"samples"`
		Exemplars []struct {
			TimestampMs string `json:"timestampMs"`
		} `json:"exemplars"`
	} `json:"series"`
	Metrics struct {
		TotalJobs     int    `json:"totalJobs"`
		CompletedJobs int    `json:"completedJobs"`
		TotalBlocks   int    `json:"totalBlocks"`
		Inspected     string `json:"inspectedBytes"`
	} `json:"metrics"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Parse reads a query_range JSON answer into Series.
func Parse(body []byte) (Answer, Series, error) {
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, nil, fmt.Errorf("cannot decode the answer: %w: %s", err, body)
	}
	return parseSeries(a)
}

func parseSeries(a Answer) (Answer, Series, error) {
	out := Series{}
	for _, s := range a.Series {
		labels := map[string]string{}
		for _, l := range s.Labels {
			v := l.Value
			switch {
			case v.StringValue != nil:
				labels[l.Key] = *v.StringValue
			case v.IntValue != nil:
				labels[l.Key] = *v.IntValue
			case v.DoubleValue != nil:
				labels[l.Key] = formatFloat(*v.DoubleValue)
			case v.BoolValue != nil:
				labels[l.Key] = strconv.FormatBool(*v.BoolValue)
			}
		}
		k := Key(labels)
		if _, dup := out[k]; dup {
			return a, nil, fmt.Errorf("series %s answered twice", k)
		}
		m := map[int64]float64{}
		for _, smp := range s.Samples {
			ts, err := strconv.ParseInt(smp.TimestampMs, 10, 64)
			if err != nil {
				return a, nil, fmt.Errorf("series %s: bad timestampMs %q", k, smp.TimestampMs)
			}
			m[ts] = smp.Value
		}
		out[k] = m
	}
	return a, out, nil
}

// ParseInstant reads a query (instant) JSON answer into Series, each
// value at timestamp ts (unix ms).
func ParseInstant(body []byte, ts int64) (Answer, Series, error) {
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return a, nil, fmt.Errorf("cannot decode the answer: %w: %s", err, body)
	}
	var inst struct {
		Series []struct {
			Value *float64 `json:"value"`
		} `json:"series"`
	}
	if err := json.Unmarshal(body, &inst); err != nil {
		return a, nil, fmt.Errorf("cannot decode the answer: %w: %s", err, body)
	}
	for i := range a.Series {
		if len(a.Series[i].Samples) > 0 {
			return a, nil, fmt.Errorf("instant answer with samples: %s", body)
		}
		v := 0.0 // jsonpb leaves a zero value out
		if inst.Series[i].Value != nil {
			v = *inst.Series[i].Value
		}
		a.Series[i].Samples = append(a.Series[i].Samples, struct {
			TimestampMs string  `json:"timestampMs"`
			Value       float64 `json:"value"`
		}{strconv.FormatInt(ts, 10), v})
	}
	return parseSeries(a)
}

// Diff lists how got differs from want, at most max lines: series and
// samples missing or extra, and values off (quantile series, those with
// a p label, within QuantileRelativeError; others within 1e-9 relative).
func Diff(want, got Series, max int) []string {
	var out []string
	add := func(format string, args ...any) {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	keys := func(s Series) []string {
		var ks []string
		for k := range s {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	for _, k := range keys(want) {
		g, ok := got[k]
		if !ok {
			add("missing series {%s} (%d samples)", k, len(want[k]))
			continue
		}
		tol := 1e-9
		if strings.Contains(k, "p=") {
			tol = QuantileRelativeError
		}
		for ts, w := range want[k] {
			v, ok := g[ts]
			switch {
			case !ok:
				add("{%s} @%d: missing sample, want %g", k, ts, w)
			case math.Abs(v-w) > tol*math.Max(math.Abs(w), 1e-12):
				add("{%s} @%d: %g, want %g", k, ts, v, w)
			}
		}
		for ts, v := range g {
			if _, ok := want[k][ts]; !ok {
				add("{%s} @%d: extra sample %g", k, ts, v)
			}
		}
	}
	for _, k := range keys(got) {
		if _, ok := want[k]; !ok {
			add("extra series {%s} (%d samples)", k, len(got[k]))
		}
	}
	return out
}

// Cases are the reference cases: every function, with and without by(),
// over a filter, a structural query and every span.
func Cases() []Case {
	isErr := func(s Span, _ []Span) bool { return s.Error }
	// { resource.service.name = "checkout" } > { }: spans whose parent
	// is a checkout span.
	childOfCheckout := func(s Span, tr []Span) bool {
		for _, p := range tr {
			if p.SpanID == s.Parent && p.Service == "checkout" {
				return true
			}
		}
		return false
	}
	var out []Case
	for _, by := range []string{"", "resource.service.name"} {
		suffix := ""
		if by != "" {
			suffix = " by (" + by + ")"
		}
		out = append(out,
			Case{Query: "{ } | rate()" + suffix, Fn: "rate", By: by},
			Case{Query: "{ status = error } | count_over_time()" + suffix, Fn: "count_over_time", By: by, Match: isErr},
			Case{Query: "{ } | sum_over_time(span.bytes)" + suffix, Fn: "sum_over_time", By: by, Value: BytesValue},
			Case{Query: "{ } | avg_over_time(duration)" + suffix, Fn: "avg_over_time", By: by, Value: DurationSeconds},
			Case{Query: "{ } | min_over_time(duration)" + suffix, Fn: "min_over_time", By: by, Value: DurationSeconds},
			Case{Query: "{ } | max_over_time(span.bytes)" + suffix, Fn: "max_over_time", By: by, Value: BytesValue},
			Case{Query: "{ } | quantile_over_time(duration, 0.5, 0.9, 0.99)" + suffix, Fn: "quantile_over_time", By: by, Value: DurationSeconds, Quantiles: []float64{0.5, 0.9, 0.99}},
			Case{Query: "{ } | histogram_over_time(duration)" + suffix, Fn: "histogram_over_time", By: by, Value: DurationSeconds},
			Case{Query: `{ resource.service.name = "checkout" } > { } | count_over_time()` + suffix, Fn: "count_over_time", By: by, Match: childOfCheckout},
		)
	}
	out = append(out,
		Case{Query: "{ } | count_over_time() by (span.http.route)", Fn: "count_over_time", By: "span.http.route"},
		Case{Query: "{ } | rate() by (name)", Fn: "rate", By: "name"},
	)
	return out
}

// Place is the data of one tenant of the reference tests: spans starting
// in [now − From, now − To), queried over [now − Start, now − End] with
// Step.
type Place struct {
	Tenant                     string
	From, To, Start, End, Step time.Duration
	// WantBlocks says whether the query reads blocks; Places are made so
	// that it does exactly when the range starts before now −
	// query_frontend.metrics.query_backend_after (15m).
	WantBlocks bool
}

// Places are the three places a metrics query reads: only the
// live-stores (spans newer than query_backend_after), only blocks, and
// both.
var Places = []Place{
	{Tenant: "recent", From: 10 * time.Minute, To: 2 * time.Minute, Start: 12 * time.Minute, End: time.Minute, Step: 30 * time.Second},
	{Tenant: "blocks", From: 3 * time.Hour, To: 2 * time.Hour, Start: 3*time.Hour + 5*time.Minute, End: 115 * time.Minute, Step: 2 * time.Minute, WantBlocks: true},
	{Tenant: "across", From: 40 * time.Minute, To: 2 * time.Minute, Start: 45 * time.Minute, End: time.Minute, Step: time.Minute, WantBlocks: true},
}

// PushPlaces pushes each place's spans (400 traces) as its tenant with the
// SDK's OTLP/HTTP exporter to otlpHTTP, and waits until spansInBlocks
// says the blocks hold them all, so that the older ones are in blocks
// when queried.
func PushPlaces(t testing.TB, otlpHTTP string, now time.Time, spansInBlocks func(tenant string) int) map[string][]Span {
	t.Helper()
	out := map[string][]Span{}
	for i, p := range Places {
		spans := Generate(uint64(i+1), 400, now.Add(-p.From), now.Add(-p.To))
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(otlpHTTP), otlptracehttp.WithInsecure(),
			otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": p.Tenant}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = Push(ctx, exp, spans)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out[p.Tenant] = spans
	}
	deadline := time.Now().Add(90 * time.Second)
	for _, p := range Places {
		for n := spansInBlocks(p.Tenant); n < len(out[p.Tenant]); n = spansInBlocks(p.Tenant) {
			if time.Now().After(deadline) {
				t.Fatalf("tenant %s: %d of %d spans in blocks after 90s", p.Tenant, n, len(out[p.Tenant]))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return out
}

// CheckPlaces runs every reference case on every place, range and
// instant, against api (the HTTP address of a query-frontend), and
// compares the answers with what the spans say: the series, their
// labels, their timestamps and values, and the jobs' metrics.
func CheckPlaces(t testing.TB, api string, now time.Time, data map[string][]Span) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	for _, p := range Places {
		start, end := now.Add(-p.Start), now.Add(-p.End)
		for _, c := range Cases() {
			for _, instant := range []bool{false, true} {
				if instant && (c.Fn == "histogram_over_time" || c.By == "name") {
					continue // the range cases cover them
				}
				name := fmt.Sprintf("%s/%s/instant=%v", p.Tenant, c.Query, instant)
				r := Range{Start: uint64(start.UnixNano()), End: uint64(end.UnixNano()), Step: uint64(p.Step), Instant: instant}
				route := "/api/metrics/query_range"
				params := url.Values{"q": {c.Query}, "start": {strconv.FormatInt(start.UnixNano(), 10)}, "end": {strconv.FormatInt(end.UnixNano(), 10)}}
				if instant {
					route = "/api/metrics/query"
					r.Step = r.End - r.Start
				} else {
					params.Set("step", p.Step.String())
				}
				want := Expect(data[p.Tenant], c, r)
				// A live-store taking partitions over (a consumer group
				// rebalancing) holds their spans only once it has read
				// them again: ask again for a while before failing.
				var problems []string
				for deadline := time.Now().Add(settleTimeout); ; time.Sleep(500 * time.Millisecond) {
					problems = checkOnce(client, "http://"+api+route+"?"+params.Encode(), p, instant, int64(r.Start/1e6), want)
					if len(problems) == 0 || time.Now().After(deadline) {
						break
					}
				}
				for _, pr := range problems {
					t.Errorf("%s: %s", name, pr)
				}
			}
		}
	}
}

// settleTimeout is how long CheckPlaces asks again while an answer
// differs from the reference.
const settleTimeout = 30 * time.Second

// checkOnce asks u as p's tenant and returns how the answer differs from
// want, nothing when it matches.
func checkOnce(client *http.Client, u string, p Place, instant bool, instantTs int64, want Series) []string {
	code, body, err := getAs(client, u, p.Tenant)
	if err != nil || code != http.StatusOK {
		return []string{fmt.Sprintf("status %d, %v: %s", code, err, body)}
	}
	var got Series
	var ans Answer
	if instant {
		ans, got, err = ParseInstant(body, instantTs)
	} else {
		ans, got, err = Parse(body)
	}
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	if diff := Diff(want, got, 8); len(diff) > 0 {
		out = append(out, fmt.Sprintf("%d series, want %d:\n  %s", len(got), len(want), strings.Join(diff, "\n  ")))
	}
	if ans.Status != "" || ans.Metrics.CompletedJobs != ans.Metrics.TotalJobs || ans.Metrics.TotalJobs == 0 {
		out = append(out, fmt.Sprintf("status %q, metrics %+v", ans.Status, ans.Metrics))
	}
	if (ans.Metrics.TotalBlocks > 0) != p.WantBlocks {
		out = append(out, fmt.Sprintf("%d blocks read, want blocks read: %v", ans.Metrics.TotalBlocks, p.WantBlocks))
	}
	return out
}

// getAs does a GET as tenant.
func getAs(c *http.Client, u, tenant string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
