package jaegerzipkin

import (
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/yamlx"
	"github.com/weftdb/weft/sources/otlp"
)

// Tempo's default endpoints of the receivers (those of the OpenTelemetry
// Collector), used for a protocol listed without an endpoint.
const (
	DefaultJaegerGRPCEndpoint          = ":14250"
	DefaultJaegerThriftHTTPEndpoint    = ":14268"
	DefaultJaegerThriftCompactEndpoint = ":6831"
	DefaultJaegerThriftBinaryEndpoint  = ":6832"
	DefaultZipkinEndpoint              = ":9411"

	// DefaultMaxRequestBodySize is the largest HTTP body by default, in bytes.
	DefaultMaxRequestBodySize int64 = 20 << 20
	// DefaultMaxRecvMsgSizeMiB is the largest gRPC request by default, in MiB.
	DefaultMaxRecvMsgSizeMiB = 16
	// DefaultUDPQueueSize is the number of UDP packets queued by default.
	DefaultUDPQueueSize = 1000
	// DefaultUDPMaxPacketSize is the largest UDP packet read by default.
	DefaultUDPMaxPacketSize = 65000
	// DefaultUDPWorkers is the number of packet decoders by default.
	DefaultUDPWorkers = 10
	// DefaultPushTimeout is how long a push waits for the pipeline by default.
	DefaultPushTimeout = 10 * time.Second
)

// JaegerConfig is the Jaeger receiver, Tempo's (and the Collector's)
// `distributor.receivers.jaeger` block. A protocol present, even empty
// (`grpc:`), is served; absent, it is not.
type JaegerConfig struct {
	// Protocols lists the transports to serve.
	Protocols JaegerProtocols `yaml:"protocols"`
	// PushTimeout bounds how long one request may wait for the pipeline
	// (weft only). Default 10s.
	PushTimeout time.Duration `yaml:"push_timeout"`
}

// JaegerProtocols are the Jaeger transports; nil turns one off.
type JaegerProtocols struct {
	// GRPC serves Jaeger's api_v2 CollectorService (PostSpans). Default
	// endpoint ":14250".
	GRPC *GRPCConfig `yaml:"grpc"`
	// ThriftHTTP serves POST /api/traces with a Thrift (binary) Batch, as
	// Jaeger's collector. Default endpoint ":14268".
	ThriftHTTP *HTTPConfig `yaml:"thrift_http"`
	// ThriftCompact serves the agent's emitBatch over UDP in Thrift's
	// compact protocol. Default endpoint ":6831".
	ThriftCompact *UDPConfig `yaml:"thrift_compact"`
	// ThriftBinary serves the agent's emitBatch over UDP in Thrift's
	// binary protocol. Default endpoint ":6832".
	ThriftBinary *UDPConfig `yaml:"thrift_binary"`
}

// GRPCConfig is a gRPC listener.
type GRPCConfig struct {
	// Endpoint is the host:port to listen on.
	Endpoint string `yaml:"endpoint"`
	// MaxRecvMsgSizeMiB is the largest request accepted, in MiB. Default 16.
	MaxRecvMsgSizeMiB int `yaml:"max_recv_msg_size_mib"`
}

// HTTPConfig is an HTTP listener.
type HTTPConfig struct {
	// Endpoint is the host:port to listen on.
	Endpoint string `yaml:"endpoint"`
	// MaxRequestBodySize is the largest request body accepted, in bytes.
	// Default 20 MiB.
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
}

// UDPConfig is a UDP listener of the Jaeger agent protocol.
type UDPConfig struct {
	// Endpoint is the host:port to listen on.
	Endpoint string `yaml:"endpoint"`
	// QueueSize is the number of packets waiting for a worker; more are
	// dropped. Default 1000.
	QueueSize int `yaml:"queue_size"`
	// MaxPacketSize is the largest packet read, in bytes. Default 65000.
	MaxPacketSize int `yaml:"max_packet_size"`
	// Workers is the number of goroutines decoding packets. Default 10.
	Workers int `yaml:"workers"`
}

// ZipkinConfig is the Zipkin receiver, `distributor.receivers.zipkin`: it
// serves POST /api/v2/spans (JSON or protobuf) and /api/v1/spans (JSON or
// Thrift). `zipkin:` alone serves it on ":9411".
type ZipkinConfig struct {
	// Endpoint is the host:port to listen on. Default ":9411"; empty (the
	// node's config when the receiver is not configured) opens nothing.
	Endpoint string `yaml:"endpoint"`
	// MaxRequestBodySize is the largest request body accepted, in bytes.
	// Default 20 MiB.
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// ParseStringTags turns string tags that read as numbers or booleans
	// into attributes of those types, as the Collector's option. Default
	// false.
	ParseStringTags bool `yaml:"parse_string_tags"`
	// PushTimeout bounds how long one request may wait for the pipeline
	// (weft only). Default 10s.
	PushTimeout time.Duration `yaml:"push_timeout"`
}

// DefaultJaegerConfig returns a Jaeger receiver with no protocol: it opens
// nothing.
func DefaultJaegerConfig() JaegerConfig { return JaegerConfig{PushTimeout: DefaultPushTimeout} }

// DefaultZipkinConfig returns a Zipkin receiver on ":9411".
func DefaultZipkinConfig() ZipkinConfig {
	return ZipkinConfig{Endpoint: DefaultZipkinEndpoint, MaxRequestBodySize: DefaultMaxRequestBodySize, PushTimeout: DefaultPushTimeout}
}

// DefaultGRPC returns the default Jaeger gRPC listener.
func DefaultGRPC() GRPCConfig {
	return GRPCConfig{Endpoint: DefaultJaegerGRPCEndpoint, MaxRecvMsgSizeMiB: DefaultMaxRecvMsgSizeMiB}
}

// DefaultThriftHTTP returns the default Jaeger Thrift HTTP listener.
func DefaultThriftHTTP() HTTPConfig {
	return HTTPConfig{Endpoint: DefaultJaegerThriftHTTPEndpoint, MaxRequestBodySize: DefaultMaxRequestBodySize}
}

// DefaultUDP returns a UDP listener on endpoint with the default sizes.
func DefaultUDP(endpoint string) UDPConfig {
	return UDPConfig{Endpoint: endpoint, QueueSize: DefaultUDPQueueSize, MaxPacketSize: DefaultUDPMaxPacketSize, Workers: DefaultUDPWorkers}
}

// Enabled reports whether at least one protocol is on.
func (c *JaegerConfig) Enabled() bool {
	p := c.Protocols
	return p.GRPC != nil || p.ThriftHTTP != nil || p.ThriftCompact != nil || p.ThriftBinary != nil
}

func (c JaegerConfig) clone() JaegerConfig {
	out := c
	if p := c.Protocols.GRPC; p != nil {
		v := *p
		out.Protocols.GRPC = &v
	}
	if p := c.Protocols.ThriftHTTP; p != nil {
		v := *p
		out.Protocols.ThriftHTTP = &v
	}
	if p := c.Protocols.ThriftCompact; p != nil {
		v := *p
		out.Protocols.ThriftCompact = &v
	}
	if p := c.Protocols.ThriftBinary; p != nil {
		v := *p
		out.Protocols.ThriftBinary = &v
	}
	return out
}

// Validate checks the configuration and returns every problem found. No
// protocol at all is valid here (the node opens nothing); the config file
// refuses a `jaeger` block without one.
func (c *JaegerConfig) Validate() error {
	var errs []error
	if g := c.Protocols.GRPC; g != nil {
		if err := otlp.ValidateEndpoint(g.Endpoint, DefaultJaegerGRPCEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("protocols.grpc.endpoint: %w", err))
		}
		if g.MaxRecvMsgSizeMiB <= 0 || g.MaxRecvMsgSizeMiB > 2047 {
			errs = append(errs, fmt.Errorf("protocols.grpc.max_recv_msg_size_mib must be from 1 to 2047, got %d", g.MaxRecvMsgSizeMiB))
		}
	}
	if h := c.Protocols.ThriftHTTP; h != nil {
		if err := otlp.ValidateEndpoint(h.Endpoint, DefaultJaegerThriftHTTPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("protocols.thrift_http.endpoint: %w", err))
		}
		if h.MaxRequestBodySize <= 0 {
			errs = append(errs, fmt.Errorf("protocols.thrift_http.max_request_body_size must be positive, got %d", h.MaxRequestBodySize))
		}
	}
	for name, u := range map[string]*UDPConfig{"thrift_compact": c.Protocols.ThriftCompact, "thrift_binary": c.Protocols.ThriftBinary} {
		if u == nil {
			continue
		}
		example := DefaultJaegerThriftCompactEndpoint
		if name == "thrift_binary" {
			example = DefaultJaegerThriftBinaryEndpoint
		}
		if err := otlp.ValidateEndpoint(u.Endpoint, example); err != nil {
			errs = append(errs, fmt.Errorf("protocols.%s.endpoint: %w", name, err))
		}
		if u.QueueSize <= 0 {
			errs = append(errs, fmt.Errorf("protocols.%s.queue_size must be positive, got %d", name, u.QueueSize))
		}
		if u.MaxPacketSize <= 0 || u.MaxPacketSize > 65535 {
			errs = append(errs, fmt.Errorf("protocols.%s.max_packet_size must be from 1 to 65535, got %d", name, u.MaxPacketSize))
		}
		if u.Workers <= 0 {
			errs = append(errs, fmt.Errorf("protocols.%s.workers must be positive, got %d", name, u.Workers))
		}
	}
	if c.PushTimeout <= 0 {
		errs = append(errs, fmt.Errorf("push_timeout must be positive, got %s", c.PushTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid Jaeger receiver config: %w", err)
	}
	return nil
}

// Validate checks the configuration and returns every problem found.
func (c *ZipkinConfig) Validate() error {
	if c.Endpoint == "" {
		return nil // off
	}
	var errs []error
	if err := otlp.ValidateEndpoint(c.Endpoint, DefaultZipkinEndpoint); err != nil {
		errs = append(errs, fmt.Errorf("endpoint: %w", err))
	}
	if c.MaxRequestBodySize <= 0 {
		errs = append(errs, fmt.Errorf("max_request_body_size must be positive, got %d", c.MaxRequestBodySize))
	}
	if c.PushTimeout <= 0 {
		errs = append(errs, fmt.Errorf("push_timeout must be positive, got %s", c.PushTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid Zipkin receiver config: %w", err)
	}
	return nil
}

// UnmarshalYAML decodes the protocols block: a key present enables its
// transport, even with an empty value (`grpc:`), on top of the settings
// already there or else the defaults; a key absent disables it.
func (p *JaegerProtocols) UnmarshalYAML(value *yaml.Node) error {
	if value.Kind != yaml.MappingNode {
		return fmt.Errorf("cannot decode protocols at line %d: want a mapping of grpc, thrift_http, thrift_compact, thrift_binary", value.Line)
	}
	out := JaegerProtocols{}
	for i := 0; i+1 < len(value.Content); i += 2 {
		key, val := value.Content[i], value.Content[i+1]
		var err error
		switch key.Value {
		case "grpc":
			out.GRPC, err = decodeOver(val, p.GRPC, DefaultGRPC(), key.Value)
		case "thrift_http":
			out.ThriftHTTP, err = decodeOver(val, p.ThriftHTTP, DefaultThriftHTTP(), key.Value)
		case "thrift_compact":
			out.ThriftCompact, err = decodeOver(val, p.ThriftCompact, DefaultUDP(DefaultJaegerThriftCompactEndpoint), key.Value)
		case "thrift_binary":
			out.ThriftBinary, err = decodeOver(val, p.ThriftBinary, DefaultUDP(DefaultJaegerThriftBinaryEndpoint), key.Value)
		default:
			return fmt.Errorf("cannot decode protocols at line %d: unknown protocol %q (want grpc, thrift_http, thrift_compact or thrift_binary)", key.Line, key.Value)
		}
		if err != nil {
			return err
		}
	}
	*p = out
	return nil
}

// decodeOver decodes the section val (named key) strictly on top of cur,
// or of def when cur is nil, and returns the result.
func decodeOver[T any](val *yaml.Node, cur *T, def T, key string) (*T, error) {
	out := def
	if cur != nil {
		out = *cur
	}
	err := yamlx.DecodeSection(val, &out, key)
	return &out, err
}
