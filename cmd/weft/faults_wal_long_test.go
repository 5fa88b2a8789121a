package main

import (
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/testlong"
	"github.com/weftdb/weft/internal/tmpfstest"
)

// walLoad pushes traces from several workers until stopped, and keeps the
// IDs of the traces acknowledged and of those refused, by status.
type walLoad struct {
	mu       sync.Mutex
	acked    map[[16]byte]bool
	refused  map[[16]byte]int // trace → HTTP status (0: no answer)
	statuses map[int]int
	seq      *atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(otlpHTTP string, seq *atomic.Uint64, workers int) *walLoad {
	l := &walLoad{acked: map[[16]byte]bool{}, refused: map[[16]byte]int{}, statuses: map[int]int{}, seq: seq, stop: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				tid, body := traceRequest(l.seq.Add(1))
				code := 0
				resp, err := client.Post("http://"+otlpHTTP+"/v1/traces", "application/x-protobuf", strings.NewReader(string(body)))
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				l.mu.Lock()
				l.statuses[code]++
				if code == http.StatusOK {
					l.acked[tid] = true
				} else {
					l.refused[tid] = code
				}
				l.mu.Unlock()
				if code != http.StatusOK {
					time.Sleep(20 * time.Millisecond) // as a client backs off
				}
			}
		}()
	}
	return l
}

func (l *walLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *walLoad) counts() (acked, refused int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked), len(l.refused)
}

// getBody does a GET and returns the status and the body.
func getStatusBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// checkStoredOnce reads every block: each span of an acknowledged trace is
// stored exactly once, and no span of a refused trace is stored.
func checkStoredOnce(t *testing.T, blocksDir string, acked map[[16]byte]bool, refused map[[16]byte]int) {
	t.Helper()
	perTrace := map[[16]byte]int{}
	counts := blockSpans(t, blocksDir)
	twice := 0
	for _, n := range counts {
		if n > 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Fatalf("%d of %d spans stored more than once", twice, len(counts))
	}
	for key, n := range counts {
		parts := strings.Split(key, "/")
		var tid [16]byte
		if b, err := hex.DecodeString(parts[1]); err == nil {
			copy(tid[:], b)
		}
		if n != 1 {
			t.Fatalf("span %s is stored %d times", key, n)
		}
		if _, ok := refused[tid]; ok {
			t.Fatalf("span %s of a push refused with status %d is stored", key, refused[tid])
		}
		perTrace[tid]++
	}
	missing := 0
	for tid := range acked {
		if perTrace[tid] != spansPerTrace {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged traces are not stored whole", missing, len(acked))
	}
}

// A full disk under the block-builder's WAL, under load: pushes are refused
// with 503 while it is full, /ready answers 503 naming the WAL and
// weft_block_builder_wal_failing is 1; once space is freed weft takes
// pushes again by itself. No refused span is served or stored, every
// acknowledged span is stored exactly once, and SIGTERM exits 0.
func TestWALDiskFullLong(t *testing.T) {
	testlong.Skip(t)
	walDir := tmpfstest.Mount(t, 16<<20)
	ps := newPorts(t)
	data := t.TempDir()
	conf := strings.Replace(durableConfig(ps, data), data+"/wal", walDir+"\n    segment_bytes: 1048576", 1)
	cfg := writeFile(t, "weft.yaml", conf+noLiveTraceLimit)
	p := startWeft(t, nil, "-config.file="+cfg)
	httpAddr := loopback(ps.http)
	p.waitReady(t, httpAddr)

	var seq atomic.Uint64
	l := startLoad(loopback(ps.otlpHTTP), &seq, 8)
	time.Sleep(2 * time.Second)
	free := tmpfstest.Fill(t, walDir)
	_, refusedAtFill := l.counts()
	var readyBody, metrics string
	waitUntil(t, 20*time.Second, func() bool {
		code, body := getStatusBody(t, "http://"+httpAddr+"/ready")
		readyBody = body
		_, refused := l.counts()
		return code == http.StatusServiceUnavailable && refused > refusedAtFill+100
	})
	if !strings.Contains(readyBody, "WAL") || !strings.Contains(readyBody, "no space left on device") {
		t.Fatalf("/ready while the WAL disk is full: %q", readyBody)
	}
	_, metrics = getStatusBody(t, "http://"+httpAddr+"/metrics")
	if !strings.Contains(metrics, "\nweft_block_builder_wal_failing 1\n") || strings.Contains(metrics, "\nweft_block_builder_wal_write_failures_total 0\n") {
		t.Fatalf("WAL metrics while the disk is full:\n%s", grepLines(metrics, "weft_block_builder_wal_"))
	}
	time.Sleep(2 * time.Second) // stay full under load a while

	free()
	waitUntil(t, 20*time.Second, func() bool {
		code, _ := getStatusBody(t, "http://"+httpAddr+"/ready")
		return code == http.StatusOK
	})
	ackedAtFree, _ := l.counts()
	waitUntil(t, 20*time.Second, func() bool {
		acked, _ := l.counts()
		return acked > ackedAtFree+500
	})
	l.halt()
	acked, refused := l.counts()
	t.Logf("%d traces acknowledged, %d refused; statuses %v", acked, refused, l.statuses)
	for code, n := range l.statuses {
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Fatalf("%d pushes answered %d: a full WAL disk must give 503", n, code)
		}
	}
	if l.statuses[http.StatusServiceUnavailable] == 0 {
		t.Fatal("no push was refused with 503 while the WAL disk was full")
	}
	// No refused trace is served (the live-store never kept it).
	served := 0
	for tid := range l.refused {
		if n, _ := traceSpans(t, httpAddr, tid); n > 0 {
			served++
		}
	}
	if served > 0 {
		t.Fatalf("%d of %d refused traces are served", served, refused)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM after the WAL disk was full: exit code %d; stderr:\n%s", code, p.stderr.String())
	}
	checkStoredOnce(t, filepath.Join(data, "blocks"), l.acked, l.refused)
}

func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// A checkpoint (flushed.json) that cannot be saved while uploads succeed,
// under load, then kill -9, then the same with SIGTERM: after the
// restarts every acknowledged span is stored exactly once.
func TestCheckpointFailureLong(t *testing.T) {
	testlong.Skip(t)
	ps := newPorts(t)
	data := t.TempDir()
	// Blocks cut by age (each second), as under a moderate load: a replay
	// cuts by size, so blocks cut by age past a lost checkpoint come back
	// with other bounds.
	conf := strings.Replace(durableConfig(ps, data), "max_block_bytes: 262144", "max_block_bytes: 67108864", 1)
	cfg := writeFile(t, "weft.yaml", conf+noLiveTraceLimit)
	httpAddr := loopback(ps.http)
	inTheWay := filepath.Join(data, "wal", "flushed.json.tmp")
	var seq atomic.Uint64
	acked := map[[16]byte]bool{}

	for round, how := range []string{"kill -9", "SIGTERM"} {
		p := startWeft(t, nil, "-config.file="+cfg)
		p.waitReady(t, httpAddr)
		l := startLoad(loopback(ps.otlpHTTP), &seq, 8)
		time.Sleep(2500 * time.Millisecond) // blocks cut each second
		if err := os.Mkdir(inTheWay, 0o755); err != nil {
			t.Fatal(err)
		}
		var readyBody string
		waitUntil(t, 20*time.Second, func() bool {
			code, body := getStatusBody(t, "http://"+httpAddr+"/ready")
			readyBody = body
			return code == http.StatusServiceUnavailable
		})
		if !strings.Contains(readyBody, "checkpoint") {
			t.Fatalf("round %d: /ready while the checkpoint cannot be saved: %q", round, readyBody)
		}
		time.Sleep(4 * time.Second) // several block cuts while it fails
		_, metrics := getStatusBody(t, "http://"+httpAddr+"/metrics")
		if strings.Contains(metrics, "\nweft_block_builder_checkpoint_failures_total 0\n") || !strings.Contains(metrics, "weft_block_builder_checkpoint_failures_total") {
			t.Fatalf("round %d: checkpoint metric:\n%s", round, grepLines(metrics, "checkpoint"))
		}
		if how == "kill -9" {
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-p.done
			l.halt()
		} else {
			l.halt()
			if code := p.stop(t, syscall.SIGTERM); code != 0 {
				t.Fatalf("SIGTERM while the checkpoint cannot be saved: exit code %d (everything acknowledged is in the WAL); stderr:\n%s", code, p.stderr.String())
			}
		}
		for tid := range l.acked {
			acked[tid] = true
		}
		a, r := l.counts()
		t.Logf("round %d (%s): %d acknowledged, %d refused", round, how, a, r)
		if err := os.Remove(inTheWay); err != nil {
			t.Fatal(err)
		}
	}
	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, httpAddr)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	checkStoredOnce(t, filepath.Join(data, "blocks"), acked, nil)
}

// Damage to WAL records (a byte flipped in an older segment and one in the
// middle of the newest) after kill -9: weft starts, keeps every intact
// record (those after the damage too), logs each loss and counts it in
// weft_block_builder_wal_records_lost_total, and the only acknowledged
// traces missing are those of the damaged records.
func TestWALDamageLong(t *testing.T) {
	testlong.Skip(t)
	ps := newPorts(t)
	data := t.TempDir()
	// Nothing is uploaded before the kill: every push stays in the WAL.
	conf := strings.Replace(loopbackConfig(ps, data), data+"/wal", data+"/wal\n    segment_bytes: 65536", 1) +
		"  max_block_duration: 10m\n  max_block_bytes: 67108864\n" + noLiveTraceLimit
	cfg := writeFile(t, "weft.yaml", conf)
	httpAddr := loopback(ps.http)
	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, httpAddr)
	var seq atomic.Uint64
	l := startLoad(loopback(ps.otlpHTTP), &seq, 4)
	waitUntil(t, 30*time.Second, func() bool { a, _ := l.counts(); return a >= 3000 })
	l.halt()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	segs, _ := filepath.Glob(filepath.Join(data, "wal", "*.wal"))
	if len(segs) < 3 {
		t.Fatalf("%d WAL segments, want several", len(segs))
	}
	for _, seg := range []string{segs[0], segs[len(segs)-1]} {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(seg, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p = startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, httpAddr)
	_, metrics := getStatusBody(t, "http://"+httpAddr+"/metrics")
	if !strings.Contains(metrics, "\nweft_block_builder_wal_records_lost_total 2\n") {
		t.Fatalf("want 2 records lost:\n%s", grepLines(metrics, "weft_block_builder_wal_records_lost_total"))
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if n := strings.Count(p.stderr.String(), "is damaged from byte"); n != 2 {
		t.Fatalf("%d log lines about damage, want 2; stderr:\n%s", n, p.stderr.String())
	}
	counts := blockSpans(t, filepath.Join(data, "blocks"))
	perTrace := map[[16]byte]int{}
	for key, n := range counts {
		if n != 1 {
			t.Fatalf("span %s is stored %d times", key, n)
		}
		var tid [16]byte
		b, _ := hex.DecodeString(strings.Split(key, "/")[1])
		copy(tid[:], b)
		perTrace[tid]++
	}
	missing := 0
	for tid := range l.acked {
		switch perTrace[tid] {
		case spansPerTrace:
		case 0:
			missing++
		default:
			t.Fatalf("trace %x stored in part: %d spans", tid, perTrace[tid])
		}
	}
	if missing != 2 {
		t.Fatalf("%d of %d acknowledged traces missing, want the 2 in the damaged records", missing, len(l.acked))
	}
}
