package app

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/internal/testlong"
)

// countServed looks every trace up by ID (8 at a time) and checks that
// each serves exactly the spans not in a lost set, the answers lacking
// something marked PARTIAL with mention in the message, each within
// within. It returns the number of spans served.
func (e *readsEnv) countServed(t *testing.T, within time.Duration, mention string, lost ...string) int {
	t.Helper()
	return e.countSample(t, 0, "", within, mention, lost...)
}

// countSample is countServed looking up every trace of set all and at
// most sample traces of each other set (all when sample is 0).
func (e *readsEnv) countSample(t *testing.T, sample int, all string, within time.Duration, mention string, lost ...string) int {
	t.Helper()
	ids := make(chan trace.TraceID)
	var (
		mu      sync.Mutex
		served  int
		failure string
		slowest time.Duration
	)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for id := range ids {
				ans := traceV2(t, e.a, id)
				want := e.wantSpans(id, lost...)
				isLost := false
				for _, l := range lost {
					isLost = isLost || e.set[id] == l
				}
				var bad string
				switch {
				case ans.code != http.StatusOK || !sameSet(ans.spans, want):
					bad = "status " + http.StatusText(ans.code) + ", spans differ: " + ans.message
				case isLost && (ans.status != "PARTIAL" || !strings.Contains(ans.message, mention) &&
					(e.damaged == "" || !strings.Contains(ans.message, e.damaged))):
					// A trace of the damaged block may be reported
					// partial for the damage rather than the outage.
					bad = "status " + ans.status + " message " + ans.message + ", want PARTIAL naming " + mention
				case ans.status == "PARTIAL" && (mention == "" || !strings.Contains(ans.message, mention)) &&
					(e.damaged == "" || !strings.Contains(ans.message, e.damaged)):
					bad = "partial for another reason: " + ans.message
				case within > 0 && ans.took > within:
					bad = "answered after " + ans.took.String()
				}
				mu.Lock()
				served += len(ans.spans)
				slowest = max(slowest, ans.took)
				if bad != "" && failure == "" {
					failure = "trace " + hex.EncodeToString(id[:]) + " of set " + e.set[id] + ": " + bad
				}
				mu.Unlock()
			}
		})
	}
	looked := map[string]int{}
	for id := range e.spans {
		if sample > 0 && e.set[id] != all && looked[e.set[id]] >= sample {
			continue
		}
		looked[e.set[id]]++
		ids <- id
	}
	close(ids)
	wg.Wait()
	if failure != "" {
		t.Fatal(failure)
	}
	t.Logf("%v traces looked up by ID: %d spans served, slowest answer %s", looked, served, slowest)
	return served
}

// The read faults at the process level, with a few thousand acknowledged
// spans in S3 (MinIO behind a proxy) and the live-store: a damaged bloom
// (nothing lost), a damaged data.parquet (only its spans lost), S3 hung
// (proxy blackholing) and S3 stopped (MinIO killed). Every span not in the
// damaged file is served; during the outages every span of the live-store
// is served within the read timeout, the answers PARTIAL.
func TestFaultsReadsLong(t *testing.T) {
	testlong.Skip(t)
	srv := s3test.StartServer(t)
	s3cfg := srv.NewBucket(t)
	proxy := s3test.NewProxy(t, s3cfg.Endpoint)
	s3cfg.Endpoint = proxy.Addr
	defer proxy.SetMode(s3test.ProxyPass) // the shutdowns upload
	const readTimeout = 2 * time.Second
	e := newReadsEnv(t, 400, func(c *config.Config) {
		c.Storage.Trace.Store.Backend = storage.BackendS3
		c.Storage.Trace.Store.S3 = s3cfg
		c.Storage.Trace.ReadTimeout = readTimeout
	})
	total := 0
	for _, s := range e.spans {
		total += len(s)
	}
	total++ // the extra live span
	inBlockOne := 0
	for id, s := range e.spans {
		if e.set[id] == "one" {
			inBlockOne += len(s)
		}
	}
	t.Logf("%d spans acknowledged, %d of them in block one", total, inBlockOne)
	if n := e.countServed(t, 0, ""); n != total {
		t.Fatalf("%d spans served before any fault, want %d", n, total)
	}

	// Damage files in S3 behind weft's back.
	ctx := context.Background()
	damage := func(set, file string) {
		name := tenant.Single + "/" + e.blockOf[set] + "/" + file
		obj, err := srv.Client().GetObject(ctx, s3cfg.Bucket, name, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(obj)
		obj.Close()
		if err != nil {
			t.Fatal(err)
		}
		cut := data[:len(data)/2]
		if _, err := srv.Client().PutObject(ctx, s3cfg.Bucket, name, bytes.NewReader(cut), int64(len(cut)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The readers of a block are kept: a new process reads the damaged
	// files from scratch.
	restart := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.a.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		e.a = startWeft(t, e.mutate)
		deadline := time.Now().Add(20 * time.Second)
		for e.a.blocks.Count(tenant.Single) < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}

	damage("two", block.BloomName)
	restart()
	// The live-store was replayed into a block by the restart: the spans
	// of set "live" are now in a third block.
	if n := e.countServed(t, 0, ""); n != total {
		t.Fatalf("damaged bloom: %d spans served, want %d", n, total)
	}
	if n := counter(t, e.a, "weft_block_bloom_unreadable_total"); n != 1 {
		t.Fatalf("weft_block_bloom_unreadable_total = %v, want 1", n)
	}

	damage("one", block.DataName)
	restart()
	bad := e.blockOf["one"]
	e.damaged = bad
	if n := e.countServed(t, 0, bad, "one"); n != total-inBlockOne {
		t.Fatalf("damaged data.parquet: %d spans served, want %d (all but the %d of block one)", n, total-inBlockOne, inBlockOne)
	}
	if s := searchPartial(t, e.a); s.status != "PARTIAL" || !strings.Contains(s.message, bad) {
		t.Fatalf("search over the damaged block: %q %q", s.status, s.message)
	}

	// Outages: what the live-store holds is served, fast. Everything
	// pushed so far is in blocks now: push a new live set first.
	_, exp := exporters(t, e.a)
	liveSpans := 0
	for _, s := range sendTraces(t, exp, "svc-outage", 100) {
		id := s.SpanContext.TraceID()
		e.spans[id] = append(e.spans[id], s)
		e.set[id] = "outage"
		liveSpans++
	}
	blockSets := []string{}
	for _, s := range e.set {
		if s != "outage" && !strings.Contains(strings.Join(blockSets, ","), s) {
			blockSets = append(blockSets, s)
		}
	}
	for _, mode := range []struct {
		name string
		mode s3test.ProxyMode
	}{{"hung", s3test.ProxyBlackhole}, {"refusing", s3test.ProxyRefuse}} {
		proxy.SetMode(mode.mode)
		served := e.countSample(t, 10, "outage", readTimeout+2*time.Second, "object storage failed", blockSets...)
		if served < liveSpans {
			t.Fatalf("S3 %s: %d spans served, want the %d of the live-store", mode.name, served, liveSpans)
		}
		s := searchPartial(t, e.a)
		if s.status != "PARTIAL" || s.took > readTimeout+2*time.Second {
			t.Fatalf("S3 %s: search %q after %s", mode.name, s.status, s.took)
		}
		proxy.SetMode(s3test.ProxyPass)
	}
	if n := e.countServed(t, 0, bad, "one"); n != total-inBlockOne+liveSpans {
		t.Fatalf("S3 back: %d spans served, want %d", n, total-inBlockOne+liveSpans)
	}
	srv.Stop()
	served := e.countSample(t, 10, "outage", readTimeout+2*time.Second, "object storage failed", blockSets...)
	if served < liveSpans {
		t.Fatalf("MinIO stopped: %d spans served, want the %d of the live-store", served, liveSpans)
	}
	if n := counter(t, e.a, "weft_query_blocks_skipped_total", "reason", "storage"); n == 0 {
		t.Fatal("weft_query_blocks_skipped_total{reason=storage} not counted")
	}
	// With the storage gone, a block cut since (the spans pushed during the
	// outages, whose uploads are still being retried) cannot be uploaded:
	// the shutdown keeps it in the WAL and says so. Anything else fails.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.a.Shutdown(ctx); err != nil && !strings.Contains(err.Error(), "the rest is in the WAL") {
		t.Fatalf("shutdown with MinIO stopped: %v", err)
	}
}
