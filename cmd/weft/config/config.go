// Package config is weft's process configuration: the YAML file given with
// -config.file (or the embedded default), using Grafana Tempo's key names for
// the blocks both systems have, so that a Tempo monolithic config file
// starts weft.
//
// Decoding is strict: a key that neither weft nor Tempo knows is an error
// with its line; a Tempo key that weft does not use yet is accepted and
// reported once as a warning.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/backend/worker"
	"github.com/weftdb/weft/internal/kafka"
	"github.com/weftdb/weft/internal/membership"
	"github.com/weftdb/weft/internal/memlimit"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/yamlx"
	"github.com/weftdb/weft/query/frontend"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/ui"
	"github.com/weftdb/weft/sinks/blockbuilder"
	"github.com/weftdb/weft/sinks/generator"
	"github.com/weftdb/weft/sinks/livestore"
	"github.com/weftdb/weft/sources/jaegerzipkin"
	"github.com/weftdb/weft/sources/otlp"
	"github.com/weftdb/weft/stages/distributor"
)

// Config is the whole configuration of a weft process.
type Config struct {
	// Target is the component this process runs, as with -target; the flag wins.
	Target string `yaml:"target"`
	// MultitenancyEnabled requires X-Scope-OrgID on every request and keeps
	// tenants apart; when false everything belongs to "single-tenant".
	MultitenancyEnabled bool `yaml:"multitenancy_enabled"`
	// StreamOverHTTPEnabled serves the streaming query API
	// (tempopb.StreamingQuerier, always on the gRPC port) on the HTTP port
	// too, as unencrypted HTTP/2, as Grafana's Tempo data source expects.
	StreamOverHTTPEnabled bool `yaml:"stream_over_http_enabled"`
	// Server holds the listen ports and logging of the process.
	Server ServerConfig `yaml:"server"`
	// Distributor configures intake: receivers and span checks.
	Distributor DistributorConfig `yaml:"distributor"`
	// LiveStore configures the in-memory store of recent traces.
	LiveStore livestore.Config `yaml:"live_store"`
	// BlockBuilder configures how spans become blocks in object storage.
	BlockBuilder blockbuilder.Config `yaml:"block_builder"`
	// MetricsGenerator configures the series derived from the spans and
	// where they are sent; which processors run is per tenant
	// (overrides.*.metrics_generator).
	MetricsGenerator generator.Config `yaml:"metrics_generator"`
	// QueryFrontend configures search: limits, defaults and job cutting.
	QueryFrontend frontend.Config `yaml:"query_frontend"`
	// Querier configures how queries are run.
	Querier querier.Config `yaml:"querier"`
	// Ingest configures the transport between processes (microservices
	// mode); unused by -target=all.
	Ingest IngestConfig `yaml:"ingest"`
	// Memberlist configures how the processes of a microservices
	// deployment find each other (queriers find live-stores); unused by
	// -target=all.
	Memberlist membership.Config `yaml:"memberlist"`
	// Storage configures where blocks are kept.
	Storage StorageConfig `yaml:"storage"`
	// Overrides are the per-tenant limits: defaults, and a runtime file of
	// the tenants that differ.
	Overrides overrides.Config `yaml:"overrides"`
	// Pipeline chooses the write-path graph.
	Pipeline PipelineConfig `yaml:"pipeline"`
	// MemoryLimiter keeps the process within a memory budget (weft only).
	MemoryLimiter memlimit.Config `yaml:"memory_limiter"`
	// BackendScheduler plans the compaction and retention jobs of the
	// blocks (the backend-scheduler component).
	BackendScheduler scheduler.Config `yaml:"backend_scheduler"`
	// BackendWorker runs them (the backend-worker component).
	BackendWorker worker.Config `yaml:"backend_worker"`
	// UI configures the built-in trace explorer served on the HTTP port
	// (weft only).
	UI ui.Config `yaml:"ui"`

	// QueryEndCutoffSet is true when the file sets
	// query_frontend.query_end_cutoff (Load sets it; a config built in Go
	// sets it to have its QueryEndCutoff applied as given). A monolithic
	// process applies an unset cutoff as 0 (see app.EffectiveQueryEndCutoff).
	QueryEndCutoffSet bool `yaml:"-"`
}

// ServerConfig is the `server` block.
type ServerConfig struct {
	// HTTPListenAddress is the address the query API binds; empty binds all.
	HTTPListenAddress string `yaml:"http_listen_address"`
	// HTTPListenPort is the port of the query API, /metrics and /ready.
	HTTPListenPort int `yaml:"http_listen_port"`
	// GRPCListenAddress is the address the internal gRPC server binds.
	GRPCListenAddress string `yaml:"grpc_listen_address"`
	// GRPCListenPort is the port of the internal gRPC server.
	GRPCListenPort int `yaml:"grpc_listen_port"`
	// HTTPServerReadTimeout bounds reading a whole request.
	HTTPServerReadTimeout time.Duration `yaml:"http_server_read_timeout"`
	// HTTPServerWriteTimeout bounds writing a response.
	HTTPServerWriteTimeout time.Duration `yaml:"http_server_write_timeout"`
	// HTTPServerReadHeaderTimeout is how long a client may take to send
	// its request headers; a slower one is disconnected.
	HTTPServerReadHeaderTimeout time.Duration `yaml:"http_server_read_header_timeout"`
	// HTTPServerIdleTimeout closes idle keep-alive connections.
	HTTPServerIdleTimeout time.Duration `yaml:"http_server_idle_timeout"`
	// GracefulShutdownTimeout bounds the drain on SIGTERM.
	GracefulShutdownTimeout time.Duration `yaml:"graceful_shutdown_timeout"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is logfmt or json.
	LogFormat string `yaml:"log_format"`
}

// DistributorConfig is the `distributor` block.
type DistributorConfig struct {
	// Receivers are the ingest protocols, in OpenTelemetry Collector syntax.
	Receivers ReceiversConfig `yaml:"receivers"`
	// MaxAttributeBytes truncates longer attribute keys and string values.
	MaxAttributeBytes int `yaml:"max_attribute_bytes"`
	// RetryAfterOnResourceExhausted is the retry delay advertised with 429 and 503.
	RetryAfterOnResourceExhausted time.Duration `yaml:"retry_after_on_resource_exhausted"`
	// Partitions is the number of partitions spans are hashed over.
	Partitions int `yaml:"partitions"`
	// TraceIdlePeriod is how long after its last span a trace stops being
	// live for overrides.*.ingestion.max_traces_per_user and
	// overrides.*.global.max_bytes_per_trace at ingest.
	TraceIdlePeriod time.Duration `yaml:"trace_idle_period"`
}

// ReceiversConfig lists the receivers: OTLP, Jaeger and Zipkin, with
// Tempo's (the OpenTelemetry Collector's) keys.
type ReceiversConfig struct {
	// OTLP is the OTLP receiver. Left out, the default (gRPC and HTTP on)
	// stays; an empty `otlp:` turns it off.
	OTLP *otlp.Config `yaml:"otlp"`
	// Jaeger is the Jaeger receiver: `protocols` lists grpc (:14250),
	// thrift_http (:14268), thrift_compact (:6831/udp) and thrift_binary
	// (:6832/udp); a protocol listed without an endpoint takes its default
	// port. Left out, nothing listens.
	Jaeger *jaegerzipkin.JaegerConfig `yaml:"jaeger"`
	// Zipkin is the Zipkin receiver (/api/v2/spans and /api/v1/spans);
	// `zipkin:` alone listens on :9411. Left out, nothing listens.
	Zipkin *jaegerzipkin.ZipkinConfig `yaml:"zipkin"`
}

// UnmarshalYAML decodes the receivers; `jaeger:` or `zipkin:` with an
// empty value enables that receiver with its defaults, as in the Collector
// (`otlp:` empty turns OTLP off, as before).
func (r *ReceiversConfig) UnmarshalYAML(value *yaml.Node) error {
	type plain ReceiversConfig
	if value.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(value.Content); i += 2 {
			switch value.Content[i].Value {
			case "jaeger":
				if r.Jaeger == nil {
					j := jaegerzipkin.DefaultJaegerConfig()
					r.Jaeger = &j
				}
			case "zipkin":
				if r.Zipkin == nil {
					z := jaegerzipkin.DefaultZipkinConfig()
					r.Zipkin = &z
				}
			}
		}
	}
	j, z := r.Jaeger, r.Zipkin
	if err := value.Decode((*plain)(r)); err != nil {
		return err
	}
	// A null value decodes as nil: keep the defaults set above.
	if r.Jaeger == nil {
		r.Jaeger = j
	}
	if r.Zipkin == nil {
		r.Zipkin = z
	}
	return nil
}

// StorageConfig is the `storage` block.
type StorageConfig struct {
	// Trace is where trace blocks go.
	Trace TraceStorageConfig `yaml:"trace"`
}

// TraceStorageConfig is `storage.trace`: the object store of blocks, and
// how often the block list is read from it.
type TraceStorageConfig struct {
	// Store is the backend and its settings (backend, local, s3), inline.
	Store storage.Config `yaml:",inline"`
	// BlocklistPoll is how often a process lists the blocks in the store, to
	// see blocks other processes wrote.
	BlocklistPoll time.Duration `yaml:"blocklist_poll"`
	// BlocklistPollFallback makes a process list a tenant's blocks when
	// the tenant's index (<tenant>/index.json.gz, written by the backend
	// scheduler) is missing, not valid or stale; false makes the poll of
	// that tenant fail instead (the process keeps the list it had).
	BlocklistPollFallback bool `yaml:"blocklist_poll_fallback"`
	// BlocklistPollStaleTenantIndex is the age past which a tenant index
	// is not used (the tenant is listed instead). 0 (the default) is
	// three times blocklist_poll; unlike Tempo, weft always checks.
	BlocklistPollStaleTenantIndex time.Duration `yaml:"blocklist_poll_stale_tenant_index"`
	// ReadTimeout bounds each read the query path makes from the store
	// (weft only): a block whose read does not finish in time is skipped
	// and the answer marked partial, instead of waiting for the query's
	// timeout. 0 disables it.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WAL is Tempo's `storage.trace.wal`: of it weft uses only the path.
	WAL TraceWALConfig `yaml:"wal"`
}

// TraceWALConfig is `storage.trace.wal`.
type TraceWALConfig struct {
	// Path is Tempo's directory of write-ahead logs. When set and
	// block_builder.wal.path is not, the block-builder's WAL goes in
	// its subdirectory block-builder (BlockBuilderWALDir).
	Path string `yaml:"path"`
}

// BlockBuilderWALDir is the subdirectory of storage.trace.wal.path that
// holds the block-builder's WAL when block_builder.wal.path is not set.
const BlockBuilderWALDir = "block-builder"

// IngestConfig is the `ingest` block.
type IngestConfig struct {
	// Kafka is the broker the components of a microservices deployment
	// exchange spans through.
	Kafka kafka.Config `yaml:"kafka"`
}

// PipelineConfig is the `pipeline` block (weft only).
type PipelineConfig struct {
	// File is a pipeline YAML file used instead of the embedded default.
	File string `yaml:"file"`
}

// Default returns the configuration of a weft started without a config
// file: monolithic, HTTP 3200, gRPC 9095, OTLP 4317/4318, data in ./data.
func Default() Config {
	o := otlp.DefaultConfig()
	d := distributor.DefaultConfig()
	st := storage.DefaultConfig()
	st.Local.Path = "./data/blocks" // beside ./data/wal, outside the bucket

	return Config{
		Target: "all",
		Server: ServerConfig{
			HTTPListenPort:              3200,
			GRPCListenPort:              9095,
			HTTPServerReadTimeout:       30 * time.Second,
			HTTPServerWriteTimeout:      30 * time.Second,
			HTTPServerIdleTimeout:       120 * time.Second,
			HTTPServerReadHeaderTimeout: 10 * time.Second,
			GracefulShutdownTimeout:     30 * time.Second,
			LogLevel:                    "info",
			LogFormat:                   "logfmt",
		},
		Distributor: DistributorConfig{
			Receivers:                     ReceiversConfig{OTLP: &o},
			MaxAttributeBytes:             d.MaxAttributeBytes,
			RetryAfterOnResourceExhausted: o.RetryAfter,
			Partitions:                    d.Partitions,
			TraceIdlePeriod:               d.TraceIdlePeriod,
		},
		LiveStore:        livestore.DefaultConfig(),
		BlockBuilder:     blockbuilder.DefaultConfig(),
		MetricsGenerator: generator.DefaultConfig(),
		QueryFrontend:    frontend.DefaultConfig(),
		Ingest:           IngestConfig{Kafka: kafka.DefaultConfig()},
		Memberlist:       membership.DefaultConfig(),
		Overrides:        overrides.DefaultConfig(),
		MemoryLimiter:    memlimit.DefaultConfig(),
		Querier:          querier.DefaultConfig(),
		BackendScheduler: scheduler.DefaultConfig(),
		BackendWorker:    worker.DefaultConfig(),
		UI:               ui.DefaultConfig(),
		Storage: StorageConfig{Trace: TraceStorageConfig{
			Store:                 st,
			BlocklistPoll:         time.Minute,
			BlocklistPollFallback: true,
			ReadTimeout:           storage.DefaultReadTimeout,
		}},
	}
}

// Validate checks the values that are not checked by a nested Validate.
func (c *Config) Validate() error {
	var errs []error
	if c.Server.HTTPListenPort < 0 || c.Server.HTTPListenPort > 65535 {
		errs = append(errs, fmt.Errorf("server.http_listen_port: %d is not a port", c.Server.HTTPListenPort))
	}
	if c.Server.GRPCListenPort < 0 || c.Server.GRPCListenPort > 65535 {
		errs = append(errs, fmt.Errorf("server.grpc_listen_port: %d is not a port", c.Server.GRPCListenPort))
	}
	switch c.Server.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("server.log_level: %q is not one of debug, info, warn, error", c.Server.LogLevel))
	}
	switch c.Server.LogFormat {
	case "logfmt", "json":
	default:
		errs = append(errs, fmt.Errorf("server.log_format: %q is not one of logfmt, json", c.Server.LogFormat))
	}
	if c.Server.HTTPServerReadHeaderTimeout <= 0 {
		errs = append(errs, fmt.Errorf("server.http_server_read_header_timeout: must be positive, got %s", c.Server.HTTPServerReadHeaderTimeout))
	}
	if c.Storage.Trace.BlocklistPoll <= 0 {
		errs = append(errs, fmt.Errorf("storage.trace.blocklist_poll: must be positive, got %s", c.Storage.Trace.BlocklistPoll))
	}
	if c.Storage.Trace.BlocklistPollStaleTenantIndex < 0 {
		errs = append(errs, fmt.Errorf("storage.trace.blocklist_poll_stale_tenant_index: must not be negative, got %s", c.Storage.Trace.BlocklistPollStaleTenantIndex))
	}
	if c.Storage.Trace.ReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", storage.ReadTimeoutKey, c.Storage.Trace.ReadTimeout))
	}
	// A trace must stay in the live-store until its block is written, or
	// it would vanish from queries for a while.
	if c.LiveStore.Window <= c.BlockBuilder.MaxBlockDuration {
		errs = append(errs, fmt.Errorf("live_store.window (%s) must be longer than block_builder.max_block_duration (%s), or recent traces would not be found between the two",
			c.LiveStore.Window, c.BlockBuilder.MaxBlockDuration))
	}
	if c.Distributor.RetryAfterOnResourceExhausted < 0 {
		errs = append(errs, fmt.Errorf("distributor.retry_after_on_resource_exhausted: must not be negative, got %s", c.Distributor.RetryAfterOnResourceExhausted))
	}
	// The pipeline nodes take their defaults from here: check them here, so
	// a bad value is reported against this file, not the pipeline file.
	d := c.DistributorNode()
	if err := d.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("distributor: %w", err))
	}
	if c.Distributor.Receivers.OTLP != nil {
		o := c.OTLPNode()
		if err := o.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("distributor.receivers.otlp: %w", err))
		}
	}
	if err := c.UI.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("ui.%w", err))
	}
	// The receivers' own Validate runs as the file is decoded, and again
	// when their nodes are created; here, what only the file can get wrong.
	if j := c.Distributor.Receivers.Jaeger; j != nil && !j.Enabled() {
		errs = append(errs, errors.New("distributor.receivers.jaeger.protocols: enable at least one of grpc, thrift_http, thrift_compact and thrift_binary"))
	}
	if z := c.Distributor.Receivers.Zipkin; z != nil && z.Endpoint == "" {
		errs = append(errs, errors.New("distributor.receivers.zipkin.endpoint: empty, want host:port such as \":9411\""))
	}
	return errors.Join(errs...)
}

// UseLoopback points every listener of c at a free port of 127.0.0.1
// (port 0) and its data under dir (blocks, the block-builder's WAL, the
// live-store's segments on disk, the
// metrics-generator's queue): how tests and tools start weft, so that
// nothing listens beyond the machine and runs share no port or file.
// Receivers that are off stay off.
func (c *Config) UseLoopback(dir string) {
	const anyPort = "127.0.0.1:0"
	c.Server.HTTPListenAddress, c.Server.HTTPListenPort = "127.0.0.1", 0
	c.Server.GRPCListenAddress, c.Server.GRPCListenPort = "127.0.0.1", 0
	if o := c.Distributor.Receivers.OTLP; o != nil {
		if o.Protocols.GRPC != nil {
			o.Protocols.GRPC.Endpoint = anyPort
		}
		if o.Protocols.HTTP != nil {
			o.Protocols.HTTP.Endpoint = anyPort
		}
	}
	if j := c.Distributor.Receivers.Jaeger; j != nil {
		p := j.Protocols
		if p.GRPC != nil {
			p.GRPC.Endpoint = anyPort
		}
		if p.ThriftHTTP != nil {
			p.ThriftHTTP.Endpoint = anyPort
		}
		if p.ThriftCompact != nil {
			p.ThriftCompact.Endpoint = anyPort
		}
		if p.ThriftBinary != nil {
			p.ThriftBinary.Endpoint = anyPort
		}
	}
	if z := c.Distributor.Receivers.Zipkin; z != nil {
		z.Endpoint = anyPort
	}
	c.Storage.Trace.Store.Local.Path = filepath.Join(dir, "blocks")
	c.BlockBuilder.WAL.Path = filepath.Join(dir, "wal")
	c.LiveStore.Path = filepath.Join(dir, "live-store")
	c.MetricsGenerator.Storage.Path = filepath.Join(dir, "generator")
}

// HTTPAddr is the listen address of the query API.
func (s ServerConfig) HTTPAddr() string {
	return net.JoinHostPort(s.HTTPListenAddress, strconv.Itoa(s.HTTPListenPort))
}

// GRPCAddr is the listen address of the gRPC server.
func (s ServerConfig) GRPCAddr() string {
	return net.JoinHostPort(s.GRPCListenAddress, strconv.Itoa(s.GRPCListenPort))
}

// JaegerNode is the default config of "jaeger" pipeline nodes: no
// protocol (the node opens nothing) unless distributor.receivers.jaeger
// is set.
func (c *Config) JaegerNode() jaegerzipkin.JaegerConfig {
	if j := c.Distributor.Receivers.Jaeger; j != nil {
		return *j
	}
	return jaegerzipkin.DefaultJaegerConfig()
}

// ZipkinNode is the default config of "zipkin" pipeline nodes: no
// endpoint (the node opens nothing) unless distributor.receivers.zipkin
// is set.
func (c *Config) ZipkinNode() jaegerzipkin.ZipkinConfig {
	if z := c.Distributor.Receivers.Zipkin; z != nil {
		return *z
	}
	z := jaegerzipkin.DefaultZipkinConfig()
	z.Endpoint = "" // off; a pipeline file may still set one
	return z
}

// DistributorNode is the default config of distributor pipeline nodes.
func (c *Config) DistributorNode() distributor.Config {
	d := distributor.Config{
		MultitenancyEnabled: c.MultitenancyEnabled,
		MaxAttributeBytes:   c.Distributor.MaxAttributeBytes,
		Partitions:          c.Distributor.Partitions,
		TraceIdlePeriod:     c.Distributor.TraceIdlePeriod,
	}
	if m := c.Overrides.Defaults.Ingestion.MaxAttributeBytes; m > 0 {
		d.MaxAttributeBytes = m
	}
	return d
}

// OTLPNode is the default config of otlp pipeline nodes. With no OTLP
// receiver configured, it has no protocol, and such a node fails to validate.
func (c *Config) OTLPNode() otlp.Config {
	if c.Distributor.Receivers.OTLP == nil {
		return otlp.Config{PushTimeout: otlp.DefaultConfig().PushTimeout, RetryAfter: c.Distributor.RetryAfterOnResourceExhausted}
	}
	o := *c.Distributor.Receivers.OTLP
	// Tempo's key sets the delay unless the receiver sets its own.
	if o.RetryAfter == otlp.DefaultRetryAfter {
		o.RetryAfter = c.Distributor.RetryAfterOnResourceExhausted
	}
	return o
}

// Load reads a config file on top of Default. It returns the Tempo keys
// that weft ignores and the Tempo 2.x keys it found, for one warning; every
// unknown key, type error and invalid value is returned at once, each with
// its line. Use LoadReport to tell the two kinds of Tempo keys apart.
func Load(file string, data []byte, expandEnv bool) (Config, []string, error) {
	cfg, r, err := LoadReport(file, data, expandEnv)
	keys := r.Ignored
	for _, k := range r.Tempo2 {
		keys = append(keys, k.Key)
	}
	return cfg, keys, err
}

// LoadReport reads a config file on top of Default, as Load does. Tempo
// 2.x keys with a meaning in weft are mapped to weft's keys (see
// Tempo2Key); the others are accepted. Both are listed in Report.Tempo2,
// each with a note for the warning; the Tempo keys weft does not use are in
// Report.Ignored.
func LoadReport(file string, data []byte, expandEnv bool) (Config, Report, error) {
	cfg := Default()
	if expandEnv {
		data = []byte(ExpandEnv(string(data)))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cfg, Report{}, &yamlx.Error{File: file, Msg: fmt.Sprintf("cannot parse YAML: %v", err)}
	}
	var r Report
	yamlx.InlineMerges(&doc) // the Tempo 2.x mapping sees merged keys too
	r.Tempo2 = mapTempo2(&doc)
	err := yamlx.Decode(&doc, &cfg, yamlx.Options{
		File: file,
		Unknown: func(path string, _ *yaml.Node) bool {
			if k, ok := tempo2Note(path); ok {
				r.Tempo2 = append(r.Tempo2, Tempo2Key{Key: path, Note: k.Note})
				return true
			}
			if isTempoKey(path) {
				r.Ignored = append(r.Ignored, path)
				return true
			}
			return false
		},
	})
	if err != nil {
		return cfg, r, err
	}
	if p := cfg.Storage.Trace.WAL.Path; p != "" && !setsBlockBuilderWALPath(&doc) {
		cfg.BlockBuilder.WAL.Path = filepath.Join(p, BlockBuilderWALDir)
	}
	cfg.QueryEndCutoffSet = setsQueryEndCutoff(&doc)
	return cfg, r, nil
}

// setsBlockBuilderWALPath reports whether the document has the key
// block_builder.wal.path (through anchors and merge keys too). It is called
// on a document that decoded without error.
func setsBlockBuilderWALPath(doc *yaml.Node) bool {
	var probe struct {
		BlockBuilder struct {
			WAL struct {
				Path *string `yaml:"path"`
			} `yaml:"wal"`
		} `yaml:"block_builder"`
	}
	if err := doc.Decode(&probe); err != nil {
		return false
	}
	return probe.BlockBuilder.WAL.Path != nil
}

// setsQueryEndCutoff reports whether the document has the key
// query_frontend.query_end_cutoff (through anchors and merge keys too). It
// is called on a document that decoded without error.
func setsQueryEndCutoff(doc *yaml.Node) bool {
	var probe struct {
		QueryFrontend struct {
			QueryEndCutoff *string `yaml:"query_end_cutoff"`
		} `yaml:"query_frontend"`
	}
	if err := doc.Decode(&probe); err != nil {
		return false
	}
	return probe.QueryFrontend.QueryEndCutoff != nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// ExpandEnv replaces ${VAR} and ${VAR:-default} with the environment's
// values, as Tempo's -config.expand-env does. A bare $ is left alone.
func ExpandEnv(s string) string {
	return envRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := os.LookupEnv(m[1]); ok && v != "" {
			return v
		}
		if strings.Contains(ref, ":-") {
			return m[2]
		}
		return ""
	})
}
