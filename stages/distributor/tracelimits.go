package distributor

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/pipelines"
)

// liveTraces applies the two per-trace ingestion limits of each tenant at
// push time: ingestion.max_traces_per_user (how many traces may be live at
// once) and global.max_bytes_per_trace (how many span bytes one live trace
// may gather). A trace is live from its first span until it has received
// none for the idle period; then it is forgotten, and a later span of it
// starts it again. Only admitted traces are tracked, so a tenant costs at
// most its max_traces_per_user entries (or, with that limit off, the traces
// it starts within one idle period).
//
// Like the rate limit, the limits are local: each distributor process counts
// what it receives.
type liveTraces struct {
	idle time.Duration

	mu      sync.Mutex
	tenants map[string]*tenantTraces
}

// traceShards spreads one tenant's traces over locks by trace ID.
const traceShards = 16

type tenantTraces struct {
	live      atomic.Int64 // entries over all shards
	lastSweep atomic.Int64 // unix ns
	shards    [traceShards]traceShard
}

type traceShard struct {
	mu     sync.Mutex
	traces map[[16]byte]traceState
}

type traceState struct {
	lastSeen int64 // unix ns of the last admitted span
	bytes    int64 // span bytes admitted while live
}

func newLiveTraces(idle time.Duration) *liveTraces {
	return &liveTraces{idle: idle, tenants: map[string]*tenantTraces{}}
}

// tenant returns the state of ten, created on first use.
func (lt *liveTraces) tenant(ten string) *tenantTraces {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	tt := lt.tenants[ten]
	if tt == nil {
		tt = &tenantTraces{}
		for i := range tt.shards {
			tt.shards[i].traces = map[[16]byte]traceState{}
		}
		lt.tenants[ten] = tt
	}
	return tt
}

// admit decides on one span of n bytes of trace id at now (unix ns). It
// returns "" when the span is admitted, which counts it against both limits,
// or the discard reason: metrics.ReasonLiveTracesExceeded for a new trace
// while maxTraces traces are live, metrics.ReasonTraceTooLarge when the span
// would take its trace over maxBytes. A limit of 0 is off.
func (lt *liveTraces) admit(tt *tenantTraces, id [16]byte, n, now int64, maxTraces, maxBytes int) string {
	sh := &tt.shards[id[0]%traceShards]
	sh.mu.Lock()
	st, ok := sh.traces[id]
	if ok && now-st.lastSeen > int64(lt.idle) {
		st = traceState{} // idle: it starts again, still counted in live
	}
	if !ok && maxTraces > 0 && tt.live.Load() >= int64(maxTraces) {
		sh.mu.Unlock()
		// Forgetting idle traces may make room.
		lt.sweep(tt, now, true)
		if tt.live.Load() >= int64(maxTraces) {
			return metrics.ReasonLiveTracesExceeded
		}
		sh.mu.Lock()
		st, ok = sh.traces[id] // another push may have started it meanwhile
	}
	if maxBytes > 0 && st.bytes+n > int64(maxBytes) {
		sh.mu.Unlock()
		return metrics.ReasonTraceTooLarge
	}
	if !ok {
		tt.live.Add(1)
	}
	sh.traces[id] = traceState{lastSeen: now, bytes: st.bytes + n}
	sh.mu.Unlock()
	if now-tt.lastSweep.Load() > int64(lt.idle) {
		lt.sweep(tt, now, false)
	}
	return ""
}

// sweepAll forgets the idle traces of every tenant, and the tenants left
// with none, so that the memory of a tenant that stopped sending goes back.
// A push that took the tenant's state just before it was dropped counts its
// traces there, uncounted afterwards: the limit can be passed by that much
// for one idle period.
func (lt *liveTraces) sweepAll(now int64) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for ten, tt := range lt.tenants {
		lt.sweepEvery(tt, now, 0)
		if tt.live.Load() == 0 {
			delete(lt.tenants, ten)
		}
	}
}

// sweep forgets the tenant's idle traces. Unless forced it runs at most once
// per idle period, and a forced one at most once per tenth of it, so a
// tenant at its limit does not scan its traces on every span.
func (lt *liveTraces) sweep(tt *tenantTraces, now int64, forced bool) {
	every := int64(lt.idle)
	if forced {
		every /= 10
	}
	lt.sweepEvery(tt, now, every)
}

// sweepEvery forgets the tenant's idle traces unless the last sweep was
// within minGap nanoseconds of now.
func (lt *liveTraces) sweepEvery(tt *tenantTraces, now, minGap int64) {
	last := tt.lastSweep.Load()
	if now-last <= minGap && minGap > 0 || !tt.lastSweep.CompareAndSwap(last, now) {
		return
	}
	cutoff := now - int64(lt.idle)
	for i := range tt.shards {
		sh := &tt.shards[i]
		sh.mu.Lock()
		var gone int64
		for id, st := range sh.traces {
			if st.lastSeen < cutoff {
				delete(sh.traces, id)
				gone++
			}
		}
		sh.mu.Unlock()
		tt.live.Add(-gone)
	}
}

// traceLimitError is the message of spans refused by admit, naming the
// limit, the tenant and the config keys.
func traceLimitError(reason, ten string, id []byte, l *overrides.Limits, idle time.Duration) error {
	switch reason {
	case metrics.ReasonLiveTracesExceeded:
		return fmt.Errorf("LIVE_TRACES_EXCEEDED: tenant %q already has %d live traces (traces with a span in the last %s) in this distributor: spans of new traces are refused until some go idle; raise overrides.defaults.ingestion.max_traces_per_user (or the tenant's ingestion.max_traces_per_user in overrides.per_tenant_override_config)",
			ten, l.Ingestion.MaxTracesPerUser, idle)
	default:
		return fmt.Errorf("TRACE_TOO_LARGE: trace %x of tenant %q would exceed the largest trace allowed (%d bytes); its further spans are refused: raise overrides.defaults.global.max_bytes_per_trace (or the tenant's global.max_bytes_per_trace in overrides.per_tenant_override_config)",
			id, ten, l.Global.MaxBytesPerTrace)
	}
}

// pushTraceLimits applies liveTraces to the spans of one push and gathers
// what it refused. The zero value applies no limit.
type pushTraceLimits struct {
	lt        *liveTraces
	tt        *tenantTraces // nil: no limit is on
	ten       string
	l         *overrides.Limits
	now       int64
	maxTraces int
	maxBytes  int
	counts    [2]int   // refused spans: live traces exceeded, trace too large
	errs      [2]error // the first of each
}

// traceLimits returns the limits of one push of tenant ten, whose limits are
// l (nil: none).
func (d *Distributor) traceLimits(ten string, l *overrides.Limits) pushTraceLimits {
	if l == nil || (l.Ingestion.MaxTracesPerUser == 0 && l.Global.MaxBytesPerTrace == 0) {
		return pushTraceLimits{}
	}
	return pushTraceLimits{
		lt: d.live, tt: d.live.tenant(ten), ten: ten, l: l, now: time.Now().UnixNano(),
		maxTraces: l.Ingestion.MaxTracesPerUser, maxBytes: l.Global.MaxBytesPerTrace,
	}
}

func (p *pushTraceLimits) on() bool { return p.tt != nil }

// admit reports whether a span of n bytes of trace traceID (16 bytes) is
// admitted, and records the refusal when not.
func (p *pushTraceLimits) admit(traceID []byte, n int) bool {
	id := [16]byte(traceID)
	reason := p.lt.admit(p.tt, id, int64(n), p.now, p.maxTraces, p.maxBytes)
	if reason == "" {
		return true
	}
	i := 0
	if reason == metrics.ReasonTraceTooLarge {
		i = 1
	}
	if p.counts[i] == 0 {
		p.errs[i] = traceLimitError(reason, p.ten, traceID, p.l, p.lt.idle)
	}
	p.counts[i]++
	return false
}

// refused is the number of spans refused.
func (p *pushTraceLimits) refused() int { return p.counts[0] + p.counts[1] }

// report counts the refused spans in discarded and returns them to the
// client as a partial success.
func (p *pushTraceLimits) report(ctx context.Context, discarded *prometheus.CounterVec) {
	for i, reason := range [2]string{metrics.ReasonLiveTracesExceeded, metrics.ReasonTraceTooLarge} {
		if p.counts[i] > 0 {
			discarded.WithLabelValues(p.ten, reason).Add(float64(p.counts[i]))
			pipelines.RejectSpans(ctx, p.counts[i], p.errs[i])
		}
	}
}
