// Package distributor is the stage that every push passes first: it resolves
// the tenant, checks each span's IDs, truncates oversized attributes and
// regroups the spans by partition, where the partition is a hash of the
// tenant and the trace ID, so all spans of a trace meet in one partition.
package distributor

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/periodic"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/pipelines"
)

// Type is the node kind.
const Type = "distributor"

// Config of the distributor stage. Its defaults come from the top-level
// `multitenancy_enabled` and the `distributor` block of the weft config.
type Config struct {
	// MultitenancyEnabled takes the tenant from X-Scope-OrgID; when false
	// every span belongs to "single-tenant".
	MultitenancyEnabled bool `yaml:"multitenancy_enabled"`
	// MaxAttributeBytes is the longest attribute key or string value kept;
	// longer ones are truncated to it. 0 disables truncation.
	MaxAttributeBytes int `yaml:"max_attribute_bytes"`
	// Partitions is the number of partitions spans are spread over.
	Partitions int `yaml:"partitions"`
	// TraceIdlePeriod is how long after its last span a trace stops being
	// live: it no longer counts against the tenant's
	// ingestion.max_traces_per_user, and its bytes against
	// global.max_bytes_per_trace start again from zero.
	TraceIdlePeriod time.Duration `yaml:"trace_idle_period"`
}

// DefaultConfig is the configuration of a weft started without a config file.
// The idle period is Tempo's live-store max_trace_idle.
func DefaultConfig() Config {
	return Config{MaxAttributeBytes: 2048, Partitions: 1, TraceIdlePeriod: 5 * time.Second}
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxAttributeBytes < 0 {
		errs = append(errs, fmt.Errorf("max_attribute_bytes must not be negative, got %d", c.MaxAttributeBytes))
	}
	if c.Partitions < 1 || c.Partitions > 100000 {
		errs = append(errs, fmt.Errorf("partitions must be between 1 and 100000, got %d", c.Partitions))
	}
	if c.TraceIdlePeriod <= 0 {
		errs = append(errs, fmt.Errorf("trace_idle_period must be positive, got %s", c.TraceIdlePeriod))
	}
	return errors.Join(errs...)
}

type factory struct {
	defaults Config
	limits   TenantLimits
}

// NewFactory returns the factory of distributor stages, whose default config
// is defaults. limits gives each tenant's ingestion limits (rate limit,
// max_attribute_bytes); nil applies none beyond defaults.
func NewFactory(defaults Config, limits TenantLimits) pipelines.Factory {
	return factory{defaults: defaults, limits: limits}
}

func (factory) Type() string               { return Type }
func (factory) Role() pipelines.Role       { return pipelines.RoleStage }
func (factory) Input() pipelines.DataType  { return pipelines.DataTraces }
func (factory) Output() pipelines.DataType { return pipelines.DataTraces }
func (f factory) DefaultConfig() any       { c := f.defaults; return &c }
func (f factory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	return New(set, *cfg.(*Config), f.limits), nil
}

// Distributor is the stage. The only state it keeps between messages is
// each tenant's rate-limit bucket and its live traces.
type Distributor struct {
	cfg    Config
	limits TenantLimits // nil: no per-tenant limits
	rates  rateLimiters
	live   *liveTraces
	// sweeper forgets idle traces of every tenant (nil until Start).
	sweeper *periodic.Loop

	received   *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	discarded  *prometheus.CounterVec
	truncated  *prometheus.CounterVec
	refused    *prometheus.CounterVec
	batchPool  sync.Pool
	builderMux sync.Pool
}

// New returns a distributor stage; limits may be nil (see NewFactory).
func New(set pipelines.Settings, cfg Config, limits TenantLimits) *Distributor {
	d := &Distributor{
		cfg:    cfg,
		limits: limits,
		live:   newLiveTraces(cfg.TraceIdlePeriod),
		received: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_distributor_spans_received_total",
			Help: "Spans received by the distributor, valid or not, by tenant.",
		}, []string{"tenant"})),
		bytes: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_distributor_bytes_received_total",
			Help: "OTLP protobuf bytes received by the distributor, by tenant.",
		}, []string{"tenant"})),
		discarded: metrics.DiscardedSpans(set.Metrics),
		truncated: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_distributor_attributes_truncated_total",
			Help: "Attribute keys and string values cut to max_attribute_bytes, by tenant.",
		}, []string{"tenant"})),
		refused: metrics.Register(set.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_distributor_requests_refused_total",
			Help: "Whole pushes refused by the distributor, by reason (malformed, no_org_id, invalid_tenant, rate_limited).",
		}, []string{"reason"})),
	}
	d.batchPool.New = func() any { return new(otlpwire.Batch) }
	d.builderMux.New = func() any { return new([]otlpwire.Builder) }
	return d
}

// Start begins forgetting idle traces every trace_idle_period, so that the
// live-trace state of tenants that stopped sending goes back.
func (d *Distributor) Start(context.Context) error {
	d.sweeper = periodic.Start(d.cfg.TraceIdlePeriod, func() { d.live.sweepAll(time.Now().UnixNano()) })
	return nil
}

// Shutdown stops the sweep.
func (d *Distributor) Shutdown(ctx context.Context) error { return d.sweeper.Stop(ctx) }

// Process checks and regroups one push. It returns one message per
// partition that received spans. Invalid spans are refused one by one
// (partial success); a push that cannot be read or has no valid tenant fails
// whole with InvalidArgument or Unauthenticated, and one over the tenant's
// ingestion rate limit fails whole with ResourceExhausted.
func (d *Distributor) Process(msg *message.Message) ([]*message.Message, error) {
	ten, err := tenant.Resolve(d.cfg.MultitenancyEnabled, msg.Metadata.Get(pipelines.MetaOrgID))
	if err != nil {
		reason := "invalid_tenant"
		if status.Code(err) == codes.Unauthenticated {
			reason = "no_org_id"
		}
		d.refused.WithLabelValues(reason).Inc()
		return nil, err
	}
	batch := d.batchPool.Get().(*otlpwire.Batch)
	defer d.batchPool.Put(batch)
	if err := batch.Parse(msg.Payload); err != nil {
		d.refused.WithLabelValues("malformed").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	d.received.WithLabelValues(ten).Add(float64(batch.SpanCount()))
	d.bytes.WithLabelValues(ten).Add(float64(len(msg.Payload)))
	if batch.SpanCount() == 0 {
		return nil, nil
	}
	max := d.cfg.MaxAttributeBytes
	var l *overrides.Limits
	if d.limits != nil {
		l = d.limits.For(ten)
		if err := d.rates.allow(ten, &l.Ingestion, len(msg.Payload), time.Now()); err != nil {
			d.refused.WithLabelValues(metrics.ReasonRateLimited).Inc()
			d.discarded.WithLabelValues(ten, metrics.ReasonRateLimited).Add(float64(batch.SpanCount()))
			return nil, err
		}
		if l.Ingestion.MaxAttributeBytes > 0 {
			max = l.Ingestion.MaxAttributeBytes
		}
	}

	bp := d.builderMux.Get().(*[]otlpwire.Builder)
	builders := growBuilders(*bp, d.cfg.Partitions)
	defer func() {
		for i := range builders {
			builders[i].Reset()
		}
		*bp = builders
		d.builderMux.Put(bp)
	}()

	seed := tenantHash(ten)
	truncated := 0
	var invalidTrace, invalidSpan int
	var firstErr error
	tl := d.traceLimits(ten, l)
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		var n int
		res.Header, n = otlpwire.TruncateResourceHeader(res.Header, max)
		truncated += n
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			sc.Header, n = otlpwire.TruncateScopeHeader(sc.Header, max)
			truncated += n
			for pi, sp := range sc.Spans {
				if err := checkIDs(sp); err != nil {
					if len(sp.TraceID) != 16 || allZero(sp.TraceID) {
						invalidTrace++
					} else {
						invalidSpan++
					}
					if firstErr == nil {
						firstErr = fmt.Errorf("span %q (resource_spans[%d].scope_spans[%d].spans[%d]): %w", otlpwire.SpanName(sp.Raw), ri, si, pi, err)
					}
					continue
				}
				raw, n := otlpwire.TruncateSpan(sp.Raw, max)
				truncated += n
				if tl.on() && !tl.admit(sp.TraceID, len(raw)) {
					continue
				}
				p := partitionOf(seed, sp.TraceID, d.cfg.Partitions)
				builders[p].Add(res, sc, raw)
			}
		}
	}
	if truncated > 0 {
		d.truncated.WithLabelValues(ten).Add(float64(truncated))
	}
	if invalidTrace+invalidSpan > 0 {
		if invalidTrace > 0 {
			d.discarded.WithLabelValues(ten, metrics.ReasonInvalidTraceID).Add(float64(invalidTrace))
		}
		if invalidSpan > 0 {
			d.discarded.WithLabelValues(ten, metrics.ReasonInvalidSpanID).Add(float64(invalidSpan))
		}
		pipelines.RejectSpans(msg.Context(), invalidTrace+invalidSpan, firstErr)
	}
	tl.report(msg.Context(), d.discarded)

	// Nothing changed and every span goes to one partition (always so with
	// one partition): pass the request bytes on instead of re-encoding them.
	if truncated == 0 && invalidTrace+invalidSpan == 0 && tl.refused() == 0 {
		used := -1
		for p := range builders {
			if builders[p].SpanCount() > 0 {
				if used >= 0 {
					used = -2
					break
				}
				used = p
			}
		}
		if used >= 0 {
			m := message.NewMessage(watermill.NewUUID(), msg.Payload)
			m.Metadata.Set(pipelines.MetaTenant, ten)
			m.Metadata.Set(pipelines.MetaPartition, strconv.Itoa(used))
			return []*message.Message{m}, nil
		}
	}

	var out []*message.Message
	for p := range builders {
		b := &builders[p]
		if b.SpanCount() == 0 {
			continue
		}
		m := message.NewMessage(watermill.NewUUID(), b.AppendTo(make([]byte, 0, b.Size())))
		m.Metadata.Set(pipelines.MetaTenant, ten)
		m.Metadata.Set(pipelines.MetaPartition, strconv.Itoa(p))
		out = append(out, m)
	}
	return out, nil
}

func growBuilders(b []otlpwire.Builder, n int) []otlpwire.Builder {
	if cap(b) < n {
		return make([]otlpwire.Builder, n)
	}
	return b[:n]
}

// checkIDs applies the OTLP rules: a 16-byte, non-zero trace ID and an
// 8-byte, non-zero span ID.
func checkIDs(sp otlpwire.Span) error {
	switch {
	case len(sp.TraceID) != 16:
		return fmt.Errorf("trace ID must be 16 bytes, got %d", len(sp.TraceID))
	case allZero(sp.TraceID):
		return errors.New("trace ID must not be all zeros")
	case len(sp.SpanID) != 8:
		return fmt.Errorf("span ID must be 8 bytes, got %d", len(sp.SpanID))
	case allZero(sp.SpanID):
		return errors.New("span ID must not be all zeros")
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tenantHash is the FNV-1 32-bit state after hashing the tenant ID; the
// partition hash continues it with the trace ID, as Tempo's token does.
func tenantHash(ten string) uint32 {
	h := fnv.New32()
	_, _ = h.Write([]byte(ten))
	return h.Sum32()
}

// partitionOf continues FNV-1 over the 16 trace-ID bytes from seed.
func partitionOf(seed uint32, traceID []byte, partitions int) int {
	if partitions == 1 {
		return 0
	}
	h := seed
	for _, c := range traceID {
		h *= 16777619
		h ^= uint32(c)
	}
	return int(h % uint32(partitions))
}

// Partition returns the partition of a trace of a tenant, as Process computes it.
func Partition(ten string, traceID [16]byte, partitions int) int {
	return partitionOf(tenantHash(ten), traceID[:], partitions)
}
