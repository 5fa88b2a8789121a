// Package remotewrite sends the metrics-generator's series to Prometheus
// remote-write endpoints through a durable queue per tenant.
//
// A collection becomes one remote-write request (prompb.WriteRequest,
// snappy-compressed), written to a file under <path>/<tenant>/ and fsynced
// before Enqueue returns, together with an opaque checkpoint of the
// caller's, which LastCheckpoint gives back after a restart. A sender per
// tenant and endpoint sends the requests oldest first, retrying network
// errors, 5xx and 429 with a capped exponential backoff; a request's file
// is deleted once every endpoint accepted (or finally refused) it. Open
// reads the queues back, so requests survive a restart of the process,
// kill -9 included. max_queue_age and max_queue_bytes bound each queue:
// past them the oldest requests are dropped and counted.
//
// Use: Open once per process with the `metrics_generator.storage` block;
// Queue(tenant) gives a tenant's queue (an Appender); the generator calls
// Enqueue once per collection and, after a start, resumes from
// LastCheckpoint; at shutdown, Close with a ctx of remote_write_flush_deadline.
//
// Why not Prometheus's agent WAL and queue manager, as Tempo does: the WAL
// watcher that feeds the queue manager sends only samples with timestamps
// after its own start (tsdb/wlog/watcher.go sets its start time to
// time.Now() in Start and skips samples at or before it), so samples in the
// WAL from before a restart are never sent, and samples must survive a
// restart of the generator here. So this
// package speaks Prometheus's remote-write protocol 1.0 (prompb, snappy,
// the same headers as Prometheus) over net/http with its own small queue.
// storage/remote's WriteClient would send the same bytes, but it pulls in
// the AWS, Azure and Google SDKs, registers global metrics at init, and
// hides the HTTP status code in an error string.
package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/tenant"
)

// Backoff of the retries of one request to one endpoint.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Storage is the remote-write side of the metrics-generator: one queue
// per tenant, and its senders.
type Storage struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metricSet
	eps     []*endpoint

	ctx    context.Context // canceled when Close gives up flushing
	cancel context.CancelFunc

	mu      sync.Mutex
	queues  map[string]*Queue
	closing bool
	wg      sync.WaitGroup // senders
	bg      sync.WaitGroup // the janitor

	lock *os.File // an exclusive flock on <path>/weft~lock

	lastRejectLog atomic.Int64 // Unix nanoseconds
	suppressed    atomic.Int64 // rejections not logged since
}

type endpoint struct {
	idx    int
	name   string
	cfg    Endpoint
	client *http.Client
}

// Open validates cfg, reads back the queues under cfg.Path and starts
// their senders. reg (may be nil) gets the metrics.
func Open(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Storage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot open the remote-write storage: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Storage{
		cfg:     cfg,
		logger:  logger,
		metrics: newMetrics(reg),
		queues:  map[string]*Queue{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for i, e := range cfg.RemoteWrite {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 4
		s.eps = append(s.eps, &endpoint{idx: i, name: e.endpointName(i), cfg: e, client: &http.Client{Transport: tr}})
	}
	if len(s.eps) > 0 {
		if err := os.MkdirAll(cfg.Path, 0o755); err != nil {
			s.cancel()
			return nil, fmt.Errorf("cannot create the remote-write queue directory (path): %w", err)
		}
		lock, err := lockDir(cfg.Path)
		if err != nil {
			s.cancel()
			return nil, err
		}
		s.lock = lock
		des, err := os.ReadDir(cfg.Path)
		if err != nil {
			s.closeNow()
			return nil, fmt.Errorf("cannot read the remote-write queue directory (path): %w", err)
		}
		for _, de := range des {
			if !de.IsDir() || tenant.Validate(de.Name()) != nil {
				continue
			}
			if _, err := s.Queue(de.Name()); err != nil {
				s.closeNow()
				return nil, err
			}
		}
		s.bg.Add(1)
		go s.janitor()
	}
	return s, nil
}

// Tenants lists the tenants with a queue, sorted.
func (s *Storage) Tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.queues))
	for t := range s.queues {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Queue returns the tenant's queue, reading it back from disk and
// starting its senders the first time.
func (s *Storage) Queue(tenantID string) (*Queue, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return nil, fmt.Errorf("cannot open a remote-write queue: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if q, ok := s.queues[tenantID]; ok {
		return q, nil
	}
	if s.closing {
		return nil, errors.New("cannot open a remote-write queue: the storage is closed")
	}
	q := &Queue{s: s, tenant: tenantID, dir: filepath.Join(s.cfg.Path, tenantID)}
	if len(s.eps) > 0 {
		if err := q.load(); err != nil {
			return nil, fmt.Errorf("cannot open the remote-write queue of tenant %q: %w", tenantID, err)
		}
		q.cursor = make([]uint64, len(s.eps))
		q.wake = make([]chan struct{}, len(s.eps))
		for i := range s.eps {
			q.wake[i] = make(chan struct{}, 1)
			s.wg.Add(1)
			go q.run(s.eps[i])
		}
	}
	s.queues[tenantID] = q
	q.updateGauges(time.Now())
	return q, nil
}

// Close stops the senders. They first send what they can until ctx is
// done (give it a deadline of Config.FlushDeadline,
// remote_write_flush_deadline); what is left stays on disk for the next
// Open. It returns an error when requests were left.
func (s *Storage) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	qs := make([]*Queue, 0, len(s.queues))
	for _, q := range s.queues {
		qs = append(qs, q)
	}
	s.mu.Unlock()
	for _, q := range qs {
		q.mu.Lock()
		q.closing = true
		q.mu.Unlock()
		q.wakeAll()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
	s.bg.Wait()
	left := 0
	for _, q := range qs {
		q.mu.Lock()
		left += len(q.entries)
		q.mu.Unlock()
	}
	if s.lock != nil {
		s.lock.Close() // releases the flock
	}
	if left > 0 {
		return fmt.Errorf("cannot flush the remote-write queues: %d requests left on disk for the next start", left)
	}
	return nil
}

// closeNow stops everything without flushing (a failed Open).
func (s *Storage) closeNow() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Close(ctx)
}

// janitor drops requests older than max_queue_age and updates the age
// gauges, every second.
func (s *Storage) janitor() {
	defer s.bg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			qs := make([]*Queue, 0, len(s.queues))
			for _, q := range s.queues {
				qs = append(qs, q)
			}
			s.mu.Unlock()
			for _, q := range qs {
				q.dropOld(now)
				q.updateGauges(now)
			}
		}
	}
}

// lockName is the lock file in path; '~' is not allowed in tenant IDs, so
// it cannot be a tenant's directory.
const lockName = "weft~lock"

// lockDir takes an exclusive lock on dir, so that two processes cannot
// send (and delete) the same queues.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the remote-write queue lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock the remote-write queue directory %s: another process uses it (give each metrics-generator its own metrics_generator.storage.path): %w", dir, err)
	}
	return f, nil
}

// logRejected logs a refused request, at most once a minute.
func (s *Storage) logRejected(tenantID, ep string, status int, body string) {
	now := time.Now().UnixNano()
	last := s.lastRejectLog.Load()
	if now-last < int64(time.Minute) || !s.lastRejectLog.CompareAndSwap(last, now) {
		s.suppressed.Add(1)
		return
	}
	s.logger.Warn("remote-write endpoint refused a request; it is dropped for this endpoint (counted in weft_metrics_generator_remote_write_dropped_requests_total{reason=\"rejected\"})",
		"tenant", tenantID, "endpoint", ep, "status", status, "body", body,
		"not_logged_since_last", s.suppressed.Swap(0))
}
