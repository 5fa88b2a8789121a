// Package jaegerzipkin holds the "jaeger" and "zipkin" source nodes of
// weft's pipelines: they take traces in from Jaeger clients and agents
// (api_v2 gRPC, Thrift over HTTP, Thrift compact and binary over UDP) and
// from Zipkin reporters (v2 JSON and protobuf, v1 JSON and Thrift), as
// Tempo's distributor does, with the OpenTelemetry Collector's own
// receivers (jaegerreceiver, zipkinreceiver), which decode the protocols and
// translate them to OTLP. Each request becomes one pipeline message of OTLP
// TracesData protobuf bytes, pushed with the OTLP source's otlp.Push, so the
// spans meet the same distributor, limits and accounting as OTLP's.
//
// The tenant is the X-Scope-OrgID header of an HTTP request, or the
// x-scope-orgid metadata of a gRPC call. Jaeger's UDP transports carry no
// tenant: with multitenancy on, the distributor refuses their spans (counted
// in weft_receiver_requests_total with code Unauthenticated); the sender gets
// no answer over UDP either way.
package jaegerzipkin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/jaegerreceiver"
	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/zipkinreceiver"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/confignet"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sources/otlp"
)

// Values of the protocol label, the receiver's keys.
const (
	ProtocolGRPC          = "grpc"
	ProtocolThriftHTTP    = "thrift_http"
	ProtocolThriftCompact = "thrift_compact"
	ProtocolThriftBinary  = "thrift_binary"
	ProtocolZipkin        = "http"
)

// retryAfter is the delay put in the RetryInfo of a retryable status; the
// Jaeger and Zipkin receivers answer HTTP clients with 500 without it, and
// gRPC clients read it.
const retryAfter = 5 * time.Second

// The HTTP receivers' bounds on slow clients, those of OTLP/HTTP's
// defaults: the headers within readHeaderTimeout, the whole request within
// readTimeout (the Collector sets no read timeout).
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
)

// part is one protocol's Collector receiver.
type part struct {
	protocol string
	endpoint string
	recv     receiver.Traces
}

// Source is a Jaeger or Zipkin source node: one Collector receiver per
// protocol configured, none when none is. Create it with a factory of
// NewJaegerFactory or NewZipkinFactory.
type Source struct {
	receiver    string // "jaeger" or "zipkin"
	out         pipelines.Output
	pushTimeout time.Duration
	logger      *slog.Logger
	metrics     *metrics
	parts       []part
	admit       otlp.Admission // nil: every request is pushed

	mu      sync.Mutex
	started []part
	stopped bool
}

var _ pipelines.Node = (*Source)(nil)

func newSource(set pipelines.Settings, name string, pushTimeout time.Duration) (*Source, error) {
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
	return &Source{receiver: name, out: set.Output, pushTimeout: pushTimeout, logger: logger, metrics: m}, nil
}

// newJaeger builds the Jaeger receivers of cfg without opening anything.
func newJaeger(set pipelines.Settings, cfg JaegerConfig) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := newSource(set, "jaeger", cfg.PushTimeout)
	if err != nil {
		return nil, err
	}
	p := cfg.Protocols
	if g := p.GRPC; g != nil {
		var c jaegerreceiver.Protocols
		c.GRPC = configoptional.Some(configgrpc.ServerConfig{
			NetAddr:           confignet.AddrConfig{Endpoint: g.Endpoint, Transport: confignet.TransportTypeTCP},
			MaxRecvMsgSizeMiB: g.MaxRecvMsgSizeMiB,
			IncludeMetadata:   true,
		})
		if err := s.addJaeger(ProtocolGRPC, g.Endpoint, c); err != nil {
			return nil, err
		}
	}
	if h := p.ThriftHTTP; h != nil {
		var c jaegerreceiver.Protocols
		hc := confighttp.NewDefaultServerConfig()
		hc.NetAddr = confignet.AddrConfig{Endpoint: h.Endpoint, Transport: confignet.TransportTypeTCP}
		hc.MaxRequestBodySize = h.MaxRequestBodySize
		hc.ReadHeaderTimeout, hc.ReadTimeout = readHeaderTimeout, readTimeout
		hc.IncludeMetadata = true
		c.ThriftHTTP = configoptional.Some(hc)
		if err := s.addJaeger(ProtocolThriftHTTP, h.Endpoint, c); err != nil {
			return nil, err
		}
	}
	if u := p.ThriftCompact; u != nil {
		var c jaegerreceiver.Protocols
		c.ThriftCompactUDP = configoptional.Some(udpConfig(u))
		if err := s.addJaeger(ProtocolThriftCompact, u.Endpoint, c); err != nil {
			return nil, err
		}
	}
	if u := p.ThriftBinary; u != nil {
		var c jaegerreceiver.Protocols
		c.ThriftBinaryUDP = configoptional.Some(udpConfig(u))
		if err := s.addJaeger(ProtocolThriftBinary, u.Endpoint, c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func udpConfig(u *UDPConfig) jaegerreceiver.ProtocolUDP {
	return jaegerreceiver.ProtocolUDP{
		Endpoint: u.Endpoint,
		ServerConfigUDP: jaegerreceiver.ServerConfigUDP{
			QueueSize:     u.QueueSize,
			MaxPacketSize: u.MaxPacketSize,
			Workers:       u.Workers,
		},
	}
}

// addJaeger creates the Collector's Jaeger receiver for one protocol, so
// that each protocol's requests are told apart in the metrics.
func (s *Source) addJaeger(protocol, endpoint string, protocols jaegerreceiver.Protocols) error {
	f := jaegerreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*jaegerreceiver.Config)
	cfg.Protocols = protocols
	return s.add(f, cfg, protocol, endpoint)
}

// newZipkin builds the Zipkin receiver of cfg without opening anything.
func newZipkin(set pipelines.Settings, cfg ZipkinConfig) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := newSource(set, "zipkin", cfg.PushTimeout)
	if err != nil || cfg.Endpoint == "" {
		return s, err
	}
	f := zipkinreceiver.NewFactory()
	zc := f.CreateDefaultConfig().(*zipkinreceiver.Config)
	zc.ServerConfig.NetAddr = confignet.AddrConfig{Endpoint: cfg.Endpoint, Transport: confignet.TransportTypeTCP}
	zc.ServerConfig.MaxRequestBodySize = cfg.MaxRequestBodySize
	zc.ServerConfig.ReadHeaderTimeout, zc.ServerConfig.ReadTimeout = readHeaderTimeout, readTimeout
	zc.ServerConfig.IncludeMetadata = true
	zc.ParseStringTags = cfg.ParseStringTags
	if err := s.add(f, zc, ProtocolZipkin, cfg.Endpoint); err != nil {
		return nil, err
	}
	return s, nil
}

// add creates one receiver of f with cfg, feeding s's consumer for protocol.
func (s *Source) add(f receiver.Factory, cfg component.Config, protocol, endpoint string) error {
	// cfg is not run through the Collector's Validate: weft's Validate
	// checked the settings, and the Collector's refuses port 0, which tests
	// use for a free port.
	next, err := consumer.NewTraces(func(ctx context.Context, td ptrace.Traces) error {
		return s.consume(ctx, protocol, td)
	})
	if err != nil {
		return err
	}
	set := receiver.Settings{
		ID: component.NewIDWithName(f.Type(), protocol),
		TelemetrySettings: component.TelemetrySettings{
			// The receivers log what weft counts in metrics, and their
			// listener errors come back from Start.
			Logger:         zap.NewNop(),
			TracerProvider: tracenoop.NewTracerProvider(),
			MeterProvider:  metricnoop.NewMeterProvider(),
		},
		BuildInfo: component.NewDefaultBuildInfo(),
	}
	r, err := f.CreateTraces(context.Background(), set, cfg, next)
	if err != nil {
		return fmt.Errorf("cannot create the %s %s receiver: %w", s.receiver, protocol, err)
	}
	s.parts = append(s.parts, part{protocol: protocol, endpoint: endpoint, recv: r})
	return nil
}

// consume pushes td, one request's spans, into the pipeline for the tenant
// of the request, and returns the error its receiver turns into the
// client's answer: a permanent one (HTTP 400) for bad data or no tenant,
// a retryable one (HTTP 500, or the gRPC status) otherwise. Spans refused
// downstream of a successful push are counted; neither protocol has a way
// to tell the client (OTLP's partial success).
func (s *Source) consume(ctx context.Context, protocol string, td ptrace.Traces) error {
	start := time.Now()
	udp := protocol == ProtocolThriftCompact || protocol == ProtocolThriftBinary
	var payload []byte
	if s.admit != nil {
		done, err := s.admit.Admit(s.receiver + "_" + protocol)
		if err != nil {
			st := status.Convert(err)
			s.metrics.observe(s.receiver, protocol, st.Code(), start)
			if udp {
				return nil
			}
			return st.Err()
		}
		defer func() { done(len(payload)) }()
	}
	var m ptrace.ProtoMarshaler
	payload, err := m.MarshalTraces(td)
	if err != nil {
		s.metrics.observe(s.receiver, protocol, codes.Internal, start)
		return fmt.Errorf("cannot encode the spans as OTLP: %w", err)
	}
	var orgID string
	if v := client.FromContext(ctx).Metadata.Get(tenant.Header); len(v) > 0 {
		orgID = v[0]
	}
	res := otlp.Push(ctx, s.out, orgID, payload, s.pushTimeout, retryAfter)
	if res.Status == nil {
		s.metrics.observe(s.receiver, protocol, codes.OK, start)
		if res.Rejected > 0 {
			s.metrics.rejected.WithLabelValues(s.receiver, protocol).Add(float64(res.Rejected))
		}
		return nil
	}
	s.metrics.observe(s.receiver, protocol, res.Status.Code(), start)
	if udp {
		// No one to answer over UDP: the metric is the only trace of it.
		return nil
	}
	switch res.Status.Code() {
	case codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied:
		return consumererror.NewPermanent(res.Status.Err())
	}
	return res.Status.Err()
}

// Start opens the listeners of the configured protocols, none when none
// is. It fails, closing what it opened, if one cannot bind.
func (s *Source) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.stopped:
		return fmt.Errorf("cannot start the %s source: it was shut down", s.receiver)
	case s.started != nil:
		return fmt.Errorf("cannot start the %s source: it is already started", s.receiver)
	}
	started := make([]part, 0, len(s.parts))
	for _, p := range s.parts {
		if err := p.recv.Start(ctx, host{}); err != nil {
			_ = p.recv.Shutdown(context.Background())
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for _, q := range started {
				_ = q.recv.Shutdown(sctx)
			}
			cancel()
			return fmt.Errorf("cannot listen for %s %s on %s: %w", s.receiver, p.protocol, p.endpoint, err)
		}
		started = append(started, p)
		s.logger.Info("receiver listening", "receiver", s.receiver, "protocol", p.protocol, "endpoint", p.endpoint)
	}
	s.started = started
	return nil
}

// Shutdown stops the receivers, waiting within ctx for the requests in
// flight. It is safe to call without Start, and more than once.
func (s *Source) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	started := s.started
	s.started, s.stopped = nil, true
	s.mu.Unlock()
	var errs []error
	for _, p := range started {
		if err := p.recv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.protocol, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot shut down the %s source: %w", s.receiver, err)
	}
	return nil
}

// Protocols returns the protocols this node serves, in start order.
func (s *Source) Protocols() []string {
	out := make([]string, 0, len(s.parts))
	for _, p := range s.parts {
		out = append(out, p.protocol)
	}
	return out
}

// host is the component.Host of the receivers: no extensions.
type host struct{}

func (host) GetExtensions() map[component.ID]component.Component { return nil }
