package main

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// loadFor pushes from workers until at least n pushes were acknowledged or
// d passed, and returns the load still running.
func loadFor(t *testing.T, otlpHTTP string, seq *atomic.Uint64, workers, n int, d time.Duration) *walLoad {
	t.Helper()
	l := startLoad(otlpHTTP, seq, workers)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if acked, _ := l.counts(); acked >= n {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return l
}

// ackedTraces returns the traces the load got a 200 for.
func (l *walLoad) ackedTraces() [][16]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([][16]byte, 0, len(l.acked))
	for id := range l.acked {
		out = append(out, id)
	}
	return out
}

// requireAllRead fails unless every trace of ids is served with all its
// spans by httpAddr within timeout.
func requireAllRead(t *testing.T, httpAddr string, ids [][16]byte, timeout time.Duration) {
	t.Helper()
	missing := ids
	deadline := time.Now().Add(timeout)
	for {
		var still [][16]byte
		for _, id := range missing {
			if n, _ := traceSpans(t, httpAddr, id); n != spansPerTrace {
				still = append(still, id)
			}
		}
		if missing = still; len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged traces are not served (first: %x)", len(missing), len(ids), missing[0])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// SIGTERM to a monolithic weft while clients push: it exits 0, and every
// push it acknowledged is in the blocks (exactly once) and served after a
// restart. The stop follows the module graph: the receivers stop taking
// pushes, the pipeline drains, the block-builder uploads, and only then
// do the object store and the servers close.
func TestSIGTERMUnderLoad(t *testing.T) {
	ps := newPorts(t)
	data := t.TempDir()
	cfg := writeFile(t, "weft.yaml", durableConfig(ps, data)+noLiveTraceLimit)
	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))

	var seq atomic.Uint64
	load := loadFor(t, loopback(ps.otlpHTTP), &seq, 4, 300, 10*time.Second)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM under load: exit code %d; stderr:\n%s", code, p.stderr.String())
	}
	load.halt()
	acked := load.ackedTraces()
	_, refused := load.counts()
	t.Logf("%d pushes acknowledged, %d refused or unanswered around the SIGTERM", len(acked), refused)
	if len(acked) < 100 {
		t.Fatalf("only %d pushes acknowledged before the SIGTERM", len(acked))
	}
	counts := map[string]int{} // "traceID/spanID" -> blocks holding it
	for key, n := range blockSpans(t, filepath.Join(data, "blocks")) {
		_, span, _ := strings.Cut(key, "/") // after the tenant
		counts[span] += n
	}
	for _, id := range acked {
		for _, key := range spanKeys(id2seq(id)) {
			if n := counts[key]; n != 1 {
				t.Fatalf("span %s of an acknowledged trace is in the blocks %d times after a clean stop", key, n)
			}
		}
	}

	p = startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))
	requireAllRead(t, loopback(ps.http), acked, 20*time.Second)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// The same in microservices mode: while clients push to the distributor,
// SIGTERM the process of the live-store and block-builder (querier and
// query-frontend with them), then the distributor. Both exit 0; once the
// readers run again, every push the distributor acknowledged (Kafka has
// it) is served, and no span is in the blocks twice.
func TestSIGTERMUnderLoadMicroservices(t *testing.T) {
	broker := startDevKafka(t)
	data := t.TempDir()
	dps, rps := newPorts(t), newPorts(t)
	dcfg := writeFile(t, "distributor.yaml", kafkaConfig(dps, data, broker)+noLiveTraceLimit)
	rcfg := writeFile(t, "readers.yaml", kafkaConfig(rps, data, broker)+noLiveTraceLimit)
	const readTargets = "-target=live-store,block-builder,querier,query-frontend"
	readers := startWeft(t, nil, "-config.file="+rcfg, readTargets)
	readers.waitReady(t, loopback(rps.http))
	dist := startWeft(t, nil, "-config.file="+dcfg, "-target=distributor")
	dist.waitReady(t, loopback(dps.http))

	var seq atomic.Uint64
	load := loadFor(t, loopback(dps.otlpHTTP), &seq, 4, 200, 10*time.Second)
	if code := readers.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM to the readers under load: exit code %d; stderr:\n%s", code, readers.stderr.String())
	}
	before, _ := load.counts()
	waitUntil(t, 10*time.Second, func() bool { n, _ := load.counts(); return n >= before+100 })
	if code := dist.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM to the distributor under load: exit code %d; stderr:\n%s", code, dist.stderr.String())
	}
	load.halt()
	acked := load.ackedTraces()
	_, refused := load.counts()
	t.Logf("%d pushes acknowledged, %d refused or unanswered", len(acked), refused)

	readers = startWeft(t, nil, "-config.file="+rcfg, readTargets)
	readers.waitReady(t, loopback(rps.http))
	requireAllRead(t, loopback(rps.http), acked, 30*time.Second)
	for span, n := range blockSpans(t, filepath.Join(data, "blocks")) {
		if n != 1 {
			t.Fatalf("span %s is in the blocks %d times", span, n)
		}
	}
	if code := readers.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
