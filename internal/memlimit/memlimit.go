// Package memlimit keeps a weft process within a memory budget
// (memory_limiter.limit_bytes). It gives the budget to the Go runtime
// (debug.SetMemoryLimit), so that the garbage collector works harder as the
// process nears it, and it refuses new pushes while the memory the process
// holds is above a share of the budget, so that clients back off (503 /
// UNAVAILABLE with a retry delay) instead of the process running out of
// memory. Acknowledged data is never dropped: only pushes not yet read are
// refused.
package memlimit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	imetrics "github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/periodic"
	"github.com/weftdb/weft/internal/procstat"
)

// Config is the `memory_limiter` block (weft only).
type Config struct {
	// LimitBytes is the memory budget of the process; 0 turns the limiter
	// off. Size live_store.max_bytes and block_builder.max_buffered_bytes
	// well inside it: they are what the process holds on purpose.
	LimitBytes int64 `yaml:"limit_bytes"`
	// RefuseAboveRatio is the share of limit_bytes above which new pushes
	// are refused.
	RefuseAboveRatio float64 `yaml:"refuse_above_ratio"`
	// CheckInterval is how often the memory in use is read.
	CheckInterval time.Duration `yaml:"check_interval"`
	// RuntimeLimitBytes is the Go runtime's soft memory limit (what
	// GOMEMLIMIT sets) while LimitBytes is 0: the garbage collector works
	// harder as the process nears it, and nothing is refused. 0 derives it
	// from what the process's components hold on purpose (SetDerived); -1
	// leaves the runtime without a limit. Not used when LimitBytes is set
	// (the budget sets the runtime's limit) or when the GOMEMLIMIT
	// environment variable is (it wins).
	RuntimeLimitBytes int64 `yaml:"runtime_limit_bytes"`
}

// DerivedBaseBytes is what a derived runtime limit adds to the bounds of
// the components: the rest of the process (code, queues, queries' and
// compactions' working memory, the runtime itself).
const DerivedBaseBytes = 64 << 20

// DefaultConfig has the limiter off; when it is turned on, pushes are
// refused above 80% of the budget, checked every 50ms.
func DefaultConfig() Config {
	return Config{RefuseAboveRatio: 0.8, CheckInterval: 50 * time.Millisecond}
}

// MinLimitBytes is the smallest budget accepted: below it a weft process
// cannot start its components.
const MinLimitBytes = 64 << 20

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	if c.LimitBytes != 0 && c.LimitBytes < MinLimitBytes {
		errs = append(errs, fmt.Errorf("limit_bytes: must be 0 (off) or at least %d (64 MiB), got %d", MinLimitBytes, c.LimitBytes))
	}
	if c.RefuseAboveRatio <= 0 || c.RefuseAboveRatio > 1 {
		errs = append(errs, fmt.Errorf("refuse_above_ratio: must be above 0 and at most 1, got %g", c.RefuseAboveRatio))
	}
	if c.RuntimeLimitBytes < -1 || (c.RuntimeLimitBytes > 0 && c.RuntimeLimitBytes < MinLimitBytes) {
		errs = append(errs, fmt.Errorf("runtime_limit_bytes: must be -1 (none), 0 (derived) or at least %d (64 MiB), got %d", MinLimitBytes, c.RuntimeLimitBytes))
	}
	if c.CheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("check_interval: must be positive, got %s", c.CheckInterval))
	}
	return errors.Join(errs...)
}

// Limiter watches the memory of the process. Admit is safe for concurrent
// use and costs a few atomic operations.
type Limiter struct {
	cfg       Config
	threshold uint64
	over      atomic.Bool
	inUse     atomic.Uint64
	// Pushes admitted and not yet answered, and the average size of a push
	// (bytes, moving average): between two checks, the memory they will
	// take is counted against the threshold too.
	inFlight atomic.Int64
	avgPush  atomic.Int64

	gauge        prometheus.Gauge
	refused      *prometheus.CounterVec
	runtimeLimit prometheus.Gauge

	samples []metrics.Sample
	lastGC  time.Time      // of the last collection Check forced; only Check uses it
	outside int64          // most resident memory seen outside the Go runtime; only Check uses it
	loop    *periodic.Loop // the checks, once started
}

// Runtime metrics read to tell the memory in use: what the Go runtime has
// mapped, less the heap it holds free (returned to the system or not), less
// the garbage in the heap (objects not live at the last collection). Free
// heap and garbage are not counted: the garbage collector reclaims them as
// the process nears its runtime limit (debug.SetMemoryLimit), so they do not
// threaten the budget, and counting them would refuse pushes whenever
// garbage piles up between two collections.
const (
	metricTotal    = "/memory/classes/total:bytes"
	metricFree     = "/memory/classes/heap/free:bytes"
	metricReleased = "/memory/classes/heap/released:bytes"
	metricObjects  = "/memory/classes/heap/objects:bytes"
	metricLive     = "/gc/heap/live:bytes"
)

// minGCInterval spaces the collections Check forces while over the
// threshold.
const minGCInterval = time.Second

// New returns a limiter for cfg, which must be valid; with LimitBytes 0 it
// admits everything and Start does nothing.
func New(cfg Config, reg prometheus.Registerer) *Limiter {
	l := &Limiter{
		cfg:       cfg,
		threshold: uint64(float64(cfg.LimitBytes) * cfg.RefuseAboveRatio),
		samples:   []metrics.Sample{{Name: metricTotal}, {Name: metricFree}, {Name: metricReleased}, {Name: metricObjects}, {Name: metricLive}},
		gauge: imetrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_memory_in_use_bytes",
			Help: "Memory the process uses as the memory limiter last read it: what the Go runtime has mapped, less free heap and garbage.",
		})),
		runtimeLimit: imetrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_memory_runtime_limit_bytes",
			Help: "The Go runtime's soft memory limit weft set without a memory budget (memory_limiter.runtime_limit_bytes); 0 when it set none.",
		})),
		refused: imetrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_memory_limiter_refused_total",
			Help: "Pushes refused because the process was above memory_limiter.refuse_above_ratio of memory_limiter.limit_bytes, by protocol.",
		}, []string{"protocol"})),
	}
	l.avgPush.Store(initialAvgPush)
	if cfg.LimitBytes > 0 {
		imetrics.Register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "weft_memory_limit_bytes",
			Help: "The memory budget of the process (memory_limiter.limit_bytes).",
		}, func() float64 { return float64(cfg.LimitBytes) }))
	}
	return l
}

// pushFootprint is how many times its size a push takes in memory while it
// is handled: the body, its parsed form and the copies the stores keep.
const pushFootprint = 2

// initialAvgPush is the assumed size of a push before any was measured.
const initialAvgPush = 64 << 10

// Enabled tells whether a budget is set.
func (l *Limiter) Enabled() bool { return l != nil && l.cfg.LimitBytes > 0 }

// Admit tells whether the process can take a push now: the memory in use,
// plus what the pushes already admitted and the new one will take, must stay
// under the threshold. On success the caller must call done once, with the
// push's size in bytes, when the push is answered. Otherwise the error is an
// UNAVAILABLE status that names the budget and its keys. protocol labels
// refusals in weft_memory_limiter_refused_total. A nil or disabled Limiter
// admits everything.
func (l *Limiter) Admit(protocol string) (done func(bytes int), err error) {
	if !l.Enabled() {
		return func(int) {}, nil
	}
	n := l.inFlight.Add(1)
	projected := l.inUse.Load() + uint64(n*pushFootprint*l.avgPush.Load())
	if l.over.Load() || projected > l.threshold {
		l.inFlight.Add(-1)
		l.refused.WithLabelValues(protocol).Inc()
		return nil, status.Errorf(codes.Unavailable,
			"cannot take the push now: the process holds %d bytes and %d pushes are in progress, above %.0f%% of its memory budget of %d bytes (memory_limiter.limit_bytes, memory_limiter.refuse_above_ratio); retry later",
			l.inUse.Load(), n-1, 100*l.cfg.RefuseAboveRatio, l.cfg.LimitBytes)
	}
	var once sync.Once
	return func(bytes int) {
		once.Do(func() {
			l.inFlight.Add(-1)
			if bytes > 0 {
				avg := l.avgPush.Load()
				l.avgPush.Store(avg + (int64(bytes)-avg)/16) // racy by design: an estimate
			}
		})
	}, nil
}

// Check reads the memory in use now and updates what Admit answers. Over
// the threshold it first forces a garbage collection (at most once a
// second), so that the live heap is measured anew: what was live at the
// last collection may be gone, and without new allocations no collection
// would run and the process would refuse pushes for good. Check must not be
// called concurrently.
func (l *Limiter) Check() {
	l.setRuntimeLimit()
	inUse := l.read()
	if l.Enabled() && inUse > l.threshold && time.Since(l.lastGC) >= minGCInterval {
		runtime.GC()
		l.lastGC = time.Now()
		inUse = l.read()
	}
	l.inUse.Store(inUse)
	l.gauge.Set(float64(inUse))
	l.over.Store(l.Enabled() && inUse > l.threshold)
}

// runtimeHeadroom is the share of the budget kept out of the Go runtime's
// limit, for what it does not see coming (code pages touched later, the
// stacks of new goroutines).
const runtimeHeadroom = 0.05

// setRuntimeLimit gives the Go runtime the budget less the resident memory
// it does not account for (the program's code and data) and a headroom, so
// that the resident set, not only the Go heap, stays within the budget. The
// limit only goes down, as more of the program is paged in.
func (l *Limiter) setRuntimeLimit() {
	if !l.Enabled() {
		return
	}
	if out := l.outsideGo(); out > l.outside || l.outside == 0 {
		l.outside = max(out, 1)
		limit := l.cfg.LimitBytes - l.outside - int64(runtimeHeadroom*float64(l.cfg.LimitBytes))
		debug.SetMemoryLimit(max(limit, l.cfg.LimitBytes/2))
	}
}

// outsideGo is the resident memory the Go runtime does not account for
// (the program's code and data, C libraries), from /proc/self/status; 0
// where that cannot be read.
func (l *Limiter) outsideGo() int64 {
	rss := procstat.Bytes(procstat.Self, procstat.RSS)
	if rss == 0 {
		return 0
	}
	metrics.Read(l.samples)
	goHeld := int64(l.samples[0].Value.Uint64() - l.samples[2].Value.Uint64())
	return max(rss-goHeld, 0)
}

// read returns the memory in use: mapped by the runtime, less free heap and
// garbage.
func (l *Limiter) read() uint64 {
	metrics.Read(l.samples)
	var v [5]uint64
	for i, s := range l.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	total, free, objects, live := v[0], v[1]+v[2], v[3], v[4]
	unused := free
	if objects > live {
		unused += objects - live
	}
	return total - min(unused, total)
}

// Start gives the budget to the Go runtime and checks the memory every
// check_interval until Shutdown. It does nothing without a budget.
func (l *Limiter) Start(context.Context) error {
	if !l.Enabled() || l.loop != nil {
		return nil
	}
	l.Check()
	l.loop = periodic.Start(l.cfg.CheckInterval, l.Check)
	return nil
}

// SetDerived gives the Go runtime its soft memory limit when no budget is
// set: runtime_limit_bytes, or with 0, componentBytes (the bounds of what
// the process's components hold on purpose, pipelines.MemoryBounded) plus
// DerivedBaseBytes. It does nothing with a budget (limit_bytes), with
// runtime_limit_bytes -1, with GOMEMLIMIT in the environment, or for a
// process without such components (componentBytes 0 and no explicit
// limit): a query process's memory follows its queries. It returns the
// limit set, 0 when none.
func (l *Limiter) SetDerived(componentBytes int64) int64 {
	if l == nil || l.Enabled() || l.cfg.RuntimeLimitBytes < 0 || os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit := l.cfg.RuntimeLimitBytes
	if limit == 0 {
		if componentBytes <= 0 {
			return 0
		}
		limit = componentBytes + DerivedBaseBytes
	}
	debug.SetMemoryLimit(limit)
	l.runtimeLimit.Set(float64(limit))
	return limit
}

// Shutdown stops the checks. It may be called more than once.
func (l *Limiter) Shutdown(ctx context.Context) error { return l.loop.Stop(ctx) }
