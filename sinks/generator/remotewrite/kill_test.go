package remotewrite

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const childEnv = "WEFT_REMOTEWRITE_KILL_CHILD"

// TestKill9 kills a process that enqueues requests (kill -9) and opens
// its queue again: every request whose Enqueue returned is there and is
// sent, with no gap, and LastCheckpoint is the newest request on disk
// (the child goes on enqueueing after its report until the kill lands).
func TestKill9(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child process")
	}
	rec := newRecorder(t)
	rec.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	cfg := testConfig(t, rec.srv.URL)
	ts0 := time.Now().Truncate(time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKill9Child$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", childEnv, cfg.Path, rec.srv.URL, ts0.Unix()))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	for sc.Scan() {
		k, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "enqueued "))
		if err != nil {
			continue // test framework output
		}
		last = k
		if k == 30 {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if last != 30 {
		t.Fatalf("the child reported up to request %d, want 30", last)
	}

	// A new endpoint: the child's last attempt may reach the old one after
	// the kill.
	rec = newRecorder(t)
	cfg.RemoteWrite[0].URL = rec.srv.URL
	s, reg := open(t, cfg)
	q := queue(t, s, "t")
	cp, err := strconv.Atoi(string(q.LastCheckpoint()))
	if err != nil || cp < last {
		t.Fatalf("LastCheckpoint %q after kill -9, want at least %d", q.LastCheckpoint(), last)
	}
	series, lcp, err := q.LastRequest()
	if err != nil || string(lcp) != strconv.Itoa(cp) || len(series) != 100 ||
		series[0].Samples[0].Timestamp != ts0.Add(time.Duration(cp)*time.Second).UnixMilli() {
		t.Fatalf("LastRequest after kill -9: %d series, checkpoint %q, %v; want request %d", len(series), lcp, err, cp)
	}
	waitFor(t, 20*time.Second, "the queue to run empty", func() bool { return drained(t, q) })
	got := rec.requests()
	t.Logf("the child reported request %d; %d requests on disk after the kill", last, cp+1)
	if len(got) != cp+1 {
		t.Fatalf("%d requests received, want %d", len(got), cp+1)
	}
	for k, r := range got {
		if ts := r.req.Timeseries[0].Samples[0].Timestamp; ts != ts0.Add(time.Duration(k)*time.Second).UnixMilli() {
			t.Fatalf("request %d has timestamp %d, want %d", k, ts, ts0.Add(time.Duration(k)*time.Second).UnixMilli())
		}
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_dropped_requests_total"); got != 0 {
		t.Fatalf("dropped_requests_total = %v, want 0", got)
	}
}

// TestKill9Child is TestKill9's child: it enqueues requests 0, 1, ... and
// reports each after its Enqueue returned, until it is killed.
func TestKill9Child(t *testing.T) {
	env := os.Getenv(childEnv)
	if env == "" {
		t.Skip("run by TestKill9")
	}
	parts := strings.Split(env, "|")
	sec, _ := strconv.ParseInt(parts[2], 10, 64)
	ts0 := time.Unix(sec, 0)
	cfg := DefaultConfig()
	cfg.Path = parts[0]
	e := DefaultEndpoint()
	e.URL = parts[1]
	cfg.RemoteWrite = []Endpoint{e}
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := queue(t, s, "t")
	for k := 0; k < 10000; k++ {
		if err := q.Enqueue(context.Background(), batch("rw_kill_total", 100, k, ts0), []byte(strconv.Itoa(k))); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("enqueued %d\n", k)
	}
	t.Fatal("not killed")
}
