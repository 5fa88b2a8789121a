package metrics

import (
	"testing"
	"time"
)

const sec = uint64(time.Second)

// Cases from Tempo's pkg/traceql engine_metrics_test.go
// (TestDefaultQueryRangeStep) and worked from its IntervalMapper and
// AlignRequest (right-closed intervals, samples at the interval's end,
// an extra first interval after alignment).
func TestDefaultStep(t *testing.T) {
	for _, c := range []struct {
		rng  uint64
		want time.Duration
	}{
		{100 * sec, time.Second},              // 416ms: below 1s
		{600 * sec, 2 * time.Second},          // 2.5s → 1s granularity
		{3600 * sec, 15 * time.Second},        // 15s: not strictly above 15s → 5s granularity
		{0, time.Second},                      // empty range
		{10 * sec, 50 * time.Millisecond},     // under a minute: 41.6ms → 50ms
		{30 * sec, 100 * time.Millisecond},    // 125ms → multiple of 50ms
		{24 * 3600 * sec, 5 * time.Minute},    // 6m → 5m granularity
		{6 * 3600 * sec, time.Minute},         // 1m30s → 1m
		{1100 * sec, 4 * time.Second},         // 4.58s → 1s granularity
		{1300 * sec, 5 * time.Second},         // 5.41s → 5s
		{2 * 3600 * sec, 30 * time.Second},    // 30s → 15s granularity
		{30 * 24 * 3600 * sec, 3 * time.Hour}, // 3h → 1h granularity
		{10 * 24 * 3600 * sec, time.Hour},     // exactly 1h: not above → 5m granularity gives 60m
	} {
		if got := time.Duration(DefaultStep(1000*sec, 1000*sec+c.rng)); got != c.want {
			t.Errorf("DefaultStep(range %ds) = %v, want %v", c.rng/sec, got, c.want)
		}
	}
}

func TestAlign(t *testing.T) {
	for _, c := range []struct {
		in, want Request
	}{
		// Start rounded down then one step earlier; end rounded up.
		{Request{Start: 1017 * sec, End: 1203 * sec, Step: 60 * sec}, Request{Start: 900 * sec, End: 1260 * sec, Step: 60 * sec}},
		// Already aligned: still the extra first interval.
		{Request{Start: 1020 * sec, End: 1200 * sec, Step: 60 * sec}, Request{Start: 960 * sec, End: 1200 * sec, Step: 60 * sec}},
		// A start not greater than the step gets no extra interval (no underflow).
		{Request{Start: 30 * sec, End: 200 * sec, Step: 60 * sec}, Request{Start: 0, End: 240 * sec, Step: 60 * sec}},
		// Instant: untouched.
		{Request{Start: 1017 * sec, End: 1203 * sec, Step: 186 * sec}, Request{Start: 1017 * sec, End: 1203 * sec, Step: 186 * sec}},
	} {
		if got := c.in.Align(); got != c.want {
			t.Errorf("%+v.Align() = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestIntervals(t *testing.T) {
	// Aligned 900..1260 by 60: six intervals ending 960, 1020, ..., 1260.
	r := Request{Start: 1017 * sec, End: 1203 * sec, Step: 60 * sec}.Align()
	if n := r.Intervals(); n != 6 {
		t.Fatalf("Intervals = %d, want 6", n)
	}
	for i := 0; i < 6; i++ {
		if ts := r.TimestampOf(i); ts != (960+60*uint64(i))*sec {
			t.Errorf("TimestampOf(%d) = %d, want %d", i, ts/sec, 960+60*i)
		}
	}
	for _, c := range []struct {
		ts   uint64
		want int
	}{
		{900 * sec, -1},    // the aligned start is excluded (right-closed)
		{900*sec + 1, 0},   // just after it: first interval
		{960 * sec, 0},     // an interval's end belongs to it
		{960*sec + 1, 1},   // just after: the next one
		{1259 * sec, 5},    //
		{1260 * sec, 5},    // the end is included
		{1260*sec + 1, -1}, // past the end
		{0, -1},
	} {
		if got := r.IntervalOf(c.ts); got != c.want {
			t.Errorf("IntervalOf(%d) = %d, want %d", c.ts, got, c.want)
		}
	}
	// Unaligned requests are mapped as Tempo's interval mapper maps them.
	u := Request{Start: 10 * sec, End: 20 * sec, Step: 3 * sec} // 9..21: 4 intervals
	if n := u.Intervals(); n != 4 {
		t.Errorf("unaligned Intervals = %d, want 4", n)
	}
	if ts := u.TimestampOf(0); ts != 12*sec {
		t.Errorf("unaligned TimestampOf(0) = %d, want 12s", ts)
	}
	// Instant: one interval, [start, end], sample at the end.
	in := Request{Start: 100 * sec, End: 160 * sec, Step: 60 * sec}
	if !in.Instant() || in.Intervals() != 1 || in.TimestampOf(0) != 160*sec {
		t.Errorf("instant: Instant %v Intervals %d TimestampOf %d", in.Instant(), in.Intervals(), in.TimestampOf(0))
	}
	for _, c := range []struct {
		ts   uint64
		want int
	}{{99 * sec, -1}, {100 * sec, 0}, {160 * sec, 0}, {160*sec + 1, -1}} {
		if got := in.IntervalOf(c.ts); got != c.want {
			t.Errorf("instant IntervalOf(%d) = %d, want %d", c.ts, got, c.want)
		}
	}
	if (Request{Start: 1, End: 2}).Intervals() != 0 || (Request{Start: 1, End: 2}).IntervalOf(1) != -1 {
		t.Error("a zero step must give no intervals")
	}
}
