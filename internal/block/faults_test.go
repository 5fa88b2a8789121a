package block

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/storage"
)

// A missing, truncated or garbled bloom filter does not make the block
// unreadable: every trace is still found (the row-group trace-ID ranges
// prune), and BloomError reports the problem once.
func TestBadBloomReadsWithout(t *testing.T) {
	f := writeFixture(t, 200, WriteOptions{})
	name := f.meta.ObjectName(BloomName)
	rc, err := f.bkt.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	good, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	damages := map[string]func() error{
		"truncated": func() error { return f.bkt.Upload(ctx, name, bytes.NewReader(good[:len(good)/2])) },
		"empty":     func() error { return f.bkt.Upload(ctx, name, bytes.NewReader(nil)) },
		"missing":   func() error { return f.bkt.Delete(ctx, name) },
	}
	for what, damage := range damages {
		t.Run(what, func(t *testing.T) {
			if err := f.bkt.Upload(ctx, name, bytes.NewReader(good)); err != nil {
				t.Fatal(err)
			}
			if err := damage(); err != nil {
				t.Fatal(err)
			}
			r := f.open(t)
			defer r.Close()
			if err, _ := r.BloomError(); err != nil {
				t.Fatalf("bloom error before any lookup: %v", err)
			}
			findsEveryTrace(t, r, f.want, what+" bloom")
			err, first := r.BloomError()
			if err == nil || !first || !bytes.Contains([]byte(err.Error()), []byte(name)) {
				t.Fatalf("BloomError = %v, %v; want an error naming %s, first", err, first, name)
			}
			if _, first := r.BloomError(); first {
				t.Fatal("BloomError reports the same bloom filter twice")
			}
			// An absent trace is still not found.
			if data, err := r.FindTraceByID(ctx, [16]byte{0xff, 0xff}); err != nil || data != nil {
				t.Fatalf("absent trace: %v, %v", data, err)
			}
		})
	}
}

// failingBucket fails every call the way ReadBucket reports a store that
// does not answer.
type failingBucket struct {
	objstore.Bucket
	fail bool
}

func (b *failingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.fail {
		return nil, errors.New("connection refused")
	}
	return b.Bucket.Get(ctx, name)
}

// A bloom filter that cannot be read because object storage fails is not
// taken for a damaged one: the lookup fails (the caller skips the block
// and says why) and the bloom filter is read again once storage is back.
func TestBloomStorageFailureIsNotDamage(t *testing.T) {
	f := writeFixture(t, 40, WriteOptions{})
	fb := &failingBucket{Bucket: f.bkt, fail: true}
	rb := storage.NewReadBucket(fb, time.Second)
	r, err := Open(ctx, rb, f.meta)
	if err != nil {
		t.Fatal(err)
	}
	id := traceIDs(f.want)[0]
	if _, err := r.FindTraceByID(ctx, id); !storage.IsUnavailable(err) {
		t.Fatalf("lookup with storage down: %v, want an ErrUnavailable error", err)
	}
	if err, _ := r.BloomError(); err != nil {
		t.Fatalf("a storage failure is reported as a bad bloom filter: %v", err)
	}
	fb.fail = false
	if data, err := r.FindTraceByID(ctx, id); err != nil || data == nil {
		t.Fatalf("lookup with storage back: %v, %v", data, err)
	}
}

// hungBucket never answers a read.
type hungBucket struct{ objstore.Bucket }

func (hungBucket) Get(ctx context.Context, _ string) (io.ReadCloser, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hungBucket) GetRange(ctx context.Context, _ string, _, _ int64) (io.ReadCloser, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// With object storage hung, lookups of one block at the same time wait
// for one read of its bloom filter (and footer), not each in turn: they
// all fail within about one read timeout.
func TestHungStoreLookupsWaitTogether(t *testing.T) {
	f := writeFixture(t, 40, WriteOptions{})
	const timeout = 200 * time.Millisecond
	ids := traceIDs(f.want)
	for _, what := range []string{"bloom", "footer"} {
		var bkt objstore.BucketReader = storage.NewReadBucket(hungBucket{f.bkt}, timeout)
		r, err := Open(ctx, bkt, f.meta)
		if err != nil {
			t.Fatal(err)
		}
		lookup := func(id [16]byte) error { _, err := r.FindTraceByID(ctx, id); return err }
		if what == "footer" {
			// The bloom filter read, the footer not.
			good, _ := Open(ctx, f.bkt, f.meta)
			if _, err := good.loadBloom(ctx); err != nil {
				t.Fatal(err)
			}
			r.bloom = good.bloom
			lookup = func([16]byte) error { _, err := r.ReadAll(ctx); return err }
		}
		start := time.Now()
		errs := make(chan error, 8)
		for i := range 8 {
			go func() { errs <- lookup(ids[i%len(ids)]) }()
		}
		for range 8 {
			if err := <-errs; !storage.IsUnavailable(err) {
				t.Fatalf("%s: lookup with storage hung: %v", what, err)
			}
		}
		if took := time.Since(start); took > 3*timeout {
			t.Fatalf("%s: 8 lookups took %s with a read timeout of %s: they waited in turn", what, took, timeout)
		}
	}
}
