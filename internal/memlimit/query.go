package memlimit

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AdmitQuery tells whether the process can start a query now: nil, or,
// while the memory in use is above the threshold at which pushes are
// refused, an UNAVAILABLE status naming the budget and its keys. A query
// holds memory for as long as it runs; starting one when the process is
// already short would take what pushes are being refused for. A nil or
// disabled Limiter admits every query.
func (l *Limiter) AdmitQuery() error {
	if !l.Enabled() || !l.over.Load() {
		return nil
	}
	return status.Errorf(codes.Unavailable,
		"cannot start the query now: the process holds %d bytes, above %.0f%% of its memory budget of %d bytes (memory_limiter.limit_bytes, memory_limiter.refuse_above_ratio); retry later",
		l.inUse.Load(), 100*l.cfg.RefuseAboveRatio, l.cfg.LimitBytes)
}
