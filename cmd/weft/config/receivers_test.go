package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/weftdb/weft/sources/jaegerzipkin"
)

// Tempo's receiver blocks for Jaeger and Zipkin, as its examples write
// them, enable each protocol on Tempo's default port, or on its endpoint.
func TestJaegerZipkinReceiversConfig(t *testing.T) {
	c, ignored, err := Load("tempo.yaml", []byte(`
distributor:
  receivers:
    jaeger:
      protocols:
        thrift_http:
        grpc:
          tls:
            cert_file: /x
        thrift_binary:
        thrift_compact:
          endpoint: 127.0.0.1:16831
          queue_size: 50
    zipkin:
`), false)
	if err != nil {
		t.Fatal(err)
	}
	j := c.JaegerNode()
	p := j.Protocols
	if p.GRPC == nil || p.GRPC.Endpoint != ":14250" || p.ThriftHTTP == nil || p.ThriftHTTP.Endpoint != ":14268" ||
		p.ThriftBinary == nil || p.ThriftBinary.Endpoint != ":6832" || p.ThriftCompact == nil || p.ThriftCompact.Endpoint != "127.0.0.1:16831" {
		t.Fatalf("jaeger protocols %+v", p)
	}
	if p.ThriftCompact.QueueSize != 50 || p.ThriftCompact.Workers != jaegerzipkin.DefaultUDPWorkers || p.ThriftBinary.QueueSize != jaegerzipkin.DefaultUDPQueueSize {
		t.Errorf("UDP settings compact %+v binary %+v", p.ThriftCompact, p.ThriftBinary)
	}
	if z := c.ZipkinNode(); z.Endpoint != ":9411" || z.MaxRequestBodySize != jaegerzipkin.DefaultMaxRequestBodySize {
		t.Errorf("zipkin %+v", z)
	}
	if !slices.Contains(ignored, "distributor.receivers.jaeger.protocols.grpc.tls") {
		t.Errorf("ignored keys %v lack the gRPC tls block", ignored)
	}

	// Not configured: nodes that open nothing.
	d := Default()
	if j := d.JaegerNode(); j.Enabled() {
		t.Errorf("default jaeger %+v", j)
	}
	if z := d.ZipkinNode(); z.Endpoint != "" {
		t.Errorf("default zipkin %+v", z)
	}
}

func TestJaegerZipkinReceiversConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"distributor:\n  receivers:\n    jaeger:\n", "distributor.receivers.jaeger.protocols: enable at least one"},
		{"distributor:\n  receivers:\n    jaeger:\n      protocols:\n        grpc:\n          endpoit: x\n", `distributor.receivers.jaeger.protocols.grpc.endpoit: unknown key (did you mean "endpoint"?)`},
		{"distributor:\n  receivers:\n    jaeger:\n      protocols:\n        thrift_udp:\n", `unknown`},
		{"distributor:\n  receivers:\n    jaeger:\n      protocols:\n        thrift_binary:\n          endpoint: nonsense\n", "protocols.thrift_binary.endpoint"},
		{"distributor:\n  receivers:\n    zipkin:\n      endpoint: \":99999\"\n", "distributor.receivers.zipkin"},
		{"distributor:\n  receivers:\n    zipkin:\n      max_request_body_size: -1\n", "max_request_body_size must be positive"},
	} {
		_, _, err := Load("weft.yaml", []byte(tc.yaml), false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one with %q", tc.yaml, err, tc.want)
		}
	}
}
