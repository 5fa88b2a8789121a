package distributor

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/overrides"
)

// TenantLimits gives the limits of a tenant. *overrides.Overrides implements
// it. For must be safe for concurrent use, return quickly (it runs once per
// push) and never return nil.
type TenantLimits interface {
	For(tenant string) *overrides.Limits
}

// rateLimiters holds one token bucket per tenant, over OTLP protobuf bytes,
// refilled at ingestion.rate_limit_bytes per second up to
// ingestion.burst_size_bytes (the local strategy: each distributor process
// allows the whole rate).
type rateLimiters struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// allow takes n bytes from tenant's bucket, following the limits in l (a
// change of the limits applies from this call on). It returns nil, or a
// ResourceExhausted status that names the limit, the tenant and the keys.
func (r *rateLimiters) allow(ten string, l *overrides.IngestionLimits, n int, now time.Time) error {
	if l.RateLimitBytes <= 0 {
		return nil
	}
	limit, burst := rate.Limit(l.RateLimitBytes), l.BurstSizeBytes
	r.mu.Lock()
	lim, ok := r.m[ten]
	if !ok {
		if r.m == nil {
			r.m = make(map[string]*rate.Limiter)
		}
		lim = rate.NewLimiter(limit, burst)
		r.m[ten] = lim
	}
	r.mu.Unlock()
	if lim.Limit() != limit {
		lim.SetLimitAt(now, limit)
	}
	if lim.Burst() != burst {
		lim.SetBurstAt(now, burst)
	}
	if n > burst {
		return status.Errorf(codes.ResourceExhausted,
			"RATE_LIMITED: batch size (%d bytes) exceeds the ingestion burst size (%d bytes) of tenant %q: send smaller batches or raise overrides.defaults.ingestion.burst_size_bytes (or the tenant's ingestion.burst_size_bytes in overrides.per_tenant_override_config)",
			n, burst, ten)
	}
	if !lim.AllowN(now, n) {
		return status.Errorf(codes.ResourceExhausted,
			"RATE_LIMITED: ingestion rate limit (local: %d bytes/s, burst: %d bytes) exceeded while adding %d bytes for tenant %q: reduce the load or raise overrides.defaults.ingestion.rate_limit_bytes and burst_size_bytes (or the tenant's in overrides.per_tenant_override_config)",
			l.RateLimitBytes, burst, n, ten)
	}
	return nil
}
