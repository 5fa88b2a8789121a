package jaegerzipkin

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/pipelines"
)

// output records what is pushed and answers with the outcome it is given.
type output struct {
	mu      sync.Mutex
	msgs    []*message.Message
	outcome *pipelines.Outcome
}

func (o *output) Push(_ context.Context, msg *message.Message) (*pipelines.Outcome, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, msg)
	return o.outcome, nil
}

func (o *output) set(oc *pipelines.Outcome) { o.mu.Lock(); o.outcome = oc; o.mu.Unlock() }

func (o *output) last(t *testing.T) *message.Message {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.msgs) == 0 {
		t.Fatal("nothing pushed")
	}
	return o.msgs[len(o.msgs)-1]
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func start(t *testing.T, n pipelines.Node) {
	t.Helper()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
}

const zipkinSpan = `[{"traceId":"5af7183fb1d4cf5f5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","name":"get /api","kind":"SERVER","timestamp":1700000000000000,"duration":1000,"localEndpoint":{"serviceName":"shop"},"tags":{"order.id":"42"}}]`

func postZipkin(t *testing.T, addr, tenantID string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v2/spans", strings.NewReader(zipkinSpan))
	req.Header.Set("Content-Type", "application/json")
	if tenantID != "" {
		req.Header.Set("X-Scope-OrgID", tenantID)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A Zipkin POST becomes one message of OTLP protobuf with the tenant in its
// metadata; the outcome of the push becomes the answer: 202, 400 for what
// the client must not retry, 500 otherwise; spans refused downstream of an
// accepted push are counted.
func TestZipkinPushAndOutcome(t *testing.T) {
	out := &output{}
	reg := prometheus.NewRegistry()
	cfg := DefaultZipkinConfig()
	cfg.Endpoint = freePort(t)
	n, err := NewZipkinFactory(cfg, nil).Create(pipelines.Settings{Name: "zipkin", Output: out, Metrics: reg}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)

	if code := postZipkin(t, cfg.Endpoint, "team-a"); code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", code)
	}
	msg := out.last(t)
	if got := msg.Metadata.Get(pipelines.MetaOrgID); got != "team-a" {
		t.Errorf("org ID %q, want team-a", got)
	}
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(msg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if td.SpanCount() != 1 {
		t.Fatalf("%d spans, want 1", td.SpanCount())
	}
	rs := td.ResourceSpans().At(0)
	sp := rs.ScopeSpans().At(0).Spans().At(0)
	svc, _ := rs.Resource().Attributes().Get("service.name")
	oid, _ := sp.Attributes().Get("order.id")
	if svc.Str() != "shop" || sp.Name() != "get /api" || sp.Kind() != ptrace.SpanKindServer || oid.Str() != "42" {
		t.Errorf("span %s %s %s order.id=%s", svc.Str(), sp.Name(), sp.Kind(), oid.Str())
	}

	out.set(pipelines.NewOutcomeForTest(1, "trace too large", nil))
	if code := postZipkin(t, cfg.Endpoint, ""); code != http.StatusAccepted {
		t.Errorf("partial success: status %d, want 202", code)
	}
	if got := testutil.ToFloat64(n.(*Source).metrics.rejected.WithLabelValues("zipkin", "http")); got != 1 {
		t.Errorf("weft_receiver_spans_rejected_total = %v, want 1", got)
	}
	out.set(pipelines.NewOutcomeForTest(0, "", status.Error(codes.Unauthenticated, "no org id")))
	if code := postZipkin(t, cfg.Endpoint, ""); code != http.StatusBadRequest {
		t.Errorf("no tenant: status %d, want 400", code)
	}
	out.set(pipelines.NewOutcomeForTest(0, "", status.Error(codes.ResourceExhausted, "rate limited")))
	if code := postZipkin(t, cfg.Endpoint, ""); code != http.StatusInternalServerError {
		t.Errorf("rate limited: status %d, want 500", code)
	}
	for code, want := range map[string]float64{"OK": 2, "Unauthenticated": 1, "ResourceExhausted": 1} {
		if got := testutil.ToFloat64(n.(*Source).metrics.requests.WithLabelValues("zipkin", "http", code)); got != want {
			t.Errorf("weft_receiver_requests_total{code=%q} = %v, want %v", code, got, want)
		}
	}
}

// Over Jaeger's gRPC, the tenant comes from x-scope-orgid and a refused
// push reaches the client as its gRPC status, with retry information.
func TestJaegerGRPCStatus(t *testing.T) {
	out := &output{}
	cfg := DefaultJaegerConfig()
	g := DefaultGRPC()
	g.Endpoint = freePort(t)
	cfg.Protocols.GRPC = &g
	n, err := NewJaegerFactory(cfg, nil).Create(pipelines.Settings{Name: "jaeger", Output: out}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	conn, err := grpc.NewClient(g.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := api_v2.NewCollectorServiceClient(conn)
	req := &api_v2.PostSpansRequest{Batch: jmodel.Batch{
		Spans:   []*jmodel.Span{{TraceID: jmodel.NewTraceID(1, 2), SpanID: jmodel.NewSpanID(3), OperationName: "op", StartTime: time.Now()}},
		Process: &jmodel.Process{ServiceName: "svc"},
	}}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "team-z"), 10*time.Second)
	defer cancel()
	if _, err := client.PostSpans(ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := out.last(t).Metadata.Get(pipelines.MetaOrgID); got != "team-z" {
		t.Errorf("org ID %q, want team-z", got)
	}
	out.set(pipelines.NewOutcomeForTest(0, "", status.Error(codes.ResourceExhausted, "rate limited")))
	_, err = client.PostSpans(ctx, req)
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "rate limited") {
		t.Fatalf("PostSpans: %v, want ResourceExhausted", err)
	}
	var retry bool
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() == retryAfter {
			retry = true
		}
	}
	if !retry {
		t.Errorf("status %v lacks RetryInfo of %s", st.Proto(), retryAfter)
	}
}

// Not configured, a node opens nothing; a port in use fails Start naming
// it; Start twice and Shutdown twice behave.
func TestLifecycle(t *testing.T) {
	out := &output{}
	j := DefaultJaegerConfig()
	n, err := NewJaegerFactory(j, nil).Create(pipelines.Settings{Name: "jaeger", Output: out}, &j)
	if err != nil {
		t.Fatal(err)
	}
	if p := n.(*Source).Protocols(); len(p) != 0 {
		t.Errorf("unconfigured jaeger serves %v", p)
	}
	z := ZipkinConfig{}
	zn, err := NewZipkinFactory(z, nil).Create(pipelines.Settings{Name: "zipkin", Output: out}, &z)
	if err != nil {
		t.Fatal(err)
	}
	if p := zn.(*Source).Protocols(); len(p) != 0 {
		t.Errorf("unconfigured zipkin serves %v", p)
	}
	start(t, n)
	if err := n.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := DefaultJaegerConfig()
	h := DefaultThriftHTTP()
	h.Endpoint = l.Addr().String()
	busy.Protocols.ThriftHTTP = &h
	bn, err := NewJaegerFactory(busy, nil).Create(pipelines.Settings{Name: "jaeger", Output: out}, &busy)
	if err != nil {
		t.Fatal(err)
	}
	err = bn.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), h.Endpoint) || !strings.Contains(err.Error(), "thrift_http") {
		t.Errorf("Start on a busy port: %v, want an error naming thrift_http and %s", err, h.Endpoint)
	}
	for range 2 {
		if err := bn.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}
}

// Zipkin v1 JSON on /api/v1/spans is taken too: core annotations give the
// kind, the endpoint the service.
func TestZipkinV1(t *testing.T) {
	out := &output{}
	cfg := DefaultZipkinConfig()
	cfg.Endpoint = freePort(t)
	n, err := NewZipkinFactory(cfg, nil).Create(pipelines.Settings{Name: "zipkin", Output: out}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	const v1 = `[{"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","name":"get /api","timestamp":1700000000000000,"duration":1000,` +
		`"annotations":[{"timestamp":1700000000000000,"value":"sr","endpoint":{"serviceName":"shop","ipv4":"127.0.0.1"}},` +
		`{"timestamp":1700000000001000,"value":"ss","endpoint":{"serviceName":"shop","ipv4":"127.0.0.1"}}],` +
		`"binaryAnnotations":[{"key":"order.id","value":"42","endpoint":{"serviceName":"shop","ipv4":"127.0.0.1"}}]}]`
	req, _ := http.NewRequest(http.MethodPost, "http://"+cfg.Endpoint+"/api/v1/spans", strings.NewReader(v1))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(out.last(t).Payload)
	if err != nil {
		t.Fatal(err)
	}
	rs := td.ResourceSpans().At(0)
	sp := rs.ScopeSpans().At(0).Spans().At(0)
	svc, _ := rs.Resource().Attributes().Get("service.name")
	oid, _ := sp.Attributes().Get("order.id")
	if svc.Str() != "shop" || sp.Kind() != ptrace.SpanKindServer || oid.Str() != "42" {
		t.Errorf("span of %q, kind %s, order.id=%q", svc.Str(), sp.Kind(), oid.Str())
	}
}

// admission refuses when refuse is set and records the sizes reported.
type admission struct {
	mu       sync.Mutex
	refuse   bool
	asked    []string
	released []int
}

func (a *admission) Admit(protocol string) (func(int), error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, protocol)
	if a.refuse {
		return nil, status.Error(codes.Unavailable, "over the memory budget")
	}
	return func(n int) { a.mu.Lock(); a.released = append(a.released, n); a.mu.Unlock() }, nil
}

// The memory admission of the process is asked before each push, as for
// OTLP: a refusal is the client's answer and nothing is pushed.
func TestAdmission(t *testing.T) {
	out := &output{}
	adm := &admission{}
	cfg := DefaultZipkinConfig()
	cfg.Endpoint = freePort(t)
	n, err := NewZipkinFactory(cfg, adm).Create(pipelines.Settings{Name: "zipkin", Output: out}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, n)
	if code := postZipkin(t, cfg.Endpoint, ""); code != http.StatusAccepted {
		t.Fatalf("status %d, want 202", code)
	}
	adm.mu.Lock()
	if len(adm.asked) != 1 || adm.asked[0] != "zipkin_http" || len(adm.released) != 1 || adm.released[0] != len(out.last(t).Payload) {
		t.Errorf("asked %v, released %v, want zipkin_http and the payload's size", adm.asked, adm.released)
	}
	adm.refuse = true
	adm.mu.Unlock()
	if code := postZipkin(t, cfg.Endpoint, ""); code != http.StatusInternalServerError {
		t.Errorf("refused: status %d, want 500", code)
	}
	out.mu.Lock()
	pushed := len(out.msgs)
	out.mu.Unlock()
	if pushed != 1 {
		t.Errorf("%d pushes, want 1: a refused request is not pushed", pushed)
	}
	if got := testutil.ToFloat64(n.(*Source).metrics.requests.WithLabelValues("zipkin", "http", "Unavailable")); got != 1 {
		t.Errorf("weft_receiver_requests_total{code=Unavailable} = %v, want 1", got)
	}
}
