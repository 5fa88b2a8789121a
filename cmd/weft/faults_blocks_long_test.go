package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
	"github.com/weftdb/weft/internal/testlong"
)

// toggleProxy forwards TCP connections on addr to target while up; down
// closes the listener and every connection, so that clients get connection
// refused, as from a stopped server.
type toggleProxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func (p *toggleProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
}

func (p *toggleProxy) serve(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.conns == nil {
		p.conns = map[net.Conn]bool{}
	}
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	_, _ = io.Copy(c, s)
	c.Close()
}

func (p *toggleProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// s3Config is a weft config on ps whose blocks go to s3 at endpoint, with
// blocks cut every second and the block list polled every 500ms.
func s3Config(ps ports, dataDir string, s3 storage.S3Config, endpoint string) string {
	cfg := durableConfig(ps, dataDir)
	local := fmt.Sprintf("    backend: local\n    local:\n      path: %s/blocks\n", dataDir)
	if !strings.Contains(cfg, local) {
		panic("the loopback config changed: " + cfg)
	}
	return strings.Replace(cfg, local, fmt.Sprintf(`    backend: s3
    blocklist_poll: 500ms
    s3:
      bucket: %s
      endpoint: %s
      region: %s
      access_key: %s
      secret_key: %s
      insecure: true
      forcepathstyle: true
`, s3.Bucket, endpoint, s3.Region, s3.AccessKey, s3.SecretKey), 1)
}

// blockTraces maps every trace of the tenant's blocks to its block, and
// returns the metas.
func blockTraces(t *testing.T, bkt objstore.Bucket, ten string) (map[string]uuid.UUID, []*block.Meta) {
	t.Helper()
	ctx := context.Background()
	metas, err := block.ListBlocks(ctx, bkt, ten)
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]uuid.UUID{}
	for _, m := range metas {
		for _, tid := range blockTraceIDs(t, bkt, m) {
			if prev, ok := where[tid]; ok && prev != m.BlockID {
				t.Fatalf("trace %s is in blocks %s and %s", tid, prev, m.BlockID)
			}
			where[tid] = m.BlockID
		}
	}
	return where, metas
}

func readBlock(t *testing.T, bkt objstore.Bucket, m *block.Meta) []byte {
	t.Helper()
	r, err := block.Open(context.Background(), bkt, m)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := r.ReadAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func blockTraceIDs(t *testing.T, bkt objstore.Bucket, m *block.Meta) []string {
	var b otlpwire.Batch
	if err := b.Parse(readBlock(t, bkt, m)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var out []string
	for _, res := range b.Resources {
		for _, sc := range res.Scopes {
			for _, sp := range sc.Spans {
				id := hex.EncodeToString(sp.TraceID)
				if !seen[id] {
					seen[id] = true
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// traceStatus fetches a trace: the status, its spans when 200, the body
// otherwise.
func traceStatus(t *testing.T, httpAddr, tid string) (int, int, string) {
	t.Helper()
	id, _ := hex.DecodeString(tid)
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/api/traces/"+tid, nil)
	req.Header.Set("Accept", "application/protobuf")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0, string(body)
	}
	var tid16 [16]byte
	copy(tid16[:], id)
	n, _ := traceSpans(t, httpAddr, tid16)
	return http.StatusOK, n, ""
}

// metricLine returns the /metrics line that starts with prefix, or "".
func metricLine(t *testing.T, httpAddr, prefix string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestBlockFaultsLong runs the block faults of issue 12 (items 3, 5, 9 and
// 15) against the weft binary on MinIO, with a few thousand acknowledged
// spans: damaged meta.json files (truncated, empty rowGroups, wrong size),
// a block rewritten under the same ID while a process serves it, and a
// start with object storage unreachable (MinIO behind a proxy that
// refuses connections). After each, every acknowledged span outside the
// damaged blocks is served, exactly once, and the missing spans are
// exactly those of the blocks counted in weft_blocklist_unreadable_blocks.
func TestBlockFaultsLong(t *testing.T) {
	testlong.Skip(t)
	const ten = "single-tenant"
	ctx := context.Background()
	s3 := s3test.Start(t)
	bkt, err := storage.NewBucket(storage.Config{Backend: storage.BackendS3, S3: s3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &toggleProxy{addr: loopback(freePorts(t, 1)[0]), target: s3.Endpoint}
	proxy.up(t)
	t.Cleanup(proxy.down)

	ps := newPorts(t)
	data := t.TempDir()
	// The test damages given blocks: the backend does not compact them.
	cfg := writeFile(t, "weft.yaml", s3Config(ps, data, s3, proxy.addr)+noCompaction)
	httpAddr := loopback(ps.http)

	// 1. Push 1,200 traces (4,800 spans) in waves, so that they make
	// several blocks, and stop cleanly: every span is in a block.
	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, httpAddr)
	client := &http.Client{Timeout: 10 * time.Second}
	var acked []string
	var mu sync.Mutex
	seq := uint64(0)
	for wave := 0; wave < 8; wave++ {
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			first := seq + uint64(w)*40
			wg.Go(func() {
				for s := first; s < first+40; s++ {
					tid, body := traceRequest(s + 1)
					if pushAcked(client, loopback(ps.otlpHTTP), body) {
						mu.Lock()
						acked = append(acked, hex.EncodeToString(tid[:]))
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		seq += 160
		time.Sleep(1500 * time.Millisecond) // max_block_duration: 1s
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	where, metas := blockTraces(t, bkt, ten)
	for _, id := range acked {
		if _, ok := where[id]; !ok {
			t.Fatalf("acknowledged trace %s is in no block", id)
		}
	}
	if len(metas) < 5 {
		t.Fatalf("%d blocks; the test needs at least 5", len(metas))
	}
	t.Logf("%d acknowledged traces (%d spans) in %d blocks", len(acked), len(acked)*spansPerTrace, len(metas))

	// 2. Damage three blocks' meta.json.
	put := func(m *block.Meta, data []byte) {
		t.Helper()
		if err := bkt.Upload(ctx, m.ObjectName(block.MetaName), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	edit := func(m *block.Meta, f func(*block.Meta)) {
		c := *m
		f(&c)
		b, _ := json.Marshal(&c)
		put(m, b)
	}
	truncated, noGroups, badSize, rewritten := metas[0], metas[1], metas[2], metas[3]
	original, _ := json.Marshal(truncated)
	put(truncated, original[:len(original)/3])
	edit(noGroups, func(m *block.Meta) { m.RowGroups = []block.RowGroupMeta{} })
	edit(badSize, func(m *block.Meta) { m.Size += 12345 })
	damaged := map[uuid.UUID]bool{truncated.BlockID: true, noGroups.BlockID: true, badSize.BlockID: true}

	// scan fetches every acknowledged trace and checks that exactly the
	// traces of the damaged blocks are missing; it returns the spans served.
	scan := func(phase string, extra ...string) int {
		t.Helper()
		served, missing := 0, 0
		for _, id := range append(slicesClone(acked), extra...) {
			code, n, msg := traceStatus(t, httpAddr, id)
			switch {
			case damaged[where[id]] && code == http.StatusNotFound:
				missing += spansPerTrace
			case code == http.StatusOK && n == spansPerTrace && !damaged[where[id]]:
				served += n
			default:
				t.Fatalf("%s: trace %s (block %s, damaged %v): %d %q, %d spans", phase, id, where[id], damaged[where[id]], code, msg, n)
			}
		}
		t.Logf("%s: %d spans served, %d missing (in %d damaged blocks)", phase, served, missing, len(damaged))
		return served
	}
	wantUnreadable := func(p *proc, n int) {
		t.Helper()
		want := fmt.Sprintf(`weft_blocklist_unreadable_blocks{tenant="%s"} %d`, ten, n)
		waitUntil(t, 10*time.Second, func() bool { return metricLine(t, httpAddr, "weft_blocklist_unreadable_blocks{") == want })
	}

	// 3. A new process serves every other block; the metric counts 3.
	p = startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, httpAddr)
	total := len(acked) * spansPerTrace
	served := scan("damaged")
	wantUnreadable(p, 3)
	var damagedSpans int64
	for _, m := range []*block.Meta{truncated, noGroups, badSize} {
		damagedSpans += m.TotalSpans
	}
	if int64(total-served) != damagedSpans {
		t.Fatalf("%d spans missing, the damaged blocks hold %d", total-served, damagedSpans)
	}

	// 4. The truncated meta.json is repaired: its block is back.
	put(truncated, original)
	delete(damaged, truncated.BlockID)
	wantUnreadable(p, 2)
	scan("repaired")

	// 5. A block is rewritten under the same ID with one more trace, as a
	// replay after a crash between upload and commit does, while this
	// process has its reader open (scan read it).
	extraID, extraBody := traceRequest(1 << 40)
	var b, extra otlpwire.Batch
	if err := b.Parse(readBlock(t, bkt, rewritten)); err != nil {
		t.Fatal(err)
	}
	if err := extra.Parse(extraBody); err != nil {
		t.Fatal(err)
	}
	buf := block.NewBuffer(nil)
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	if err := buf.Add(&extra); err != nil {
		t.Fatal(err)
	}
	if _, err := block.Write(ctx, bkt, ten, rewritten.BlockID, rewritten.Source, buf, block.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	buf.Release()
	extraHex := hex.EncodeToString(extraID[:])
	where[extraHex] = rewritten.BlockID
	// At once, the traces the process had read are served from the new
	// block; the new trace once a poll (500ms) has seen it.
	for id, blk := range where {
		if blk == rewritten.BlockID && id != extraHex {
			if code, n, msg := traceStatus(t, httpAddr, id); code != http.StatusOK || n != spansPerTrace {
				t.Fatalf("trace %s just after the rewrite of its block: %d %q, %d spans", id, code, msg, n)
			}
		}
	}
	waitUntil(t, 10*time.Second, func() bool {
		code, n, _ := traceStatus(t, httpAddr, extraHex)
		return code == http.StatusOK && n == spansPerTrace
	})
	scan("rewritten", extraHex)
	if line := metricLine(t, httpAddr, "weft_blocklist_blocks_reopened_total "); line == "" || strings.HasSuffix(line, " 0") {
		t.Fatalf("weft_blocklist_blocks_reopened_total: %q", line)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	// 6. Start with object storage unreachable: weft starts, takes
	// pushes, /ready and trace-by-ID say the blocks are unavailable; all
	// is served once storage is back.
	proxy.down()
	p = startWeft(t, nil, "-config.file="+cfg)
	started := time.Now()
	var ready string
	waitUntil(t, 90*time.Second, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/ready")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ready = fmt.Sprintf("%d %s", resp.StatusCode, body)
		return strings.Contains(ready, "blocklist: no poll of the blocks in object storage has succeeded yet")
	})
	t.Logf("storage unreachable: /ready after %s: %s", time.Since(started).Round(time.Millisecond), strings.TrimSpace(ready))
	if !strings.HasPrefix(ready, "503 ") {
		t.Fatalf("/ready: %s", ready)
	}
	pushedID, pushedBody := traceRequest(1<<40 + 1)
	if !pushAcked(client, loopback(ps.otlpHTTP), pushedBody) {
		t.Fatal("a push was refused while object storage is unreachable")
	}
	if code, _, msg := traceStatus(t, httpAddr, acked[len(acked)-1]); code != http.StatusServiceUnavailable || !strings.Contains(msg, "the blocks cannot be searched") {
		t.Fatalf("trace in a block while storage is unreachable: %d %q", code, msg)
	}
	if line := metricLine(t, httpAddr, "weft_blocklist_last_successful_poll_timestamp_seconds "); line != "weft_blocklist_last_successful_poll_timestamp_seconds 0" {
		t.Fatalf("metric: %q", line)
	}
	proxy.up(t)
	p.waitReady(t, httpAddr)
	pushedHex := hex.EncodeToString(pushedID[:])
	scan("storage back", extraHex, pushedHex)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }
