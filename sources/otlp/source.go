// Package otlp is the "otlp" source node of weft's pipelines: it takes
// traces in over OTLP/gRPC and OTLP/HTTP (protobuf or JSON), as the
// OpenTelemetry Collector's OTLP receiver and Tempo's distributor do, and
// pushes each request into the graph as one message of OTLP TracesData
// protobuf bytes, with the client's X-Scope-OrgID in its metadata.
//
// The source does not decode protobuf requests: it hands the bytes on as
// received (ExportTraceServiceRequest and TracesData are wire-identical) and
// the distributor downstream validates them. Only OTLP/JSON is decoded, to
// be re-encoded as protobuf. The answer to the client follows the Outcome of
// the push: OTLP partial success for spans refused downstream, and the gRPC
// status of a failed push, mapped to HTTP statuses for OTLP/HTTP, with retry
// information on RESOURCE_EXHAUSTED and UNAVAILABLE.
package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftdb/weft/internal/httpconn"
	"github.com/weftdb/weft/pipelines"
)

// Source is an OTLP source node. Create it with New or the factory of
// NewFactory; Start opens its listeners and Shutdown closes them.
type Source struct {
	cfg     Config
	out     pipelines.Output
	logger  *slog.Logger
	metrics *metrics
	admit   Admission // nil: every request is read

	mu         sync.Mutex
	started    bool
	stopped    bool
	grpcServer *grpc.Server
	health     *health.Server
	httpServer *http.Server
	grpcAddr   string
	httpAddr   string
	serving    sync.WaitGroup
}

var _ pipelines.Node = (*Source)(nil)

// Admission decides whether the process can take a request now, before its
// body is read: a process short of memory refuses early and cheaply.
// Admit must be fast and safe for concurrent use. On success the source
// calls done exactly once, with the request's size in bytes (0 if it was
// not read), when the request is answered. A non-nil error is a gRPC status
// (UNAVAILABLE or RESOURCE_EXHAUSTED) that reaches the client, with retry
// information, as HTTP 503/429 or as itself over gRPC. protocol is "grpc"
// or "http". *memlimit.Limiter implements it.
type Admission interface {
	Admit(protocol string) (done func(bytes int), err error)
}

// admitted asks s.admit, if any. done is never nil when st is nil.
func (s *Source) admitted(protocol string) (done func(int), st *status.Status) {
	if s.admit == nil {
		return func(int) {}, nil
	}
	done, err := s.admit.Admit(protocol)
	if err != nil {
		return nil, s.withRetry(status.Convert(err))
	}
	return done, nil
}

// New builds an OTLP source that pushes into set.Output. It validates cfg
// and registers the metrics with set.Metrics, but opens no port: Start does.
func New(set pipelines.Settings, cfg Config) (*Source, error) {
	s, err := newSource(set, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot create the OTLP source: %w", err)
	}
	return s, nil
}

func newSource(set pipelines.Settings, cfg Config) (*Source, error) {
	cfg = cfg.clone()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if set.Output == nil {
		return nil, errors.New("no output to push into")
	}
	m, err := newMetrics(set.Metrics)
	if err != nil {
		return nil, err
	}
	logger := set.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg, out: set.Output, logger: logger, metrics: m}, nil
}

// Start opens the listeners of the enabled protocols and serves them on
// goroutines of their own. It fails, closing what it opened, if a listener
// cannot bind.
func (s *Source) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return errors.New("cannot start the OTLP source: it was shut down")
	case s.started:
		return errors.New("cannot start the OTLP source: it is already started")
	}

	var lc net.ListenConfig
	var grpcLis, httpLis net.Listener
	if g := s.cfg.Protocols.GRPC; g != nil {
		l, err := lc.Listen(ctx, "tcp", g.Endpoint)
		if err != nil {
			return fmt.Errorf("cannot listen for OTLP/gRPC on %s: %w", g.Endpoint, err)
		}
		grpcLis = l
	}
	if h := s.cfg.Protocols.HTTP; h != nil {
		l, err := lc.Listen(ctx, "tcp", h.Endpoint)
		if err != nil {
			if grpcLis != nil {
				_ = grpcLis.Close()
			}
			return fmt.Errorf("cannot listen for OTLP/HTTP on %s: %w", h.Endpoint, err)
		}
		httpLis = httpconn.Listener(l, "otlp", s.metrics.refused)
	}

	if grpcLis != nil {
		srv, hs, err := s.newGRPCServer()
		if err != nil {
			_ = grpcLis.Close()
			if httpLis != nil {
				_ = httpLis.Close()
			}
			return fmt.Errorf("cannot start the OTLP source: %w", err)
		}
		s.grpcServer, s.health = srv, hs
		s.grpcAddr = grpcLis.Addr().String()
		s.serving.Go(func() {
			if err := srv.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.logger.Error("OTLP/gRPC server stopped", "endpoint", s.grpcAddr, "err", err)
			}
		})
		s.logger.Info("OTLP/gRPC listening", "endpoint", s.grpcAddr)
	}
	if httpLis != nil {
		s.httpServer = s.newHTTPServer()
		s.httpAddr = httpLis.Addr().String()
		srv := s.httpServer
		s.serving.Go(func() {
			if err := srv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("OTLP/HTTP server stopped", "endpoint", s.httpAddr, "err", err)
			}
		})
		s.logger.Info("OTLP/HTTP listening", "endpoint", s.httpAddr)
	}
	s.started = true
	return nil
}

// Addrs returns the addresses the listeners are bound to, empty for a
// protocol that is off or before Start.
func (s *Source) Addrs() (grpcAddr, httpAddr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grpcAddr, s.httpAddr
}

// Shutdown stops taking requests and waits, within ctx, for the requests in
// flight to be answered. When ctx ends first it closes the remaining
// connections, which cancels their pushes, and returns ctx's error. It is
// safe to call without Start, and more than once.
func (s *Source) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	grpcServer, hs, httpServer := s.grpcServer, s.health, s.httpServer
	s.grpcServer, s.health, s.httpServer = nil, nil, nil
	s.mu.Unlock()

	var wg sync.WaitGroup
	var grpcErr, httpErr error
	if grpcServer != nil {
		hs.Shutdown()
		wg.Go(func() {
			done := make(chan struct{})
			go func() {
				grpcServer.GracefulStop()
				close(done)
			}()
			select {
			case <-done:
			case <-ctx.Done():
				grpcServer.Stop()
				grpcErr = fmt.Errorf("cannot finish the OTLP/gRPC requests in flight: %w", ctx.Err())
			}
		})
	}
	if httpServer != nil {
		wg.Go(func() {
			if err := httpServer.Shutdown(ctx); err != nil {
				_ = httpServer.Close()
				httpErr = fmt.Errorf("cannot finish the OTLP/HTTP requests in flight: %w", err)
			}
		})
	}
	wg.Wait()
	s.serving.Wait()
	if err := errors.Join(grpcErr, httpErr); err != nil {
		return fmt.Errorf("cannot shut down the OTLP source: %w", err)
	}
	return nil
}

// result is the answer to one push: a status when it failed, otherwise the
// spans refused downstream.
type result struct {
	st       *status.Status // nil on success
	rejected int64
	message  string
}

// code is the gRPC code of the answer.
func (r result) code() codes.Code {
	if r.st == nil {
		return codes.OK
	}
	return r.st.Code()
}

// response is the ExportTraceServiceResponse of a successful push: empty,
// or an OTLP partial success when spans were refused downstream.
func (r result) response() *coltracepb.ExportTraceServiceResponse {
	resp := &coltracepb.ExportTraceServiceResponse{}
	if r.rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{
			RejectedSpans: r.rejected,
			ErrorMessage:  r.message,
		}
	}
	return resp
}

// push publishes payload for the tenant header value orgID with s's
// timeouts; see Push.
func (s *Source) push(ctx context.Context, orgID string, payload []byte) result {
	r := Push(ctx, s.out, orgID, payload, s.cfg.PushTimeout, s.cfg.RetryAfter)
	return result{st: r.Status, rejected: r.Rejected, message: r.Message}
}

// PushResult is the answer to one push: a status when it failed, otherwise
// the spans refused downstream (OTLP partial success).
type PushResult struct {
	// Status is the gRPC status of a failed push; nil on success.
	Status *status.Status
	// Rejected is the number of spans refused downstream of a successful
	// push, and Message says why.
	Rejected int64
	Message  string
}

// Push publishes payload, OTLP TracesData protobuf, into out as one message
// carrying the tenant header value orgID (empty when the request had none)
// in its metadata, and waits for its outcome at most pushTimeout. ctx is the
// client's request: when it ends first the status is its context error. A
// failed push whose status is RESOURCE_EXHAUSTED or UNAVAILABLE carries
// RetryInfo of retryAfter unless it had one. It is the one place where a
// source's request becomes a pipeline message and its Outcome an answer;
// every trace source (OTLP, Jaeger, Zipkin) pushes through it.
func Push(ctx context.Context, out pipelines.Output, orgID string, payload []byte, pushTimeout, retryAfter time.Duration) PushResult {
	msg := message.NewMessage(watermill.NewUUID(), payload)
	if orgID != "" {
		msg.Metadata.Set(pipelines.MetaOrgID, orgID)
	}
	pctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	outcome, err := out.Push(pctx, msg)
	if err != nil {
		switch {
		case ctx.Err() != nil: // the client went away or its deadline passed
			return PushResult{Status: status.FromContextError(ctx.Err())}
		case pctx.Err() != nil:
			return PushResult{Status: withRetry(status.Newf(codes.Unavailable,
				"cannot push the traces: the pipeline did not handle them within push_timeout (%s)", pushTimeout), retryAfter)}
		default:
			return PushResult{Status: withRetry(toStatus(err), retryAfter)}
		}
	}
	if outcome == nil {
		return PushResult{}
	}
	if err := outcome.Err(); err != nil {
		return PushResult{Status: withRetry(toStatus(err), retryAfter)}
	}
	return PushResult{Rejected: outcome.Rejected(), Message: outcome.RejectionMessage()}
}

// toStatus returns the gRPC status of a failed push, Internal when err has
// no code of its own.
func toStatus(err error) *status.Status {
	st := status.Convert(err)
	if st.Code() == codes.OK || st.Code() == codes.Unknown {
		return status.New(codes.Internal, err.Error())
	}
	return st
}

// withRetry adds RetryInfo with the configured RetryAfter to the statuses a
// client should retry later, unless the status already carries one.
func (s *Source) withRetry(st *status.Status) *status.Status {
	return withRetry(st, s.cfg.RetryAfter)
}

// withRetry adds RetryInfo of retryAfter to the statuses a client should
// retry later, unless the status already carries one.
func withRetry(st *status.Status, retryAfter time.Duration) *status.Status {
	if !retryable(st.Code()) {
		return st
	}
	if _, ok := retryDelay(st); ok {
		return st
	}
	withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)})
	if err != nil {
		return st
	}
	return withInfo
}

func retryable(c codes.Code) bool {
	return c == codes.ResourceExhausted || c == codes.Unavailable
}

// retryDelay returns the delay of the RetryInfo detail of st, if any.
func retryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}
