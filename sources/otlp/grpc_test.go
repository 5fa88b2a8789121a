package otlp

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/pipelines"
)

// grpcClient dials the source's gRPC address with a plain TraceService
// client.
func grpcClient(t *testing.T, s *Source) (coltracepb.TraceServiceClient, *grpc.ClientConn) {
	t.Helper()
	addr, _ := s.Addrs()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return coltracepb.NewTraceServiceClient(conn), conn
}

// testRequest is the test spans as an ExportTraceServiceRequest.
func testRequest(t *testing.T) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(testProtoBody(t), req); err != nil {
		t.Fatal(err)
	}
	return req
}

func export(t *testing.T, client coltracepb.TraceServiceClient, orgID string) (*coltracepb.ExportTraceServiceResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if orgID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, tenant.MetadataKey, orgID)
	}
	return client.Export(ctx, testRequest(t))
}

func TestGRPCExporter(t *testing.T) {
	for _, compressor := range []string{"", "gzip"} {
		t.Run("compressor="+compressor, func(t *testing.T) {
			out := &fakeOutput{}
			s, _ := startSource(t, out, func(c *Config) { c.Protocols.HTTP = nil })
			addr, httpAddr := s.Addrs()
			if httpAddr != "" {
				t.Errorf("HTTP address %q with HTTP off", httpAddr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			opts := []otlptracegrpc.Option{
				otlptracegrpc.WithEndpoint(addr),
				otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithHeaders(map[string]string{tenant.MetadataKey: "acme"}),
				otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
				otlptracegrpc.WithTimeout(waitTimeout),
			}
			if compressor != "" {
				opts = append(opts, otlptracegrpc.WithCompressor(compressor))
			}
			exp, err := otlptracegrpc.New(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = exp.Shutdown(ctx) }()
			if err := exp.ExportSpans(ctx, testSpans().Snapshots()); err != nil {
				t.Fatalf("ExportSpans: %v", err)
			}
			checkPushed(t, out, "acme")
		})
	}
}

func TestGRPCNoOrgID(t *testing.T) {
	out := &fakeOutput{}
	s, _ := startSource(t, out, nil)
	client, _ := grpcClient(t, s)
	resp, err := export(t, client, "")
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	if resp.GetPartialSuccess() != nil {
		t.Errorf("partial success %v on a full success", resp.GetPartialSuccess())
	}
	msgs := out.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	if _, ok := msgs[0].Metadata["org-id"]; ok {
		t.Errorf("org-id metadata set without a header: %q", msgs[0].Metadata["org-id"])
	}
	// The source passes on the bytes as received.
	if want, _ := proto.Marshal(testRequest(t)); !proto.Equal(mustRequest(t, msgs[0].Payload), mustRequest(t, want)) {
		t.Error("pushed payload differs from the request sent")
	}
}

func mustRequest(t *testing.T, b []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(b, req); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestGRPCPartialSuccess(t *testing.T) {
	out := &fakeOutput{respond: answer(2, "2 spans are too old", nil, nil)}
	s, _ := startSource(t, out, nil)
	client, _ := grpcClient(t, s)
	resp, err := export(t, client, "acme")
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	ps := resp.GetPartialSuccess()
	if ps.GetRejectedSpans() != 2 || ps.GetErrorMessage() != "2 spans are too old" {
		t.Errorf("partial success = %v, want 2 rejected with the message", ps)
	}
}

func TestGRPCErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		respond   func() *fakeOutput
		want      codes.Code
		wantRetry bool
	}{
		{"invalid", func() *fakeOutput {
			return &fakeOutput{respond: answer(0, "", status.Error(codes.InvalidArgument, "bad trace ID"), nil)}
		}, codes.InvalidArgument, false},
		{"unauthenticated", func() *fakeOutput {
			return &fakeOutput{respond: answer(0, "", status.Error(codes.Unauthenticated, "no org id"), nil)}
		}, codes.Unauthenticated, false},
		{"rate limited", func() *fakeOutput {
			return &fakeOutput{respond: answer(0, "", status.Error(codes.ResourceExhausted, "rate limited"), nil)}
		}, codes.ResourceExhausted, true},
		{"push error", func() *fakeOutput {
			return &fakeOutput{respond: answer(0, "", nil, status.Error(codes.Unavailable, "pipeline closed"))}
		}, codes.Unavailable, true},
		{"plain error", func() *fakeOutput {
			return &fakeOutput{respond: answer(0, "", errors.New("disk on fire"), nil)}
		}, codes.Internal, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startSource(t, tc.respond(), func(c *Config) { c.RetryAfter = 7 * time.Second })
			client, _ := grpcClient(t, s)
			_, err := export(t, client, "acme")
			st := status.Convert(err)
			if st.Code() != tc.want {
				t.Fatalf("code %s (%v), want %s", st.Code(), err, tc.want)
			}
			var info *errdetails.RetryInfo
			for _, d := range st.Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok {
					info = ri
				}
			}
			switch {
			case tc.wantRetry && info == nil:
				t.Errorf("no RetryInfo in %v", st.Details())
			case tc.wantRetry && info.GetRetryDelay().AsDuration() != 7*time.Second:
				t.Errorf("retry delay %s, want 7s", info.GetRetryDelay().AsDuration())
			case !tc.wantRetry && info != nil:
				t.Errorf("unexpected RetryInfo %v", info)
			}
		})
	}
}

func TestGRPCKeepsDownstreamRetryInfo(t *testing.T) {
	st, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(42 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := startSource(t, &fakeOutput{respond: answer(0, "", st.Err(), nil)}, nil)
	client, _ := grpcClient(t, s)
	_, err = export(t, client, "")
	got := status.Convert(err)
	if d, ok := retryDelay(got); !ok || d != 42*time.Second {
		t.Errorf("retry delay %s (found %v), want the downstream 42s", d, ok)
	}
	if n := len(got.Details()); n != 1 {
		t.Errorf("%d details, want 1", n)
	}
}

func TestGRPCPushTimeout(t *testing.T) {
	out := &fakeOutput{respond: func(ctx context.Context, _ *message.Message) (*pipelines.Outcome, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s, _ := startSource(t, out, func(c *Config) { c.PushTimeout = 100 * time.Millisecond })
	client, _ := grpcClient(t, s)
	_, err := export(t, client, "")
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "push_timeout") {
		t.Errorf("got %v, want Unavailable naming push_timeout", err)
	}
	if _, ok := retryDelay(st); !ok {
		t.Error("no RetryInfo on the timeout")
	}
}

// TestGRPCMaxRecvMsgSize sends a message over max_recv_msg_size_mib, as is
// and as a gzip bomb (a few kilobytes that decompress past the limit): gRPC
// refuses both with ResourceExhausted naming the sizes, nothing is pushed,
// and the refusals are counted with the other export requests.
func TestGRPCMaxRecvMsgSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		opts []grpc.CallOption
		want string
	}{
		{"plain", 2 << 20, nil, "larger than max ("},
		{"gzip bomb", 4 << 20, []grpc.CallOption{grpc.UseCompressor(gzip.Name)}, "after decompression larger than max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &fakeOutput{}
			s, _ := startSource(t, out, func(c *Config) { c.Protocols.GRPC.MaxRecvMsgSizeMiB = 1 })
			client, _ := grpcClient(t, s)
			req := testRequest(t)
			req.ResourceSpans[0].ScopeSpans[0].Spans[0].Name = strings.Repeat("x", tc.size)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			_, err := client.Export(ctx, req, tc.opts...)
			if got := status.Code(err); got != codes.ResourceExhausted || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("code %s (%v), want ResourceExhausted with %q", got, err, tc.want)
			}
			if n := len(out.messages()); n != 0 {
				t.Errorf("%d messages pushed, want none", n)
			}
			// The server counts the refusal as the call ends on its side,
			// which may be just after the client has the error.
			var got float64
			for deadline := time.Now().Add(waitTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if got = testutil.ToFloat64(s.metrics.requests.WithLabelValues(protocolGRPC, codes.ResourceExhausted.String())); got == 1 {
					break
				}
			}
			if got != 1 {
				t.Errorf("weft_otlp_requests_total{protocol=grpc,code=ResourceExhausted} = %v, want 1", got)
			}
		})
	}
}

func TestGRPCHealth(t *testing.T) {
	s, _ := startSource(t, &fakeOutput{}, nil)
	_, conn := grpcClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, service := range []string{"", traceServiceName} {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatalf("health check of %q: %v", service, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %s, want SERVING", service, resp.GetStatus())
		}
	}
}
