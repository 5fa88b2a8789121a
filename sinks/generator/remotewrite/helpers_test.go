package remotewrite

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
)

func testConfig(t testing.TB, urls ...string) Config {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "generator-wal")
	for _, u := range urls {
		e := DefaultEndpoint()
		e.URL = u
		e.RemoteTimeout = 5 * time.Second
		cfg.RemoteWrite = append(cfg.RemoteWrite, e)
	}
	return cfg
}

func open(t testing.TB, cfg Config) (*Storage, *prometheus.Registry) {
	t.Helper()
	return openLogged(t, cfg, nil)
}

func openLogged(t testing.TB, cfg Config, logger *slog.Logger) (*Storage, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s, reg
}

func queue(t testing.TB, s *Storage, tenant string) *Queue {
	t.Helper()
	q, err := s.Queue(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// batch is request k of a test: series i has one sample at ts0+k s of
// value (k+1)*(i+1) (a counter growing by i+1 a request).
func batch(name string, nSeries, k int, ts0 time.Time) []prompb.TimeSeries {
	out := make([]prompb.TimeSeries, nSeries)
	for i := range out {
		out[i] = prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: name},
				{Name: "series", Value: fmt.Sprint(i)},
			},
			Samples: []prompb.Sample{{Timestamp: ts0.Add(time.Duration(k) * time.Second).UnixMilli(), Value: float64((k + 1) * (i + 1))}},
		}
	}
	return out
}

func enqueue(t testing.TB, q *Queue, series []prompb.TimeSeries, cp string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.Enqueue(ctx, series, []byte(cp)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func queueLen(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.entries)
}

func reqFiles(t testing.TB, q *Queue) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(q.dir, "*"+reqSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			} else if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

var _ = testutil.ToFloat64

// received is what a recording endpoint got.
type received struct {
	header http.Header
	req    prompb.WriteRequest
}

// recorder is a remote-write endpoint on loopback that records requests
// and answers with status() (200 when nil).
type recorder struct {
	srv *httptest.Server

	mu     sync.Mutex
	got    []received
	status func(r *http.Request) (int, string)
}

func newRecorder(t testing.TB) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		status := rec.status
		rec.mu.Unlock()
		code, msg := http.StatusOK, ""
		if status != nil {
			code, msg = status(r)
		}
		if code/100 == 2 {
			raw, err := snappy.Decode(nil, body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var req prompb.WriteRequest
			if err := req.Unmarshal(raw); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rec.mu.Lock()
			rec.got = append(rec.got, received{header: r.Header.Clone(), req: req})
			rec.mu.Unlock()
		}
		w.WriteHeader(code)
		io.WriteString(w, msg)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) setStatus(f func(*http.Request) (int, string)) {
	r.mu.Lock()
	r.status = f
	r.mu.Unlock()
}

func (r *recorder) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// sampleValues lists "series@ts=value" of the received requests, sorted.
func sampleValues(rs []received) []string {
	var out []string
	for _, r := range rs {
		for _, ts := range r.req.Timeseries {
			var id []string
			for _, l := range ts.Labels {
				id = append(id, l.Name+"="+l.Value)
			}
			for _, s := range ts.Samples {
				out = append(out, fmt.Sprintf("%s@%d=%g", strings.Join(id, ","), s.Timestamp, s.Value))
			}
		}
	}
	sort.Strings(out)
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// drained reports whether q holds no request, in memory and on disk.
func drained(t testing.TB, q *Queue) bool {
	return queueLen(q) == 0 && len(reqFiles(t, q)) == 0
}

// countingHandler counts the log records at or above Warn.
type countingHandler struct {
	mu    sync.Mutex
	warns []string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.warns = append(h.warns, r.Message)
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.warns)
}
