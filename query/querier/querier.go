// Package querier answers queries over the two places traces live: the
// recent window in live-stores and the blocks in object storage. Trace by
// ID asks both at once and merges what they hold, one copy per span.
package querier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/otlpwire"
)

// Finder finds the spans of one trace in one place; see query/api.TraceFinder.
type Finder interface {
	FindTraceByID(ctx context.Context, tenant string, traceID [16]byte, start, end int64) ([]byte, error)
}

// Config is the `querier` block, with Tempo's key names.
type Config struct {
	// Concurrency is how many blocks one trace-by-ID reads at once.
	Concurrency int `yaml:"-"`
	// MaxConcurrentQueries caps the search jobs the querier runs at once;
	// more wait.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries"`
	// Search configures search jobs.
	Search SearchConfig `yaml:"search"`
	// TraceByID configures trace-by-ID lookups.
	TraceByID TraceByIDConfig `yaml:"trace_by_id"`
}

// SearchConfig is the `querier.search` block.
type SearchConfig struct {
	// QueryTimeout bounds one search job; 0 disables it.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// TraceByIDConfig is the `querier.trace_by_id` block.
type TraceByIDConfig struct {
	// QueryTimeout bounds one trace-by-ID lookup; 0 disables it.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// DefaultConfig is Tempo's defaults.
func DefaultConfig() Config {
	return Config{
		MaxConcurrentQueries: 20,
		Search:               SearchConfig{QueryTimeout: 30 * time.Second},
		TraceByID:            TraceByIDConfig{QueryTimeout: 10 * time.Second},
	}
}

// Validate checks the values.
func (c *Config) Validate() error {
	switch {
	case c.MaxConcurrentQueries <= 0:
		return fmt.Errorf("max_concurrent_queries: must be positive")
	case c.Search.QueryTimeout < 0:
		return fmt.Errorf("search.query_timeout: must not be negative")
	case c.TraceByID.QueryTimeout < 0:
		return fmt.Errorf("trace_by_id.query_timeout: must not be negative")
	}
	return nil
}

// Querier finds traces in live-stores and blocks.
type Querier struct {
	cfg    Config
	live   Finder
	blocks *blocklist.List
	bkt    objstore.BucketReader

	inspected *prometheus.CounterVec
}

// New returns a querier over live (may be nil) and the blocks of bkt.
func New(cfg Config, live Finder, blocks *blocklist.List, bkt objstore.BucketReader, reg prometheus.Registerer) *Querier {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	return &Querier{cfg: cfg, live: live, blocks: blocks, bkt: bkt,
		inspected: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_querier_blocks_inspected_total",
			Help: "Blocks looked into by trace-by-ID, by result (hit, miss).",
		}, []string{"result"})),
	}
}

// FindTraceByID returns the trace's spans from the live-stores and from
// every block whose time range overlaps [start, end] (unix seconds, 0 is
// unbounded), merged, one copy per span ID; nil when nowhere.
func (q *Querier) FindTraceByID(ctx context.Context, tenant string, traceID [16]byte, start, end int64) ([]byte, error) {
	if t := q.cfg.TraceByID.QueryTimeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
		data, err := q.findTraceByID(ctx, tenant, traceID, start, end)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, status.Errorf(codes.DeadlineExceeded, "trace lookup did not finish within %s (querier.trace_by_id.query_timeout)", t)
		}
		return data, err
	}
	return q.findTraceByID(ctx, tenant, traceID, start, end)
}

func (q *Querier) findTraceByID(ctx context.Context, tenant string, traceID [16]byte, start, end int64) ([]byte, error) {
	var from, to time.Time
	if start > 0 {
		from = time.Unix(start, 0)
	}
	if end > 0 {
		to = time.Unix(end, 0)
	}
	entries := q.blocks.Blocks(tenant, from, to)
	parts := make([][]byte, len(entries)+1)
	errs := make([]error, len(entries)+1)

	var wg sync.WaitGroup
	if q.live != nil {
		wg.Go(func() { parts[0], errs[0] = q.live.FindTraceByID(ctx, tenant, traceID, start, end) })
	}
	sem := make(chan struct{}, q.cfg.Concurrency)
	for i, e := range entries {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i+1] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			// A block rewritten under the same ID is reopened once.
			parts[i+1], errs[i+1] = blocklist.Read(ctx, q.blocks, e, func(r *block.Reader) ([]byte, error) {
				return r.FindTraceByID(ctx, traceID)
			})
			if errs[i+1] != nil {
				errs[i+1] = fmt.Errorf("cannot read block %s: %w", e.Meta.BlockID, errs[i+1])
			}
			if len(parts[i+1]) > 0 {
				q.inspected.WithLabelValues("hit").Inc()
			} else {
				q.inspected.WithLabelValues("miss").Inc()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	data, err := otlpwire.Merge(parts...)
	if err == nil && len(data) == 0 {
		// Not found, but the blocks may hold it: say so rather than 404.
		if err := q.blocks.Available(); err != nil {
			return nil, status.Errorf(codes.Unavailable, "trace %x is not in the live-store, and the blocks cannot be searched: %v", traceID, err)
		}
	}
	return data, err
}
