// Package periodic runs a function at a fixed interval on a goroutine of
// its own until it is stopped: the reload and check loops of weft's
// long-running parts.
package periodic

import (
	"context"
	"sync"
	"time"
)

// Loop is a running periodic function. A nil *Loop is a stopped one.
type Loop struct {
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

// Start calls fn every interval, first after one interval, until Stop.
// Calls never overlap.
func Start(interval time.Duration, fn func()) *Loop {
	l := &Loop{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return l
}

// Stop ends the loop and waits for a call in progress to return, or for ctx
// to be done. It may be called more than once, and on nil.
func (l *Loop) Stop(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.once.Do(func() { close(l.stop) })
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
