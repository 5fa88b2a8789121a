package metrics

import "time"

// Request is one metrics query (Tempo's QueryRangeRequest); times in unix
// nanoseconds. An instant query has Step == End-Start: one interval.
type Request struct {
	// Query is the TraceQL metrics query.
	Query string `json:"q"`
	// Start and End bound the spans counted, by their start time.
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
	// Step is the width of an interval; End-Start for an instant query.
	Step uint64 `json:"step"`
	// Exemplars is the most exemplars in the answer (and per job); 0
	// means none.
	Exemplars int `json:"exemplars,omitempty"`
	// MaxSeries is the most series a job or the answer holds; 0 means
	// unbounded.
	MaxSeries int `json:"maxSeries,omitempty"`
}

// DefaultStep is the query-frontend's step when a request gives none, as
// Tempo's frontend picks it (../shared/reference/tempo.md §2.6): the range
// cut in 240 (the baseline), rounded down to a multiple of the first
// granularity of 1h, 5m, 1m, 15s, 5s and 1s that is strictly below it, and
// at least 1s; a range under a minute uses multiples of 50ms, at least
// 50ms. So 1h gives 15s, 6h 1m30s → 1m, 24h 6m → 5m.
func DefaultStep(start, end uint64) uint64 {
	if end <= start {
		return uint64(time.Second)
	}
	rng := time.Duration(end - start)
	base := rng / 240
	floor := func(unit time.Duration) uint64 { return uint64(base / unit * unit) }
	if rng < time.Minute {
		if base > subMinuteStep {
			return floor(subMinuteStep)
		}
		return uint64(subMinuteStep)
	}
	for _, g := range stepGranularities {
		if base > g {
			return floor(g)
		}
	}
	return uint64(time.Second)
}

// stepGranularities are the multiples DefaultStep rounds to, largest
// first, and subMinuteStep the one of a range under a minute.
var stepGranularities = []time.Duration{time.Hour, 5 * time.Minute, time.Minute, 15 * time.Second, 5 * time.Second, time.Second}

const subMinuteStep = 50 * time.Millisecond

// Instant reports whether r is an instant query (Step == End-Start).
func (r Request) Instant() bool { return r.End-r.Start == r.Step }

// Align is Tempo's AlignRequest: a range query's start is rounded down
// and its end up to multiples of the step, and the start moved one step
// earlier (an extra first interval), so that refreshing "the last hour"
// gives the same intervals. An instant query is returned as is.
func (r Request) Align() Request {
	if r.Instant() || r.Step == 0 {
		return r
	}
	r.Start = alignDown(r.Start, r.Step)
	r.End = alignUp(r.End, r.Step)
	if r.Start > r.Step {
		r.Start -= r.Step
	}
	return r
}

func alignDown(t, step uint64) uint64 { return t - t%step }

func alignUp(t, step uint64) uint64 {
	if m := t % step; m != 0 {
		return t + step - m
	}
	return t
}

// bounds are the aligned start and end of a range query's intervals (as
// Tempo's interval mapper aligns them, whether or not r is aligned).
func (r Request) bounds() (start, end uint64) {
	if r.Instant() || r.Step == 0 {
		return r.Start, r.End
	}
	return alignDown(r.Start, r.Step), alignUp(r.End, r.Step)
}

// Intervals is the number of intervals (samples) of a series: 1 for an
// instant query, else (end-start)/step of the aligned bounds.
func (r Request) Intervals() int {
	if r.Step == 0 || r.End <= r.Start {
		return 0
	}
	if r.Instant() {
		return 1
	}
	start, end := r.bounds()
	return int((end - start) / r.Step)
}

// IntervalOf is the interval a span starting at ts counts in, -1 when ts
// is outside the query. Intervals are right-closed, as Tempo's: interval
// i holds (TimestampOf(i)-Step, TimestampOf(i)]. An instant query's one
// interval is [Start, End].
func (r Request) IntervalOf(ts uint64) int {
	if r.Step == 0 || r.End <= r.Start {
		return -1
	}
	if r.Instant() {
		if ts < r.Start || ts > r.End {
			return -1
		}
		return 0
	}
	start, end := r.bounds()
	if ts <= start || ts > end {
		return -1
	}
	off := ts - start
	i := off / r.Step
	if i*r.Step == off {
		i--
	}
	return int(i)
}

// TimestampOf is the time (unix nanoseconds) of interval i's sample: its
// right edge; End for an instant query.
func (r Request) TimestampOf(i int) uint64 {
	if r.Instant() {
		return r.End
	}
	start, _ := r.bounds()
	return start + (uint64(i)+1)*r.Step
}

// inRange reports whether ts is in r's range at all (IntervalOf >= 0).
func (r Request) inRange(ts uint64) bool { return r.IntervalOf(ts) >= 0 }
