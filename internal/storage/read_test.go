package storage_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
)

// ReadBucket on S3 (MinIO behind a proxy): reads pass while the server
// answers; when it hangs or refuses, every call fails within the read
// timeout with an error marked ErrUnavailable that names the timeout's
// key; a missing object is not an outage; reads work again once it is back.
func TestReadBucketOutages(t *testing.T) {
	srv := s3test.StartServer(t)
	cfg := srv.NewBucket(t)
	proxy := s3test.NewProxy(t, cfg.Endpoint)
	cfg.Endpoint = proxy.Addr
	bkt, err := storage.NewBucket(storage.Config{Backend: storage.BackendS3, S3: cfg}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := bkt.Upload(ctx, "a/b", bytes.NewReader([]byte("hello, world"))); err != nil {
		t.Fatal(err)
	}
	const timeout = 500 * time.Millisecond
	rb := storage.NewReadBucket(bkt, timeout)
	read := func() (string, error) {
		rc, err := rb.GetRange(ctx, "a/b", 7, 5)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	if got, err := read(); err != nil || got != "world" {
		t.Fatalf("read: %q, %v", got, err)
	}
	_, err = rb.Get(ctx, "a/none")
	if err == nil || !rb.IsObjNotFoundErr(err) || storage.IsUnavailable(err) {
		t.Fatalf("missing object: %v (not found %v)", err, rb.IsObjNotFoundErr(err))
	}
	// A range past the end: the object is shorter than expected
	// (truncated), not an outage.
	if _, err := rb.GetRange(ctx, "a/b", 100, 10); err == nil || storage.IsUnavailable(err) {
		t.Fatalf("range past the end: %v", err)
	}

	for _, c := range []struct {
		name string
		mode s3test.ProxyMode
		want string
	}{{"hung", s3test.ProxyBlackhole, storage.ReadTimeoutKey}, {"refusing", s3test.ProxyRefuse, "a/b"}} {
		proxy.SetMode(c.mode)
		start := time.Now()
		_, err := read()
		took := time.Since(start)
		if !storage.IsUnavailable(err) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s store: %v, want ErrUnavailable naming %s", c.name, err, c.want)
		}
		if took > timeout+time.Second {
			t.Fatalf("%s store: the read failed after %s, with a timeout of %s", c.name, took, timeout)
		}
		if _, err := rb.Exists(ctx, "a/b"); !storage.IsUnavailable(err) {
			t.Fatalf("%s store: Exists: %v", c.name, err)
		}
	}
	proxy.SetMode(s3test.ProxyPass)
	if got, err := read(); err != nil || got != "world" {
		t.Fatalf("read once the store is back: %q, %v", got, err)
	}
	// The caller's own end is not an outage.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rb.Get(cctx, "a/b"); err == nil || storage.IsUnavailable(err) {
		t.Fatalf("canceled read: %v", err)
	}
}
