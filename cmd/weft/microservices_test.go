package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/kafka"
)

// startDevKafka builds and starts weft-dev-kafka on a free loopback port
// and returns its address.
func startDevKafka(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "weft-dev-kafka")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../weft-dev-kafka").CombinedOutput(); err != nil {
		t.Fatalf("cannot build weft-dev-kafka: %v\n%s", err, out)
	}
	addr := loopback(freePorts(t, 1)[0])
	cmd := exec.Command(bin, "-listen", addr, "-partitions", "4")
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitUntil(t, 10*time.Second, func() bool { return strings.Contains(stderr.String(), "listening on") })
	return addr
}

// kafkaConfig is loopbackConfig plus the Kafka transport and settings that
// make tests quick: blocks cut within a second, the block list polled
// twice a second, no end cut-off.
func kafkaConfig(ps ports, dataDir, broker string) string {
	base := strings.Replace(durableConfig(ps, dataDir), "    backend: local\n", "    backend: local\n    blocklist_poll: 500ms\n", 1)
	base = strings.Replace(base, "distributor:\n", "distributor:\n  partitions: 4\n", 1)
	return base + fmt.Sprintf(`ingest:
  kafka:
    address: %s
    version: %s
    topic: weft-test
    auto_create_topic_default_partitions: 4
query_frontend:
  query_end_cutoff: 0s
`, broker, kafka.DevBrokerVersion)
}

// The same pipeline in microservices mode: a broker, a distributor and a
// process running the live-store, block-builder, querier and
// query-frontend, each an OS process on loopback. Every acknowledged trace
// is found by ID and by search while recent and after a restart of the
// reading process, when it is in blocks only.
func TestMicroservicesOverKafka(t *testing.T) {
	broker := startDevKafka(t)
	data := t.TempDir()
	dps, rps := newPorts(t), newPorts(t)
	dcfg := writeFile(t, "distributor.yaml", kafkaConfig(dps, data, broker))
	rcfg := writeFile(t, "readers.yaml", kafkaConfig(rps, data, broker))

	readers := startWeft(t, nil, "-config.file="+rcfg, "-target=live-store,block-builder,querier,query-frontend")
	readers.waitReady(t, loopback(rps.http))
	dist := startWeft(t, nil, "-config.file="+dcfg, "-target=distributor")
	dist.waitReady(t, loopback(dps.http))

	const traces = 200
	client := &http.Client{Timeout: 15 * time.Second}
	var acked [][16]byte
	for seq := range uint64(traces) {
		tid, body := traceRequest(seq + 1)
		if pushAcked(client, loopback(dps.otlpHTTP), body) {
			acked = append(acked, tid)
		}
	}
	if len(acked) != traces {
		t.Fatalf("%d of %d pushes acknowledged; distributor stderr:\n%s", len(acked), traces, dist.stderr.String())
	}

	found := func(phase string) {
		t.Helper()
		var missing atomic.Int64
		waitUntil(t, 20*time.Second, func() bool {
			missing.Store(0)
			for _, tid := range acked {
				if n, _ := traceSpans(t, loopback(rps.http), tid); n != spansPerTrace {
					missing.Add(1)
				}
			}
			return missing.Load() == 0
		})
		q := url.QueryEscape(`{ resource.service.name = "durability" && name = "op-0" }`)
		now := time.Now().Unix()
		body := getBody(t, fmt.Sprintf("http://%s/api/search?q=%s&limit=1000&start=%d&end=%d", loopback(rps.http), q, now-600, now+60))
		if n := strings.Count(body, `"traceID"`); n != traces {
			t.Fatalf("%s: search found %d traces, want %d", phase, n, traces)
		}
	}
	found("recent")

	// Blocks written, then restart the readers: the live-store starts empty.
	waitUntil(t, 20*time.Second, func() bool { return len(blockSpans(t, data+"/blocks")) >= traces*spansPerTrace })
	if code := readers.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("readers exited %d", code)
	}
	readers = startWeft(t, nil, "-config.file="+rcfg, "-target=live-store,block-builder,querier,query-frontend")
	readers.waitReady(t, loopback(rps.http))
	found("blocks")
	counts := blockSpans(t, data+"/blocks")
	for span, n := range counts {
		if n != 1 {
			t.Fatalf("span %s is in blocks %d times", span, n)
		}
	}
}

func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
	}
	return string(body)
}

// With the broker down, pushes fail within the write timeout with 503
// naming the broker, and succeed again once it is back.
func TestPushesFailFastWithoutKafka(t *testing.T) {
	addr := loopback(freePorts(t, 1)[0])
	b, err := kafka.StartDevBroker(addr, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	dps := newPorts(t)
	cfg := kafkaConfig(dps, t.TempDir(), addr)
	cfg = strings.Replace(cfg, "    auto_create_topic_default_partitions: 4\n", "    auto_create_topic_default_partitions: 4\n    write_timeout: 2s\n    read_timeout: 2s\n    dial_timeout: 1s\n", 1)
	dist := startWeft(t, nil, "-config.file="+writeFile(t, "d.yaml", cfg), "-target=distributor")
	dist.waitReady(t, loopback(dps.http))
	client := &http.Client{Timeout: 30 * time.Second}
	push := func(seq uint64) (int, string, time.Duration) {
		_, body := traceRequest(seq)
		start := time.Now()
		resp, err := client.Post("http://"+loopback(dps.otlpHTTP)+"/v1/traces", "application/x-protobuf", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(msg), time.Since(start)
	}
	if code, msg, _ := push(1); code != http.StatusOK {
		t.Fatalf("push with the broker up: %d %s", code, msg)
	}
	b.Close()
	code, msg, took := push(2)
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, addr) {
		t.Fatalf("push with the broker down: %d %q, want 503 naming %s", code, msg, addr)
	}
	if took > 10*time.Second {
		t.Fatalf("push with the broker down took %s", took)
	}
	t.Logf("push with the broker down: %d in %s: %s", code, took, msg)
	if b, err = kafka.StartDevBroker(addr, 4); err != nil {
		t.Fatal(err)
	}
	var last string
	ok := false
	for i := range 20 {
		code, msg, _ := push(uint64(3 + i))
		if code == http.StatusOK {
			ok = true
			break
		}
		last = fmt.Sprintf("%d %s", code, msg)
		time.Sleep(500 * time.Millisecond)
	}
	if !ok {
		t.Fatalf("pushes still fail after the broker is back: %s", last)
	}
}

// Traces written in monolithic mode are found once the same storage is
// served in microservices mode.
func TestMonolithicToMicroservices(t *testing.T) {
	data := t.TempDir()
	mps := newPorts(t)
	mono := startWeft(t, nil, "-config.file="+writeFile(t, "mono.yaml", durableConfig(mps, data)))
	mono.waitReady(t, loopback(mps.http))
	client := &http.Client{Timeout: 15 * time.Second}
	var acked [][16]byte
	for seq := range uint64(50) {
		tid, body := traceRequest(seq + 1000)
		if !pushAcked(client, loopback(mps.otlpHTTP), body) {
			t.Fatalf("push %d not acknowledged", seq)
		}
		acked = append(acked, tid)
	}
	if code := mono.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("monolithic weft exited %d", code)
	}

	broker := startDevKafka(t)
	rps := newPorts(t)
	readers := startWeft(t, nil, "-config.file="+writeFile(t, "readers.yaml", kafkaConfig(rps, data, broker)),
		"-target=live-store,block-builder,querier,query-frontend")
	readers.waitReady(t, loopback(rps.http))
	waitUntil(t, 20*time.Second, func() bool {
		for _, tid := range acked {
			if n, _ := traceSpans(t, loopback(rps.http), tid); n != spansPerTrace {
				return false
			}
		}
		return true
	})
}

// kill -9 of the block-builder in the middle of the stream: after its
// restart every acknowledged span is in exactly one block, and found by ID
// through a querier process.
func TestBlockBuilderCrashOverKafka(t *testing.T) {
	broker := startDevKafka(t)
	data := t.TempDir()
	dps, bps, qps := newPorts(t), newPorts(t), newPorts(t)
	dist := startWeft(t, nil, "-config.file="+writeFile(t, "d.yaml", kafkaConfig(dps, data, broker)), "-target=distributor")
	dist.waitReady(t, loopback(dps.http))
	bcfg := writeFile(t, "b.yaml", kafkaConfig(bps, data, broker))
	bb := startWeft(t, nil, "-config.file="+bcfg, "-target=block-builder")
	bb.waitReady(t, loopback(bps.http))
	q := startWeft(t, nil, "-config.file="+writeFile(t, "q.yaml", kafkaConfig(qps, data, broker)), "-target=querier,query-frontend")
	q.waitReady(t, loopback(qps.http))

	// A count of pushes, not a time: under load (make test runs packages
	// side by side on 2 cores) each push may take longer.
	client := &http.Client{Timeout: 15 * time.Second}
	var acked [][16]byte
	const pushes, killAt = 400, 100
	deadline := time.Now().Add(60 * time.Second)
	for seq := uint64(1); seq <= pushes && time.Now().Before(deadline); seq++ {
		tid, body := traceRequest(5000 + seq)
		if pushAcked(client, loopback(dps.otlpHTTP), body) {
			acked = append(acked, tid)
		}
		if seq == killAt {
			if err := bb.cmd.Process.Kill(); err != nil { // kill -9
				t.Fatal(err)
			}
			<-bb.done
			bb = startWeft(t, nil, "-config.file="+bcfg, "-target=block-builder")
		}
	}
	bb.waitReady(t, loopback(bps.http))
	if len(acked) < 100 {
		t.Fatalf("only %d pushes acknowledged", len(acked))
	}
	want := len(acked) * spansPerTrace
	var counts map[string]int
	waitUntil(t, 30*time.Second, func() bool {
		counts = blockSpans(t, data+"/blocks")
		return len(counts) >= want
	})
	for span, n := range counts {
		if n != 1 {
			t.Fatalf("span %s is in %d blocks", span, n)
		}
	}
	if len(counts) != want {
		t.Fatalf("blocks hold %d spans, %d were acknowledged", len(counts), want)
	}
	// The querier polls the block list: every trace is found by ID.
	waitUntil(t, 30*time.Second, func() bool {
		for _, tid := range acked {
			if n, _ := traceSpans(t, loopback(qps.http), tid); n != spansPerTrace {
				return false
			}
		}
		return true
	})
	t.Logf("%d traces acknowledged across a kill -9 of the block-builder: each span in exactly one block", len(acked))
}

// A live-store rebuilds its recent window from Kafka when it starts: after
// a kill -9, a live-store process (with no block-builder anywhere, so no
// block holds the traces) finds every acknowledged trace again.
func TestLiveStoreRebuildsWindowFromKafka(t *testing.T) {
	broker := startDevKafka(t)
	dps, lps := newPorts(t), newPorts(t)
	dist := startWeft(t, nil, "-config.file="+writeFile(t, "d.yaml", kafkaConfig(dps, t.TempDir(), broker)), "-target=distributor")
	dist.waitReady(t, loopback(dps.http))
	lcfg := writeFile(t, "l.yaml", kafkaConfig(lps, t.TempDir(), broker))
	live := startWeft(t, nil, "-config.file="+lcfg, "-target=live-store,querier,query-frontend")
	live.waitReady(t, loopback(lps.http))

	client := &http.Client{Timeout: 15 * time.Second}
	var acked [][16]byte
	for seq := range uint64(100) {
		tid, body := traceRequest(9000 + seq)
		if !pushAcked(client, loopback(dps.otlpHTTP), body) {
			t.Fatalf("push %d not acknowledged", seq)
		}
		acked = append(acked, tid)
	}
	allFound := func() bool {
		for _, tid := range acked {
			if n, _ := traceSpans(t, loopback(lps.http), tid); n != spansPerTrace {
				return false
			}
		}
		return true
	}
	waitUntil(t, 20*time.Second, allFound)
	if err := live.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-live.done
	live = startWeft(t, nil, "-config.file="+lcfg, "-target=live-store,querier,query-frontend")
	live.waitReady(t, loopback(lps.http))
	waitUntil(t, 40*time.Second, allFound)
}

// memberlistConfig adds the memberlist block: gossip on a free loopback
// port, joining seed when given.
func memberlistConfig(t *testing.T, seed string) (string, string) {
	addr := loopback(freePorts(t, 1)[0])
	_, port, _ := strings.Cut(addr, "127.0.0.1:")
	cfg := fmt.Sprintf("memberlist:\n  bind_addr: [127.0.0.1]\n  bind_port: %s\n", port)
	if seed != "" {
		cfg += fmt.Sprintf("  join_members: [%s]\n", seed)
	}
	return cfg, addr
}

// Every component its own OS process: a broker, a distributor, two
// live-stores, a block-builder and a querier with the query-frontend. The
// querier finds the live-stores through memberlist. Traces pushed with
// the OTLP protocol are found by ID and by search while recent (in the
// live-stores only: the block-builder is not started yet), then after
// they are in blocks.
func TestMicroservicesTwoLiveStores(t *testing.T) {
	broker := startDevKafka(t)
	data := t.TempDir()
	start := func(name, target, seed string) (*proc, ports, string) {
		ps := newPorts(t)
		ml, mlAddr := memberlistConfig(t, seed)
		p := startWeft(t, nil, "-config.file="+writeFile(t, name+".yaml", kafkaConfig(ps, data, broker)+ml), "-target="+target)
		p.waitReady(t, loopback(ps.http))
		return p, ps, mlAddr
	}
	_, qps, seed := start("query", "querier,query-frontend", "")
	_, dps, _ := start("distributor", "distributor", seed)
	_, l1, _ := start("live-1", "live-store", seed)
	_, l2, _ := start("live-2", "live-store", seed)

	client := &http.Client{Timeout: 15 * time.Second}
	var acked [][16]byte
	for seq := range uint64(300) {
		tid, body := traceRequest(20000 + seq)
		if !pushAcked(client, loopback(dps.otlpHTTP), body) {
			t.Fatalf("push %d not acknowledged", seq)
		}
		acked = append(acked, tid)
	}
	found := func(phase string) {
		t.Helper()
		waitUntil(t, 40*time.Second, func() bool {
			for _, tid := range acked {
				if n, _ := traceSpans(t, loopback(qps.http), tid); n != spansPerTrace {
					return false
				}
			}
			return true
		})
		q := url.QueryEscape(`{ resource.service.name = "durability" && name = "op-0" }`)
		now := time.Now().Unix()
		waitUntil(t, 20*time.Second, func() bool {
			body := getBody(t, fmt.Sprintf("http://%s/api/search?q=%s&limit=1000&start=%d&end=%d", loopback(qps.http), q, now-600, now+60))
			return strings.Count(body, `"traceID"`) == len(acked)
		})
		t.Logf("%s: %d traces found by ID and by search", phase, len(acked))
	}
	found("recent, in two live-stores")
	// Tag names and values through the query-frontend come from the
	// live-stores of the other processes, with and without a time range.
	now := time.Now().Unix()
	rng := fmt.Sprintf("start=%d&end=%d", now-600, now+60)
	for _, c := range []struct{ path, want string }{
		{"/api/search/tags", `"seq"`},
		{"/api/search/tags?" + rng, `"seq"`},
		{"/api/v2/search/tags?scope=resource", `"service.name"`},
		{"/api/v2/search/tags?scope=span&" + rng, `"seq"`},
		{"/api/search/tag/service.name/values", `"durability"`},
		{"/api/search/tag/service.name/values?" + rng, `"durability"`},
		{"/api/v2/search/tag/resource.service.name/values", `"durability"`},
		{"/api/v2/search/tag/resource.service.name/values?" + rng, `"durability"`},
	} {
		if body := getBody(t, "http://"+loopback(qps.http)+c.path); !strings.Contains(body, c.want) {
			t.Errorf("%s: %s, want %s in it", c.path, body, c.want)
		}
	}
	// Values held by both live-stores are listed once.
	if body := getBody(t, "http://"+loopback(qps.http)+"/api/v2/search/tag/span.seq/values"); strings.Count(body, `"int"`) != len(acked) {
		t.Errorf("seq values: %d, want %d", strings.Count(body, `"int"`), len(acked))
	}
	// Both live-stores get a share once the consumer group has rebalanced
	// (the second reads its partitions from the window ago).
	for _, ps := range []ports{l1, l2} {
		waitUntil(t, 30*time.Second, func() bool {
			m := getBody(t, "http://"+loopback(ps.http)+"/metrics")
			return strings.Contains(m, `weft_pipeline_messages_total{node="live-store",result="ok"}`)
		})
	}
	found("recent, after the live-stores rebalanced")

	start("block-builder", "block-builder", seed)
	waitUntil(t, 30*time.Second, func() bool { return len(blockSpans(t, data+"/blocks")) == len(acked)*spansPerTrace })
	found("in blocks too")
}
