package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// promServer is a real Prometheus (Debian's 2.42) on loopback, receiving
// remote write.
type promServer struct {
	url string
}

func startPrometheus(t *testing.T) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus is not installed (apt-get install prometheus): ", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	p := &promServer{url: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

func (p *promServer) write(t *testing.T, series []prompb.TimeSeries) {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: series}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hreq, _ := http.NewRequest(http.MethodPost, p.url+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: %s: %s", resp.Status, body)
	}
}

// query returns the values of an instant query at ts, by series labels.
func (p *promServer) query(t *testing.T, q string, ts time.Time) map[string]float64 {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64)}}
	resp, err := client.Get(p.url + "/api/v1/query?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, r.Error)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		f, _ := strconv.ParseFloat(s.Value[1].(string), 64)
		out[fmt.Sprint(s.Metric)] = f
	}
	return out
}

func (p *promServer) exemplars(t *testing.T, q string, from, to time.Time) []string {
	t.Helper()
	v := url.Values{"query": {q}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix()+1, 10)}}
	resp, err := client.Get(p.url + "/api/v1/query_exemplars?" + v.Encode())
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
			ids = append(ids, d.SeriesLabels["le"]+":"+e.Labels[ExemplarLabel])
		}
	}
	return ids
}

// TestRemoteWriteToPrometheus writes Collect's output to a real Prometheus
// and reads it back with PromQL: values, the leading 0 sample that lets
// increase() count a new series' first update, histogram buckets,
// exemplars, and the stale marker that ends a series.
func TestRemoteWriteToPrometheus(t *testing.T) {
	prom := startPrometheus(t)
	cfg := DefaultConfig()
	cfg.StaleDuration = 10 * time.Second
	cfg.ExternalLabels = map[string]string{"cluster": "test"}
	r := New(cfg, "t1", nil)
	c := r.NewCounter("calls_total", []string{"service"})
	h := r.NewHistogram("latency", []string{"service"}, []float64{0.1, 1})

	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	c.Inc([]string{"api"}, 3)
	h.Observe([]string{"api"}, 0.05, []byte{0xab, 0xcd}, 1)
	h.Observe([]string{"api"}, 0.5, nil, 1)
	prom.write(t, r.Collect(t0, CollectOptions{Exemplars: true}))
	t1 := t0.Add(15 * time.Second)
	c.Inc([]string{"api"}, 2)
	prom.write(t, r.Collect(t1, CollectOptions{Exemplars: true}))

	series := `map[__name__:calls_total cluster:test service:api]`
	if got := prom.query(t, "calls_total", t1); got[series] != 5 || len(got) != 1 {
		t.Errorf("calls_total at t1: %v", got)
	}
	if got, ok := prom.query(t, "calls_total", t0.Add(-time.Millisecond))[series]; !ok || got != 0 {
		t.Errorf("calls_total 1 ms before its first collection: %v, want the 0 sample", got)
	}
	// The increase over the two collections counts all 5, the first 3
	// included (without the 0 sample Prometheus would see only 2).
	if got := prom.query(t, `calls_total - calls_total offset 15001ms`, t1); got[`map[cluster:test service:api]`] != 5 {
		t.Errorf("increase: %v", got)
	}
	if got := prom.query(t, `latency_bucket{le="0.1"}`, t1); got[`map[__name__:latency_bucket cluster:test le:0.1 service:api]`] != 1 {
		t.Errorf("bucket 0.1: %v", got)
	}
	if got := prom.query(t, `latency_bucket{le="+Inf"}`, t1); got[`map[__name__:latency_bucket cluster:test le:+Inf service:api]`] != 2 {
		t.Errorf("bucket +Inf: %v", got)
	}
	if got := prom.exemplars(t, "latency_bucket", t0.Add(-time.Minute), time.Now()); len(got) != 1 || got[0] != "0.1:abcd" {
		t.Errorf("exemplars: %v, want one on le=0.1 with traceID abcd", got)
	}
	// The series was last updated now; collecting 20 s later (past the
	// 10 s stale_duration) sends a stale marker: the series is gone.
	t2 := time.Now().Add(20 * time.Second)
	prom.write(t, r.Collect(t2, CollectOptions{}))
	if got := prom.query(t, "calls_total", t2); len(got) != 0 {
		t.Errorf("calls_total after the stale marker: %v, want nothing", got)
	}
	if r.ActiveSeries() != 0 {
		t.Errorf("active series %d after staleness", r.ActiveSeries())
	}
}
