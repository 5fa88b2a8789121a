package otlp

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"no protocol", func(c *Config) { c.Protocols = Protocols{} }, "at least one"},
		{"grpc endpoint without port", func(c *Config) { c.Protocols.GRPC.Endpoint = "localhost" }, "protocols.grpc.endpoint"},
		{"grpc endpoint empty", func(c *Config) { c.Protocols.GRPC.Endpoint = "" }, "protocols.grpc.endpoint"},
		{"http endpoint bad port", func(c *Config) { c.Protocols.HTTP.Endpoint = "localhost:http" }, "protocols.http.endpoint"},
		{"http endpoint port range", func(c *Config) { c.Protocols.HTTP.Endpoint = ":70000" }, "protocols.http.endpoint"},
		{"grpc size", func(c *Config) { c.Protocols.GRPC.MaxRecvMsgSizeMiB = 0 }, "max_recv_msg_size_mib"},
		{"grpc size too large", func(c *Config) { c.Protocols.GRPC.MaxRecvMsgSizeMiB = 1 << 20 }, "max_recv_msg_size_mib"},
		{"http size", func(c *Config) { c.Protocols.HTTP.MaxRequestBodySize = -1 }, "max_request_body_size"},
		{"http read timeout below the header timeout", func(c *Config) { c.Protocols.HTTP.ReadTimeout = time.Second }, "protocols.http.read_timeout must be at least read_header_timeout (10s)"},
		{"push timeout", func(c *Config) { c.PushTimeout = 0 }, "push_timeout"},
		{"retry after", func(c *Config) { c.RetryAfter = -time.Second }, "retry_after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error about %s", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	c := Config{Protocols: Protocols{HTTP: &HTTPConfig{}}}
	err := c.Validate()
	for _, want := range []string{"protocols.http.endpoint", "max_request_body_size", "push_timeout", "retry_after"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
	// Valid variants.
	for _, endpoint := range []string{":4317", "127.0.0.1:0", "[::1]:4317", "localhost:4318"} {
		c := DefaultConfig()
		c.Protocols.GRPC.Endpoint = endpoint
		c.Protocols.HTTP = nil
		if err := c.Validate(); err != nil {
			t.Errorf("endpoint %q: %v", endpoint, err)
		}
	}
}

// decode decodes doc strictly on top of base, as the main config does.
func decode(t *testing.T, base Config, doc string) (Config, error) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.KnownFields(true)
	err := dec.Decode(&base)
	return base, err
}

func TestYAMLNullProtocolsGetDefaults(t *testing.T) {
	c, err := decode(t, DefaultConfig(), `protocols: {grpc: , http: {endpoint: "127.0.0.1:0"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Protocols.GRPC == nil || *c.Protocols.GRPC != DefaultGRPCConfig() {
		t.Errorf("grpc = %+v, want the defaults %+v", c.Protocols.GRPC, DefaultGRPCConfig())
	}
	want := DefaultHTTPConfig()
	want.Endpoint = "127.0.0.1:0"
	if c.Protocols.HTTP == nil || *c.Protocols.HTTP != want {
		t.Errorf("http = %+v, want %+v", c.Protocols.HTTP, want)
	}
	if c.PushTimeout != DefaultPushTimeout || c.RetryAfter != DefaultRetryAfter {
		t.Errorf("timeouts %s %s, want the defaults", c.PushTimeout, c.RetryAfter)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

func TestYAML(t *testing.T) {
	// Tempo's distributor.receivers.otlp block, in block style.
	c, err := decode(t, DefaultConfig(), `
protocols:
  grpc:
    endpoint: 0.0.0.0:14317
    max_recv_msg_size_mib: 32
  http:
push_timeout: 3s
retry_after: 1m
`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := *c.Protocols.GRPC, (GRPCConfig{Endpoint: "0.0.0.0:14317", MaxRecvMsgSizeMiB: 32, ReadTimeout: DefaultReadTimeout}); got != want {
		t.Errorf("grpc = %+v, want %+v", got, want)
	}
	if c.Protocols.HTTP == nil || *c.Protocols.HTTP != DefaultHTTPConfig() {
		t.Errorf("http = %+v, want the defaults", c.Protocols.HTTP)
	}
	if c.PushTimeout != 3*time.Second || c.RetryAfter != time.Minute {
		t.Errorf("push_timeout %s retry_after %s, want 3s and 1m", c.PushTimeout, c.RetryAfter)
	}

	// A protocol left out is off.
	c, err = decode(t, DefaultConfig(), "protocols:\n  http:\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Protocols.GRPC != nil || c.Protocols.HTTP == nil {
		t.Errorf("protocols = %+v, want http only", c.Protocols)
	}

	// Without a protocols block the base stays.
	c, err = decode(t, DefaultConfig(), "push_timeout: 1s\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Protocols.GRPC == nil || c.Protocols.HTTP == nil {
		t.Errorf("protocols = %+v, want both from the base", c.Protocols)
	}

	// An empty protocol starts from the base's settings when it has some.
	base := DefaultConfig()
	base.Protocols.GRPC.Endpoint = "127.0.0.1:9999"
	c, err = decode(t, base, "protocols: {grpc: }")
	if err != nil {
		t.Fatal(err)
	}
	if c.Protocols.GRPC == nil || c.Protocols.GRPC.Endpoint != "127.0.0.1:9999" {
		t.Errorf("grpc = %+v, want the base endpoint", c.Protocols.GRPC)
	}
}

func TestYAMLErrors(t *testing.T) {
	for _, doc := range []string{
		"protocols: {thrift: }",
		"protocols: {grpc: {endpoint: x:1, port: 4}}",
		"protocols: {http: {max_body: 4}}",
		"protocols: {grpc: 5}",
		"protocols: [grpc]",
		"protocols: {http: {max_request_body_size: lots}}",
		"push_timeout: soon",
	} {
		if _, err := decode(t, DefaultConfig(), doc); err == nil {
			t.Errorf("%s: decoded without error", doc)
		}
	}
}

func TestHTTPTimeoutKeys(t *testing.T) {
	c, err := decode(t, DefaultConfig(), `protocols: {http: {read_header_timeout: 1s, idle_timeout: 5s}}`)
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Protocols.HTTP; h.ReadHeaderTimeout != time.Second || h.IdleTimeout != 5*time.Second || h.MaxRequestBodySize != DefaultMaxRequestBodySize {
		t.Fatalf("http = %+v", h)
	}
	c.Protocols.HTTP.ReadHeaderTimeout, c.Protocols.HTTP.IdleTimeout = 0, -1
	err = c.Validate()
	for _, want := range []string{"protocols.http.read_header_timeout must be positive", "protocols.http.idle_timeout must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
}
