package app

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
)

// TestIngestionRateLimit runs weft with a runtime overrides file that gives
// tenant "limited" a small rate limit. Over HTTP and gRPC a push past it is
// refused with 429 / RESOURCE_EXHAUSTED, retry information and a message
// naming the limit, the tenant and its key; the refused spans are counted;
// other tenants go on; and a new runtime file is taken up without a restart.
func TestIngestionRateLimit(t *testing.T) {
	dir := t.TempDir()
	rt := filepath.Join(dir, "overrides.yaml")
	writeRuntime := func(rate, burst int) {
		t.Helper()
		data := "overrides:\n  limited:\n    ingestion:\n      rate_limit_bytes: " + strconv.Itoa(rate) + "\n      burst_size_bytes: " + strconv.Itoa(burst) + "\n"
		if err := os.WriteFile(rt+".tmp", []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(rt+".tmp", rt); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := proto.Marshal(request(span(goodTrace, goodSpan, "good")))
	// Room for exactly two pushes, refilled at 1 byte/s.
	writeRuntime(1, 2*len(body))
	a := startWeft(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.Overrides.PerTenantOverrideConfig = rt
		c.Overrides.PerTenantOverridePeriod = 50 * time.Millisecond
	})
	_, httpAddr := a.OTLPAddrs()
	url := "http://" + httpAddr + "/v1/traces"
	limited := map[string]string{"X-Scope-OrgID": "limited"}

	for i := range 2 {
		if code, resp := postOTLP(t, url, "application/x-protobuf", body, limited); code != http.StatusOK {
			t.Fatalf("push %d within the burst: %d %q", i, code, resp)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Scope-OrgID", "limited")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("HTTP push over the limit: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	_, err = exportGRPC(t, a, "limited", request(span(goodTrace, goodSpan, "good")))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("gRPC push over the limit: %v, want RESOURCE_EXHAUSTED", err)
	}
	for _, want := range []string{"RATE_LIMITED", `tenant "limited"`, "rate_limit_bytes"} {
		if !strings.Contains(st.Message(), want) {
			t.Errorf("message %q lacks %q", st.Message(), want)
		}
	}
	var retry bool
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
			retry = true
		}
	}
	if !retry {
		t.Fatalf("no RetryInfo in %v", st.Details())
	}
	// Another tenant has the defaults.
	if code, resp := postOTLP(t, url, "application/x-protobuf", body, map[string]string{"X-Scope-OrgID": "other"}); code != http.StatusOK {
		t.Fatalf("other tenant: %d %q", code, resp)
	}
	metrics := string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK))
	if !strings.Contains(metrics, `weft_discarded_spans_total{reason="rate_limited",tenant="limited"} 2`) {
		t.Fatalf("discarded metric:\n%s", grep(metrics, "discarded"))
	}

	// Raise the tenant's limit in the runtime file: pushes go through again
	// once it is reread.
	writeRuntime(100<<20, 100<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := postOTLP(t, url, "application/x-protobuf", body, limited)
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d after raising the limit in the runtime file", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	metrics = string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK))
	if !strings.Contains(metrics, `weft_overrides_reloads_total{result="success"}`) {
		t.Fatalf("reload metric:\n%s", grep(metrics, "overrides"))
	}
}

// TestTraceLimitsAtIngest gives tenant "capped" room for two live traces of
// at most 400 bytes in the runtime overrides file. Over HTTP a third trace
// is refused, and over gRPC a span that takes a trace past 400 bytes is:
// both as a partial success whose message names the limit, the tenant and
// the key, counted by reason, while the spans beside them are kept.
func TestTraceLimitsAtIngest(t *testing.T) {
	rt := filepath.Join(t.TempDir(), "overrides.yaml")
	runtime := "overrides:\n  capped:\n    ingestion:\n      max_traces_per_user: 2\n    global:\n      max_bytes_per_trace: 400\n"
	if err := os.WriteFile(rt, []byte(runtime), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startWeft(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.Overrides.PerTenantOverrideConfig = rt
	})
	_, httpAddr := a.OTLPAddrs()
	capped := map[string]string{"X-Scope-OrgID": "capped"}
	traceID := func(b byte) []byte { return bytes.Repeat([]byte{b}, 16) }
	spanID := func(b byte) []byte { return bytes.Repeat([]byte{b}, 8) }

	// Three traces in one push: the third is over max_traces_per_user.
	body, _ := proto.Marshal(request(span(traceID(1), spanID(1), "one"), span(traceID(2), spanID(1), "two"), span(traceID(3), spanID(1), "three")))
	code, resp := postOTLP(t, "http://"+httpAddr+"/v1/traces", "application/x-protobuf", body, capped)
	var out coltracepb.ExportTraceServiceResponse
	if err := proto.Unmarshal(resp, &out); err != nil || code != http.StatusOK {
		t.Fatalf("status %d %q: %v", code, resp, err)
	}
	ps := out.GetPartialSuccess()
	if ps.GetRejectedSpans() != 1 {
		t.Fatalf("rejected %d spans, want 1 (%q)", ps.GetRejectedSpans(), ps.GetErrorMessage())
	}
	for _, w := range []string{"LIVE_TRACES_EXCEEDED", `tenant "capped"`, "2 live traces", "max_traces_per_user"} {
		if !strings.Contains(ps.GetErrorMessage(), w) {
			t.Errorf("message %q lacks %q", ps.GetErrorMessage(), w)
		}
	}
	if !traceExists(t, a, traceID(1), "capped") || !traceExists(t, a, traceID(2), "capped") || traceExists(t, a, traceID(3), "capped") {
		t.Fatal("want traces 1 and 2 kept and trace 3 refused")
	}

	// Trace 1 is live: a span of 380 more bytes takes it past 400.
	big := span(traceID(1), spanID(2), strings.Repeat("x", 380))
	small := span(traceID(2), spanID(2), "two-more")
	res, err := exportGRPC(t, a, "capped", request(big, small))
	if err != nil {
		t.Fatalf("gRPC push: %v", err)
	}
	if ps := res.GetPartialSuccess(); ps.GetRejectedSpans() != 1 ||
		!strings.Contains(ps.GetErrorMessage(), "TRACE_TOO_LARGE") || !strings.Contains(ps.GetErrorMessage(), "(400 bytes)") ||
		!strings.Contains(ps.GetErrorMessage(), "max_bytes_per_trace") {
		t.Fatalf("partial success %v, want 1 span refused naming TRACE_TOO_LARGE, 400 bytes and the key", ps)
	}
	if n := spanCount(t, a, traceID(2), "capped"); n != 2 {
		t.Fatalf("trace 2 has %d spans, want 2: the span beside the refused one is kept", n)
	}

	metrics := string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK))
	for _, w := range []string{
		`weft_discarded_spans_total{reason="live_traces_exceeded",tenant="capped"} 1`,
		`weft_discarded_spans_total{reason="trace_too_large",tenant="capped"} 1`,
	} {
		if !strings.Contains(metrics, w) {
			t.Fatalf("metrics lack %s:\n%s", w, grep(metrics, "discarded"))
		}
	}
}

// spanCount fetches a trace of tenant by ID (v1, protobuf) and counts its
// spans; 0 when it is not found.
func spanCount(t *testing.T, a *App, traceID []byte, tenant string) int {
	t.Helper()
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/traces/"+hex.EncodeToString(traceID), "application/protobuf", tenant)
	if code == http.StatusNotFound {
		return 0
	}
	if code != http.StatusOK {
		t.Fatalf("trace %x: %d %q", traceID, code, body)
	}
	n := 0
	for _, rs := range decodeV1Proto(t, body) {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// TestTagValuesReadLimit gives tenant "small" a read.max_bytes_per_tag_values_query
// of 40 bytes in the runtime overrides file: its tag values answer is cut
// there, still 200, with a Warning header naming the key, and counted;
// another tenant with the same data gets every value.
func TestTagValuesReadLimit(t *testing.T) {
	rt := filepath.Join(t.TempDir(), "overrides.yaml")
	if err := os.WriteFile(rt, []byte("overrides:\n  small:\n    read:\n      max_bytes_per_tag_values_query: 40\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := startWeft(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.Overrides.PerTenantOverrideConfig = rt
		c.QueryFrontend.QueryEndCutoff = 0
	})
	_, httpAddr := a.OTLPAddrs()
	var spans []*tracepb.Span
	for i := range 10 {
		sp := span(bytes.Repeat([]byte{byte(i + 1)}, 16), goodSpan, "tagged")
		now := uint64(time.Now().UnixNano())
		sp.StartTimeUnixNano, sp.EndTimeUnixNano = now, now+1000
		sp.Attributes = []*commonpb.KeyValue{{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("value-%03d", i)}}}}
		spans = append(spans, sp)
	}
	body, _ := proto.Marshal(request(spans...))
	for _, ten := range []string{"small", "big"} {
		if code, resp := postOTLP(t, "http://"+httpAddr+"/v1/traces", "application/x-protobuf", body, map[string]string{"X-Scope-OrgID": ten}); code != http.StatusOK {
			t.Fatalf("push for %s: %d %q", ten, code, resp)
		}
	}
	values := func(ten string) (int, string) {
		t.Helper()
		code, body, header := fetch(t, "http://"+a.HTTPAddr()+"/api/v2/search/tag/span.k/values", "", ten)
		var out struct {
			TagValues []struct{ Value string } `json:"tagValues"`
		}
		if err := json.Unmarshal(body, &out); err != nil || code != http.StatusOK {
			t.Fatalf("tag values of %s: %d %q, %v", ten, code, body, err)
		}
		return len(out.TagValues), header.Get("Warning")
	}
	if n, warning := values("big"); n != 10 || warning != "" {
		t.Fatalf("big: %d values, warning %q; want 10 and none", n, warning)
	}
	n, warning := values("small")
	if n == 0 || n >= 10 || !strings.Contains(warning, "max_bytes_per_tag_values_query") {
		t.Fatalf("small: %d values, warning %q; want some cut, and a warning naming the key", n, warning)
	}
	metrics := string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK))
	if want := `weft_query_tag_answers_truncated_total{route="/api/v2/search/tag/{tagName}/values"} 1`; !strings.Contains(metrics, want) {
		t.Fatalf("metrics lack %s:\n%s", want, grep(metrics, "truncated"))
	}
}
