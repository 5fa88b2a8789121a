package promtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

func write(t *testing.T, s *Server, series ...prompb.TimeSeries) {
	t.Helper()
	req := prompb.WriteRequest{Timeseries: series}
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, s.WriteURL(), bytes.NewReader(snappy.Encode(nil, raw)))
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: HTTP %d", resp.StatusCode)
	}
}

func counter(name string, ts time.Time, v float64) prompb.TimeSeries {
	return prompb.TimeSeries{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "t"}},
		Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: v}},
	}
}

// TestServer writes by remote write, reads back with an instant query and a
// range selector, and finds the samples again after Restart.
func TestServer(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().Add(-10 * time.Second).Truncate(time.Millisecond)
	write(t, s, counter("promtest_total", now, 5))
	write(t, s, counter("promtest_total", now.Add(time.Second), 2)) // a reset
	write(t, s, counter("promtest_total", now.Add(2*time.Second), 7))

	v, err := s.Query(ctx, `promtest_total{job="t"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].Value != 7 || v[0].Metric["job"] != "t" {
		t.Fatalf("instant query: %+v, want one sample of 7", v)
	}
	v, err = s.QueryAt(ctx, `promtest_total`, now.Add(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || v[0].Value != 5 {
		t.Fatalf("instant query at the first sample: %+v, want one sample of 5", v)
	}
	v, err = s.Query(ctx, `sum(promtest_total) * 2`)
	if err != nil || len(v) != 1 || v[0].Value != 14 {
		t.Fatalf("sum * 2: %+v, %v; want 14", v, err)
	}
	check := func() {
		t.Helper()
		ss, err := s.Series(ctx, `promtest_total`, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) != 1 || len(ss[0].Points) != 3 {
			t.Fatalf("range selector: %+v, want one series of 3 points", ss)
		}
		if got := ss[0].Increase(true); got != 5+2+5 {
			t.Fatalf("increase from zero: %v, want 12", got)
		}
		if got := ss[0].Increase(false); got != 7 {
			t.Fatalf("increase: %v, want 7", got)
		}
		if !ss[0].Points[0].Time.Equal(now) {
			t.Fatalf("first point at %v, want %v", ss[0].Points[0].Time, now)
		}
	}
	check()

	s.Stop()
	if _, err := s.Query(ctx, "1"); err == nil {
		t.Fatal("a stopped prometheus answered")
	}
	s.Restart()
	check()
}

type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestMissingBinary: a missing binary fails the test and says how to
// install it.
func TestMissingBinary(t *testing.T) {
	t.Setenv("WEFT_PROMETHEUS_BIN", "/nonexistent/prometheus")
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Start(f) }()
	<-done
	if want := NotFound + " (WEFT_PROMETHEUS_BIN=/nonexistent/prometheus is not a file)"; f.msg != want {
		t.Fatalf("message %q, want %q", f.msg, want)
	}
	t.Setenv("WEFT_PROMETHEUS_BIN", "")
	t.Setenv("PATH", t.TempDir())
	f = &fatalTB{TB: t}
	done = make(chan struct{})
	go func() { defer close(done); Start(f) }()
	<-done
	if f.msg != NotFound {
		t.Fatalf("message %q, want %q", f.msg, NotFound)
	}
}
