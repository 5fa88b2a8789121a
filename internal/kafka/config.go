// Package kafka is the Kafka transport of the pipeline edges whose two ends
// run in different processes: the `ingest.kafka` configuration block, a
// watermill publisher that writes each message to the partition the
// distributor chose and returns only once Kafka acknowledged it, a watermill
// subscriber that reads a topic in a consumer group, and DevBroker, an
// in-memory Kafka-protocol broker for local runs and tests.
//
// The output of pipeline node X is the topic Config.TopicFor(X); node Y
// reading it consumes in the group Config.GroupFor(Y).
package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	gometrics "github.com/rcrowley/go-metrics"
	"gopkg.in/yaml.v3"
)

// SASL mechanisms accepted in sasl.mechanism.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Limits of the configuration, each named in the error that enforces it.
const (
	// MaxPartitions bounds auto_create_topic_default_partitions.
	MaxPartitions = 100000
	// MaxRecordSizeBytes bounds producer_max_record_size_bytes: sarama
	// refuses requests larger than sarama.MaxRequestSize (100 MiB).
	MaxRecordSizeBytes = 100 * 1024 * 1024
	// MaxLinger bounds producer_linger: every push waits up to it.
	MaxLinger = time.Second
	// MaxFetchMaxWait bounds consumer_fetch_max_wait: records wait up to
	// it before readers see them.
	MaxFetchMaxWait = 10 * time.Second
	// maxTopicLen is Kafka's limit on topic names.
	maxTopicLen = 249
)

// Codecs accepted in producer_compression.
const (
	CompressionNone   = "none"
	CompressionLZ4    = "lz4"
	CompressionSnappy = "snappy"
	CompressionZstd   = "zstd"
	CompressionGzip   = "gzip"
)

// codecs maps producer_compression to sarama's codecs.
var codecs = map[string]sarama.CompressionCodec{
	CompressionNone:   sarama.CompressionNone,
	CompressionLZ4:    sarama.CompressionLZ4,
	CompressionSnappy: sarama.CompressionSnappy,
	CompressionZstd:   sarama.CompressionZSTD,
	CompressionGzip:   sarama.CompressionGZIP,
}

// minVersion is the oldest Kafka protocol version weft speaks: record
// headers, which carry the message UUID and metadata, came with 0.11.
var minVersion = sarama.V0_11_0_0

// Config is the `ingest.kafka` block: how weft's processes reach Kafka (or
// Redpanda) to carry the pipeline edges between them.
type Config struct {
	// Address lists the bootstrap brokers as host:port. A single string
	// (Tempo's form) or a list of strings.
	Address Brokers `yaml:"address"`
	// Topic is the prefix of weft's topics: the output of pipeline node X
	// goes to the topic "<topic>.X".
	Topic string `yaml:"topic"`
	// Version is the Kafka protocol version spoken to the brokers, such as
	// "3.6.0". The dev broker (target dev-kafka) needs DevBrokerVersion.
	Version string `yaml:"version"`
	// WriteTimeout bounds a publish: a push whose write Kafka has not
	// acknowledged within it fails (also when no broker is reachable).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// DialTimeout bounds opening a connection to a broker.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds waiting for a broker's response to a request.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// AutoCreateTopicEnabled makes weft create its topics, with
	// auto_create_topic_default_partitions partitions, before it first
	// writes or reads them. When false the topics must exist beforehand
	// and publishing to a missing topic fails.
	AutoCreateTopicEnabled bool `yaml:"auto_create_topic_enabled"`
	// AutoCreateTopicDefaultPartitions is the partition count of the topics
	// weft creates; it should equal the distributor's `partitions`. The
	// default is 16, not Tempo's 1000: every partition costs memory and file
	// handles on the broker, too much for a dev broker or a small cluster.
	AutoCreateTopicDefaultPartitions int `yaml:"auto_create_topic_default_partitions"`
	// ProducerMaxRecordSizeBytes is the largest record weft writes; a
	// larger message fails to publish. Brokers must accept it too
	// (message.max.bytes).
	ProducerMaxRecordSizeBytes int `yaml:"producer_max_record_size_bytes"`
	// ProducerCompression is the codec of the record batches weft writes:
	// none, lz4, snappy, zstd or gzip. Consumers decompress whatever codec
	// they find, so it can be changed at any time. zstd needs version
	// 2.1.0 or later.
	ProducerCompression string `yaml:"producer_compression"`
	// ProducerLinger is how long the producer waits for more records
	// before it sends a request, so that concurrent pushes share one
	// request (and one compressed batch per partition). Every push waits
	// up to this long more before it is acknowledged. 0 sends at once.
	ProducerLinger time.Duration `yaml:"producer_linger"`
	// ProducerBatchMaxBytes sends the records waiting for producer_linger
	// as soon as they add up to this many bytes.
	ProducerBatchMaxBytes int `yaml:"producer_batch_max_bytes"`
	// ConsumerFetchMinBytes is how many bytes a broker gathers before it
	// answers a fetch, unless consumer_fetch_max_wait passes first: fewer,
	// larger fetches when records arrive faster than that.
	ConsumerFetchMinBytes int `yaml:"consumer_fetch_min_bytes"`
	// ConsumerFetchMaxWait is the longest a broker holds a fetch waiting
	// for consumer_fetch_min_bytes: the bound on how long a record can sit
	// in Kafka before a reader sees it (the push-to-searchable time).
	ConsumerFetchMaxWait time.Duration `yaml:"consumer_fetch_max_wait"`
	// ConsumerGroupPrefix names the consumer groups: node X reads in the
	// group "<consumer_group>-X".
	ConsumerGroupPrefix string `yaml:"consumer_group"`
	// ClientID is the client ID sent to the brokers, seen in their logs
	// and quotas.
	ClientID string `yaml:"client_id"`
	// TLS encrypts the connections to the brokers.
	TLS TLSConfig `yaml:"tls"`
	// SASL authenticates weft to the brokers.
	SASL SASLConfig `yaml:"sasl"`
}

// TLSConfig is the `tls` block of Config.
type TLSConfig struct {
	// Enabled turns TLS on for every broker connection.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that sign the brokers' certificates;
	// empty uses the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile is the PEM client certificate, for mutual TLS; needs key_file.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of cert_file.
	KeyFile string `yaml:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate: for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASLConfig is the `sasl` block of Config.
type SASLConfig struct {
	// Mechanism is the SASL mechanism; empty disables SASL. Only PLAIN is
	// supported (use it with TLS): the SCRAM mechanisms need a SCRAM
	// client library weft does not ship.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user.
	Username string `yaml:"username"`
	// Password is the SASL user's password.
	Password string `yaml:"password"`
}

// Brokers is a list of host:port addresses that decodes from YAML as either
// one string or a list of strings.
type Brokers []string

// UnmarshalYAML accepts `address: host:port` and `address: [a:1, b:2]`.
func (b *Brokers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*b = nil
			return nil
		}
		*b = Brokers{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Brokers, 0, len(n.Content))
		for i, c := range n.Content {
			if c.Kind == yaml.AliasNode && c.Alias != nil {
				c = c.Alias
			}
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: address[%d]: expected a host:port string", c.Line, i)
			}
			out = append(out, c.Value)
		}
		*b = out
		return nil
	}
	return fmt.Errorf("line %d: address: expected a host:port string or a list of them", n.Line)
}

// DefaultConfig returns the defaults of the `ingest.kafka` block.
func DefaultConfig() Config {
	return Config{
		Address:                          Brokers{"localhost:9092"},
		Topic:                            "weft-ingest",
		Version:                          "3.6.0",
		WriteTimeout:                     10 * time.Second,
		DialTimeout:                      5 * time.Second,
		ReadTimeout:                      10 * time.Second,
		AutoCreateTopicEnabled:           true,
		AutoCreateTopicDefaultPartitions: 16,
		ProducerMaxRecordSizeBytes:       15983616,
		ProducerCompression:              CompressionNone,
		ProducerLinger:                   5 * time.Millisecond,
		ProducerBatchMaxBytes:            1 << 20,
		ConsumerFetchMinBytes:            1 << 20,
		ConsumerFetchMaxWait:             100 * time.Millisecond,
		ConsumerGroupPrefix:              "weft",
		ClientID:                         "weft",
	}
}

// TopicFor returns the topic that carries the output of pipeline node node.
func (c Config) TopicFor(node string) string { return c.Topic + "." + node }

// GroupFor returns the consumer group in which pipeline node node reads.
func (c Config) GroupFor(node string) string { return c.ConsumerGroupPrefix + "-" + node }

// Validate checks every field and reports every problem at once, each
// naming its key relative to the block (e.g. "address[1]: ...").
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Address) == 0 {
		bad("address", "must name at least one broker as host:port")
	}
	for i, a := range c.Address {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			bad(fmt.Sprintf("address[%d]", i), "%q is not host:port", a)
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			bad(fmt.Sprintf("address[%d]", i), "%q: port must be a number between 1 and 65535", a)
		}
	}
	if err := validTopic(c.Topic); err != nil {
		bad("topic", "%v", err)
	}
	if c.Version == "" {
		bad("version", "must be set, such as \"3.6.0\" (or %q for the dev broker)", DevBrokerVersion)
	} else if v, err := sarama.ParseKafkaVersion(c.Version); err != nil {
		bad("version", "%q is not a Kafka version such as \"3.6.0\"", c.Version)
	} else if !v.IsAtLeast(minVersion) {
		bad("version", "%q is older than %s, the first with record headers, which weft needs", c.Version, minVersion)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"write_timeout", c.WriteTimeout}, {"dial_timeout", c.DialTimeout}, {"read_timeout", c.ReadTimeout}} {
		if d.v <= 0 {
			bad(d.key, "must be a positive duration such as 10s, got %s", d.v)
		}
	}
	if c.AutoCreateTopicDefaultPartitions < 1 || c.AutoCreateTopicDefaultPartitions > MaxPartitions {
		bad("auto_create_topic_default_partitions", "must be between 1 and %d, got %d", MaxPartitions, c.AutoCreateTopicDefaultPartitions)
	}
	if c.ProducerMaxRecordSizeBytes < 1 || c.ProducerMaxRecordSizeBytes > MaxRecordSizeBytes {
		bad("producer_max_record_size_bytes", "must be between 1 and %d (sarama's largest request), got %d", MaxRecordSizeBytes, c.ProducerMaxRecordSizeBytes)
	}
	if _, ok := codecs[c.ProducerCompression]; !ok {
		bad("producer_compression", "%q is not one of none, lz4, snappy, zstd, gzip", c.ProducerCompression)
	} else if c.ProducerCompression == CompressionZstd {
		if v, err := sarama.ParseKafkaVersion(c.Version); err == nil && !v.IsAtLeast(sarama.V2_1_0_0) {
			bad("producer_compression", "zstd needs version 2.1.0 or later, and version is %q; use lz4 or raise version", c.Version)
		}
	}
	if c.ProducerLinger < 0 || c.ProducerLinger > MaxLinger {
		bad("producer_linger", "must be between 0s and %s, got %s", MaxLinger, c.ProducerLinger)
	}
	if c.ProducerBatchMaxBytes < 1 || c.ProducerBatchMaxBytes > MaxRecordSizeBytes {
		bad("producer_batch_max_bytes", "must be between 1 and %d (sarama's largest request), got %d", MaxRecordSizeBytes, c.ProducerBatchMaxBytes)
	}
	if c.ConsumerFetchMinBytes < 1 || c.ConsumerFetchMinBytes > MaxRecordSizeBytes {
		bad("consumer_fetch_min_bytes", "must be between 1 and %d, got %d", MaxRecordSizeBytes, c.ConsumerFetchMinBytes)
	}
	if c.ConsumerFetchMaxWait <= 0 || c.ConsumerFetchMaxWait > MaxFetchMaxWait {
		bad("consumer_fetch_max_wait", "must be a positive duration of at most %s, got %s", MaxFetchMaxWait, c.ConsumerFetchMaxWait)
	}
	if c.ConsumerGroupPrefix == "" {
		bad("consumer_group", "must not be empty")
	}
	if c.ClientID == "" {
		bad("client_id", "must not be empty")
	}
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.SASL.validate()...)
	return errors.Join(errs...)
}

func validTopic(t string) error {
	if t == "" {
		return errors.New("must not be empty")
	}
	// Leave room for "." and a node name.
	if len(t) > maxTopicLen-50 {
		return fmt.Errorf("%q is longer than %d characters (Kafka allows %d for a whole topic name, which adds \".<node>\")", t, maxTopicLen-50, maxTopicLen)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q has the character %q, which Kafka refuses in topic names (allowed: letters, digits, '.', '_', '-')", t, r)
		}
	}
	return nil
}

func (t TLSConfig) validate() []error {
	var errs []error
	if !t.Enabled {
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
			errs = append(errs, errors.New("tls.enabled: files are set in tls but tls.enabled is false; set it to true or remove them"))
		}
		return errs
	}
	for _, f := range []struct{ key, path string }{{"tls.ca_file", t.CAFile}, {"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: cannot read %q: %w", f.key, f.path, err))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("tls.cert_file: cert_file and key_file go together: set both or neither"))
	}
	return errs
}

func (s SASLConfig) validate() []error {
	var errs []error
	switch strings.ToUpper(s.Mechanism) {
	case "":
		if s.Username != "" || s.Password != "" {
			errs = append(errs, errors.New("sasl.mechanism: username or password is set but no mechanism; set mechanism: PLAIN"))
		}
		return errs
	case SASLPlain:
	case SASLScramSHA256, SASLScramSHA512:
		errs = append(errs, fmt.Errorf("sasl.mechanism: %s is not supported yet, only PLAIN is (weft does not ship a SCRAM client library)", s.Mechanism))
	default:
		errs = append(errs, fmt.Errorf("sasl.mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism))
	}
	if s.Username == "" {
		errs = append(errs, errors.New("sasl.username: must be set when sasl.mechanism is"))
	}
	return errs
}

// Sarama returns the sarama client configuration of c, for producers,
// consumer groups and admin clients alike. c must be valid.
func (c Config) Sarama() (*sarama.Config, error) {
	v, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return nil, fmt.Errorf("cannot parse version %q: %w", c.Version, err)
	}
	clientMetricsOff.Do(func() { gometrics.UseNilMetrics = true })
	sc := sarama.NewConfig()
	sc.Version = v
	sc.ClientID = c.ClientID

	sc.Net.DialTimeout = c.DialTimeout
	sc.Net.ReadTimeout = c.ReadTimeout
	sc.Net.WriteTimeout = c.WriteTimeout
	if c.TLS.Enabled {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if c.SASL.Mechanism != "" {
		if !strings.EqualFold(c.SASL.Mechanism, SASLPlain) {
			return nil, fmt.Errorf("cannot use SASL mechanism %q: only PLAIN is supported", c.SASL.Mechanism)
		}
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.User = c.SASL.Username
		sc.Net.SASL.Password = c.SASL.Password
	}

	// Metadata of the topics in use only, and a bounded wait for it: with
	// no broker reachable a publish fails after about WriteTimeout instead
	// of sarama's Net timeouts × brokers × retries.
	sc.Metadata.Full = false
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 250 * time.Millisecond
	sc.Metadata.Timeout = c.WriteTimeout
	// Without auto-creation a missing topic must fail, not be created by
	// the broker with its own num.partitions.
	sc.Metadata.AllowAutoTopicCreation = c.AutoCreateTopicEnabled

	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Timeout = c.WriteTimeout
	sc.Producer.MaxMessageBytes = c.ProducerMaxRecordSizeBytes
	sc.Producer.Retry.Max = 2
	sc.Producer.Retry.Backoff = 100 * time.Millisecond
	sc.Producer.Partitioner = newPartitioner
	codec, ok := codecs[c.ProducerCompression]
	if !ok {
		return nil, fmt.Errorf("cannot use producer_compression %q: not one of none, lz4, snappy, zstd, gzip", c.ProducerCompression)
	}
	sc.Producer.Compression = codec
	// Records wait up to the linger, or until they add up to the batch
	// bytes; with no linger they go at once.
	if c.ProducerLinger > 0 {
		sc.Producer.Flush.Frequency = c.ProducerLinger
		sc.Producer.Flush.Bytes = c.ProducerBatchMaxBytes
	}

	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	// A fetch waits at most MaxWaitTime for Fetch.Min bytes: the bound on
	// how long a record can sit in Kafka before a reader sees it (the push-
	// to-searchable time). Under load a fetch then carries many records,
	// instead of each fetch returning as soon as one record is there.
	sc.Consumer.MaxWaitTime = c.ConsumerFetchMaxWait
	sc.Consumer.Fetch.Min = int32(c.ConsumerFetchMinBytes)
	if sc.Consumer.Fetch.Default < sc.Consumer.Fetch.Min {
		sc.Consumer.Fetch.Default = sc.Consumer.Fetch.Min
	}

	sc.Admin.Timeout = c.WriteTimeout
	sc.Admin.Retry.Max = 2

	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("cannot build the Kafka client configuration: %w", err)
	}
	return sc, nil
}

// clientMetricsOff turns off sarama's client metrics (go-metrics meters
// and histograms, updated on every request and record) before the first
// client is configured: weft does not export them, and they cost a
// consumer several percent of its CPU. It is a process-wide switch of
// go-metrics, set once before any sarama client exists.
var clientMetricsOff sync.Once

func (t TLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opt-in, documented as for tests only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use tls.ca_file %q: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load tls.cert_file and tls.key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
