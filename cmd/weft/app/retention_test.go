package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/testlong"
)

// retentionCase is a run of checkRetention.
type retentionCase struct {
	keep      time.Duration // team-a's compaction.block_retention
	interval  time.Duration // backend_scheduler.provider.retention.interval
	compacted time.Duration // backend_worker.compaction.compacted_block_retention
	blocks    time.Duration // block_builder.max_block_duration
	ingest    time.Duration // how long traces are pushed
	slack     time.Duration // allowed on top of interval + compacted: job pickup and run
}

// blockLife is what the watcher saw of one block directory.
type blockLife struct {
	end     time.Time // the block's end time, from meta.json
	seen    time.Time // when meta.json was first seen
	letGo   time.Time // when meta.json was first seen gone
	deleted time.Time // when the directory was first seen gone
}

// checkRetention runs monolithic weft with two tenants, team-a with a
// block_retention of rc.keep and team-b with the default (14 days), and
// compaction off so that only retention lets blocks go. It pushes traces of
// both for rc.ingest, watching the bucket every 100 ms, then waits until the
// last block that must go is gone. It checks that every team-a block whose
// end time is older than keep is deleted within interval + compacted (plus
// slack) of that moment, that none is let go before, and that no team-b
// block is touched; and returns the delays it saw (deleted - (end + keep)).
func checkRetention(t *testing.T, rc retentionCase) []time.Duration {
	dir := t.TempDir()
	rt := filepath.Join(dir, "overrides.yaml")
	if err := os.WriteFile(rt, []byte("overrides:\n  team-a:\n    compaction:\n      block_retention: "+rc.keep.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startWeft(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.Overrides.PerTenantOverrideConfig = rt
		c.Overrides.Defaults.Compaction.CompactionDisabled = true
		c.BlockBuilder.MaxBlockDuration = rc.blocks
		pc := &c.BackendScheduler.Provider
		pc.Compaction.Compaction.CompactionCycle, pc.Compaction.MinCycleInterval = 100*time.Millisecond, 100*time.Millisecond
		pc.Retention.Interval = rc.interval
		c.BackendScheduler.JobTimeout = 100 * time.Millisecond
		c.BackendWorker.Backoff.MinPeriod = 10 * time.Millisecond
		c.BackendWorker.Compaction.CompactedBlockRetention = rc.compacted
	})
	ctx := context.Background()
	var mu sync.Mutex
	lives := map[string]map[uuid.UUID]*blockLife{"team-a": {}, "team-b": {}}
	watch := func() {
		now := time.Now()
		for ten, m := range lives {
			present := map[uuid.UUID]bool{}
			err := a.bucket.Iter(ctx, ten+"/", func(name string) error {
				id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(name, ten+"/"), "/"))
				if err != nil {
					return nil // index objects and the like
				}
				present[id] = true
				meta, err := block.ReadMeta(ctx, a.bucket, ten, id)
				l := m[id]
				switch {
				case err == nil && l == nil:
					m[id] = &blockLife{end: meta.EndTime, seen: now}
				case err != nil && a.bucket.IsObjNotFoundErr(err) && l != nil && l.letGo.IsZero():
					l.letGo = now
				}
				return nil
			})
			if err != nil {
				t.Errorf("listing %s: %v", ten, err)
				return
			}
			for id, l := range m {
				if !present[id] && l.deleted.IsZero() {
					l.deleted = now
					if l.letGo.IsZero() {
						l.letGo = now
					}
				}
			}
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mu.Lock()
				watch()
				mu.Unlock()
			}
		}
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}()

	start := time.Now()
	for i := 0; time.Since(start) < rc.ingest; i++ {
		sendNow(t, a, "team-a")
		sendNow(t, a, "team-b")
		time.Sleep(rc.blocks / 2)
	}
	// Wait for the last team-a block that must go: the newest end time
	// seen, plus keep, interval, compacted and slack.
	mu.Lock()
	var newest time.Time
	for _, l := range lives["team-a"] {
		if l.end.After(newest) {
			newest = l.end
		}
	}
	mu.Unlock()
	deadline := newest.Add(rc.keep + rc.interval + rc.compacted + rc.slack)
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	<-done
	watch()

	var delays []time.Duration
	bound := rc.interval + rc.compacted + rc.slack
	for id, l := range lives["team-a"] {
		expiry := l.end.Add(rc.keep)
		if !l.letGo.IsZero() && l.letGo.Before(expiry) {
			t.Errorf("team-a block %s (end %s) let go at %s, before its retention ran out at %s", id, l.end.Format(time.TimeOnly), l.letGo.Format(time.TimeOnly), expiry.Format(time.TimeOnly))
		}
		if expiry.Add(bound).After(time.Now()) {
			continue // not due yet
		}
		if l.deleted.IsZero() {
			t.Errorf("team-a block %s (end %s): still there %s after its retention ran out; bound %s", id, l.end.Format(time.TimeOnly), time.Since(expiry).Round(time.Millisecond), bound)
			continue
		}
		d := l.deleted.Sub(expiry)
		delays = append(delays, d)
		if d > bound {
			t.Errorf("team-a block %s deleted %s after its retention ran out; bound %s (interval + compacted_block_retention + %s)", id, d.Round(time.Millisecond), bound, rc.slack)
		}
	}
	if len(delays) < 3 {
		t.Fatalf("only %d team-a blocks were due for deletion: the run is too short to tell", len(delays))
	}
	if len(lives["team-b"]) < 3 {
		t.Fatalf("team-b has %d blocks, want several", len(lives["team-b"]))
	}
	for id, l := range lives["team-b"] {
		if !l.letGo.IsZero() {
			t.Errorf("team-b block %s (end %s) was let go at %s: its retention is the default", id, l.end.Format(time.TimeOnly), l.letGo.Format(time.TimeOnly))
		}
	}
	slices.Sort(delays)
	t.Logf("team-a: %d blocks deleted after retention; delay past end+%s: min %s, median %s, max %s (bound %s = interval %s + compacted_block_retention %s + slack %s); team-b: %d blocks, none touched",
		len(delays), rc.keep, delays[0].Round(time.Millisecond), delays[len(delays)/2].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond),
		bound, rc.interval, rc.compacted, rc.slack, len(lives["team-b"]))
	return delays
}

// TestRetentionDeletesOnTime is the short version of
// TestRetentionDeletesOnTimeLong: seconds instead of minutes.
func TestRetentionDeletesOnTime(t *testing.T) {
	checkRetention(t, retentionCase{keep: 4 * time.Second, interval: time.Second, compacted: time.Second,
		blocks: 500 * time.Millisecond, ingest: 8 * time.Second, slack: time.Second})
}

// TestRetentionDeletesOnTimeLong: with a per-tenant block_retention of two
// minutes, every block older than that is gone within one retention
// interval plus compacted_block_retention; no newer block is touched, and
// the other tenant keeps all of its blocks.
func TestRetentionDeletesOnTimeLong(t *testing.T) {
	testlong.Skip(t)
	checkRetention(t, retentionCase{keep: 2 * time.Minute, interval: 30 * time.Second, compacted: 30 * time.Second,
		blocks: 5 * time.Second, ingest: 4 * time.Minute, slack: 2 * time.Second})
}

// sendNow pushes a trace of two spans that end now for tenant, with the
// OpenTelemetry SDK over OTLP/HTTP (sendTraces dates its spans a minute
// back, which retention of seconds would expire at once).
func sendNow(t *testing.T, a *App, tenant string) {
	t.Helper()
	_, httpAddr := a.OTLPAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
		otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": tenant}))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	sctx, root := tp.Tracer("weft.retention").Start(ctx, "root")
	_, child := tp.Tracer("weft.retention").Start(sctx, "child")
	child.End()
	root.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("push as %s: %v", tenant, err)
	}
}
