package otlp

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/yamlx"
)

// Defaults of Config.
const (
	// DefaultGRPCEndpoint is where OTLP/gRPC listens by default.
	DefaultGRPCEndpoint = ":4317"
	// DefaultHTTPEndpoint is where OTLP/HTTP listens by default.
	DefaultHTTPEndpoint = ":4318"
	// DefaultMaxRecvMsgSizeMiB is the default largest gRPC request, in MiB.
	DefaultMaxRecvMsgSizeMiB = 16
	// DefaultMaxRequestBodySize is the default largest HTTP body, in bytes.
	DefaultMaxRequestBodySize int64 = 20 << 20
	// DefaultReadHeaderTimeout is how long an HTTP client may take to send
	// its request headers by default.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes idle HTTP keep-alive connections by default.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultReadTimeout is how long a client may take to send a whole
	// request by default: headers and body over HTTP, the message over gRPC.
	DefaultReadTimeout = 30 * time.Second
	// MaxHeaderBytes caps the request line and headers of an HTTP request;
	// a larger one gets 431 Request Header Fields Too Large.
	MaxHeaderBytes = 1 << 20
	// DefaultPushTimeout is how long a push waits for the pipeline by default.
	DefaultPushTimeout = 10 * time.Second
	// DefaultRetryAfter is the retry delay advertised by default.
	DefaultRetryAfter = 5 * time.Second
)

// Config is the configuration of an OTLP source. Its shape is that of the
// OpenTelemetry Collector's OTLP receiver, the same as Tempo's
// `distributor.receivers.otlp` block, which decodes straight into it.
type Config struct {
	// Protocols lists the transports to serve; each one present is enabled.
	Protocols Protocols `yaml:"protocols"`
	// PushTimeout bounds how long one push may wait for the pipeline; past it
	// the client gets 503/UNAVAILABLE. Default 10s.
	PushTimeout time.Duration `yaml:"push_timeout"`
	// RetryAfter is the retry delay advertised with 429/503 (RetryInfo in
	// gRPC, Retry-After in HTTP, rounded up to whole seconds). Default 5s, as
	// Tempo's retry_after_on_resource_exhausted.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// Protocols lists the OTLP transports. In YAML a key present with an empty
// value (`grpc:`) enables that transport with its defaults, and a key absent
// disables it, as in the Collector.
type Protocols struct {
	// GRPC configures OTLP/gRPC; nil turns gRPC off.
	GRPC *GRPCConfig `yaml:"grpc"`
	// HTTP configures OTLP/HTTP; nil turns HTTP off.
	HTTP *HTTPConfig `yaml:"http"`
}

// GRPCConfig configures the OTLP/gRPC listener.
type GRPCConfig struct {
	// Endpoint is the host:port to listen on. Default ":4317".
	Endpoint string `yaml:"endpoint"`
	// MaxRecvMsgSizeMiB is the largest request accepted, in MiB; larger ones
	// fail with RESOURCE_EXHAUSTED. Default 16.
	MaxRecvMsgSizeMiB int `yaml:"max_recv_msg_size_mib"`
	// ReadTimeout is how long a client may take to send its request message
	// once the call has started; a slower one fails with DEADLINE_EXCEEDED.
	// weft only (gRPC has no such bound). Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
}

// HTTPConfig configures the OTLP/HTTP listener.
type HTTPConfig struct {
	// Endpoint is the host:port to listen on. Default ":4318".
	Endpoint string `yaml:"endpoint"`
	// MaxRequestBodySize is the largest request body accepted, in bytes,
	// both as received and after gzip decompression; larger ones get 413.
	// Default 20 MiB.
	MaxRequestBodySize int64 `yaml:"max_request_body_size"`
	// ReadHeaderTimeout is how long a client may take to send the request
	// headers; a slower one is disconnected. Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 2m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ReadTimeout is how long a client may take to send a whole request,
	// body included; a slower one gets 408. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
}

// DefaultConfig returns the default configuration: gRPC and HTTP both on,
// on their standard ports.
func DefaultConfig() Config {
	g, h := DefaultGRPCConfig(), DefaultHTTPConfig()
	return Config{
		Protocols:   Protocols{GRPC: &g, HTTP: &h},
		PushTimeout: DefaultPushTimeout,
		RetryAfter:  DefaultRetryAfter,
	}
}

// DefaultGRPCConfig returns the default gRPC configuration.
func DefaultGRPCConfig() GRPCConfig {
	return GRPCConfig{Endpoint: DefaultGRPCEndpoint, MaxRecvMsgSizeMiB: DefaultMaxRecvMsgSizeMiB, ReadTimeout: DefaultReadTimeout}
}

// DefaultHTTPConfig returns the default HTTP configuration.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{Endpoint: DefaultHTTPEndpoint, MaxRequestBodySize: DefaultMaxRequestBodySize,
		ReadHeaderTimeout: DefaultReadHeaderTimeout, IdleTimeout: DefaultIdleTimeout, ReadTimeout: DefaultReadTimeout}
}

// clone returns a copy of c that shares no pointer with it.
func (c Config) clone() Config {
	out := c
	if c.Protocols.GRPC != nil {
		g := *c.Protocols.GRPC
		out.Protocols.GRPC = &g
	}
	if c.Protocols.HTTP != nil {
		h := *c.Protocols.HTTP
		out.Protocols.HTTP = &h
	}
	return out
}

// Validate checks the configuration and returns every problem found.
func (c *Config) Validate() error {
	var errs []error
	if c.Protocols.GRPC == nil && c.Protocols.HTTP == nil {
		errs = append(errs, errors.New("invalid OTLP config: protocols: enable at least one of grpc and http"))
	}
	if g := c.Protocols.GRPC; g != nil {
		if err := ValidateEndpoint(g.Endpoint, DefaultGRPCEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.grpc.endpoint: %w", err))
		}
		if g.MaxRecvMsgSizeMiB <= 0 {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.grpc.max_recv_msg_size_mib must be positive, got %d", g.MaxRecvMsgSizeMiB))
		} else if g.MaxRecvMsgSizeMiB > maxRecvMsgSizeMiB {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.grpc.max_recv_msg_size_mib must be at most %d, got %d", maxRecvMsgSizeMiB, g.MaxRecvMsgSizeMiB))
		}
		if g.ReadTimeout <= 0 {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.grpc.read_timeout must be positive, got %s", g.ReadTimeout))
		}
	}
	if h := c.Protocols.HTTP; h != nil {
		if err := ValidateEndpoint(h.Endpoint, DefaultHTTPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.http.endpoint: %w", err))
		}
		if h.MaxRequestBodySize <= 0 {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.http.max_request_body_size must be positive, got %d", h.MaxRequestBodySize))
		}
		if h.ReadHeaderTimeout <= 0 {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.http.read_header_timeout must be positive, got %s", h.ReadHeaderTimeout))
		}
		if h.IdleTimeout <= 0 {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.http.idle_timeout must be positive, got %s", h.IdleTimeout))
		}
		if h.ReadTimeout < h.ReadHeaderTimeout {
			errs = append(errs, fmt.Errorf("invalid OTLP config: protocols.http.read_timeout must be at least read_header_timeout (%s), got %s", h.ReadHeaderTimeout, h.ReadTimeout))
		}
	}
	if c.PushTimeout <= 0 {
		errs = append(errs, fmt.Errorf("invalid OTLP config: push_timeout must be positive, got %s", c.PushTimeout))
	}
	if c.RetryAfter <= 0 {
		errs = append(errs, fmt.Errorf("invalid OTLP config: retry_after must be positive, got %s", c.RetryAfter))
	}
	return errors.Join(errs...)
}

// maxRecvMsgSizeMiB keeps the byte size within a 32-bit int.
const maxRecvMsgSizeMiB = 2047

// ValidateEndpoint checks a receiver's listen address: host:port with a
// numeric port (0 picks a free one). example is a valid address for the
// message, such as ":4317".
func ValidateEndpoint(endpoint, example string) error {
	if endpoint == "" {
		return fmt.Errorf("empty, want host:port such as %q", example)
	}
	_, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		return fmt.Errorf("cannot parse %q as host:port: %w", endpoint, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("cannot parse the port of %q: want a number from 0 to 65535", endpoint)
	}
	return nil
}

// UnmarshalYAML decodes the protocols block: a key present enables its
// transport, even with an empty value (`grpc:`), on top of the settings
// already there or else the defaults; a key absent disables it.
func (p *Protocols) UnmarshalYAML(value *yaml.Node) error {
	if value.Kind != yaml.MappingNode {
		return fmt.Errorf("cannot decode protocols at line %d: want a mapping with grpc and/or http", value.Line)
	}
	var grpcNode, httpNode *yaml.Node
	for i := 0; i+1 < len(value.Content); i += 2 {
		key, val := value.Content[i], value.Content[i+1]
		switch key.Value {
		case "grpc":
			grpcNode = val
		case "http":
			httpNode = val
		default:
			return fmt.Errorf("cannot decode protocols at line %d: unknown protocol %q (want grpc or http)", key.Line, key.Value)
		}
	}
	out := Protocols{}
	if grpcNode != nil {
		g := DefaultGRPCConfig()
		if p.GRPC != nil {
			g = *p.GRPC
		}
		if err := yamlx.DecodeSection(grpcNode, &g, "grpc"); err != nil {
			return err
		}
		out.GRPC = &g
	}
	if httpNode != nil {
		h := DefaultHTTPConfig()
		if p.HTTP != nil {
			h = *p.HTTP
		}
		if err := yamlx.DecodeSection(httpNode, &h, "http"); err != nil {
			return err
		}
		out.HTTP = &h
	}
	*p = out
	return nil
}
