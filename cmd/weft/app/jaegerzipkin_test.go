package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	otlog "github.com/opentracing/opentracing-go/log"
	"github.com/openzipkin/zipkin-go"
	zmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	zipkinhttp "github.com/openzipkin/zipkin-go/reporter/http"
	jaeger "github.com/uber/jaeger-client-go"
	jthrift "github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/agent"
	jt "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	jtransport "github.com/uber/jaeger-client-go/transport"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/sources/jaegerzipkin"
)

// recvAddrs are the loopback endpoints of the Jaeger and Zipkin receivers.
type recvAddrs struct {
	grpc, thriftHTTP, compact, binary, zipkin string
}

func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// startWeftReceivers runs a monolithic weft with every Jaeger protocol and
// Zipkin on free loopback ports.
func startWeftReceivers(t *testing.T, mutate func(*config.Config)) (*App, recvAddrs) {
	t.Helper()
	ra := recvAddrs{grpc: freeTCP(t), thriftHTTP: freeTCP(t), compact: freeUDP(t), binary: freeUDP(t), zipkin: freeTCP(t)}
	a := startWeft(t, func(c *config.Config) {
		g, h := jaegerzipkin.DefaultGRPC(), jaegerzipkin.DefaultThriftHTTP()
		g.Endpoint, h.Endpoint = ra.grpc, ra.thriftHTTP
		cu, bu := jaegerzipkin.DefaultUDP(ra.compact), jaegerzipkin.DefaultUDP(ra.binary)
		j := jaegerzipkin.DefaultJaegerConfig()
		j.Protocols = jaegerzipkin.JaegerProtocols{GRPC: &g, ThriftHTTP: &h, ThriftCompact: &cu, ThriftBinary: &bu}
		z := jaegerzipkin.DefaultZipkinConfig()
		z.Endpoint = ra.zipkin
		c.Distributor.Receivers.Jaeger, c.Distributor.Receivers.Zipkin = &j, &z
		if mutate != nil {
			mutate(c)
		}
	})
	return a, ra
}

// sentTrace is what a client sent: a root span (server, with order.id)
// and a child (client, error, one event, a link unless the protocol has
// none).
type sentTrace struct {
	traceID, rootID, childID string // lowercase hex, 32 and 16 digits
	service, orderID         string
	linkTrace, linkSpan      string // empty: no link
	eventAttr                bool   // the event carries rows=3
}

func hex128(hi, lo uint64) string { return fmt.Sprintf("%016x%016x", hi, lo) }
func hex64(v uint64) string       { return fmt.Sprintf("%016x", v) }

// errLogger is a jaeger.Logger that keeps the reporter's errors.
type errLogger struct {
	mu   sync.Mutex
	errs []string
}

func (l *errLogger) Error(msg string)     { l.mu.Lock(); l.errs = append(l.errs, msg); l.mu.Unlock() }
func (l *errLogger) Infof(string, ...any) {}
func (l *errLogger) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		t.Fatalf("the Jaeger client reported errors: %v", l.errs)
	}
}

// sendJaeger makes the trace with jaeger-client-go's tracer, reported
// through transport, and closes the tracer, which flushes it.
func sendJaeger(t *testing.T, transport jaeger.Transport, service string) sentTrace {
	t.Helper()
	logs := &errLogger{}
	tracer, closer := jaeger.NewTracer(service, jaeger.NewConstSampler(true),
		jaeger.NewRemoteReporter(transport, jaeger.ReporterOptions.Logger(logs), jaeger.ReporterOptions.BufferFlushInterval(50*time.Millisecond)),
		jaeger.TracerOptions.Gen128Bit(true), jaeger.TracerOptions.Logger(logs))
	orderID := fmt.Sprintf("o-%d", rand.Uint64())
	start := time.Now().Add(-time.Minute)
	prev := tracer.StartSpan("GET /cart", opentracing.StartTime(start))
	prev.Finish()
	root := tracer.StartSpan("GET /checkout", ext.SpanKindRPCServer, opentracing.StartTime(start),
		opentracing.Tag{Key: "http.method", Value: "GET"}, opentracing.Tag{Key: "order.id", Value: orderID})
	child := tracer.StartSpan("SELECT orders", ext.SpanKindRPCClient, opentracing.StartTime(start.Add(time.Millisecond)),
		opentracing.ChildOf(root.Context()), opentracing.FollowsFrom(prev.Context()))
	ext.Error.Set(child, true)
	child.LogFields(otlog.String("event", "query.sent"), otlog.Int("rows", 3))
	child.FinishWithOptions(opentracing.FinishOptions{FinishTime: start.Add(5 * time.Millisecond)})
	root.FinishWithOptions(opentracing.FinishOptions{FinishTime: start.Add(10 * time.Millisecond)})
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	logs.check(t)
	rc, cc, pc := root.Context().(jaeger.SpanContext), child.Context().(jaeger.SpanContext), prev.Context().(jaeger.SpanContext)
	return sentTrace{
		traceID: hex128(rc.TraceID().High, rc.TraceID().Low), rootID: hex64(uint64(rc.SpanID())), childID: hex64(uint64(cc.SpanID())),
		service: service, orderID: orderID,
		linkTrace: hex128(pc.TraceID().High, pc.TraceID().Low), linkSpan: hex64(uint64(pc.SpanID())),
		eventAttr: true,
	}
}

// binaryUDPTransport is a jaeger.Transport that emits each batch as the
// agent's emitBatch in Thrift's binary protocol over UDP, with the
// client's generated agent client (jaeger-client-go's own UDP transport
// speaks the compact protocol only).
type binaryUDPTransport struct {
	conn    net.Conn
	spans   []*jt.Span
	process *jt.Process
}

func (b *binaryUDPTransport) Append(s *jaeger.Span) (int, error) {
	b.spans = append(b.spans, jaeger.BuildJaegerThrift(s))
	b.process = jaeger.BuildJaegerProcessThrift(s)
	return 0, nil
}

func (b *binaryUDPTransport) Flush() (int, error) {
	if len(b.spans) == 0 {
		return 0, nil
	}
	buf := jthrift.NewTMemoryBufferLen(65000)
	client := agent.NewAgentClientFactory(buf, jthrift.NewTBinaryProtocolFactoryDefault())
	if err := client.EmitBatch(context.Background(), &jt.Batch{Process: b.process, Spans: b.spans}); err != nil {
		return 0, err
	}
	if _, err := b.conn.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	n := len(b.spans)
	b.spans = nil
	return n, nil
}

func (b *binaryUDPTransport) Close() error { return b.conn.Close() }

// postJaegerGRPC sends the trace with a client of Jaeger's api_v2
// CollectorService, with x-scope-orgid when tenant is set.
func postJaegerGRPC(t *testing.T, addr, service, tenantID string) sentTrace {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tid, prevTid := jmodel.NewTraceID(rand.Uint64(), rand.Uint64()), jmodel.NewTraceID(rand.Uint64(), rand.Uint64())
	rootID, childID, prevID := jmodel.NewSpanID(rand.Uint64()|1), jmodel.NewSpanID(rand.Uint64()|1), jmodel.NewSpanID(rand.Uint64()|1)
	orderID := fmt.Sprintf("o-%d", rand.Uint64())
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	root := &jmodel.Span{TraceID: tid, SpanID: rootID, OperationName: "GET /checkout", StartTime: start, Duration: 10 * time.Millisecond,
		Tags: []jmodel.KeyValue{jmodel.String("span.kind", "server"), jmodel.String("http.method", "GET"), jmodel.String("order.id", orderID)}}
	child := &jmodel.Span{TraceID: tid, SpanID: childID, OperationName: "SELECT orders", StartTime: start.Add(time.Millisecond), Duration: 4 * time.Millisecond,
		References: []jmodel.SpanRef{
			{TraceID: tid, SpanID: rootID, RefType: jmodel.SpanRefType_CHILD_OF},
			{TraceID: prevTid, SpanID: prevID, RefType: jmodel.SpanRefType_FOLLOWS_FROM},
		},
		Tags: []jmodel.KeyValue{jmodel.String("span.kind", "client"), jmodel.Bool("error", true)},
		Logs: []jmodel.Log{{Timestamp: start.Add(2 * time.Millisecond), Fields: []jmodel.KeyValue{jmodel.String("event", "query.sent"), jmodel.Int64("rows", 3)}}},
	}
	req := &api_v2.PostSpansRequest{Batch: jmodel.Batch{
		Spans:   []*jmodel.Span{root, child},
		Process: &jmodel.Process{ServiceName: service, Tags: []jmodel.KeyValue{jmodel.String("host.name", "h1")}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tenantID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tenantID)
	}
	if _, err := api_v2.NewCollectorServiceClient(conn).PostSpans(ctx, req); err != nil {
		t.Fatalf("PostSpans: %v", err)
	}
	return sentTrace{
		traceID: hex128(tid.High, tid.Low), rootID: hex64(uint64(rootID)), childID: hex64(uint64(childID)),
		service: service, orderID: orderID, linkTrace: hex128(prevTid.High, prevTid.Low), linkSpan: hex64(uint64(prevID)),
		eventAttr: true,
	}
}

// sendZipkin makes the trace with zipkin-go's tracer and HTTP reporter
// (JSON, or protobuf when proto), with X-Scope-OrgID when tenant is set.
func sendZipkin(t *testing.T, addr, service, tenantID string, proto bool) sentTrace {
	t.Helper()
	var logBuf strings.Builder
	var mu sync.Mutex
	opts := []zipkinhttp.ReporterOption{
		zipkinhttp.BatchInterval(50 * time.Millisecond),
		zipkinhttp.Logger(log.New(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logBuf.Write(p) }), "", 0)),
		zipkinhttp.RequestCallback(func(r *http.Request) {
			if tenantID != "" {
				r.Header.Set("X-Scope-OrgID", tenantID)
			}
		}),
	}
	if proto {
		opts = append(opts, zipkinhttp.Serializer(zipkin_proto3.SpanSerializer{}))
	}
	rep := zipkinhttp.NewReporter("http://"+addr+"/api/v2/spans", opts...)
	ep, err := zipkin.NewEndpoint(service, "127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	tracer, err := zipkin.NewTracer(rep, zipkin.WithLocalEndpoint(ep), zipkin.WithTraceID128Bit(true), zipkin.WithSampler(zipkin.AlwaysSample))
	if err != nil {
		t.Fatal(err)
	}
	orderID := fmt.Sprintf("o-%d", rand.Uint64())
	start := time.Now().Add(-time.Minute)
	root := tracer.StartSpan("GET /checkout", zipkin.Kind(zmodel.Server), zipkin.StartTime(start),
		zipkin.Tags(map[string]string{"http.method": "GET", "order.id": orderID}))
	child := tracer.StartSpan("SELECT orders", zipkin.Kind(zmodel.Client), zipkin.Parent(root.Context()), zipkin.StartTime(start.Add(time.Millisecond)))
	child.Annotate(start.Add(2*time.Millisecond), "query.sent")
	child.Tag("error", "connection reset")
	child.FinishedWithDuration(4 * time.Millisecond)
	root.FinishedWithDuration(10 * time.Millisecond)
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if logBuf.Len() > 0 {
		t.Fatalf("the Zipkin reporter logged: %s", logBuf.String())
	}
	mu.Unlock()
	rc, cc := root.Context(), child.Context()
	return sentTrace{traceID: hex128(rc.TraceID.High, rc.TraceID.Low), rootID: hex64(uint64(rc.ID)), childID: hex64(uint64(cc.ID)),
		service: service, orderID: orderID}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// recvTraceByID gets GET /api/v2/traces/<id> as tenant: nil when not found.
func recvTraceByID(t *testing.T, a *App, tenantID, traceID string) []*tracepb.ResourceSpans {
	t.Helper()
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/v2/traces/"+traceID, "application/json", tenantID)
	switch code {
	case http.StatusOK:
		return decodeV2JSON(t, body)
	case http.StatusNotFound:
		return nil
	}
	t.Fatalf("GET trace %s: %d %s", traceID, code, body)
	return nil
}

// waitTrace polls GET /api/v2/traces/<id> as tenant until the trace has
// spans (UDP has no answer to wait for), and returns it.
func waitTrace(t *testing.T, a *App, tenantID, traceID string) []*tracepb.ResourceSpans {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if rss := recvTraceByID(t, a, tenantID, traceID); len(rss) > 0 {
			return rss
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s not found within 15s", traceID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkTrace gets the trace back by ID and by search, and checks what the
// protocol carries: service, kinds, parent, status, attributes, the event
// and the link.
func checkTrace(t *testing.T, a *App, tenantID string, s sentTrace) {
	t.Helper()
	rss := waitTrace(t, a, tenantID, s.traceID)
	spans := map[string]*tracepb.Span{}
	for _, rs := range rss {
		if got := attrMap(rs.GetResource().GetAttributes())["service.name"]; got != s.service {
			t.Errorf("service.name %q, want %q", got, s.service)
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				// Zipkin's clients lower-case span names.
				spans[strings.ToLower(sp.Name)] = sp
			}
		}
	}
	root, child := spans["get /checkout"], spans["select orders"]
	if len(spans) != 2 || root == nil || child == nil {
		t.Fatalf("spans %v, want GET /checkout and SELECT orders", keys(spans))
	}
	if got := fmt.Sprintf("%x", root.SpanId); got != s.rootID {
		t.Errorf("root span ID %s, want %s", got, s.rootID)
	}
	if got := fmt.Sprintf("%x", child.ParentSpanId); got != s.rootID {
		t.Errorf("child's parent %s, want %s", got, s.rootID)
	}
	if root.Kind != tracepb.Span_SPAN_KIND_SERVER || child.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("kinds %s and %s, want server and client", root.Kind, child.Kind)
	}
	if c := child.GetStatus().GetCode(); c != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("child status %s, want error", c)
	}
	if c := root.GetStatus().GetCode(); c == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("root status %s, want not error", c)
	}
	ra := attrMap(root.Attributes)
	if ra["order.id"] != s.orderID || ra["http.method"] != "GET" {
		t.Errorf("root attributes %v, want order.id=%s http.method=GET", ra, s.orderID)
	}
	if _, ok := ra["span.kind"]; ok {
		t.Errorf("root keeps span.kind as an attribute: %v", ra)
	}
	if len(child.Events) != 1 || child.Events[0].Name != "query.sent" {
		t.Fatalf("child events %v, want query.sent", eventsOf(child))
	}
	if s.eventAttr {
		if got := attrMap(child.Events[0].Attributes)["rows"]; got != "3" {
			t.Errorf("event attributes %v, want rows=3", attrMap(child.Events[0].Attributes))
		}
	}
	if s.linkSpan != "" {
		if len(child.Links) != 1 || fmt.Sprintf("%x", child.Links[0].TraceId) != s.linkTrace || fmt.Sprintf("%x", child.Links[0].SpanId) != s.linkSpan {
			t.Errorf("child links %v, want %s/%s", linksOf(child), s.linkTrace, s.linkSpan)
		}
	}

	q := url.QueryEscape(fmt.Sprintf(`{ resource.service.name = %q && span.order.id = %q }`, s.service, s.orderID))
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/search?limit=20&q="+q, "", tenantID)
	if code != http.StatusOK {
		t.Fatalf("search: %d %s", code, body)
	}
	var resp search.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(resp.Traces) != 1 || resp.Traces[0].TraceID != strings.TrimLeft(s.traceID, "0") || resp.Traces[0].RootServiceName != s.service {
		t.Errorf("search found %s, want trace %s of %s", body, s.traceID, s.service)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Each Jaeger protocol and Zipkin (v2 JSON and protobuf), sent with its
// real client library, lands in weft: found by ID and by search, with
// service, kinds, status, attributes, events and links as the protocol
// carries them.
func TestJaegerZipkinReceivers(t *testing.T) {
	a, ra := startWeftReceivers(t, nil)

	t.Run("jaeger_thrift_http", func(t *testing.T) {
		s := sendJaeger(t, jtransport.NewHTTPTransport("http://"+ra.thriftHTTP+"/api/traces"), "svc-thrift-http")
		checkTrace(t, a, "", s)
	})
	t.Run("jaeger_thrift_compact", func(t *testing.T) {
		tr, err := jaeger.NewUDPTransport(ra.compact, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkTrace(t, a, "", sendJaeger(t, tr, "svc-thrift-compact"))
	})
	t.Run("jaeger_thrift_binary", func(t *testing.T) {
		conn, err := net.Dial("udp", ra.binary)
		if err != nil {
			t.Fatal(err)
		}
		checkTrace(t, a, "", sendJaeger(t, &binaryUDPTransport{conn: conn}, "svc-thrift-binary"))
	})
	t.Run("jaeger_grpc", func(t *testing.T) {
		checkTrace(t, a, "", postJaegerGRPC(t, ra.grpc, "svc-jaeger-grpc", ""))
	})
	t.Run("zipkin_v2_json", func(t *testing.T) {
		checkTrace(t, a, "", sendZipkin(t, ra.zipkin, "svc-zipkin-json", "", false))
	})
	t.Run("zipkin_v2_proto", func(t *testing.T) {
		checkTrace(t, a, "", sendZipkin(t, ra.zipkin, "svc-zipkin-proto", "", true))
	})
}

// With multitenancy on, X-Scope-OrgID over thrift_http and Zipkin, and
// x-scope-orgid over gRPC, put the spans in that tenant and no other; UDP,
// which has no tenant, is refused and counted.
func TestJaegerZipkinTenants(t *testing.T) {
	a, ra := startWeftReceivers(t, func(c *config.Config) { c.MultitenancyEnabled = true })

	httpTr := jtransport.NewHTTPTransport("http://"+ra.thriftHTTP+"/api/traces", jtransport.HTTPHeaders(map[string]string{"X-Scope-OrgID": "team-a"}))
	cases := []struct {
		tenant string
		sent   sentTrace
	}{
		{"team-a", sendJaeger(t, httpTr, "svc-a")},
		{"team-b", sendZipkin(t, ra.zipkin, "svc-b", "team-b", false)},
		{"team-c", postJaegerGRPC(t, ra.grpc, "svc-c", "team-c")},
	}
	for _, c := range cases {
		checkTrace(t, a, c.tenant, c.sent)
		for _, other := range []string{"team-a", "team-b", "team-c"} {
			if other == c.tenant {
				continue
			}
			if rss := recvTraceByID(t, a, other, c.sent.traceID); len(rss) > 0 {
				t.Errorf("trace of %s seen by %s", c.tenant, other)
			}
		}
	}

	// No tenant: gRPC and Zipkin clients are told, UDP spans are counted.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(ra.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = api_v2.NewCollectorServiceClient(conn).PostSpans(ctx, &api_v2.PostSpansRequest{Batch: jmodel.Batch{
		Spans:   []*jmodel.Span{{TraceID: jmodel.NewTraceID(1, 2), SpanID: jmodel.NewSpanID(3), OperationName: "x", StartTime: time.Now()}},
		Process: &jmodel.Process{ServiceName: "no-tenant"}}})
	if err == nil || !strings.Contains(err.Error(), "Unauthenticated") || !strings.Contains(err.Error(), "no org id") {
		t.Errorf("PostSpans without a tenant: %v, want Unauthenticated: no org id", err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+ra.zipkin+"/api/v2/spans", strings.NewReader(`[{"traceId":"0000000000000001","id":"0000000000000002","name":"x","timestamp":1700000000000000,"localEndpoint":{"serviceName":"no-tenant"}}]`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("Zipkin POST without a tenant: %d, want 400", resp.StatusCode)
	}

	udp, err := jaeger.NewUDPTransport(ra.compact, 0)
	if err != nil {
		t.Fatal(err)
	}
	sendJaeger(t, udp, "svc-udp")
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, a, "weft_receiver_requests_total", "receiver", "jaeger", "protocol", "thrift_compact", "code", "Unauthenticated") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("weft_receiver_requests_total did not count the UDP batch without a tenant as Unauthenticated")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Jaeger and Zipkin spans meet the same per-tenant limits as OTLP's: a
// batch over max_traces_per_user is accepted with the excess refused (the
// protocols cannot say so: weft_receiver_spans_rejected_total counts it,
// beside the distributor's weft_discarded_spans_total).
func TestJaegerZipkinLimits(t *testing.T) {
	rt := t.TempDir() + "/overrides.yaml"
	if err := os.WriteFile(rt, []byte("overrides:\n  capped:\n    ingestion:\n      max_traces_per_user: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, ra := startWeftReceivers(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.Overrides.PerTenantOverrideConfig = rt
	})
	conn, err := grpc.NewClient(ra.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	now := time.Now().Add(-time.Minute)
	span := func(hi uint64) *jmodel.Span {
		return &jmodel.Span{TraceID: jmodel.NewTraceID(hi, 7), SpanID: jmodel.NewSpanID(hi), OperationName: "op", StartTime: now, Duration: time.Millisecond}
	}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "capped"), 10*time.Second)
	defer cancel()
	_, err = api_v2.NewCollectorServiceClient(conn).PostSpans(ctx, &api_v2.PostSpansRequest{Batch: jmodel.Batch{
		Spans: []*jmodel.Span{span(1), span(2)}, Process: &jmodel.Process{ServiceName: "capped-svc"}}})
	if err != nil {
		t.Fatalf("PostSpans: %v", err)
	}
	kept := 0
	for _, id := range []string{hex128(1, 7), hex128(2, 7)} {
		if len(recvTraceByID(t, a, "capped", id)) > 0 {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("%d traces kept, want 1 (max_traces_per_user: 1)", kept)
	}
	if got := metricValue(t, a, "weft_receiver_spans_rejected_total", "receiver", "jaeger", "protocol", "grpc"); got != 1 {
		t.Errorf("weft_receiver_spans_rejected_total = %v, want 1", got)
	}
	if got := metricValue(t, a, "weft_discarded_spans_total", "reason", "live_traces_exceeded", "tenant", "capped"); got != 1 {
		t.Errorf("weft_discarded_spans_total = %v, want 1", got)
	}
}
