// Package querier answers queries over the two places traces live: the
// recent window in live-stores and the blocks in object storage. Trace by
// ID asks both at once and merges what they hold, one copy per span.
package querier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	"github.com/weftdb/weft/query/partial"
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
	logger *slog.Logger

	inspected       *prometheus.CounterVec
	bloomUnreadable prometheus.Counter
}

// New returns a querier over live (may be nil) and the blocks of bkt.
func New(cfg Config, live Finder, blocks *blocklist.List, bkt objstore.BucketReader, reg prometheus.Registerer) *Querier {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	return &Querier{cfg: cfg, live: live, blocks: blocks, bkt: bkt, logger: slog.New(slog.DiscardHandler),
		inspected: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_querier_blocks_inspected_total",
			Help: "Blocks looked into by trace-by-ID, by result (hit, miss).",
		}, []string{"result"})),
		bloomUnreadable: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_block_bloom_unreadable_total",
			Help: "Blocks whose bloom file is missing or damaged, read without it (counted once per block and process).",
		})),
	}
}

// WithLogger makes the querier log the blocks it reads without their bloom
// filter (once per block).
func (q *Querier) WithLogger(l *slog.Logger) *Querier {
	q.logger = l
	return q
}

// FindTraceByID returns the trace's spans from the live-stores and from
// every block whose time range overlaps [start, end] (unix seconds, 0 is
// unbounded), merged, one copy per span ID; nil when nowhere.
//
// A block that cannot be read (a damaged file, object storage failing or
// not answering within storage.trace.read_timeout) is skipped and recorded
// in the partial.Notes of ctx: the answer holds the spans found elsewhere.
// After object storage failed once in the query (the same notes), no more
// blocks are read. The live-stores are asked at once, never waiting for
// object storage.
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

	notes := partial.FromContext(ctx)
	skip := func(e *blocklist.Entry, reason string, err error) {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		notes.Add(partial.Skip{Tenant: tenant, Block: e.Meta.BlockID.String(), Reason: reason, Error: msg})
	}
	// Blocks are read under bctx: canceled when object storage fails, as
	// the other blocks would fail the same way.
	bctx, stopBlocks := context.WithCancel(ctx)
	defer stopBlocks()

	var wg sync.WaitGroup
	if q.live != nil {
		wg.Go(func() { parts[0], errs[0] = q.live.FindTraceByID(ctx, tenant, traceID, start, end) })
	}
	sem := make(chan struct{}, q.cfg.Concurrency)
	for i, e := range entries {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-bctx.Done():
				if ctx.Err() != nil {
					errs[i+1] = ctx.Err()
				} else {
					skip(e, partial.ReasonStorage, nil)
				}
				return
			}
			defer func() { <-sem }()
			if notes.StorageFailed() {
				skip(e, partial.ReasonStorage, nil)
				return
			}
			data, err := q.readBlock(bctx, e, traceID)
			switch {
			case err == nil:
				parts[i+1] = data
			case ctx.Err() != nil || status.Code(err) != codes.Unknown:
				// The query ended, or a limit or bad request.
				errs[i+1] = err
			case bctx.Err() != nil:
				skip(e, partial.ReasonStorage, nil)
			default:
				reason := partial.ReasonOf(err)
				skip(e, reason, err)
				if reason == partial.ReasonStorage {
					stopBlocks()
				}
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

// readBlock looks for the trace in one block. A block rewritten under the
// same ID since it was opened is reopened once (blocklist.Read).
func (q *Querier) readBlock(ctx context.Context, e *blocklist.Entry, traceID [16]byte) ([]byte, error) {
	data, err := blocklist.Read(ctx, q.blocks, q.bkt, e, func(r *block.Reader) ([]byte, error) {
		data, err := r.FindTraceByID(ctx, traceID)
		if berr, first := r.BloomError(); first {
			q.bloomUnreadable.Inc()
			q.logger.Warn("block read without its bloom filter", "tenant", e.Meta.TenantID, "block", e.Meta.BlockID, "err", berr)
		}
		return data, err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read block %s: %w", e.Meta.BlockID, err)
	}
	if len(data) > 0 {
		q.inspected.WithLabelValues("hit").Inc()
	} else {
		q.inspected.WithLabelValues("miss").Inc()
	}
	return data, nil
}
