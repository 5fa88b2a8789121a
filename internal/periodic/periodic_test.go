package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoopRunsUntilStopped(t *testing.T) {
	var calls atomic.Int32
	l := Start(time.Millisecond, func() { calls.Add(1) })
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("fn was not called three times")
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := calls.Load()
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != n {
		t.Fatal("fn called after Stop returned")
	}
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal("second Stop:", err)
	}
	var none *Loop
	if err := none.Stop(context.Background()); err != nil {
		t.Fatal("nil Stop:", err)
	}
}

func TestStopWaitsForTheCallOrTheContext(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	l := Start(time.Millisecond, func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	})
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Stop(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Stop with a call in progress: %v, want the context's deadline", err)
	}
	close(release)
	if err := l.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
