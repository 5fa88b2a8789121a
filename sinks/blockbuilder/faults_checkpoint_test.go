package blockbuilder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/readiness"
	"github.com/weftdb/weft/pipelines"
)

// A checkpoint that cannot be saved while uploads succeed stores no span
// twice after a restart, whether the process is killed or stopped: the
// builder uploads no further block until the checkpoint is saved, so the
// replay rebuilds the one block past it under the same ID.
func TestFailedCheckpointDuplicatesNothing(t *testing.T) {
	for _, how := range []string{"kill", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			f := newFixture(t)
			f.cfg.MaxBlockDuration = 100 * time.Millisecond // blocks cut by age, as most are
			reg := prometheus.NewRegistry()
			ready := &readiness.Set{}
			b := New(pipelines.Settings{Name: "block-builder", Metrics: reg, Readiness: ready}, f.cfg, f.bkt, Hooks{})
			if err := b.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			var tds []ptrace.Traces
			seed := uint64(1)
			pushAged := func() {
				tds = append(tds, push(t, b, "t", seed))
				seed++
				time.Sleep(200 * time.Millisecond) // cut and uploaded
			}
			pushAged()
			// A directory in the way of the checkpoint's temporary file.
			inTheWay := filepath.Join(f.cfg.WAL.Path, checkpointName+".tmp")
			if err := os.Mkdir(inTheWay, 0o755); err != nil {
				t.Fatal(err)
			}
			for range 5 {
				pushAged()
			}
			readyErr := ready.Err()
			failures := metricValue(t, reg, "weft_block_builder_checkpoint_failures_total")
			if how == "kill" {
				crash(b)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := b.Shutdown(ctx)
				cancel()
				if err != nil {
					t.Fatalf("shutdown with the checkpoint failing (everything is in the WAL): %v", err)
				}
			}
			if err := os.Remove(inTheWay); err != nil {
				t.Fatal(err)
			}
			b2 := f.start(t, Hooks{})
			stop(t, b2)
			counts, _ := stored(t, f.bkt)
			expect(t, counts, "t", tds...)
			if readyErr == nil || !strings.Contains(readyErr.Error(), "checkpoint") {
				t.Fatalf("/ready while the checkpoint cannot be saved: %v", readyErr)
			}
			if failures < 1 {
				t.Fatal("weft_block_builder_checkpoint_failures_total did not count the failures")
			}
		})
	}
}
