package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/thanos-io/objstore"
)

// LockName is the object that says which scheduler runs.
const LockName = "backend-scheduler.lock"

// lock is the content of LockName.
type lock struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

// Lock makes one scheduler of a bucket run at a time: a scheduler holds
// the lock object for a lease it renews, and another takes it over only
// once the lease ran out. Object storage has no atomic compare-and-swap
// in objstore, so a take-over writes the lock, waits, and reads it back:
// of two schedulers starting together, the last writer runs and the other
// waits. Deploy one scheduler; the lock stops a second one by mistake.
type Lock struct {
	bkt   objstore.Bucket
	owner string
	lease time.Duration
	clock func() time.Time
	// settle is how long a take-over waits before it reads the lock back.
	settle time.Duration
}

// NewLock returns the lock of bkt for owner, with leases of lease.
func NewLock(bkt objstore.Bucket, owner string, lease time.Duration) *Lock {
	return &Lock{bkt: bkt, owner: owner, lease: lease, clock: time.Now, settle: 2 * time.Second}
}

func (l *Lock) read(ctx context.Context) (*lock, error) {
	rc, err := l.bkt.Get(ctx, LockName)
	if l.bkt.IsObjNotFoundErr(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", LockName, err)
	}
	defer rc.Close()
	var lk lock
	if err := json.NewDecoder(rc).Decode(&lk); err != nil {
		return nil, nil // damaged: as if free
	}
	return &lk, nil
}

func (l *Lock) write(ctx context.Context) error {
	b, _ := json.Marshal(lock{Owner: l.owner, Until: l.clock().Add(l.lease)})
	if err := l.bkt.Upload(ctx, LockName, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("cannot write %s: %w", LockName, err)
	}
	return nil
}

// TryAcquire takes or renews the lock, and reports whether this owner
// holds it. Another owner's unexpired lease is left alone.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	cur, err := l.read(ctx)
	if err != nil {
		return false, err
	}
	if cur != nil && cur.Owner != l.owner && l.clock().Before(cur.Until) {
		return false, nil
	}
	if err := l.write(ctx); err != nil {
		return false, err
	}
	if cur != nil && cur.Owner == l.owner {
		return true, nil // a renewal
	}
	// A take-over: another scheduler may be taking over too.
	select {
	case <-time.After(l.settle):
	case <-ctx.Done():
		return false, ctx.Err()
	}
	cur, err = l.read(ctx)
	if err != nil {
		return false, err
	}
	return cur != nil && cur.Owner == l.owner, nil
}

// Release gives the lock up, if this owner holds it.
func (l *Lock) Release(ctx context.Context) error {
	cur, err := l.read(ctx)
	if err != nil || cur == nil || cur.Owner != l.owner {
		return err
	}
	if err := l.bkt.Delete(ctx, LockName); err != nil && !l.bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("cannot delete %s: %w", LockName, err)
	}
	return nil
}
