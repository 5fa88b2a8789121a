package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/yamlx"
)

func decode(t *testing.T, src string) (Config, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	err := yamlx.Decode(&n, &cfg, yamlx.Options{File: "weft.yaml", Path: "ingest.kafka"})
	return cfg, err
}

func TestConfigAddressStringOrList(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string
	}{
		{"address: kafka:9092\n", "kafka:9092"},
		{"address: [a:9092, b:9093]\n", "a:9092,b:9093"},
		{"address:\n  - a:9092\n  - b:9093\n", "a:9092,b:9093"},
		{"topic: t\n", "localhost:9092"}, // default
	} {
		cfg, err := decode(t, tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if got := strings.Join(cfg.Address, ","); got != tc.want {
			t.Errorf("%q: address = %s, want %s", tc.src, got, tc.want)
		}
	}
	if _, err := decode(t, "address: {a: 1}\n"); err == nil || !strings.Contains(err.Error(), "address") {
		t.Errorf("a mapping as address: got %v, want an error naming address", err)
	}
}

func TestConfigDefaultsAreValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	if sc.Producer.Timeout != 10*time.Second || sc.Net.DialTimeout != 5*time.Second || sc.Producer.MaxMessageBytes != 15983616 {
		t.Errorf("sarama config does not carry the defaults: %+v", sc.Producer)
	}
	if got := cfg.TopicFor("distributor"); got != "weft-ingest.distributor" {
		t.Errorf("TopicFor = %q", got)
	}
	if got := cfg.GroupFor("block-builder"); got != "weft-block-builder" {
		t.Errorf("GroupFor = %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Address = nil }, "address: must name at least one broker"},
		{func(c *Config) { c.Address = Brokers{"a:1", "nohost"} }, `address[1]: "nohost" is not host:port`},
		{func(c *Config) { c.Address = Brokers{"a:99999"} }, "address[0]: \"a:99999\": port must be"},
		{func(c *Config) { c.Topic = "" }, "topic: must not be empty"},
		{func(c *Config) { c.Topic = "we ft" }, "topic: \"we ft\" has the character ' '"},
		{func(c *Config) { c.Version = "three" }, `version: "three" is not a Kafka version`},
		{func(c *Config) { c.Version = "0.10.2.0" }, `version: "0.10.2.0" is older than 0.11.0.0`},
		{func(c *Config) { c.WriteTimeout = 0 }, "write_timeout: must be a positive duration"},
		{func(c *Config) { c.DialTimeout = -time.Second }, "dial_timeout: must be a positive duration"},
		{func(c *Config) { c.ReadTimeout = 0 }, "read_timeout: must be a positive duration"},
		{func(c *Config) { c.AutoCreateTopicDefaultPartitions = 0 }, "auto_create_topic_default_partitions: must be between 1 and 100000, got 0"},
		{func(c *Config) { c.ProducerMaxRecordSizeBytes = 200 << 20 }, "producer_max_record_size_bytes: must be between 1 and 104857600"},
		{func(c *Config) { c.ProducerCompression = "brotli" }, `producer_compression: "brotli" is not one of none, lz4, snappy, zstd, gzip`},
		{func(c *Config) { c.ProducerCompression = "" }, `producer_compression: "" is not one of`},
		{func(c *Config) { c.ProducerCompression, c.Version = "zstd", "2.0.0" }, `producer_compression: zstd needs version 2.1.0 or later, and version is "2.0.0"`},
		{func(c *Config) { c.ProducerLinger = -time.Millisecond }, "producer_linger: must be between 0s and 1s, got -1ms"},
		{func(c *Config) { c.ProducerLinger = 2 * time.Second }, "producer_linger: must be between 0s and 1s, got 2s"},
		{func(c *Config) { c.ProducerBatchMaxBytes = 0 }, "producer_batch_max_bytes: must be between 1 and 104857600 (sarama's largest request), got 0"},
		{func(c *Config) { c.ConsumerFetchMinBytes = 0 }, "consumer_fetch_min_bytes: must be between 1 and 104857600, got 0"},
		{func(c *Config) { c.ConsumerFetchMaxWait = 0 }, "consumer_fetch_max_wait: must be a positive duration of at most 10s, got 0s"},
		{func(c *Config) { c.ConsumerFetchMaxWait = time.Minute }, "consumer_fetch_max_wait: must be a positive duration of at most 10s, got 1m0s"},
		{func(c *Config) { c.ConsumerGroupPrefix = "" }, "consumer_group: must not be empty"},
		{func(c *Config) { c.ClientID = "" }, "client_id: must not be empty"},
		{func(c *Config) { c.TLS = TLSConfig{Enabled: true, CAFile: "/nonexistent/ca.pem"} }, `tls.ca_file: cannot read "/nonexistent/ca.pem"`},
		{func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: "config.go"} }, "tls.cert_file: cert_file and key_file go together"},
		{func(c *Config) { c.TLS = TLSConfig{CAFile: "config.go"} }, "tls.enabled: files are set in tls but tls.enabled is false"},
		{func(c *Config) { c.SASL = SASLConfig{Mechanism: "SCRAM-SHA-512", Username: "u"} }, "sasl.mechanism: SCRAM-SHA-512 is not supported yet, only PLAIN is"},
		{func(c *Config) { c.SASL = SASLConfig{Mechanism: "GSSAPI", Username: "u"} }, `sasl.mechanism: "GSSAPI" is not one of PLAIN`},
		{func(c *Config) { c.SASL = SASLConfig{Mechanism: "PLAIN"} }, "sasl.username: must be set"},
		{func(c *Config) { c.SASL = SASLConfig{Password: "p"} }, "sasl.mechanism: username or password is set but no mechanism"},
	} {
		cfg := DefaultConfig()
		tc.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
}

// Through yamlx the errors carry the block's path and unknown keys are
// refused. (yamlx prefixes the first line of a joined Validate error only.)
func TestConfigYAMLErrorsCarryPath(t *testing.T) {
	_, err := decode(t, "address: [a:1, nohost]\nwrite_timeout: 0s\ntopik: x\n")
	if err == nil || !strings.Contains(err.Error(), "ingest.kafka.topik: unknown key") {
		t.Fatalf("got %v, want the unknown key topik", err)
	}
	_, err = decode(t, "address: [a:1, nohost]\nwrite_timeout: 0s\nsasl: {mechanism: PLAIN, username: u, password: p}\n")
	for _, want := range []string{`ingest.kafka: address[1]: "nohost" is not host:port`, "write_timeout: must be a positive duration"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
}

// The batching and compression keys reach sarama's configuration.
func TestSaramaBatchingAndCompression(t *testing.T) {
	cfg, err := decode(t, "producer_compression: lz4\nproducer_linger: 20ms\nproducer_batch_max_bytes: 65536\nconsumer_fetch_min_bytes: 4096\nconsumer_fetch_max_wait: 250ms\n")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	if sc.Producer.Compression != sarama.CompressionLZ4 || sc.Producer.Flush.Frequency != 20*time.Millisecond || sc.Producer.Flush.Bytes != 65536 {
		t.Errorf("producer settings not passed to sarama: compression %v, flush %+v", sc.Producer.Compression, sc.Producer.Flush)
	}
	if sc.Consumer.Fetch.Min != 4096 || sc.Consumer.MaxWaitTime != 250*time.Millisecond {
		t.Errorf("consumer settings not passed to sarama: fetch %+v, max wait %s", sc.Consumer.Fetch, sc.Consumer.MaxWaitTime)
	}
	// No linger: sarama sends at once (a flush byte count without a
	// frequency would hold records until that many bytes).
	cfg.ProducerLinger = 0
	if sc, err = cfg.Sarama(); err != nil {
		t.Fatal(err)
	}
	if sc.Producer.Flush.Frequency != 0 || sc.Producer.Flush.Bytes != 0 {
		t.Errorf("producer_linger 0: flush %+v, want all zero", sc.Producer.Flush)
	}
}

func TestSaramaPlainSASLAndTLS(t *testing.T) {
	cfg := DefaultConfig()
	cfg.TLS = TLSConfig{Enabled: true, ServerName: "kafka.example"}
	cfg.SASL = SASLConfig{Mechanism: "PLAIN", Username: "u", Password: "p"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Net.TLS.Enable || sc.Net.TLS.Config.ServerName != "kafka.example" || !sc.Net.SASL.Enable || sc.Net.SASL.User != "u" {
		t.Errorf("TLS/SASL not passed to sarama: %+v", sc.Net)
	}
}
