package app

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/config"
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
	grpcAddr, httpAddr := a.OTLPAddrs()
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

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.Export(metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", "limited"), request(span(goodTrace, goodSpan, "good")))
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
