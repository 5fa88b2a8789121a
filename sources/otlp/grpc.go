package otlp

import (
	"context"
	"fmt"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed OTLP/gRPC
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/weftdb/weft/internal/tenant"
)

const (
	traceServiceName = "opentelemetry.proto.collector.trace.v1.TraceService"
	exportMethod     = "/" + traceServiceName + "/Export"
)

// rawRequest is an ExportTraceServiceRequest kept as the bytes received.
type rawRequest struct {
	data []byte
}

// rawCodec is the server's codec: it keeps a copy of the bytes of a
// rawRequest instead of decoding it, and hands every other message (the
// response, the health service) to the protobuf codec.
type rawCodec struct {
	proto encoding.CodecV2
}

func newRawCodec() (rawCodec, error) {
	c := encoding.GetCodecV2(grpcproto.Name)
	if c == nil {
		return rawCodec{}, fmt.Errorf("cannot find the gRPC %q codec", grpcproto.Name)
	}
	return rawCodec{proto: c}, nil
}

func (c rawCodec) Name() string { return grpcproto.Name }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(r.data)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if r, ok := v.(*rawRequest); ok {
		// data is freed when Unmarshal returns: keep a copy.
		r.data = data.Materialize()
		if r.data == nil {
			r.data = []byte{}
		}
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// traceServer is the handler type of traceServiceDesc.
type traceServer interface {
	export(ctx context.Context, req *rawRequest) (*coltracepb.ExportTraceServiceResponse, error)
}

// traceServiceDesc is the OTLP TraceService, written by hand so that its
// request type is rawRequest.
var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: traceServiceName,
	HandlerType: (*traceServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler:    exportHandler,
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

func exportHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(rawRequest)
	timeout := DefaultReadTimeout
	if g, ok := srv.(grpcService); ok {
		timeout = g.s.cfg.Protocols.GRPC.ReadTimeout
	}
	if err := recvWithin(dec, req, timeout); err != nil {
		// Admitted by the tap but never read (too large, cut off): the
		// admission is over all the same, and the request is counted.
		if done, ok := ctx.Value(admittedKey{}).(func(int)); ok {
			done(0)
		}
		if g, ok := srv.(grpcService); ok {
			g.s.metrics.observe(protocolGRPC, status.Code(err), time.Now())
		}
		return nil, err
	}
	if interceptor == nil {
		return srv.(traceServer).export(ctx, req)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: exportMethod}
	handler := func(ctx context.Context, req any) (any, error) {
		return srv.(traceServer).export(ctx, req.(*rawRequest))
	}
	return interceptor(ctx, req, info, handler)
}

// recvWithin reads the request message into req, giving up after timeout:
// gRPC itself waits as long as the client keeps the stream open, so a
// client that stalls in the middle of its message would hold the handler
// and its admission forever. On timeout the handler returns; gRPC then ends
// the stream, which ends the read still waiting (it no longer touches req
// for anyone).
func recvWithin(dec func(any) error, req *rawRequest, timeout time.Duration) error {
	got := make(chan error, 1)
	go func() { got <- dec(req) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-got:
		return err
	case <-t.C:
		return status.Errorf(codes.DeadlineExceeded,
			"cannot read the request: the client did not send it within %s (distributor.receivers.otlp.protocols.grpc.read_timeout)", timeout)
	}
}

// grpcService serves the TraceService of a Source.
type grpcService struct {
	s *Source
}

// admittedKey holds, in a request's context, the done function of its
// admission (see Admission), called when the request is answered.
type admittedKey struct{}

func (g grpcService) export(ctx context.Context, req *rawRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	start := time.Now()
	if done, ok := ctx.Value(admittedKey{}).(func(int)); ok {
		defer done(len(req.data))
	}
	var orgID string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(tenant.MetadataKey); len(v) > 0 {
			orgID = v[0]
		}
	}
	res := g.s.push(ctx, orgID, req.data)
	g.s.metrics.observe(protocolGRPC, res.code(), start)
	if res.st != nil {
		return nil, res.st.Err()
	}
	return res.response(), nil
}

// newGRPCServer builds the gRPC server with the TraceService and the
// standard health service.
func (s *Source) newGRPCServer() (*grpc.Server, *health.Server, error) {
	codec, err := newRawCodec()
	if err != nil {
		return nil, nil, err
	}
	srv := grpc.NewServer(
		grpc.ForceServerCodecV2(codec),
		grpc.MaxRecvMsgSize(s.cfg.Protocols.GRPC.MaxRecvMsgSizeMiB<<20),
		// Refuse before the request message is read when the process
		// cannot take it (Admission).
		grpc.InTapHandle(func(ctx context.Context, info *tap.Info) (context.Context, error) {
			if info.FullMethodName != exportMethod {
				return ctx, nil
			}
			done, st := s.admitted(protocolGRPC)
			if st != nil {
				s.metrics.observe(protocolGRPC, st.Code(), time.Now())
				return ctx, st.Err()
			}
			return context.WithValue(ctx, admittedKey{}, done), nil
		}),
	)
	srv.RegisterService(&traceServiceDesc, grpcService{s: s})
	hs := health.NewServer()
	hs.SetServingStatus(traceServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	return srv, hs, nil
}
