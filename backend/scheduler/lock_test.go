package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/thanos-io/objstore/providers/filesystem"
)

func TestLockOneOwner(t *testing.T) {
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	mk := func(owner string) *Lock {
		l := NewLock(bkt, owner, time.Minute)
		l.clock = func() time.Time { return now }
		l.settle = 10 * time.Millisecond
		return l
	}
	a, b := mk("a"), mk("b")
	if ok, err := a.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("a takes the free lock: %v %v", ok, err)
	}
	if ok, err := b.TryAcquire(ctx); ok || err != nil {
		t.Fatalf("b takes a's lock while its lease holds: %v %v", ok, err)
	}
	if ok, err := a.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("a renews: %v %v", ok, err)
	}
	now = now.Add(2 * time.Minute) // a is gone
	if ok, err := b.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("b takes the lock once a's lease ran out: %v %v", ok, err)
	}
	if ok, _ := a.TryAcquire(ctx); ok {
		t.Fatal("a, back, takes b's lock")
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.TryAcquire(ctx); !ok || err != nil {
		t.Fatalf("a takes the released lock: %v %v", ok, err)
	}
	// Two taking over at once: exactly one wins.
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c, d := mk("c"), mk("d")
	c.settle, d.settle = 100*time.Millisecond, 100*time.Millisecond
	var wg sync.WaitGroup
	won := make([]bool, 2)
	for i, l := range []*Lock{c, d} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won[i], _ = l.TryAcquire(ctx)
		}()
	}
	wg.Wait()
	if won[0] == won[1] {
		t.Fatalf("two schedulers taking over at once: won %v", won)
	}
}
