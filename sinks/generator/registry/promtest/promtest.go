// Package promtest runs a real Prometheus server for tests of the
// metrics-generator: remote write into it, PromQL and exemplar queries out.
package promtest

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

// Server is a real Prometheus (Debian's 2.42) on loopback, with a
// temporary data directory, receiving remote write.
type Server struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
}

// Start runs prometheus from PATH for the test and stops it at its end; the
// test is skipped when prometheus is not installed. Its output is logged
// when the test fails.
func Start(t testing.TB) *Server {
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
	p := &Server{URL: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/-/ready")
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

// Write remote-writes series (protobuf, snappy), failing the test on any
// answer but 2xx.
func (p *Server) Write(t testing.TB, series []prompb.TimeSeries) {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: series}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hreq, _ := http.NewRequest(http.MethodPost, p.URL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
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

// Query returns the values of an instant PromQL query at ts, keyed by the
// series' labels printed as fmt prints a map[string]string.
func (p *Server) Query(t testing.TB, q string, ts time.Time) map[string]float64 {
	t.Helper()
	v := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(ts.UnixMilli())/1000, 'f', 3, 64)}}
	resp, err := client.Get(p.URL + "/api/v1/query?" + v.Encode())
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

// Exemplars returns the exemplars of q between from and to, each as
// "<le>:<traceID>".
func (p *Server) Exemplars(t testing.TB, q string, from, to time.Time) []string {
	t.Helper()
	v := url.Values{"query": {q}, "start": {strconv.FormatInt(from.Unix(), 10)}, "end": {strconv.FormatInt(to.Unix()+1, 10)}}
	resp, err := client.Get(p.URL + "/api/v1/query_exemplars?" + v.Encode())
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
