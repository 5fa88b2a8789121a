package memlimit

import (
	"context"
	"math"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{LimitBytes: 1 << 20, RefuseAboveRatio: 0.8, CheckInterval: 1}, "limit_bytes: must be 0 (off) or at least"},
		{Config{RefuseAboveRatio: 1.5, CheckInterval: 1}, "refuse_above_ratio"},
		{Config{RefuseAboveRatio: 0.5}, "check_interval"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if d := DefaultConfig(); d.Validate() != nil {
		t.Fatal(d.Validate())
	}
}

// TestAdmit reads the real memory of the test process: with a budget far
// below it every push is refused with UNAVAILABLE naming the key and counted;
// with a budget far above it, and with no budget, pushes are admitted.
func TestAdmit(t *testing.T) {
	reg := prometheus.NewRegistry()
	low := New(Config{LimitBytes: MinLimitBytes, RefuseAboveRatio: 0.0001, CheckInterval: 1}, reg)
	low.Check()
	_, err := low.Admit("http")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "memory_limiter.limit_bytes") {
		t.Fatalf("over the budget: %v", err)
	}
	if got := testutil.ToFloat64(low.refused.WithLabelValues("http")); got != 1 {
		t.Fatalf("refusals counted: %v", got)
	}
	if low.inUse.Load() == 0 {
		t.Fatal("memory in use not read")
	}
	high := New(Config{LimitBytes: 1 << 40, RefuseAboveRatio: 1, CheckInterval: 1}, prometheus.NewRegistry())
	high.Check()
	done, err := high.Admit("grpc")
	if err != nil {
		t.Fatalf("under the budget: %v", err)
	}
	if high.inFlight.Load() != 1 {
		t.Fatalf("in flight %d, want 1", high.inFlight.Load())
	}
	done(1 << 20)
	done(1 << 20) // a second call is ignored
	if high.inFlight.Load() != 0 || high.avgPush.Load() <= initialAvgPush {
		t.Fatalf("after done: in flight %d, average push %d", high.inFlight.Load(), high.avgPush.Load())
	}
	off := New(DefaultConfig(), nil)
	off.Check()
	if _, err := off.Admit("grpc"); err != nil {
		t.Fatalf("no budget: %v", err)
	}
	var none *Limiter
	if _, err := none.Admit("grpc"); err != nil {
		t.Fatalf("nil limiter: %v", err)
	}
	if err := off.Start(context.Background()); err != nil || off.loop != nil {
		t.Fatal("a limiter without budget started checking")
	}
}

// TestAdmitCountsPushesInProgress fills the room under the threshold with
// admitted pushes: the next one is refused until one of them is done.
func TestAdmitCountsPushesInProgress(t *testing.T) {
	l := New(Config{LimitBytes: 1 << 40, RefuseAboveRatio: 1, CheckInterval: 1}, nil)
	l.Check()
	l.threshold = l.inUse.Load() + 3*pushFootprint*initialAvgPush // room for exactly 3
	var dones []func(int)
	for i := range 3 {
		done, err := l.Admit("http")
		if err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
		dones = append(dones, done)
	}
	if _, err := l.Admit("http"); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "3 pushes are in progress") {
		t.Fatalf("fourth push: %v", err)
	}
	dones[0](0)
	if _, err := l.Admit("http"); err != nil {
		t.Fatalf("after one finished: %v", err)
	}
}

// Without a budget, the runtime's soft limit comes from the components'
// bounds, or from runtime_limit_bytes; a budget, -1, GOMEMLIMIT in the
// environment or a process without bounded components leave it alone.
func TestSetDerived(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	t.Setenv("GOMEMLIMIT", "") // os.Getenv gives "" for both unset and empty
	cases := []struct {
		name      string
		cfg       Config
		component int64
		want      int64
	}{
		{"derived", DefaultConfig(), 192 << 20, 192<<20 + DerivedBaseBytes},
		{"explicit", Config{RefuseAboveRatio: 0.8, CheckInterval: time.Second, RuntimeLimitBytes: 100 << 20}, 192 << 20, 100 << 20},
		{"no components", DefaultConfig(), 0, 0},
		{"off", Config{RefuseAboveRatio: 0.8, CheckInterval: time.Second, RuntimeLimitBytes: -1}, 192 << 20, 0},
		{"budget", Config{LimitBytes: 1 << 30, RefuseAboveRatio: 0.8, CheckInterval: time.Second}, 192 << 20, 0},
	}
	for _, c := range cases {
		debug.SetMemoryLimit(math.MaxInt64)
		if err := c.cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		l := New(c.cfg, prometheus.NewRegistry())
		got := l.SetDerived(c.component)
		runtimeLimit := debug.SetMemoryLimit(-1)
		if got != c.want {
			t.Errorf("%s: SetDerived = %d, want %d", c.name, got, c.want)
		}
		if want := c.want; want == 0 && runtimeLimit != math.MaxInt64 || want > 0 && runtimeLimit != want {
			t.Errorf("%s: the runtime's limit is %d, want %d (none: %d)", c.name, runtimeLimit, c.want, int64(math.MaxInt64))
		}
		if g := testutil.ToFloat64(l.runtimeLimit); g != float64(c.want) {
			t.Errorf("%s: weft_memory_runtime_limit_bytes = %v, want %d", c.name, g, c.want)
		}
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	if got := New(DefaultConfig(), prometheus.NewRegistry()).SetDerived(192 << 20); got != 0 {
		t.Errorf("with GOMEMLIMIT set, SetDerived = %d, want 0", got)
	}
	bad := DefaultConfig()
	bad.RuntimeLimitBytes = 1 << 20
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "runtime_limit_bytes") {
		t.Errorf("a 1 MiB runtime limit: %v", err)
	}
}
