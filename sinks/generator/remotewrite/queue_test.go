package remotewrite

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/tmpfstest"
	"github.com/weftdb/weft/internal/yamlx"
)

// TestHeaders: every endpoint gets every request with the protocol's
// headers, X-Scope-OrgID of the tenant, its own headers and basic auth;
// exemplars only where send_exemplars is set.
func TestHeaders(t *testing.T) {
	a, b := newRecorder(t), newRecorder(t)
	cfg := testConfig(t, a.srv.URL, b.srv.URL)
	cfg.RemoteWrite[0].Headers = map[string]string{"X-Custom": "one"}
	cfg.RemoteWrite[0].SendExemplars = true
	cfg.RemoteWrite[0].BasicAuth = &BasicAuth{Username: "u", Password: "p"}
	cfg.RemoteWrite[1].Headers = map[string]string{"X-Scope-OrgID": "override"}
	s, _ := open(t, cfg)
	ts0 := time.Now().Truncate(time.Second)
	series := batch("rw_headers_total", 3, 0, ts0)
	series[1].Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: ts0.UnixMilli()}}
	enqueue(t, queue(t, s, "tenant-1"), series, "x")
	q2 := queue(t, s, "tenant-2")
	if err := q2.SetHeaders(map[string]string{"Content-Type": "x"}); err == nil || !strings.Contains(err.Error(), "Content-Type is set by the remote-write protocol") {
		t.Fatalf("SetHeaders(Content-Type): %v", err)
	}
	if err := q2.SetHeaders(map[string]string{"Authorization": "Bearer t2", "X-Custom": "tenant"}); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q2, batch("rw_headers_total", 3, 1, ts0), "y")
	waitFor(t, 10*time.Second, "both endpoints to get both requests", func() bool {
		return len(a.requests()) == 2 && len(b.requests()) == 2
	})
	for _, r := range a.requests() {
		h := r.header
		for k, want := range map[string]string{
			"Content-Encoding":                  "snappy",
			"Content-Type":                      "application/x-protobuf",
			"X-Prometheus-Remote-Write-Version": "0.1.0",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("endpoint 0: %s = %q, want %q", k, got, want)
			}
		}
		org := h.Get("X-Scope-OrgID")
		if org == "tenant-2" {
			// The tenant's remote_write_headers win.
			if h.Get("Authorization") != "Bearer t2" || h.Get("X-Custom") != "tenant" {
				t.Errorf("endpoint 0, tenant-2: Authorization %q, X-Custom %q; want the tenant's headers", h.Get("Authorization"), h.Get("X-Custom"))
			}
		} else if u, p, ok := (&http.Request{Header: h}).BasicAuth(); !ok || u != "u" || p != "p" {
			t.Errorf("endpoint 0: basic auth %q %q %v", u, p, ok)
		}
		if org != "tenant-1" && org != "tenant-2" {
			t.Errorf("endpoint 0: X-Scope-OrgID %q", org)
		}
		if org == "tenant-1" && len(r.req.Timeseries[1].Exemplars) != 1 {
			t.Errorf("endpoint 0 (send_exemplars): exemplars %v, want 1", r.req.Timeseries[1].Exemplars)
		}
	}
	for _, r := range b.requests() {
		if got := r.header.Get("X-Scope-OrgID"); got != "override" {
			t.Errorf("endpoint 1: X-Scope-OrgID %q, want override (its headers win)", got)
		}
		if r.header.Get("X-Scope-OrgID") == "override" && r.req.Timeseries[0].Samples[0].Timestamp == ts0.UnixMilli() &&
			(r.header.Get("X-Custom") != "" || r.header.Get("Authorization") != "") {
			t.Errorf("endpoint 1 got endpoint 0's headers: %v", r.header)
		}
		for _, ts := range r.req.Timeseries {
			if len(ts.Exemplars) != 0 {
				t.Errorf("endpoint 1 (no send_exemplars) got exemplars %v", ts.Exemplars)
			}
		}
	}
	if got, want := sampleValues(a.requests()), sampleValues(b.requests()); !slices.Equal(got, want) || len(got) != 6 {
		t.Errorf("endpoints got different samples:\n%v\n%v", got, want)
	}
}

// TestNoOrgIDHeader: remote_write_add_org_id_header false sends no
// X-Scope-OrgID; exemplars are left out of the file when no endpoint
// sends them.
func TestNoOrgIDHeader(t *testing.T) {
	a := newRecorder(t)
	cfg := testConfig(t, a.srv.URL)
	cfg.AddOrgIDHeader = false
	s, _ := open(t, cfg)
	series := batch("rw_noorg_total", 2, 0, time.Now())
	series[0].Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1}}
	a.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	q := queue(t, s, "tenant-1")
	enqueue(t, q, series, "x")
	files := reqFiles(t, q)
	if len(files) != 1 {
		t.Fatalf("%d request files, want 1", len(files))
	}
	if h, _, err := readHeader(files[0]); err != nil || h.flags&flagExemplars != 0 {
		t.Fatalf("request file: %+v, %v; want no exemplars stored", h, err)
	}
	a.setStatus(nil)
	waitFor(t, 10*time.Second, "the request", func() bool { return len(a.requests()) == 1 })
	r := a.requests()[0]
	if _, ok := r.header["X-Scope-Orgid"]; ok {
		t.Errorf("X-Scope-OrgID sent: %q", r.header.Get("X-Scope-OrgID"))
	}
	if len(r.req.Timeseries[0].Exemplars) != 0 {
		t.Errorf("exemplars sent without send_exemplars")
	}
	if len(series[0].Exemplars) != 1 {
		t.Errorf("Enqueue changed the caller's series")
	}
}

// TestRejected: a 400 drops the request for that endpoint at once
// (counted), while a 5xx and a 429 are retried until accepted.
func TestRejected(t *testing.T) {
	a := newRecorder(t)
	cfg := testConfig(t, a.srv.URL)
	logs := &countingHandler{}
	s, reg := openLogged(t, cfg, slog.New(logs))
	q := queue(t, s, "t")
	a.setStatus(func(*http.Request) (int, string) { return http.StatusBadRequest, "invalid labels" })
	enqueue(t, q, batch("rw_rej_total", 4, 0, time.Now()), "x")
	waitFor(t, 10*time.Second, "the rejected request to leave the queue", func() bool { return drained(t, q) })
	if n := logs.count(); n != 1 {
		t.Errorf("%d warnings logged for a rejection, want 1", n)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultRejected); got != 1 {
		t.Errorf("requests_total{result=rejected} = %v, want 1 (no retry)", got)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_dropped_samples_total", "reason", ReasonRejected); got != 4 {
		t.Errorf("dropped_samples_total{reason=rejected} = %v, want 4", got)
	}
	if f := reqFiles(t, q); len(f) != 0 {
		t.Errorf("files left: %v", f)
	}

	var calls atomic.Int32
	a.setStatus(func(*http.Request) (int, string) {
		switch calls.Add(1) {
		case 1:
			return http.StatusInternalServerError, "boom"
		case 2:
			return http.StatusTooManyRequests, "slow down"
		}
		return http.StatusOK, ""
	})
	enqueue(t, q, batch("rw_rej_total", 4, 1, time.Now()), "y")
	waitFor(t, 10*time.Second, "the retried request to arrive", func() bool { return len(a.requests()) == 1 })
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultRetried); got != 2 {
		t.Errorf("requests_total{result=retried} = %v, want 2", got)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultSuccess); got != 1 {
		t.Errorf("requests_total{result=success} = %v, want 1", got)
	}
	// A first attempt refused as out of order is a rejection, not a
	// duplicate: nothing says it was delivered before.
	a.setStatus(func(*http.Request) (int, string) { return http.StatusBadRequest, "out of order sample" })
	enqueue(t, q, batch("rw_rej_total", 4, 2, time.Now()), "z")
	waitFor(t, 10*time.Second, "the refused request to leave the queue", func() bool { return drained(t, q) })
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultRejected); got != 2 {
		t.Errorf("requests_total{result=rejected} = %v, want 2", got)
	}
	if n := logs.count(); n != 1 {
		t.Errorf("%d warnings logged for two rejections within a minute, want 1", n)
	}
}

// TestMaxQueueBytes: past max_queue_bytes the oldest requests are dropped
// and counted; the newest are sent once the endpoint is back.
func TestMaxQueueBytes(t *testing.T) {
	a := newRecorder(t)
	a.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	cfg := testConfig(t, a.srv.URL)
	cfg.MaxQueueBytes = 1 << 20
	s, reg := open(t, cfg)
	q := queue(t, s, "t")
	ts0 := time.Now().Truncate(time.Second)
	enqueue(t, q, batch("rw_bytes_total", 2000, 0, ts0), "0")
	size := reqFiles(t, q)
	st, err := os.Stat(size[0])
	if err != nil {
		t.Fatal(err)
	}
	fit := int((1 << 20) / st.Size()) // requests that fit
	if fit < 3 {
		t.Fatalf("a request is %d bytes; the test wants several in 1 MiB", st.Size())
	}
	total := fit + 10
	for k := 1; k < total; k++ {
		enqueue(t, q, batch("rw_bytes_total", 2000, k, ts0), "k")
	}
	n := queueLen(q)
	q.mu.Lock()
	qbytes := q.bytes
	q.mu.Unlock()
	if qbytes > cfg.MaxQueueBytes || n >= total || n < fit/2 {
		t.Fatalf("%d requests of %d bytes queued out of %d; max_queue_bytes %d", n, qbytes, total, cfg.MaxQueueBytes)
	}
	if f := len(reqFiles(t, q)); f != n {
		t.Fatalf("%d request files, want %d", f, n)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_dropped_requests_total", "reason", ReasonMaxQueueBytes); got != float64(total-n) {
		t.Fatalf("dropped_requests_total{reason=max_queue_bytes} = %v, want %d", got, total-n)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_dropped_samples_total", "reason", ReasonMaxQueueBytes); got != float64(2000*(total-n)) {
		t.Fatalf("dropped_samples_total{reason=max_queue_bytes} = %v, want %d", got, 2000*(total-n))
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_queue_bytes", "tenant", "t"); got != float64(qbytes) {
		t.Fatalf("queue_bytes = %v, want %d", got, qbytes)
	}
	waitFor(t, 5*time.Second, "queue_oldest_age_seconds to reach 1", func() bool {
		return counterValue(t, reg, "weft_metrics_generator_remote_write_queue_oldest_age_seconds", "tenant", "t") >= 1
	})
	a.setStatus(nil)
	waitFor(t, 15*time.Second, "the queue to run empty", func() bool { return drained(t, q) })
	// The oldest went: the first sample received is of request total-fit.
	got := a.requests()
	if len(got) != n {
		t.Fatalf("%d requests received, want %d", len(got), n)
	}
	want := ts0.Add(time.Duration(total-n) * time.Second).UnixMilli()
	if ts := got[0].req.Timeseries[0].Samples[0].Timestamp; ts != want {
		t.Fatalf("first request received has timestamp %d, want %d (the oldest dropped)", ts, want)
	}

	// One request larger than the bound is refused.
	err = q.Enqueue(context.Background(), batch("rw_bytes_total", 300000, 99, ts0), nil)
	if err == nil || !strings.Contains(err.Error(), "max_queue_bytes") {
		t.Fatalf("Enqueue of a request over max_queue_bytes: %v, want an error naming max_queue_bytes", err)
	}
}

// TestMaxQueueAge: requests older than max_queue_age are dropped and
// counted while the endpoint is down.
func TestMaxQueueAge(t *testing.T) {
	a := newRecorder(t)
	a.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	cfg := testConfig(t, a.srv.URL)
	cfg.MaxQueueAge = 1500 * time.Millisecond
	s, reg := open(t, cfg)
	q := queue(t, s, "t")
	for k := range 3 {
		enqueue(t, q, batch("rw_age_total", 5, k, time.Now()), "a")
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_queue_length", "tenant", "t"); got != 3 {
		t.Fatalf("queue_length = %v, want 3", got)
	}
	waitFor(t, 10*time.Second, "the old requests to be dropped", func() bool { return drained(t, q) })
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_dropped_samples_total", "reason", ReasonMaxQueueAge); got != 15 {
		t.Fatalf("dropped_samples_total{reason=max_queue_age} = %v, want 15", got)
	}
	if f := reqFiles(t, q); len(f) != 0 {
		t.Fatalf("files left: %v", f)
	}
	if got := string(q.LastCheckpoint()); got != "a" {
		t.Fatalf("LastCheckpoint %q after the drops, want a", got)
	}
}

// TestCorruptFile: a request file that cannot be read back is dropped and
// counted (at Open when it is cut short, when it is sent when its CRC is
// wrong), the rest is sent; a stray temporary file is removed.
func TestCorruptFile(t *testing.T) {
	a := newRecorder(t)
	a.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	cfg := testConfig(t, a.srv.URL)
	s, _ := open(t, cfg)
	q := queue(t, s, "t")
	for k := range 3 {
		enqueue(t, q, batch("rw_corrupt_total", 5, k, time.Now()), string(rune('a'+k)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_ = s.Close(ctx)
	cancel()
	files := reqFiles(t, q)
	if len(files) != 3 {
		t.Fatalf("%d files", len(files))
	}
	// files[1] is cut short (found at Open); a byte of files[2]'s body is
	// flipped (found by its CRC when it is sent).
	if err := os.Truncate(files[1], 100); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(files[2])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-10] ^= 0xff
	if err := os.WriteFile(files[2], b, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(q.dir, reqName(42)+tmpSuffix)
	if err := os.WriteFile(tmp, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A new endpoint: a request the first storage gave up on at Close may
	// still reach the old one afterwards (it was on the way).
	rcv := newRecorder(t)
	cfg.RemoteWrite[0].URL = rcv.srv.URL
	s2, reg2 := open(t, cfg)
	q2 := queue(t, s2, "t")
	waitFor(t, 10*time.Second, "the queue to run empty", func() bool { return drained(t, q2) })
	if got := counterValue(t, reg2, "weft_metrics_generator_remote_write_dropped_requests_total", "reason", ReasonCorrupt); got != 2 {
		t.Fatalf("dropped_requests_total{reason=corrupt} = %v, want 2", got)
	}
	if got := counterValue(t, reg2, "weft_metrics_generator_remote_write_dropped_samples_total", "reason", ReasonCorrupt); got != 5 {
		t.Fatalf("dropped_samples_total{reason=corrupt} = %v, want 5 (those of the file read at Open; the count of a file cut short is unknown)", got)
	}
	if n := len(rcv.requests()); n != 1 {
		t.Fatalf("%d requests received, want 1: %v", n, sampleValues(rcv.requests()))
	}
	if fileExists(tmp) {
		t.Fatal("temporary file left")
	}
	if got := string(q2.LastCheckpoint()); got != "c" {
		t.Fatalf("LastCheckpoint %q, want c", got)
	}
}

// TestOpenErrors: a bad config and a bad tenant are refused with errors
// naming the problem.
func TestOpenErrors(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1/api/v1/write")
	cfg.Path = ""
	if _, err := Open(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "path is required") {
		t.Fatalf("Open without path: %v", err)
	}
	cfg = testConfig(t, "http://127.0.0.1:1/api/v1/write")
	s, _ := open(t, cfg)
	if _, err := s.Queue("../x"); err == nil || !strings.Contains(err.Error(), "invalid tenant ID") {
		t.Fatalf("Queue(../x): %v", err)
	}
	// A second storage on the same path (another process) is refused.
	if _, err := Open(cfg, nil, nil); err == nil || !strings.Contains(err.Error(), "another process uses it") {
		t.Fatalf("second Open of one path: %v, want an error saying another process uses it", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := s2.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestNoEndpoints: without remote_write, Enqueue writes nothing and keeps
// the checkpoint.
func TestNoEndpoints(t *testing.T) {
	cfg := DefaultConfig()
	s, _ := open(t, cfg)
	q := queue(t, s, "t")
	enqueue(t, q, batch("x", 1, 0, time.Now()), "cp")
	if got := string(q.LastCheckpoint()); got != "cp" {
		t.Fatalf("LastCheckpoint %q", got)
	}
}

func TestValidate(t *testing.T) {
	ok := testConfig(t, "http://127.0.0.1:9090/api/v1/write")
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no path", func(c *Config) { c.Path = "" }, "path is required when remote_write is set"},
		{"no url", func(c *Config) { c.RemoteWrite[0].URL = "" }, "remote_write[0].url is required"},
		{"bad url", func(c *Config) { c.RemoteWrite[0].URL = "ftp://x" }, "remote_write[0].url must be an http:// or https:// URL"},
		{"timeout", func(c *Config) { c.RemoteWrite[0].RemoteTimeout = 0 }, "remote_write[0].remote_timeout must be positive"},
		{"dup name", func(c *Config) {
			c.RemoteWrite = append(c.RemoteWrite, c.RemoteWrite[0])
			c.RemoteWrite[1].Name = "0"
		}, `remote_write[1].name "0" is also the name of remote_write[0]`},
		{"header", func(c *Config) { c.RemoteWrite[0].Headers = map[string]string{"Content-Encoding": "gzip"} }, "remote_write[0].headers: Content-Encoding is set by the remote-write protocol"},
		{"basic auth", func(c *Config) { c.RemoteWrite[0].BasicAuth = &BasicAuth{} }, "remote_write[0].basic_auth.username is required"},
		{"age", func(c *Config) { c.MaxQueueAge = -time.Second }, "max_queue_age must not be negative"},
		{"flush", func(c *Config) { c.FlushDeadline = -time.Second }, "remote_write_flush_deadline must not be negative"},
		{"bytes", func(c *Config) { c.MaxQueueBytes = 10 }, "max_queue_bytes must be at least 1 MiB"},
	} {
		cfg := testConfig(t, "http://127.0.0.1:9090/api/v1/write")
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// TestDiskFull: on a full disk Enqueue fails with an error saying so,
// counted; no partial file is left, and what was queued before is still
// sent.
func TestDiskFull(t *testing.T) {
	dir := tmpfstest.Mount(t, 512<<10)
	a := newRecorder(t)
	a.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	cfg := testConfig(t, a.srv.URL)
	cfg.Path = filepath.Join(dir, "wal")
	s, reg := open(t, cfg)
	q := queue(t, s, "t")
	ts0 := time.Now().Truncate(time.Second)
	var err error
	k := 0
	for ; k < 1000; k++ {
		if err = q.Enqueue(context.Background(), batch("rw_full_total", 2000, k, ts0), []byte(fmt.Sprint(k))); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "cannot write the request file") {
		t.Fatalf("Enqueue on a full disk: %v, want an error saying no space left", err)
	}
	if k < 2 {
		t.Fatalf("only %d requests fit", k)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_enqueue_failures_total", "tenant", "t"); got != 1 {
		t.Fatalf("enqueue_failures_total = %v, want 1", got)
	}
	if m, _ := filepath.Glob(filepath.Join(q.dir, "*"+tmpSuffix)); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	if got, want := string(q.LastCheckpoint()), fmt.Sprint(k-1); got != want {
		t.Fatalf("LastCheckpoint %q, want %q (the last request that fit)", got, want)
	}
	a.setStatus(nil)
	waitFor(t, 15*time.Second, "the queue to run empty", func() bool { return drained(t, q) })
	if n := len(a.requests()); n != k {
		t.Fatalf("%d requests received, want %d", n, k)
	}
	// Room again: Enqueue works.
	enqueue(t, q, batch("rw_full_total", 10, k, ts0), "again")
}

// TestCloseHonoursDeadline: Close with an endpoint that never answers
// returns soon after its ctx is done, not after remote_timeout, and leaves
// the request on disk.
func TestCloseHonoursDeadline(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	cfg := testConfig(t, hang.URL)
	cfg.RemoteWrite[0].RemoteTimeout = time.Minute
	s, _ := open(t, cfg)
	q := queue(t, s, "t")
	enqueue(t, q, batch("rw_hang_total", 3, 0, time.Now()), "x")
	time.Sleep(100 * time.Millisecond) // the sender is waiting for the answer
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Close(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %s with a 200ms deadline", took)
	}
	if err == nil || !strings.Contains(err.Error(), "1 requests left on disk") {
		t.Fatalf("Close: %v, want an error saying 1 request is left", err)
	}
	if n := len(reqFiles(t, q)); n != 1 {
		t.Fatalf("%d request files after Close, want 1", n)
	}
}

func TestParseRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "x": 0, "-1": 0} {
		if got := parseRetryAfter(v); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
	d := parseRetryAfter(time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat))
	if d < 8*time.Second || d > 11*time.Second {
		t.Errorf("parseRetryAfter(an HTTP date 10s ahead) = %s", d)
	}
}

// TestLastRequest: the newest request and its checkpoint can be read back,
// queued or sent, before and after a restart, also when it was the first
// one (sequence number 0).
func TestLastRequest(t *testing.T) {
	a := newRecorder(t)
	cfg := testConfig(t, a.srv.URL)
	s, _ := open(t, cfg)
	q := queue(t, s, "t")
	if series, cp, err := q.LastRequest(); series != nil || cp != nil || err != nil {
		t.Fatalf("LastRequest of an empty queue: %v %q %v", series, cp, err)
	}
	ts0 := time.Now().Truncate(time.Second)
	check := func(q *Queue, k int, what string) {
		t.Helper()
		series, cp, err := q.LastRequest()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if string(cp) != fmt.Sprint(k) || string(q.LastCheckpoint()) != fmt.Sprint(k) || len(series) != 4 {
			t.Fatalf("%s: checkpoint %q (LastCheckpoint %q), %d series; want request %d", what, cp, q.LastCheckpoint(), len(series), k)
		}
		for i, ts := range series {
			if ts.Samples[0].Value != float64((k+1)*(i+1)) || ts.Labels[1].Value != fmt.Sprint(i) {
				t.Fatalf("%s: series %d = %v", what, i, ts)
			}
		}
	}
	enqueue(t, q, batch("rw_last_total", 4, 0, ts0), "0")
	waitFor(t, 10*time.Second, "the request to be sent", func() bool { return drained(t, q) })
	check(q, 0, "after the first request was sent")
	closeNow(t, s)
	s, _ = open(t, cfg)
	q = queue(t, s, "t")
	check(q, 0, "after a restart, the first request sent")

	a.setStatus(func(*http.Request) (int, string) { return http.StatusServiceUnavailable, "down" })
	enqueue(t, q, batch("rw_last_total", 4, 1, ts0), "1")
	enqueue(t, q, batch("rw_last_total", 4, 2, ts0), "2")
	check(q, 2, "two requests queued")
	closeNow(t, s)
	a.setStatus(nil)
	s, _ = open(t, cfg)
	q = queue(t, s, "t")
	check(q, 2, "after a restart, two requests queued")
	waitFor(t, 10*time.Second, "the requests to be sent", func() bool { return drained(t, q) })
	check(q, 2, "after a restart, the requests sent")
	enqueue(t, q, batch("rw_last_total", 4, 3, ts0), "3")
	check(q, 3, "a third request")
}

func closeNow(t *testing.T, s *Storage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = s.Close(ctx)
}

func TestIsDuplicateError(t *testing.T) {
	for msg, want := range map[string]bool{
		"out of order sample":                              true,
		"duplicate sample for timestamp":                   true,
		"err-mimir-sample-out-of-order: the sample has...": true,
		"err-mimir-sample-duplicate-timestamp":             true,
		"out of bounds":                                    false,
		"invalid labels":                                   false,
	} {
		if got := isDuplicateError(msg); got != want {
			t.Errorf("isDuplicateError(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestConfigYAML: the storage block decodes with Tempo's keys, strictly;
// a remote_write item keeps remote_timeout's default when it leaves it out.
func TestConfigYAML(t *testing.T) {
	const doc = `
path: /tmp/x
remote_write:
  - url: http://127.0.0.1:9090/api/v1/write
    headers: {X-A: b}
    send_exemplars: true
  - url: http://127.0.0.1:9091/api/v1/write
    remote_timeout: 5s
    basic_auth: {username: u, password: p}
remote_write_add_org_id_header: false
remote_write_flush_deadline: 30s
max_queue_age: 2h
max_queue_bytes: 1073741824
`
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := yamlx.Decode(&n, &cfg, yamlx.Options{Path: "metrics_generator.storage"}); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Path: "/tmp/x",
		RemoteWrite: []Endpoint{
			{URL: "http://127.0.0.1:9090/api/v1/write", Headers: map[string]string{"X-A": "b"}, SendExemplars: true, RemoteTimeout: 30 * time.Second},
			{URL: "http://127.0.0.1:9091/api/v1/write", RemoteTimeout: 5 * time.Second, BasicAuth: &BasicAuth{Username: "u", Password: "p"}},
		},
		AddOrgIDHeader: false, FlushDeadline: 30 * time.Second, MaxQueueAge: 2 * time.Hour, MaxQueueBytes: 1 << 30,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("decoded %+v\nwant    %+v", cfg, want)
	}
	var bad yaml.Node
	if err := yaml.Unmarshal([]byte("remote_write:\n  - url: http://x\n    remote_timout: 5s\n"), &bad); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	err := yamlx.Decode(&bad, &cfg, yamlx.Options{Path: "metrics_generator.storage"})
	if err == nil || !strings.Contains(err.Error(), "remote_timout") {
		t.Fatalf("a misspelt key: %v, want an error naming it", err)
	}
}
