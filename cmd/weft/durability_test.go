package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/thanos-io/objstore/providers/filesystem"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/block/blocktest"
)

const spansPerTrace = 4

// durableConfig cuts blocks quickly so tests see them within seconds.
func durableConfig(ps ports, dataDir string) string {
	return loopbackConfig(ps, dataDir) + `  max_block_duration: 1s
  max_block_bytes: 262144
`
}

// traceRequest is one trace of spansPerTrace spans, seq making it unique.
func traceRequest(seq uint64) ([16]byte, []byte) {
	var tid [16]byte
	binary.BigEndian.PutUint64(tid[:8], 0xfeed0000_00000000|seq)
	binary.BigEndian.PutUint64(tid[8:], seq*2654435761+1)
	var spans []*tracepb.Span
	for i := 0; i < spansPerTrace; i++ {
		sid := make([]byte, 8)
		binary.BigEndian.PutUint64(sid, seq<<8|uint64(i+1))
		sp := &tracepb.Span{TraceId: tid[:], SpanId: sid, Name: fmt.Sprintf("op-%d", i),
			StartTimeUnixNano: uint64(time.Now().UnixNano()), EndTimeUnixNano: uint64(time.Now().UnixNano()) + 1000,
			Attributes: []*commonpb.KeyValue{{Key: "seq", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(seq)}}}}}
		if i > 0 {
			sp.ParentSpanId = spans[0].SpanId
		}
		spans = append(spans, sp)
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "durability"}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
	body, _ := proto.Marshal(req)
	return tid, body
}

// pushAcked sends one trace and reports whether weft acknowledged all of
// its spans: a 200 whose partial success refuses spans (a per-tenant limit
// such as max_traces_per_user) is not an acknowledgement of those spans.
func pushAcked(client *http.Client, otlpHTTP string, body []byte) bool {
	resp, err := client.Post("http://"+otlpHTTP+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	var out coltracepb.ExportTraceServiceResponse
	if err := proto.Unmarshal(answer, &out); err != nil {
		return false
	}
	return out.GetPartialSuccess().GetRejectedSpans() == 0
}

// traceSpans fetches a trace as protobuf and returns its span count.
func traceSpans(t *testing.T, httpAddr string, tid [16]byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/api/traces/"+hex.EncodeToString(tid[:]), nil)
	req.Header.Set("Accept", "application/protobuf")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET trace %x: %d %s", tid, resp.StatusCode, body)
	}
	var td tracepb.TracesData
	if err := proto.Unmarshal(body, &td); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n, body
}

// blockSpans counts, over every block on disk, how often each span occurs.
func blockSpans(t *testing.T, blocksDir string) map[string]int {
	t.Helper()
	bkt, err := filesystem.NewBucket(blocksDir)
	if err != nil {
		t.Fatal(err)
	}
	counts, _ := blocktest.SpanCounts(t, bkt)
	return counts
}

// Push, let blocks be written, stop weft, start it again: every trace is
// still there and byte-for-byte the same.
func TestRestartKeepsTraces(t *testing.T) {
	ps := newPorts(t)
	data := t.TempDir()
	cfg := writeFile(t, "weft.yaml", durableConfig(ps, data))
	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))
	client := &http.Client{Timeout: 10 * time.Second}
	var ids [][16]byte
	for seq := uint64(1); seq <= 200; seq++ {
		tid, body := traceRequest(seq)
		if !pushAcked(client, loopback(ps.otlpHTTP), body) {
			t.Fatalf("push %d refused", seq)
		}
		ids = append(ids, tid)
	}
	before := map[[16]byte][]byte{}
	for _, id := range ids {
		n, body := traceSpans(t, loopback(ps.http), id)
		if n != spansPerTrace {
			t.Fatalf("trace %x has %d spans before the restart", id, n)
		}
		before[id] = body
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// A clean stop uploads everything: the blocks hold every span once.
	counts := blockSpans(t, filepath.Join(data, "blocks"))
	if len(counts) != len(ids)*spansPerTrace {
		t.Fatalf("blocks hold %d distinct spans, want %d", len(counts), len(ids)*spansPerTrace)
	}

	p = startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))
	for _, id := range ids {
		n, body := traceSpans(t, loopback(ps.http), id)
		if n != spansPerTrace {
			t.Fatalf("trace %x has %d spans after the restart, want %d", id, n, spansPerTrace)
		}
		if !sameTrace(t, before[id], body) {
			t.Fatalf("trace %x changed across the restart", id)
		}
	}
	p.stop(t, syscall.SIGTERM)
}

// sameTrace compares two traces span by span, whatever their grouping.
func sameTrace(t *testing.T, a, b []byte) bool {
	t.Helper()
	spans := func(x []byte) map[string][]byte {
		var td tracepb.TracesData
		if err := proto.Unmarshal(x, &td); err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		for _, rs := range td.ResourceSpans {
			res, _ := proto.Marshal(rs.Resource)
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					enc, _ := proto.MarshalOptions{Deterministic: true}.Marshal(sp)
					out[hex.EncodeToString(sp.SpanId)] = append(res, enc...)
				}
			}
		}
		return out
	}
	sa, sb := spans(a), spans(b)
	if len(sa) != len(sb) {
		return false
	}
	for k, v := range sa {
		if !bytes.Equal(v, sb[k]) {
			return false
		}
	}
	return true
}

// Kill -9 weft in the middle of a stream of pushes and start it again:
// every acknowledged span is readable, and none is stored twice.
func TestCrashKeepsAcknowledgedSpans(t *testing.T) {
	ps := newPorts(t)
	data := t.TempDir()
	cfg := writeFile(t, "weft.yaml", durableConfig(ps, data))
	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))

	var (
		mu     sync.Mutex
		acked  [][16]byte
		seq    atomic.Uint64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		client = &http.Client{Timeout: 5 * time.Second}
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tid, body := traceRequest(seq.Add(1))
				if pushAcked(client, loopback(ps.otlpHTTP), body) {
					mu.Lock()
					acked = append(acked, tid)
					mu.Unlock()
				}
			}
		}()
	}
	// Let the stream run across several block cuts, then kill it mid-flight.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // at least one block cut behind us
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	close(stop)
	wg.Wait()
	mu.Lock()
	ackedAtKill := append([][16]byte(nil), acked...)
	mu.Unlock()
	if len(ackedAtKill) < 500 {
		t.Fatalf("only %d traces acknowledged before the kill", len(ackedAtKill))
	}
	sent := seq.Load()
	t.Logf("%d traces sent, %d acknowledged before kill -9", sent, len(ackedAtKill))

	p = startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))
	// Replayed spans are cut into blocks right after the start.
	waitUntil(t, 30*time.Second, func() bool {
		n, _ := traceSpans(t, loopback(ps.http), ackedAtKill[len(ackedAtKill)-1])
		return n == spansPerTrace
	})
	missing := 0
	for _, id := range ackedAtKill {
		if n, _ := traceSpans(t, loopback(ps.http), id); n != spansPerTrace {
			missing++
			if missing < 5 {
				t.Errorf("acknowledged trace %x has %d spans after the crash, want %d", id, n, spansPerTrace)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged traces incomplete after kill -9", missing, len(ackedAtKill))
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for key, n := range blockSpans(t, filepath.Join(data, "blocks")) {
		if n != 1 {
			t.Fatalf("span %s is stored %d times", key, n)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "wal")); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s", timeout)
}
