// Package retention is the retention job of the backend: it lets go of a
// tenant's blocks past its retention, and deletes the objects of blocks
// let go long enough ago (by retention or by compaction) and of blocks
// whose writing was abandoned.
package retention

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/metrics"
)

// Metrics count what retention did, with Tempo's names.
type Metrics struct {
	marked  *prometheus.CounterVec
	deleted *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		marked: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempodb_retention_marked_for_deletion_total",
			Help: "Blocks let go because they passed their tenant's retention (compaction.block_retention), by tenant.",
		}, []string{"tenant"})),
		deleted: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tempodb_retention_deleted_total",
			Help: "Blocks whose objects were deleted: let go (by retention or compaction) more than compacted_block_retention ago, or abandoned while being written, by tenant.",
		}, []string{"tenant"})),
	}
}

// Settings of one run.
type Settings struct {
	// Retention: blocks whose end time is older are let go; 0 keeps
	// every block (compaction.block_retention).
	Retention time.Duration
	// CompactedRetention is how long a block let go keeps its objects,
	// so that queries reading it can end (compacted_block_retention). A
	// block directory without meta.json nor mark whose newest object is
	// this old was abandoned (a writer that crashed) and is deleted too.
	CompactedRetention time.Duration
}

// Stats are what a run did.
type Stats struct {
	Marked, Deleted int
}

// blockDir is what a listing tells of one block directory.
type blockDir struct {
	objects []string
	hasMeta bool
	hasMark bool
	newest  time.Time
}

// Run runs retention for tenant at now.
func Run(ctx context.Context, bkt objstore.Bucket, tenant string, now time.Time, s Settings, m *Metrics) (Stats, error) {
	var st Stats
	dirs, err := list(ctx, bkt, tenant)
	if err != nil {
		return st, err
	}
	ids := make([]uuid.UUID, 0, len(dirs))
	for id := range dirs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		d := dirs[id]
		switch {
		case d.hasMeta:
			if s.Retention <= 0 {
				continue
			}
			meta, err := block.ReadMeta(ctx, bkt, tenant, id)
			if err != nil {
				continue // unreadable: the block list reports it; not ours to judge
			}
			if meta.EndTime.Before(now.Add(-s.Retention)) {
				if err := block.MarkCompacted(ctx, bkt, meta, now); err != nil {
					return st, fmt.Errorf("cannot let go of block %s of tenant %q: %w", id, tenant, err)
				}
				st.Marked++
				if m != nil {
					m.marked.WithLabelValues(tenant).Inc()
				}
			}
		case d.hasMark:
			mark, err := block.ReadCompactedMark(ctx, bkt, tenant, id)
			if err != nil {
				return st, err
			}
			if mark != nil && now.Sub(mark.CompactedTime) < s.CompactedRetention {
				continue
			}
			if mark == nil && now.Sub(d.newest) < s.CompactedRetention {
				continue // a mark cut short: wait as for an abandoned block
			}
			if err := deleteDir(ctx, bkt, d); err != nil {
				return st, fmt.Errorf("cannot delete block %s of tenant %q: %w", id, tenant, err)
			}
			st.Deleted++
			if m != nil {
				m.deleted.WithLabelValues(tenant).Inc()
			}
		default:
			if d.newest.IsZero() || now.Sub(d.newest) < s.CompactedRetention {
				continue // being written, or times unknown
			}
			// The listing may be old by now (a big tenant's run takes a
			// while): a retried job rewriting this output since must not
			// have its new objects deleted under it.
			if ok, err := stillAbandoned(ctx, bkt, tenant, id, d, now.Add(-s.CompactedRetention)); err != nil {
				return st, err
			} else if !ok {
				continue
			}
			if err := deleteDir(ctx, bkt, d); err != nil {
				return st, fmt.Errorf("cannot delete abandoned block %s of tenant %q: %w", id, tenant, err)
			}
			st.Deleted++
			if m != nil {
				m.deleted.WithLabelValues(tenant).Inc()
			}
		}
	}
	return st, nil
}

// stillAbandoned reads again what list found of the block directory d, a
// directory without meta.json: it is still abandoned when meta.json is
// still missing and none of the objects listed was written after cutoff.
func stillAbandoned(ctx context.Context, bkt objstore.Bucket, tenant string, id uuid.UUID, d *blockDir, cutoff time.Time) (bool, error) {
	if ok, err := bkt.Exists(ctx, tenant+"/"+id.String()+"/"+block.MetaName); err != nil || ok {
		return false, err
	}
	for _, name := range d.objects {
		a, err := bkt.Attributes(ctx, name)
		switch {
		case bkt.IsObjNotFoundErr(err):
			continue
		case err != nil:
			return false, fmt.Errorf("cannot read the attributes of %s: %w", name, err)
		case a.LastModified.After(cutoff):
			return false, nil
		}
	}
	return true, nil
}

// deleteDir deletes the objects of a block, its mark last, so that a
// crash leaves a directory the next run still recognizes.
func deleteDir(ctx context.Context, bkt objstore.Bucket, d *blockDir) error {
	objs := slices.Clone(d.objects)
	slices.SortFunc(objs, func(a, b string) int {
		am, bm := path.Base(a) == block.CompactedName, path.Base(b) == block.CompactedName
		switch {
		case am && !bm:
			return 1
		case bm && !am:
			return -1
		}
		return strings.Compare(a, b)
	})
	for _, name := range objs {
		if err := bkt.Delete(ctx, name); err != nil && !bkt.IsObjNotFoundErr(err) {
			return err
		}
	}
	return nil
}

// list returns the block directories of tenant.
func list(ctx context.Context, bkt objstore.Bucket, tenant string) (map[uuid.UUID]*blockDir, error) {
	prefix := tenant + "/"
	dirs := map[uuid.UUID]*blockDir{}
	add := func(name string, modified time.Time) {
		dir, obj, ok := strings.Cut(strings.TrimPrefix(name, prefix), "/")
		if !ok || obj == "" || strings.HasSuffix(obj, "/") {
			return
		}
		id, err := uuid.Parse(dir)
		if err != nil {
			return
		}
		d := dirs[id]
		if d == nil {
			d = &blockDir{}
			dirs[id] = d
		}
		d.objects = append(d.objects, name)
		d.hasMeta = d.hasMeta || obj == block.MetaName
		d.hasMark = d.hasMark || obj == block.CompactedName
		if modified.After(d.newest) {
			d.newest = modified
		}
	}
	opts := bkt.SupportedIterOptions()
	if slices.Contains(opts, objstore.Recursive) && slices.Contains(opts, objstore.UpdatedAt) {
		err := bkt.IterWithAttributes(ctx, prefix, func(a objstore.IterObjectAttributes) error {
			t, _ := a.LastModified()
			add(a.Name, t)
			return nil
		}, objstore.WithRecursiveIter(), objstore.WithUpdatedAt())
		if err != nil {
			return nil, fmt.Errorf("cannot list the blocks of tenant %q: %w", tenant, err)
		}
		return dirs, nil
	}
	// One listing per block directory, and the attributes of each object.
	var blockDirs []string
	if err := bkt.Iter(ctx, prefix, func(name string) error {
		if strings.HasSuffix(name, "/") { // not the tenant index, an object
			blockDirs = append(blockDirs, name)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("cannot list the blocks of tenant %q: %w", tenant, err)
	}
	for _, dir := range blockDirs {
		err := bkt.Iter(ctx, dir, func(name string) error {
			a, err := bkt.Attributes(ctx, name)
			if err != nil {
				return err
			}
			add(name, a.LastModified)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot list block %s: %w", dir, err)
		}
	}
	return dirs, nil
}
