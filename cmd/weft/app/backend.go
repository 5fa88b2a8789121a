package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftdb/weft/backend/compaction"
	"github.com/weftdb/weft/backend/jobs"
	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/backend/worker"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/modules"
	"github.com/weftdb/weft/internal/overrides"
)

// The backend components: they keep the bucket's blocks in shape.
const (
	modBackendScheduler = "backend-scheduler"
	modBackendWorker    = "backend-worker"
)

// instanceName names this process among the backend's schedulers and
// workers: the host, the process, and a random part (containers often
// share host names and process IDs).
func instanceName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), uuid.NewString()[:8])
}

// initBackendScheduler plans the backend jobs from the block list and
// serves them to the workers: over gRPC, and in process to a worker of
// this process. It serves its status page on the HTTP API.
func (a *App) initBackendScheduler() (modules.Service, error) {
	cfg := a.cfg.BackendScheduler
	set := cfg.Settings()
	s := scheduler.New(a.bucket, schedulerBlocks{a.blocks}, tenantLimits{a.limits}, set, a.registry, a.logger.With("component", modBackendScheduler))
	a.scheduler = s
	// The scheduler's process lists the blocks and, while it holds the
	// lock, writes each tenant's index for the other processes.
	a.blocks.WriteIndexes(a.bucket, s.Active)
	scheduler.RegisterService(a.grpcServer, s)
	a.routes.HandleFunc("GET /status/backendscheduler", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = s.WriteStatus(w)
	})
	a.redactionRoutes(s)
	lock := scheduler.NewLock(a.bucket, instanceName(), cfg.JobLease)
	var stop context.CancelFunc
	done := make(chan struct{})
	return modules.Funcs{
		OnStart: func(context.Context) error {
			var ctx context.Context
			ctx, stop = context.WithCancel(context.Background())
			go func() {
				defer close(done)
				s.Run(ctx, lock, set.CompactionCycle, cfg.MaintenanceInterval)
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			stop()
			select {
			case <-done:
			case <-ctx.Done():
			}
			return nil
		},
	}, nil
}

// initBackendWorker runs backend jobs: those of this process's scheduler
// when one runs here, else those of backend_worker.backend_scheduler_addr.
func (a *App) initBackendWorker() (modules.Service, error) {
	cfg := a.cfg.BackendWorker
	var sched worker.Scheduler = a.scheduler
	var conn *grpc.ClientConn
	if a.scheduler == nil {
		if cfg.BackendSchedulerAddr == "" {
			return nil, fmt.Errorf("backend_worker.backend_scheduler_addr: a backend worker needs the gRPC address of the backend scheduler when the scheduler runs in another process")
		}
		var err error
		if conn, err = grpc.NewClient(cfg.BackendSchedulerAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return nil, fmt.Errorf("backend_worker.backend_scheduler_addr: %w", err)
		}
		sched = scheduler.NewClient(conn)
	}
	var onBlock func(*block.Meta)
	if a.blocks != nil { // this process's queries see an output at once
		onBlock = a.blocks.Add
	}
	spool := os.TempDir()
	runners := jobs.Runners(a.bucket, cfg, tenantLimits{a.limits},
		block.CompactOptions{WriteOptions: block.WriteOptions{RowGroupBytes: a.cfg.BlockBuilder.RowGroupBytes}, SpoolDir: spool}, onBlock, a.registry)
	set := cfg.Settings()
	// A merge holds memory while it runs: none starts while the process
	// is short of it (memory_limiter).
	set.Admit = a.memory.AdmitQuery
	w := worker.New(instanceName(), sched, runners, set, a.logger.With("component", modBackendWorker))
	return modules.Funcs{
		OnStart: func(ctx context.Context) error {
			// The spool files of a worker killed in a merge.
			if n, err := block.RemoveSpoolFiles(spool); err != nil {
				a.logger.Warn("backend worker cannot remove the spool files of earlier merges", "err", err)
			} else if n > 0 {
				a.logger.Info("backend worker removed the spool files of merges cut short", "files", n, "dir", spool)
			}
			return w.Start(ctx)
		},
		OnStop: func(ctx context.Context) error {
			err := w.Stop(ctx)
			if conn != nil {
				_ = conn.Close()
			}
			return err
		},
	}, nil
}

// schedulerBlocks is the block list as the scheduler reads it.
type schedulerBlocks struct{ l *blocklist.List }

func (b schedulerBlocks) Tenants() []string { return b.l.Tenants() }

func (b schedulerBlocks) Compactable(tenant string) []compaction.Block {
	entries := b.l.Blocks(tenant, time.Time{}, time.Time{})
	out := make([]compaction.Block, 0, len(entries))
	for _, e := range entries {
		out = append(out, compaction.BlockOf(e.Meta))
	}
	return out
}

// Metas are the tenant's listed blocks, for redaction.
func (b schedulerBlocks) Metas(tenant string) []*block.Meta {
	entries := b.l.Blocks(tenant, time.Time{}, time.Time{})
	out := make([]*block.Meta, len(entries))
	for i, e := range entries {
		out[i] = e.Meta
	}
	return out
}

// tenantLimits are the overrides the backend applies.
type tenantLimits struct{ o *overrides.Overrides }

func (l tenantLimits) CompactionDisabled(tenant string) bool {
	return l.o.For(tenant).Compaction.CompactionDisabled
}

func (l tenantLimits) BlockRetention(tenant string) time.Duration {
	return l.o.For(tenant).Compaction.BlockRetention
}
