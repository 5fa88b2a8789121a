package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/weftdb/weft/internal/promtest"
)

// checkArrived reads every series of name back from Prometheus and checks
// that series i holds exactly the samples of requests 0..k-1 of batch,
// once each.
func checkArrived(t *testing.T, prom *promtest.Server, name string, nSeries, k int, ts0 time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ss, err := prom.Series(ctx, name, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != nSeries {
		t.Fatalf("%d series of %s in Prometheus, want %d", len(ss), name, nSeries)
	}
	for _, s := range ss {
		i, err := strconv.Atoi(s.Metric["series"])
		if err != nil {
			t.Fatalf("series label %q", s.Metric["series"])
		}
		if len(s.Points) != k {
			t.Fatalf("series %d has %d samples, want %d (one per request)", i, len(s.Points), k)
		}
		for j, p := range s.Points {
			wantT := ts0.Add(time.Duration(j) * time.Second).UnixMilli()
			if p.Time.UnixMilli() != wantT || p.Value != float64((j+1)*(i+1)) {
				t.Fatalf("series %d sample %d: %v@%d, want %d@%d", i, j, p.Value, p.Time.UnixMilli(), (j+1)*(i+1), wantT)
			}
		}
		if inc, want := s.Increase(true), float64(k*(i+1)); inc != want {
			t.Fatalf("series %d: increase %v, want %v", i, inc, want)
		}
	}
}

// TestPrometheusArrives: enqueued requests arrive in a real Prometheus,
// exactly; the queue then runs empty and its files are deleted; the
// checkpoint survives that.
func TestPrometheusArrives(t *testing.T) {
	prom := promtest.Start(t)
	cfg := testConfig(t, prom.WriteURL())
	s, reg := open(t, cfg)
	q := queue(t, s, "team-a")
	const nSeries, k = 50, 10
	ts0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	for j := range k {
		enqueue(t, q, batch("rw_arrives_total", nSeries, j, ts0), fmt.Sprint("cp", j))
	}
	waitFor(t, 20*time.Second, "the queue to run empty", func() bool { return drained(t, q) })
	checkArrived(t, prom, "rw_arrives_total", nSeries, k, ts0)
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "tenant", "team-a", "result", ResultSuccess); got != k {
		t.Errorf("requests_total{result=success} = %v, want %d", got, k)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_samples_total", "tenant", "team-a", "result", ResultSuccess); got != k*nSeries {
		t.Errorf("samples_total{result=success} = %v, want %d", got, k*nSeries)
	}
	if f := reqFiles(t, q); len(f) != 0 {
		t.Errorf("request files left: %v", f)
	}
	if got := string(q.LastCheckpoint()); got != "cp9" {
		t.Errorf("LastCheckpoint %q, want cp9", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s2, _ := open(t, cfg)
	q2 := queue(t, s2, "team-a")
	if got := string(q2.LastCheckpoint()); got != "cp9" {
		t.Errorf("LastCheckpoint after a restart with an empty queue: %q, want cp9", got)
	}
	series, cp, err := q2.LastRequest()
	if err != nil || string(cp) != "cp9" || len(series) != nSeries || series[3].Samples[0].Value != float64(k*4) {
		t.Errorf("LastRequest after a restart: %d series, checkpoint %q, %v; want request 9", len(series), cp, err)
	}
}

// TestPrometheusOutage: Prometheus stops for a few seconds while requests
// keep coming; after it restarts every sample arrives once, and the counts
// of the metrics are exact.
func TestPrometheusOutage(t *testing.T) {
	prom := promtest.Start(t)
	cfg := testConfig(t, prom.WriteURL())
	cfg.RemoteWrite[0].RemoteTimeout = time.Second
	s, reg := open(t, cfg)
	q := queue(t, s, "team-a")
	const nSeries, k = 20, 30
	ts0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	j := 0
	for ; j < 5; j++ {
		enqueue(t, q, batch("rw_outage_total", nSeries, j, ts0), fmt.Sprint(j))
	}
	waitFor(t, 20*time.Second, "the first requests to arrive", func() bool { return drained(t, q) })
	prom.Stop()
	for ; j < 25; j++ {
		enqueue(t, q, batch("rw_outage_total", nSeries, j, ts0), fmt.Sprint(j))
		time.Sleep(150 * time.Millisecond)
	}
	if n := queueLen(q); n < 15 {
		t.Fatalf("%d requests queued during the outage, want most of 20", n)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultRetried); got == 0 {
		t.Fatal("no retried request counted during the outage")
	}
	prom.Restart()
	for ; j < k; j++ {
		enqueue(t, q, batch("rw_outage_total", nSeries, j, ts0), fmt.Sprint(j))
	}
	waitFor(t, 30*time.Second, "the queue to run empty after the outage", func() bool { return drained(t, q) })
	checkArrived(t, prom, "rw_outage_total", nSeries, k, ts0)
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultSuccess); got != k {
		t.Errorf("requests_total{result=success} = %v, want %d", got, k)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_dropped_requests_total"); got != 0 {
		t.Errorf("dropped_requests_total = %v, want 0", got)
	}
}

// TestPrometheusRestartMidOutage: the queue is closed during an outage and
// opened again (a restart of the generator): the requests left on disk are
// sent, and the checkpoint is the newest request's.
func TestPrometheusRestartMidOutage(t *testing.T) {
	prom := promtest.Start(t)
	cfg := testConfig(t, prom.WriteURL())
	cfg.RemoteWrite[0].RemoteTimeout = time.Second
	s, _ := open(t, cfg)
	q := queue(t, s, "team-b")
	const nSeries, k = 10, 12
	ts0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	j := 0
	for ; j < 4; j++ {
		enqueue(t, q, batch("rw_restart_total", nSeries, j, ts0), fmt.Sprint("cp", j))
	}
	waitFor(t, 20*time.Second, "the first requests to arrive", func() bool { return drained(t, q) })
	prom.Stop()
	for ; j < 8; j++ {
		enqueue(t, q, batch("rw_restart_total", nSeries, j, ts0), fmt.Sprint("cp", j))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := s.Close(ctx)
	cancel()
	if err == nil {
		t.Fatal("Close during the outage said everything was flushed")
	}
	if n := len(reqFiles(t, q)); n != 4 {
		t.Fatalf("%d request files after Close, want 4", n)
	}
	if err := q.Enqueue(context.Background(), batch("rw_restart_total", 1, 99, ts0), nil); err == nil {
		t.Fatal("Enqueue after Close succeeded")
	}

	prom.Restart()
	s2, reg2 := open(t, cfg)
	if got := s2.Tenants(); len(got) != 1 || got[0] != "team-b" {
		t.Fatalf("Tenants after Open: %v, want [team-b]", got)
	}
	q2 := queue(t, s2, "team-b")
	if got := string(q2.LastCheckpoint()); got != "cp7" {
		t.Fatalf("LastCheckpoint after Open: %q, want cp7", got)
	}
	for ; j < k; j++ {
		enqueue(t, q2, batch("rw_restart_total", nSeries, j, ts0), fmt.Sprint("cp", j))
	}
	waitFor(t, 30*time.Second, "the queue to run empty after the restart", func() bool { return drained(t, q2) })
	checkArrived(t, prom, "rw_restart_total", nSeries, k, ts0)
	if got := counterValue(t, reg2, "weft_metrics_generator_remote_write_requests_total", "result", ResultSuccess); got != k-4 {
		t.Errorf("requests_total{result=success} after the restart = %v, want %d", got, k-4)
	}
}

// lossyProxy forwards to Prometheus and, while lose is set, answers 503
// after Prometheus stored the request: a response lost on the way back.
type lossyProxy struct {
	target string
	lose   atomic.Bool
	srv    *httptest.Server
}

func newLossyProxy(t *testing.T, target string) *lossyProxy {
	p := &lossyProxy{target: target}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, _ := http.NewRequest(http.MethodPost, p.target, bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if p.lose.Load() {
			http.Error(w, "lost answer", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(rb)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// TestPrometheusDuplicateAfterResend: a request Prometheus stored whose
// answer was lost is sent again; Prometheus refuses it as out of order,
// which counts as delivered (result duplicate), not as a rejection; the
// same after a restart of the queue (a request read back from disk).
func TestPrometheusDuplicateAfterResend(t *testing.T) {
	prom := promtest.Start(t)
	proxy := newLossyProxy(t, prom.WriteURL())
	cfg := testConfig(t, proxy.srv.URL)
	s, reg := open(t, cfg)
	q := queue(t, s, "team-c")
	ts0 := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	// Two samples a series, so that a resend is out of order.
	two := func(k int) []prompb.TimeSeries {
		a, b := batch("rw_dup_total", 5, 2*k, ts0), batch("rw_dup_total", 5, 2*k+1, ts0)
		for i := range a {
			a[i].Samples = append(a[i].Samples, b[i].Samples...)
		}
		return a
	}
	proxy.lose.Store(true)
	enqueue(t, q, two(0), "a")
	waitFor(t, 10*time.Second, "a lost answer", func() bool {
		return counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultRetried) > 0
	})
	proxy.lose.Store(false)
	waitFor(t, 20*time.Second, "the queue to run empty", func() bool { return drained(t, q) })
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultDuplicate); got != 1 {
		t.Fatalf("requests_total{result=duplicate} = %v, want 1", got)
	}
	if got := counterValue(t, reg, "weft_metrics_generator_remote_write_dropped_requests_total"); got != 0 {
		t.Fatalf("dropped_requests_total = %v, want 0", got)
	}

	// A request stored, its answer lost, then the process stops.
	proxy.lose.Store(true)
	enqueue(t, q, two(1), "b")
	waitFor(t, 10*time.Second, "a lost answer", func() bool {
		return counterValue(t, reg, "weft_metrics_generator_remote_write_requests_total", "result", ResultRetried) > 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_ = s.Close(ctx)
	cancel()
	proxy.lose.Store(false)
	s2, reg2 := open(t, cfg)
	q2 := queue(t, s2, "team-c")
	waitFor(t, 20*time.Second, "the queue to run empty after the restart", func() bool { return drained(t, q2) })
	if got := counterValue(t, reg2, "weft_metrics_generator_remote_write_requests_total", "result", ResultDuplicate); got != 1 {
		t.Fatalf("after the restart: requests_total{result=duplicate} = %v, want 1", got)
	}
	checkArrived(t, prom, "rw_dup_total", 5, 4, ts0)
}

// TestPrometheusTenantsAndOutages: three tenants enqueue concurrently while
// Prometheus stops twice and the queue is closed and opened again once;
// every sample of every tenant arrives exactly once.
func TestPrometheusTenantsAndOutages(t *testing.T) {
	prom := promtest.Start(t)
	cfg := testConfig(t, prom.WriteURL())
	cfg.RemoteWrite[0].RemoteTimeout = time.Second
	tenants := []string{"t-a", "t-b", "t-c"}
	const nSeries, k = 8, 40
	ts0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	run := func(s *Storage, from, to int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(tenants))
		for _, tn := range tenants {
			q := queue(t, s, tn)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := from; j < to; j++ {
					if err := q.Enqueue(context.Background(), batch("rw_tenants_"+strings.ReplaceAll(tn, "-", "_")+"_total", nSeries, j, ts0), []byte(fmt.Sprint(j))); err != nil {
						errs <- err
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	s, _ := open(t, cfg)
	run(s, 0, 10)
	prom.Stop()
	run(s, 10, 20)
	prom.Restart()
	run(s, 20, 25)
	prom.Stop()
	run(s, 25, 30)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_ = s.Close(ctx)
	cancel()
	prom.Restart()
	s2, _ := open(t, cfg)
	run(s2, 30, k)
	for _, tn := range tenants {
		q := queue(t, s2, tn)
		waitFor(t, 30*time.Second, "tenant "+tn+"'s queue to run empty", func() bool { return drained(t, q) })
		if got := string(q.LastCheckpoint()); got != fmt.Sprint(k-1) {
			t.Errorf("tenant %s: LastCheckpoint %q, want %d", tn, got, k-1)
		}
	}
	for _, tn := range tenants {
		checkArrived(t, prom, "rw_tenants_"+strings.ReplaceAll(tn, "-", "_")+"_total", nSeries, k, ts0)
	}
}
