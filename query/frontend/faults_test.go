package frontend

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/querier"
	"github.com/weftdb/weft/query/search"
)

// skippingQuerier runs jobs on a JobRunner, except those of the blocks
// fail names, which it answers as skipped with the error fail gives.
type skippingQuerier struct {
	runner *querier.JobRunner
	fail   func(job search.Job) error
	calls  atomic.Int64
}

func (q *skippingQuerier) SearchJob(ctx context.Context, tenant string, job search.Job) (*search.JobResult, error) {
	if !job.Live {
		q.calls.Add(1)
	}
	if err := q.fail(job); err != nil {
		return search.SkippedJob(tenant, job, err), nil
	}
	return q.runner.SearchJob(ctx, tenant, job)
}

// A block job answered as skipped (a damaged block) does not fail the
// search: the other blocks' traces come back and the notes name the block.
func TestSearchGoesOnWithoutDamagedBlock(t *testing.T) {
	s := blocksSearcher(t, 3)
	req := search.Request{Query: "{}", Limit: 1000, Start: base, End: base.Add(5 * 3600e9)}
	jobs := s.Plan(req, "t")
	bad := jobs[0].BlockID
	q := &skippingQuerier{runner: querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()), fail: func(j search.Job) error {
		if j.BlockID == bad {
			return fmt.Errorf("cannot open %s/data.parquet: damaged", bad)
		}
		return nil
	}}
	f := newFrontend(testConfig(), s, q)
	ctx, notes := partial.NewContext(context.Background())
	resp, err := f.Search(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Traces); n != 400 {
		t.Fatalf("%d traces, want the 400 of the two undamaged blocks", n)
	}
	if skips := notes.Skips(); len(skips) != 1 || skips[0].Block != bad || skips[0].Reason != partial.ReasonDamaged {
		t.Fatalf("skips %+v, want block %s damaged", skips, bad)
	}
}

// After a block job fails because object storage failed, the block jobs
// not started yet are skipped, not run one after the other.
func TestSearchStopsBlockJobsWhenStorageFails(t *testing.T) {
	s := blocksSearcher(t, 4)
	req := search.Request{Query: "{}", Limit: 1000, Start: base, End: base.Add(5 * 3600e9)}
	jobs := s.Plan(req, "t")
	down := fmt.Errorf("cannot read: %w", errors.Join(storage.ErrUnavailable, errors.New("dial tcp: connection refused")))
	q := &skippingQuerier{runner: querier.NewJobRunner(s, querier.DefaultConfig(), prometheus.NewRegistry()), fail: func(search.Job) error { return down }}
	f := newFrontend(testConfig(), s, q)
	ctx, notes := partial.NewContext(context.Background())
	resp, err := f.Search(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Traces) != 0 {
		t.Fatalf("%d traces", len(resp.Traces))
	}
	if n := q.calls.Load(); n > initialJobs || int(n) >= len(jobs) {
		t.Fatalf("%d block jobs run of %d, want at most %d", n, len(jobs), initialJobs)
	}
	if skips := notes.Skips(); len(skips) != 4 || !notes.StorageFailed() {
		t.Fatalf("skips %+v, want the 4 blocks, storage", skips)
	}
}
