// Package gentopo is test support for the metrics-generator: it pushes a
// known topology of services with the OpenTelemetry SDK, records the OTLP
// requests it sent, and computes from the spans themselves the series the
// generator must derive (span metrics and service graphs, with Tempo's
// names and rules), to compare with what Prometheus received.
//
// The topology, per iteration: frontend serves GET /checkout (a root
// server span) and calls checkout (client → server); checkout calls
// payment (client → server, both failed every 5th iteration), publishes to
// shipping (producer → consumer, messaging.system kafka); payment queries
// a PostgreSQL database (a client span with db.name, no server).
package gentopo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/promtest"
)

// Services of the topology.
const (
	Frontend = "frontend"
	Checkout = "checkout"
	Payment  = "payment"
	Shipping = "shipping"
	Database = "payments" // the db.name of payment's queries
)

// Recorder is a loopback OTLP/HTTP proxy that forwards every request to a
// weft receiver and keeps the spans of those weft acknowledged, with their
// encoded sizes.
type Recorder struct {
	srv *http.Server
	ln  net.Listener

	mu    sync.Mutex
	sizes map[string]int // service, span name, kind, status (NUL-separated) → bytes of its spans
}

// NewRecorder starts a Recorder in front of the OTLP/HTTP receiver at
// target (host:port).
func NewRecorder(target string) (*Recorder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse("http://" + target)
	r := &Recorder{ln: ln, sizes: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusWriter{ResponseWriter: w}
		proxy.ServeHTTP(rec, req)
		if rec.status/100 == 2 {
			r.record(body)
		}
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (r *Recorder) record(body []byte) {
	var req collpb.ExportTraceServiceRequest
	if proto.Unmarshal(body, &req) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				r.sizes[svc+"\x00"+sp.Name+"\x00"+sp.Kind.String()+"\x00"+sp.GetStatus().GetCode().String()] += proto.Size(sp)
			}
		}
	}
}

// Addr is the proxy's address (host:port), for an OTLP/HTTP exporter.
func (r *Recorder) Addr() string { return r.ln.Addr().String() }

// Close stops the proxy.
func (r *Recorder) Close() error { return r.srv.Close() }

// Sizes are the bytes of the encoded spans acknowledged, by service, span
// name, kind and status, joined by NUL bytes.
func (r *Recorder) Sizes() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.sizes)
}

// Push runs iterations of the topology, ending about now, through an
// OTLP/HTTP exporter to addr with the given headers (X-Scope-OrgID), and
// returns the spans sent.
func Push(ctx context.Context, addr string, headers map[string]string, iterations int, now time.Time) ([]tracetest.SpanStub, error) {
	mem := tracetest.NewInMemoryExporter()
	providers := map[string]*sdktrace.TracerProvider{}
	var exps []sdktrace.SpanExporter
	for _, svc := range []string{Frontend, Checkout, Payment, Shipping} {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(addr), otlptracehttp.WithInsecure(), otlptracehttp.WithHeaders(headers))
		if err != nil {
			return nil, err
		}
		exps = append(exps, exp)
		res := resource.NewWithAttributes("", attribute.String("service.name", svc), attribute.String("k8s.node.name", "node-"+svc))
		providers[svc] = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(mem),
			sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)))
	}
	tr := func(svc string) trace.Tracer { return providers[svc].Tracer("gentopo") }
	ms := time.Millisecond
	base := now.Add(-time.Duration(iterations) * ms).Add(-2 * time.Second)
	for i := range iterations {
		t0 := base.Add(time.Duration(i) * ms)
		v := time.Duration(i%4) * 3 * ms // spreads latencies over buckets
		ctx0, root := tr(Frontend).Start(context.Background(), "GET /checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(t0))
		ctx1, call := tr(Frontend).Start(ctx0, "POST /checkout", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(t0.Add(ms)))
		ctx2, serve := tr(Checkout).Start(ctx1, "POST /checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(t0.Add(2*ms)))
		ctx3, charge := tr(Checkout).Start(ctx2, "charge", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(t0.Add(3*ms)))
		ctx4, charged := tr(Payment).Start(ctx3, "charge", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(t0.Add(4*ms)))
		_, query := tr(Payment).Start(ctx4, "SELECT balance", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(t0.Add(5*ms)),
			trace.WithAttributes(attribute.String("db.system", "postgresql"), attribute.String("db.name", Database)))
		query.End(trace.WithTimestamp(t0.Add(7*ms + v)))
		if i%5 == 0 {
			charged.SetStatus(codes.Error, "card declined")
			charge.SetStatus(codes.Error, "402")
		}
		charged.End(trace.WithTimestamp(t0.Add(20*ms + v)))
		charge.End(trace.WithTimestamp(t0.Add(25*ms + v)))
		ctx5, publish := tr(Checkout).Start(ctx2, "orders publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(t0.Add(26*ms)),
			trace.WithAttributes(attribute.String("messaging.system", "kafka")))
		publish.End(trace.WithTimestamp(t0.Add(28 * ms)))
		_, consume := tr(Shipping).Start(ctx5, "orders process", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(t0.Add(30*ms)),
			trace.WithAttributes(attribute.String("messaging.system", "kafka")))
		consume.End(trace.WithTimestamp(t0.Add(45*ms + v)))
		serve.End(trace.WithTimestamp(t0.Add(50*ms + v)))
		call.End(trace.WithTimestamp(t0.Add(60*ms + v)))
		root.SetStatus(codes.Ok, "")
		root.End(trace.WithTimestamp(t0.Add(70*ms + v)))
	}
	for _, tp := range providers {
		if err := tp.ForceFlush(ctx); err != nil {
			return nil, fmt.Errorf("cannot export the topology: %w", err)
		}
	}
	spans := mem.GetSpans()
	for _, tp := range providers {
		_ = tp.Shutdown(ctx)
	}
	return spans, nil
}

// Key names a series: its metric name and its labels, sorted, as
// name{a="1",b="2"}. A label with an empty value is no label, as in
// Prometheus.
func Key(name string, labels map[string]string) string {
	ks := slices.Sorted(maps.Keys(labels))
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	first := true
	for _, k := range ks {
		if labels[k] == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// ParseKey splits a Key back into its name and labels.
func ParseKey(k string) (string, map[string]string) {
	i := strings.IndexByte(k, '{')
	l := map[string]string{}
	rest := k[i+1 : len(k)-1]
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		name := rest[:eq]
		rest = rest[eq+1:]
		v, err := strconv.QuotedPrefix(rest)
		if err != nil {
			break
		}
		l[name], _ = strconv.Unquote(v)
		rest = strings.TrimPrefix(rest[len(v):], ",")
	}
	return k[:i], l
}

// Expectations are the values of the series the generator must derive.
type Expectations map[string]float64

// Keys are the expectation's series, sorted.
func (e Expectations) Keys() []string {
	ks := slices.Collect(maps.Keys(e))
	sort.Strings(ks)
	return ks
}

func spanKind(k trace.SpanKind) string {
	switch k {
	case trace.SpanKindServer:
		return "SPAN_KIND_SERVER"
	case trace.SpanKindClient:
		return "SPAN_KIND_CLIENT"
	case trace.SpanKindProducer:
		return "SPAN_KIND_PRODUCER"
	case trace.SpanKindConsumer:
		return "SPAN_KIND_CONSUMER"
	default:
		return "SPAN_KIND_INTERNAL"
	}
}

func statusCode(c codes.Code) string {
	switch c {
	case codes.Ok:
		return "STATUS_CODE_OK"
	case codes.Error:
		return "STATUS_CODE_ERROR"
	default:
		return "STATUS_CODE_UNSET"
	}
}

func service(s tracetest.SpanStub) string {
	for _, kv := range s.Resource.Attributes() {
		if kv.Key == "service.name" {
			return kv.Value.AsString()
		}
	}
	return ""
}

// SpanMetrics computes traces_spanmetrics_calls_total, the latency
// histogram's buckets (le as Prometheus prints them), _count and _sum, and,
// with sizes, traces_spanmetrics_size_total, by service, span name, kind
// and status.
func SpanMetrics(spans []tracetest.SpanStub, buckets []float64, sizes map[string]int) Expectations {
	out := Expectations{}
	for _, s := range spans {
		l := map[string]string{"service": service(s), "span_name": s.Name, "span_kind": spanKind(s.SpanKind), "status_code": statusCode(s.Status.Code)}
		out[Key("traces_spanmetrics_calls_total", l)]++
		observe(out, "traces_spanmetrics_latency", l, s.EndTime.Sub(s.StartTime).Seconds(), buckets)
	}
	for k, n := range sizes {
		parts := strings.Split(k, "\x00")
		if len(parts) != 4 {
			continue
		}
		out[Key("traces_spanmetrics_size_total", map[string]string{"service": parts[0], "span_name": parts[1], "span_kind": parts[2], "status_code": parts[3]})] += float64(n)
	}
	return out
}

func observe(out Expectations, name string, l map[string]string, v float64, buckets []float64) {
	for _, b := range buckets {
		if v <= b {
			lb := maps.Clone(l)
			lb["le"] = formatLe(b)
			out[Key(name+"_bucket", lb)]++
		} else {
			lb := maps.Clone(l)
			lb["le"] = formatLe(b)
			out[Key(name+"_bucket", lb)] += 0
		}
	}
	lb := maps.Clone(l)
	lb["le"] = "+Inf"
	out[Key(name+"_bucket", lb)]++
	out[Key(name+"_count", l)]++
}

// formatLe prints a bucket bound as Prometheus's text format does.
func formatLe(b float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%f", b), "0"), ".")
}

// ServiceGraph computes traces_service_graph_request_total, _failed_total
// and the server and client histograms' _count and buckets, by client,
// server and connection type: client/server and producer/consumer pairs,
// the database edge of client spans with db.name, and the "user" edge of
// root server spans (made once their wait expires).
func ServiceGraph(spans []tracetest.SpanStub, buckets []float64) Expectations {
	out := Expectations{}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	edge := func(client, server, conn string, failed bool, clientSec, serverSec float64) {
		l := map[string]string{"client": client, "server": server, "connection_type": conn}
		out[Key("traces_service_graph_request_total", l)]++
		if failed {
			out[Key("traces_service_graph_request_failed_total", l)]++
		}
		observe(out, "traces_service_graph_request_server_seconds", l, serverSec, buckets)
		observe(out, "traces_service_graph_request_client_seconds", l, clientSec, buckets)
	}
	for _, s := range spans {
		dur := s.EndTime.Sub(s.StartTime).Seconds()
		failed := s.Status.Code == codes.Error
		switch s.SpanKind {
		case trace.SpanKindServer, trace.SpanKindConsumer:
			if !s.Parent.IsValid() {
				edge("user", service(s), "virtual_node", failed, 0, dur)
				continue
			}
			c, ok := byID[s.Parent.SpanID()]
			if !ok || (c.SpanKind != trace.SpanKindClient && c.SpanKind != trace.SpanKindProducer) {
				continue
			}
			conn := ""
			if c.SpanKind == trace.SpanKindProducer {
				conn = "messaging_system"
			}
			edge(service(c), service(s), conn, failed || c.Status.Code == codes.Error, c.EndTime.Sub(c.StartTime).Seconds(), dur)
		case trace.SpanKindClient:
			for _, kv := range s.Attributes {
				if kv.Key == "db.name" {
					edge(service(s), kv.Value.AsString(), "database", failed, dur, dur)
				}
			}
		}
	}
	return out
}

// Compare returns the differences between want and got (series missing,
// wrong or extra among those whose names want has), sorted, at most max.
func Compare(want Expectations, got map[string]float64, max int) []string {
	names := map[string]bool{}
	for k := range want {
		names[k[:strings.IndexByte(k, '{')]] = true
	}
	var diffs []string
	for _, k := range want.Keys() {
		g, ok := got[k]
		switch {
		case !ok && want[k] == 0:
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %g", k, want[k]))
		case g != want[k]:
			diffs = append(diffs, fmt.Sprintf("%s = %g, want %g", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok && names[k[:strings.IndexByte(k, '{')]] && got[k] != 0 {
			diffs = append(diffs, fmt.Sprintf("%s = %g, not expected", k, got[k]))
		}
	}
	if len(diffs) > max {
		diffs = append(diffs[:max], fmt.Sprintf("and %d more", len(diffs)-max))
	}
	return diffs
}

// Latest reads the newest value of every series whose name starts with
// one of prefixes, keyed as Key does (without __name__ among the labels).
func Latest(ctx context.Context, prom *promtest.Server, prefixes ...string) (map[string]float64, error) {
	got := map[string]float64{}
	for _, p := range prefixes {
		samples, err := prom.Query(ctx, `{__name__=~"`+p+`.*"}`)
		if err != nil {
			return nil, err
		}
		for _, s := range samples {
			name, l := splitName(s.Metric)
			got[Key(name, l)] = s.Value
		}
	}
	return got, nil
}

// Increases reads the raw samples of the last 10 minutes of every series
// whose name starts with one of prefixes (but _sum series) and gives each
// one's exact increase, resets included (a restarted generator starts its
// counters at 0), keyed as Key does.
func Increases(ctx context.Context, prom *promtest.Server, prefixes ...string) (map[string]float64, error) {
	got := map[string]float64{}
	for _, p := range prefixes {
		series, err := prom.Series(ctx, `{__name__=~"`+p+`.*"}`, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		for _, s := range series {
			name, l := splitName(s.Metric)
			if !strings.HasSuffix(name, "_sum") {
				got[Key(name, l)] += s.Increase(true)
			}
		}
	}
	return got, nil
}

// splitName returns a series' __name__ and its other labels.
func splitName(metric map[string]string) (string, map[string]string) {
	l := maps.Clone(metric)
	name := l["__name__"]
	delete(l, "__name__")
	return name, l
}

// AtMost returns the series of got that exceed want (a count that can be
// short, such as a service-graph edge after a crash, but never more than
// the calls made), sorted.
func AtMost(want Expectations, got map[string]float64) []string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if got[k] > want[k] {
			diffs = append(diffs, fmt.Sprintf("%s = %g, more than the %g the spans give", k, got[k], want[k]))
		}
	}
	return diffs
}

// Load pushes iterations of the topology every interval, ending at the
// time of each push, until Stop.
type Load struct {
	mu    sync.Mutex
	spans []tracetest.SpanStub
	err   error
	stop  chan struct{}
	done  chan struct{}
}

// StartLoad starts a Load to the OTLP/HTTP receiver at addr.
func StartLoad(addr string, iterations int, interval time.Duration) *Load {
	l := &Load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(interval):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := Push(ctx, addr, nil, iterations, time.Now())
			cancel()
			l.mu.Lock()
			l.spans, l.err = append(l.spans, s...), err
			l.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return l
}

// Stop ends the load and returns the spans pushed, or the error that
// stopped it first.
func (l *Load) Stop() ([]tracetest.SpanStub, error) {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spans, l.err
}
