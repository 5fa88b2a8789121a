// Package querier answers queries over the two places traces live: the
// recent window in live-stores and the blocks in object storage. Trace by
// ID asks both at once and merges what they hold, one copy per span.
package querier

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/otlpwire"
)

// Finder finds the spans of one trace in one place; see query/api.TraceFinder.
type Finder interface {
	FindTraceByID(ctx context.Context, tenant string, traceID [16]byte, start, end int64) ([]byte, error)
}

// Config of the querier.
type Config struct {
	// Concurrency is how many blocks one trace-by-ID reads at once.
	Concurrency int
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
			r, err := e.Reader(ctx, q.bkt)
			if err != nil {
				errs[i+1] = fmt.Errorf("cannot open block %s: %w", e.Meta.BlockID, err)
				return
			}
			parts[i+1], errs[i+1] = r.FindTraceByID(ctx, traceID)
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
	return otlpwire.Merge(parts...)
}
