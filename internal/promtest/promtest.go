// Package promtest runs a real Prometheus server for tests: the
// `prometheus` binary (PATH, or WEFT_PROMETHEUS_BIN) on 127.0.0.1 with a
// free port, its remote-write receiver on, a temporary data directory and
// a config with no scrape jobs. Tests write to it by remote write and read
// back with PromQL through its HTTP API.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// NotFound is the message of a test that cannot find the binary.
const NotFound = "prometheus not found: run `make tools` (installs Debian's prometheus package)"

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// Server is a running (or stopped) Prometheus.
type Server struct {
	t       testing.TB
	bin     string
	addr    string // 127.0.0.1:port
	dataDir string
	cfgFile string
	logFile string
	client  *http.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
}

// Start runs Prometheus and waits until it is ready; it is stopped on
// t.Cleanup. A missing binary fails the test (never a skip).
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("WEFT_PROMETHEUS_BIN")
	if bin == "" {
		p, err := exec.LookPath("prometheus")
		if err != nil {
			t.Fatal(NotFound)
		}
		bin = p
	} else if st, err := os.Stat(bin); err != nil || st.IsDir() {
		t.Fatalf("%s (WEFT_PROMETHEUS_BIN=%s is not a file)", NotFound, bin)
	}
	dir := t.TempDir()
	s := &Server{
		t:       t,
		bin:     bin,
		addr:    freeAddr(t),
		dataDir: filepath.Join(dir, "data"),
		cfgFile: filepath.Join(dir, "prometheus.yml"),
		logFile: filepath.Join(dir, "prometheus.log"),
		client:  &http.Client{Timeout: 30 * time.Second},
	}
	cfg := "# promtest: no scrape jobs; samples come by remote write.\nglobal:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n"
	if err := os.WriteFile(s.cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatalf("cannot write the prometheus config: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("cannot stop prometheus: %v", err)
		}
	})
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot find a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// URL is the server's base URL, http://127.0.0.1:<port>.
func (s *Server) URL() string { return "http://" + s.addr }

// WriteURL is the remote-write receiver's URL.
func (s *Server) WriteURL() string { return s.URL() + "/api/v1/write" }

// DataDir is the TSDB directory, kept across Stop and Restart.
func (s *Server) DataDir() string { return s.dataDir }

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("prometheus is already running")
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open the prometheus log: %w", err)
	}
	cmd := exec.Command(s.bin,
		"--config.file="+s.cfgFile,
		"--web.listen-address="+s.addr,
		"--storage.tsdb.path="+s.dataDir,
		"--web.enable-remote-write-receiver",
		"--enable-feature=exemplar-storage",
		"--storage.tsdb.retention.time=1d",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cannot start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("prometheus exited before it was ready; its log:\n%s", s.logTail())
		default:
		}
		resp, err := s.client.Get(s.URL() + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.killLocked()
			return fmt.Errorf("prometheus on %s not ready after %s; its log:\n%s", s.addr, readyTimeout, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logFile)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop stops Prometheus (SIGTERM, SIGKILL after 15 s), keeping its data
// directory and port for Restart.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatal(err)
	}
}

// Restart starts a stopped Prometheus again on the same port and data
// directory (stopping it first if it runs) and waits until it is ready.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatal(err)
	}
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.killLocked()
		return fmt.Errorf("prometheus did not stop within %s of SIGTERM; killed", stopTimeout)
	}
	s.cmd = nil
	return nil
}

func (s *Server) killLocked() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Sample is one element of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  float64
	Time   time.Time
}

// Point is one raw sample of a series.
type Point struct {
	Time  time.Time
	Value float64
}

// Series is a series with its raw samples (the result of a range
// selector).
type Series struct {
	Metric map[string]string
	Points []Point
}

// Increase is the counter's increase over the points, handling resets as
// PromQL does (a drop means it restarted from 0), but exactly: no
// extrapolation. The first point counts from 0 when fromZero.
func (s Series) Increase(fromZero bool) float64 {
	var inc float64
	for i, p := range s.Points {
		switch {
		case i == 0:
			if fromZero {
				inc += p.Value
			}
		case p.Value < s.Points[i-1].Value:
			inc += p.Value
		default:
			inc += p.Value - s.Points[i-1].Value
		}
	}
	return inc
}

// Last is the value of the newest point (NaN without points).
func (s Series) Last() float64 {
	if len(s.Points) == 0 {
		return math.NaN()
	}
	return s.Points[len(s.Points)-1].Value
}

// Query evaluates an instant query now and returns its vector (a scalar
// comes back as one sample without labels). A selector finds samples up to
// 5 minutes old (Prometheus's lookback).
func (s *Server) Query(ctx context.Context, promql string) ([]Sample, error) {
	return s.QueryAt(ctx, promql, time.Now())
}

// QueryAt is Query evaluated at time at.
func (s *Server) QueryAt(ctx context.Context, promql string, at time.Time) ([]Sample, error) {
	data, err := s.query(ctx, promql, at)
	if err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var v []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("cannot decode the vector of %q: %w", promql, err)
		}
		out := make([]Sample, 0, len(v))
		for _, e := range v {
			p, err := point(e.Value)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", promql, err)
			}
			out = append(out, Sample{Metric: e.Metric, Value: p.Value, Time: p.Time})
		}
		return out, nil
	case "scalar":
		var v [2]json.RawMessage
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, fmt.Errorf("cannot decode the scalar of %q: %w", promql, err)
		}
		p, err := point(v)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", promql, err)
		}
		return []Sample{{Metric: map[string]string{}, Value: p.Value, Time: p.Time}}, nil
	}
	return nil, fmt.Errorf("query %q returned a %s, not an instant vector", promql, data.ResultType)
}

// Series returns the raw samples of selector over the last rng, as the
// range selector selector[rng] evaluated now gives them.
func (s *Server) Series(ctx context.Context, selector string, rng time.Duration) ([]Series, error) {
	q := fmt.Sprintf("%s[%dms]", selector, rng.Milliseconds())
	data, err := s.query(ctx, q, time.Now())
	if err != nil {
		return nil, err
	}
	if data.ResultType != "matrix" {
		return nil, fmt.Errorf("query %q returned a %s, not a range vector", q, data.ResultType)
	}
	var m []struct {
		Metric map[string]string    `json:"metric"`
		Values [][2]json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(data.Result, &m); err != nil {
		return nil, fmt.Errorf("cannot decode the matrix of %q: %w", q, err)
	}
	out := make([]Series, 0, len(m))
	for _, e := range m {
		sr := Series{Metric: e.Metric}
		for _, v := range e.Values {
			p, err := point(v)
			if err != nil {
				return nil, fmt.Errorf("query %q: %w", q, err)
			}
			sr.Points = append(sr.Points, p)
		}
		out = append(out, sr)
	}
	return out, nil
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

func (s *Server) query(ctx context.Context, promql string, at time.Time) (queryData, error) {
	form := url.Values{"query": {promql}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/api/v1/query", strings.NewReader(form.Encode()))
	if err != nil {
		return queryData{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return queryData{}, fmt.Errorf("cannot query %q: %w", promql, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return queryData{}, fmt.Errorf("cannot read the answer to %q: %w", promql, err)
	}
	var r struct {
		Status string    `json:"status"`
		Error  string    `json:"error"`
		Data   queryData `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return queryData{}, fmt.Errorf("query %q: HTTP %d: %s %s", promql, resp.StatusCode, r.Error, bytes.TrimSpace(body[:min(len(body), 500)]))
	}
	return r.Data, nil
}

func point(v [2]json.RawMessage) (Point, error) {
	var ts float64
	var val string
	if err := json.Unmarshal(v[0], &ts); err != nil {
		return Point{}, fmt.Errorf("bad timestamp %s", v[0])
	}
	if err := json.Unmarshal(v[1], &val); err != nil {
		return Point{}, fmt.Errorf("bad value %s", v[1])
	}
	f, err := strconv.ParseFloat(val, 64)
	if err != nil {
		return Point{}, fmt.Errorf("bad value %q", val)
	}
	return Point{Time: time.UnixMilli(int64(math.Round(ts * 1000))), Value: f}, nil
}

// Write remote-writes series (protobuf, snappy) as a sender would, failing
// the test on any answer but 2xx.
func (s *Server) Write(t testing.TB, series []prompb.TimeSeries) {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, s.WriteURL(), bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: %s: %s", resp.Status, body)
	}
}

// QueryMap evaluates an instant query at ts, failing the test on an
// error, and returns the values keyed by the series' labels as fmt prints
// a map[string]string ("map[__name__:x a:1]").
func (s *Server) QueryMap(t testing.TB, promql string, ts time.Time) map[string]float64 {
	t.Helper()
	samples, err := s.QueryAt(context.Background(), promql, ts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, r := range samples {
		out[fmt.Sprint(r.Metric)] = r.Value
	}
	return out
}

// Exemplars returns the exemplars of promql between from and to, each as
// "<le>:<traceID>".
func (s *Server) Exemplars(t testing.TB, promql string, from, to time.Time) []string {
	t.Helper()
	v := url.Values{"query": {promql}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix()+1, 10)}}
	resp, err := s.client.Get(s.URL() + "/api/v1/query_exemplars?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data []struct {
			SeriesLabels map[string]string
			Exemplars    []struct{ Labels map[string]string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range r.Data {
		for _, e := range d.Exemplars {
			ids = append(ids, d.SeriesLabels["le"]+":"+e.Labels["traceID"])
		}
	}
	return ids
}
