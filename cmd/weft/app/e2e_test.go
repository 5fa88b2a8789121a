package app

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
)

// startWeft runs a monolithic weft on free loopback ports.
func startWeft(t *testing.T, mutate func(*config.Config)) *App {
	t.Helper()
	a := startWeftUnmanaged(t, mutate)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return a
}

// startWeftUnmanaged is startWeft for tests that shut weft down themselves.
func startWeftUnmanaged(t *testing.T, mutate func(*config.Config)) *App {
	t.Helper()
	cfg := config.Default()
	cfg.UseLoopback(t.TempDir())
	if mutate != nil {
		mutate(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(cfg, logger, BuildInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

// exporters returns OTLP/gRPC and OTLP/HTTP exporters of the OpenTelemetry
// SDK pointed at a's receivers.
func exporters(t *testing.T, a *App) (grpcExp, httpExp sdktrace.SpanExporter) {
	t.Helper()
	grpcAddr, httpAddr := a.OTLPAddrs()
	ctx := context.Background()
	g, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	h, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	return g, h
}

// sendTraces makes traces with the OpenTelemetry SDK and exports them both
// to weft and to an in-memory recorder, which is what we expect back.
func sendTraces(t *testing.T, exp sdktrace.SpanExporter, service string, traces int) []tracetest.SpanStub {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	res := resource.NewWithAttributes("", attribute.String("service.name", service), attribute.String("deployment.environment", "test"), attribute.Int64("process.pid", 4242))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSyncer(mem),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)),
	)
	tracer := tp.Tracer("weft.e2e", trace.WithInstrumentationVersion("1.2.3"))
	base := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	var linkTo trace.SpanContext
	for i := 0; i < traces; i++ {
		start := base.Add(time.Duration(i) * time.Millisecond)
		ctx, root := tracer.Start(context.Background(), fmt.Sprintf("GET /orders/%d", i),
			trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
			trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200),
				attribute.Bool("cache.hit", i%2 == 0), attribute.Float64("ratio", 0.25), attribute.StringSlice("tags", []string{"a", "b"})))
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start.Add(time.Millisecond))}
		if linkTo.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: linkTo, Attributes: []attribute.KeyValue{attribute.String("link.reason", "retry")}}))
		}
		_, child := tracer.Start(ctx, "SELECT orders", opts...)
		child.AddEvent("query.sent", trace.WithTimestamp(start.Add(2*time.Millisecond)), trace.WithAttributes(attribute.Int("rows", 3)))
		if i%3 == 0 {
			child.SetStatus(codes.Error, "connection reset")
		}
		child.End(trace.WithTimestamp(start.Add(5 * time.Millisecond)))
		root.SetStatus(codes.Ok, "")
		root.End(trace.WithTimestamp(start.Add(10 * time.Millisecond)))
		linkTo = root.SpanContext()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatalf("export to weft failed: %v", err)
	}
	spans := mem.GetSpans() // before Shutdown, which empties the recorder
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("exporter shutdown: %v", err)
	}
	return spans
}

func TestEndToEndTraceByID(t *testing.T) {
	a := startWeft(t, nil)
	grpcExp, httpExp := exporters(t, a)
	sent := append(sendTraces(t, grpcExp, "over-grpc", 20), sendTraces(t, httpExp, "over-http", 20)...)

	byTrace := map[trace.TraceID][]tracetest.SpanStub{}
	for _, s := range sent {
		byTrace[s.SpanContext.TraceID()] = append(byTrace[s.SpanContext.TraceID()], s)
	}
	if len(byTrace) != 40 {
		t.Fatalf("sent %d traces, want 40", len(byTrace))
	}
	base := "http://" + a.HTTPAddr()
	for tid, want := range byTrace {
		id := hex.EncodeToString(tid[:])
		for _, v := range []struct {
			path, accept string
			decode       func(t *testing.T, body []byte) []*tracepb.ResourceSpans
		}{
			{"/api/traces/" + id, "", decodeV1JSON},
			{"/api/traces/" + id, "application/protobuf", decodeV1Proto},
			{"/api/v2/traces/" + id, "", decodeV2JSON},
			{"/api/v2/traces/" + id, "application/protobuf", decodeV2Proto},
		} {
			body := get(t, base+v.path, v.accept, http.StatusOK)
			compareTrace(t, v.path+" "+v.accept, want, v.decode(t, body))
		}
	}

	// Not found: v1 404 with empty body, v2 200 with an empty trace.
	missing := strings.Repeat("ab", 16)
	if body := get(t, base+"/api/traces/"+missing, "", http.StatusNotFound); len(body) != 0 {
		t.Fatalf("v1 not found body %q", body)
	}
	if rs := decodeV2JSON(t, get(t, base+"/api/v2/traces/"+missing, "", http.StatusOK)); len(rs) != 0 {
		t.Fatalf("v2 not found returned %d resource spans", len(rs))
	}
	get(t, base+"/api/traces/not-hex", "", http.StatusBadRequest)

	// The metrics the issue names are exported.
	metrics := string(get(t, base+"/metrics", "", http.StatusOK))
	for _, m := range []string{"weft_distributor_spans_received_total", "weft_distributor_bytes_received_total",
		"weft_otlp_push_duration_seconds", "weft_live_store_traces", "weft_live_store_bytes"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if !strings.Contains(metrics, `weft_distributor_spans_received_total{tenant="single-tenant"} 80`) {
		t.Errorf("spans received is not 80:\n%s", grep(metrics, "weft_distributor_spans_received_total"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// fetch does a GET with Accept and X-Scope-OrgID set when they are not
// empty, and returns the status, the body and the headers of the answer.
func fetch(t *testing.T, url, accept, tenant string) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header
}

func get(t *testing.T, url, accept string, wantStatus int) []byte {
	t.Helper()
	code, body, _ := fetch(t, url, accept, "")
	if code != wantStatus {
		t.Fatalf("GET %s: status %d (%s), want %d", url, code, body, wantStatus)
	}
	return body
}

func decodeV1JSON(t *testing.T, body []byte) []*tracepb.ResourceSpans {
	t.Helper()
	// v1 JSON is the Trace message whose field is named "batches".
	s := strings.Replace(string(body), `"batches"`, `"resourceSpans"`, 1)
	var td tracepb.TracesData
	if err := protojson.Unmarshal([]byte(s), &td); err != nil {
		t.Fatalf("v1 JSON: %v\n%s", err, body)
	}
	return td.ResourceSpans
}

func decodeV1Proto(t *testing.T, body []byte) []*tracepb.ResourceSpans {
	t.Helper()
	var td tracepb.TracesData
	if err := proto.Unmarshal(body, &td); err != nil {
		t.Fatalf("v1 protobuf: %v", err)
	}
	return td.ResourceSpans
}

func decodeV2JSON(t *testing.T, body []byte) []*tracepb.ResourceSpans {
	t.Helper()
	var resp struct {
		Trace   jsonRaw `json:"trace"`
		Metrics any     `json:"metrics"`
	}
	if err := jsonUnmarshal(body, &resp); err != nil {
		t.Fatalf("v2 JSON: %v\n%s", err, body)
	}
	var td tracepb.TracesData
	if err := protojson.Unmarshal(resp.Trace, &td); err != nil {
		t.Fatalf("v2 JSON trace: %v\n%s", err, body)
	}
	return td.ResourceSpans
}

func decodeV2Proto(t *testing.T, body []byte) []*tracepb.ResourceSpans {
	t.Helper()
	// TraceByIDResponse: field 1 is the Trace.
	var traceBytes []byte
	if fs := protoFields(t, body)[1]; len(fs) > 0 {
		traceBytes = fs[len(fs)-1]
	}
	return decodeV1Proto(t, traceBytes)
}

// protoFields splits a protobuf message into the values of its
// length-delimited fields, by field number, in order.
func protoFields(t *testing.T, body []byte) map[protowire.Number][][]byte {
	t.Helper()
	out := map[protowire.Number][][]byte{}
	for b := body; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("protobuf: bad tag")
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatalf("protobuf: bad field %d", num)
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			out[num] = append(out[num], v)
		}
		b = b[m:]
	}
	return out
}

// compareTrace checks that got holds exactly the sent spans, each with its
// resource, scope, attributes, events, links, status, kind and timestamps.
func compareTrace(t *testing.T, what string, want []tracetest.SpanStub, got []*tracepb.ResourceSpans) {
	t.Helper()
	type gotSpan struct {
		span  *tracepb.Span
		res   map[string]string
		scope *commonpb.InstrumentationScope
	}
	spans := map[string]gotSpan{}
	for _, rs := range got {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				id := hex.EncodeToString(sp.SpanId)
				if _, dup := spans[id]; dup {
					t.Fatalf("%s: span %s returned twice", what, id)
				}
				spans[id] = gotSpan{sp, res, ss.Scope}
			}
		}
	}
	if len(spans) != len(want) {
		t.Fatalf("%s: %d spans, want %d", what, len(spans), len(want))
	}
	for _, w := range want {
		sid := w.SpanContext.SpanID()
		g, ok := spans[hex.EncodeToString(sid[:])]
		if !ok {
			t.Fatalf("%s: span %s missing", what, sid)
		}
		sp := g.span
		tid := w.SpanContext.TraceID()
		psid := w.Parent.SpanID()
		checks := []struct {
			name      string
			got, want any
		}{
			{"trace id", hex.EncodeToString(sp.TraceId), hex.EncodeToString(tid[:])},
			{"parent", hex.EncodeToString(sp.ParentSpanId), map[bool]string{true: hex.EncodeToString(psid[:]), false: ""}[w.Parent.IsValid()]},
			{"name", sp.Name, w.Name},
			{"kind", int(sp.Kind), int(w.SpanKind)},
			{"start", sp.StartTimeUnixNano, uint64(w.StartTime.UnixNano())},
			{"end", sp.EndTimeUnixNano, uint64(w.EndTime.UnixNano())},
			{"attributes", attrMap(sp.Attributes), kvMap(w.Attributes)},
			{"resource", g.res, kvMap(w.Resource.Attributes())},
			{"scope", g.scope.GetName() + "@" + g.scope.GetVersion(), w.InstrumentationScope.Name + "@" + w.InstrumentationScope.Version},
			{"status code", sp.GetStatus().GetCode(), otlpStatus[w.Status.Code]},
			{"status message", sp.GetStatus().GetMessage(), w.Status.Description},
			{"events", eventsOf(sp), stubEvents(w)},
			{"links", linksOf(sp), stubLinks(w)},
		}
		for _, c := range checks {
			if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
				t.Fatalf("%s: span %q %s = %v, want %v", what, w.Name, c.name, c.got, c.want)
			}
		}
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = anyString(kv.Value)
	}
	return m
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, anyString(e))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v)
}

func kvMap(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch kv.Value.Type() {
		case attribute.STRINGSLICE:
			m[string(kv.Key)] = "[" + strings.Join(kv.Value.AsStringSlice(), " ") + "]"
		default:
			m[string(kv.Key)] = kv.Value.Emit()
		}
	}
	return m
}

func eventsOf(sp *tracepb.Span) []string {
	var out []string
	for _, e := range sp.Events {
		out = append(out, fmt.Sprintf("%s@%d%v", e.Name, e.TimeUnixNano, attrMap(e.Attributes)))
	}
	sort.Strings(out)
	return out
}

func stubEvents(s tracetest.SpanStub) []string {
	var out []string
	for _, e := range s.Events {
		out = append(out, fmt.Sprintf("%s@%d%v", e.Name, e.Time.UnixNano(), kvMap(e.Attributes)))
	}
	sort.Strings(out)
	return out
}

func linksOf(sp *tracepb.Span) []string {
	var out []string
	for _, l := range sp.Links {
		out = append(out, fmt.Sprintf("%x/%x%v", l.TraceId, l.SpanId, attrMap(l.Attributes)))
	}
	return out
}

func stubLinks(s tracetest.SpanStub) []string {
	var out []string
	for _, l := range s.Links {
		tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		out = append(out, fmt.Sprintf("%x/%x%v", tid[:], sid[:], kvMap(l.Attributes)))
	}
	return out
}

// otlpStatus maps the SDK's status codes (Unset, Error, Ok) to OTLP's
// (UNSET, OK, ERROR).
var otlpStatus = map[codes.Code]tracepb.Status_StatusCode{
	codes.Unset: tracepb.Status_STATUS_CODE_UNSET,
	codes.Error: tracepb.Status_STATUS_CODE_ERROR,
	codes.Ok:    tracepb.Status_STATUS_CODE_OK,
}
