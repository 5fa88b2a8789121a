package app

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
)

// With object storage hung (connections accepted, never answered), a
// shutdown still returns by its deadline, saying that what is not uploaded
// stays in the WAL; the next start, with the store back, uploads it, and
// every trace is served from the blocks. Before, the shutdown waited for
// the block-list poll in progress, up to the S3 client's 2-minute timeout.
func TestShutdownWithHungStorage(t *testing.T) {
	srv := s3test.StartServer(t)
	s3cfg := srv.NewBucket(t)
	proxy := s3test.NewProxy(t, s3cfg.Endpoint)
	s3cfg.Endpoint = proxy.Addr
	dir := t.TempDir()
	mutate := func(cfg *config.Config) {
		cfg.Storage.Trace.Store.Backend = storage.BackendS3
		cfg.Storage.Trace.Store.S3 = s3cfg
		cfg.Storage.Trace.BlocklistPoll = 200 * time.Millisecond
		cfg.BlockBuilder.WAL.Path = dir + "/wal"
		cfg.BlockBuilder.MaxBlockDuration = 200 * time.Millisecond
	}
	a := startWeftUnmanaged(t, mutate)
	_, exp := exporters(t, a)
	sent := sendTraces(t, exp, "svc-before", 3)
	proxy.SetMode(s3test.ProxyBlackhole)
	_, exp = exporters(t, a) // sendTraces shut the first one down
	sent = append(sent, sendTraces(t, exp, "svc-during", 3)...)
	time.Sleep(time.Second) // uploads and polls now hang
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	began := time.Now()
	err := a.Shutdown(ctx)
	took := time.Since(began)
	t.Logf("shutdown took %s: %v", took, err)
	if took > 4*time.Second {
		t.Fatalf("shutdown with a hung store took %s, with a 2s deadline", took)
	}
	if err == nil || !strings.Contains(err.Error(), "WAL") {
		t.Fatalf("shutdown with a hung store: got %v, want an error saying the rest is in the WAL", err)
	}

	proxy.SetMode(s3test.ProxyPass)
	b := startWeftUnmanaged(t, mutate)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	for _, s := range sent {
		id := s.SpanContext.TraceID().String()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, n, body := spansOf(t, b, id)
			if code == http.StatusOK && n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("trace %s after the restart: %d %s", id, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
