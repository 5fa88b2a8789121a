package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestNewRequiresFinder(t *testing.T) {
	h, err := New(Options{})
	if err == nil || h != nil {
		t.Fatalf("New without a finder = %v, %v; want an error", h, err)
	}
	if !strings.HasPrefix(err.Error(), "cannot create query API: ") {
		t.Fatalf("error = %q", err)
	}
}

func TestReady(t *testing.T) {
	f := func(ready func() error, wantCode int, wantBody string) {
		t.Helper()
		h, err := New(Options{Finder: &fakeFinder{}, Ready: ready})
		if err != nil {
			t.Fatal(err)
		}
		res := do(t, h, http.MethodGet, "/ready")
		if res.code != wantCode || string(res.body) != wantBody {
			t.Fatalf("GET /ready = %d %q, want %d %q", res.code, res.body, wantCode, wantBody)
		}
	}
	f(nil, http.StatusOK, "ready\n")
	f(func() error { return nil }, http.StatusOK, "ready\n")
	f(func() error { return errors.New("live-store is replaying partition 3") }, http.StatusServiceUnavailable, "live-store is replaying partition 3\n")
}

func TestEcho(t *testing.T) {
	h := newTestAPI(t, &fakeFinder{}, true)
	// No tenant needed, even with multi-tenancy on.
	res := do(t, h, http.MethodGet, "/api/echo")
	if res.code != http.StatusOK || string(res.body) != "echo\n" {
		t.Fatalf("GET /api/echo = %d %q", res.code, res.body)
	}
}

func TestBuildInfo(t *testing.T) {
	f := func(build BuildInfo, want string) {
		t.Helper()
		h, err := New(Options{Finder: &fakeFinder{}, Build: build})
		if err != nil {
			t.Fatal(err)
		}
		res := do(t, h, http.MethodGet, "/api/status/buildinfo")
		if res.code != http.StatusOK || string(res.body) != want {
			t.Fatalf("GET /api/status/buildinfo = %d\n%s\nwant\n%s", res.code, res.body, want)
		}
		if ct := res.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type = %q", ct)
		}
	}
	f(BuildInfo{
		Version:   "0.3.0",
		Revision:  "4f2a9c1",
		Branch:    "main",
		BuildUser: "ci@weft",
		BuildDate: "2026-09-30T12:00:00Z",
		GoVersion: "go1.26.8",
	}, `{"version":"0.3.0","revision":"4f2a9c1","branch":"main","buildUser":"ci@weft","buildDate":"2026-09-30T12:00:00Z","goVersion":"go1.26.8"}`)

	goVersion, _ := json.Marshal(runtime.Version())
	f(BuildInfo{Version: "dev"},
		`{"version":"dev","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":`+string(goVersion)+`}`)
}

func TestRouting(t *testing.T) {
	h := newTestAPI(t, &fakeFinder{}, false)
	f := func(method, target string, wantCode int) {
		t.Helper()
		if res := do(t, h, method, target); res.code != wantCode {
			t.Fatalf("%s %s = %d %q, want %d", method, target, res.code, res.body, wantCode)
		}
	}
	f(http.MethodGet, "/", http.StatusNotFound)
	f(http.MethodGet, "/api/search", http.StatusNotImplemented) // no Searcher
	f(http.MethodPost, "/api/search", http.StatusMethodNotAllowed)
	f(http.MethodGet, "/api/search/tags", http.StatusNotImplemented) // no Tagger
	f(http.MethodGet, "/api/traces", http.StatusNotFound)
	f(http.MethodGet, "/api/v2/traces", http.StatusNotFound)
	f(http.MethodGet, "/api/traces/", http.StatusNotFound) // no ID: 404, as in Tempo
	f(http.MethodGet, "/api/v2/traces/", http.StatusNotFound)
	f(http.MethodGet, "/api/traces/abc/extra", http.StatusNotFound)
	f(http.MethodGet, "/api/v3/traces/abc", http.StatusNotFound)
	f(http.MethodGet, "/flush", http.StatusNotFound)
	f(http.MethodPost, "/api/traces/abc", http.StatusMethodNotAllowed)
	f(http.MethodDelete, "/ready", http.StatusMethodNotAllowed)
	f(http.MethodHead, "/ready", http.StatusOK)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	custom := prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_test_things_total", Help: "Things."})
	reg.MustRegister(custom)
	custom.Add(3)

	b := mustMarshal(t, testTrace())
	finder := &fakeFinder{traces: map[[16]byte][]byte{testTraceID: b}}
	h, err := New(Options{Finder: finder, Gatherer: reg, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	do(t, h, http.MethodGet, "/api/traces/"+testTraceHex)
	do(t, h, http.MethodGet, "/api/traces/"+testTraceHex)
	do(t, h, http.MethodGet, "/api/traces/0")
	do(t, h, http.MethodGet, "/api/traces/xyz")
	do(t, h, http.MethodGet, "/api/v2/traces/zz")
	do(t, h, http.MethodGet, "/nowhere")
	do(t, h, http.MethodPost, "/ready")

	res := do(t, h, http.MethodGet, "/metrics")
	if res.code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %q", res.code, res.body)
	}
	body := string(res.body)
	for _, want := range []string{
		"weft_test_things_total 3\n",
		`weft_query_request_duration_seconds_count{route="/api/traces/{traceID}",status_code="200"} 2` + "\n",
		`weft_query_request_duration_seconds_count{route="/api/traces/{traceID}",status_code="404"} 1` + "\n",
		`weft_query_request_duration_seconds_count{route="/api/traces/{traceID}",status_code="400"} 1` + "\n",
		`weft_query_request_duration_seconds_count{route="/api/v2/traces/{traceID}",status_code="400"} 1` + "\n",
		`weft_query_request_duration_seconds_count{route="other",status_code="404"} 1` + "\n", // /nowhere
		`weft_query_request_duration_seconds_count{route="other",status_code="405"} 1` + "\n",
		`weft_query_request_duration_seconds_bucket{route="/api/traces/{traceID}",status_code="200",le="+Inf"} 2` + "\n",
		// Tempo's names and labels.
		`tempo_request_duration_seconds_count{method="GET",route="api_traces_traceid",status_code="200",ws="false"} 2` + "\n",
		`tempo_request_duration_seconds_count{method="GET",route="api_v2_traces_traceid",status_code="400",ws="false"} 1` + "\n",
		`tempo_request_duration_seconds_count{method="POST",route="other",status_code="405",ws="false"} 1` + "\n",
		// Every trace-by-ID answer is a completed query (a 400 too), as in
		// Tempo; /nowhere and /ready are no queries.
		`tempo_query_frontend_queries_total{op="traces",result="completed",tenant="single-tenant"} 5` + "\n",
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `route="/metrics"`) {
		t.Fatalf("the /metrics request was counted before it ended:\n%s", body)
	}
	if res := do(t, h, http.MethodGet, "/metrics"); !strings.Contains(string(res.body), `weft_query_request_duration_seconds_count{route="/metrics",status_code="200"} 1`) {
		t.Fatalf("/metrics request not counted:\n%s", res.body)
	}

	// A second API on the same registry shares the histogram.
	h2, err := New(Options{Finder: finder, Gatherer: reg, Metrics: reg})
	if err != nil {
		t.Fatalf("second New on the same registry: %v", err)
	}
	do(t, h2, http.MethodGet, "/api/traces/"+testTraceHex)
	res = do(t, h2, http.MethodGet, "/metrics")
	if want := `weft_query_request_duration_seconds_count{route="/api/traces/{traceID}",status_code="200"} 3`; !strings.Contains(string(res.body), want) {
		t.Fatalf("/metrics lacks %q:\n%s", want, res.body)
	}
}

func TestMetricsRegistrationConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_query_request_duration_seconds", Help: "A counter in the way."}))
	if _, err := New(Options{Finder: &fakeFinder{}, Metrics: reg}); err == nil {
		t.Fatal("New succeeded although the histogram cannot be registered")
	}
}

// TestPprof checks that the Go profiles are served as Tempo serves them: the
// index, a heap profile in pprof's protobuf format and a short CPU profile.
func TestPprof(t *testing.T) {
	h := newTestAPI(t, &fakeFinder{}, false)
	res := do(t, h, http.MethodGet, "/debug/pprof/")
	if res.code != http.StatusOK || !strings.Contains(string(res.body), "goroutine") {
		t.Fatalf("GET /debug/pprof/ = %d %.200q", res.code, res.body)
	}
	for _, target := range []string{"/debug/pprof/heap", "/debug/pprof/profile?seconds=1"} {
		res := do(t, h, http.MethodGet, target)
		// A pprof profile is gzipped protobuf.
		if res.code != http.StatusOK || len(res.body) < 2 || res.body[0] != 0x1f || res.body[1] != 0x8b {
			t.Fatalf("GET %s = %d, %d bytes, want a gzipped profile", target, res.code, len(res.body))
		}
	}
	if res := do(t, h, http.MethodGet, "/debug/pprof/no-such-profile"); res.code != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/no-such-profile = %d, want 404", res.code)
	}
}
