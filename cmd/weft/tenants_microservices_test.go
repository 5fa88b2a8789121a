package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// tenantTrace is traceRequest(seq) with service.name set to service.
func tenantTrace(t *testing.T, seq uint64, service string) ([16]byte, []byte) {
	t.Helper()
	tid, body := traceRequest(seq)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	req.ResourceSpans[0].Resource.Attributes[0].Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: service}}
	b, err := proto.Marshal(&req)
	if err != nil {
		t.Fatal(err)
	}
	return tid, b
}

// doAs sends a request with X-Scope-OrgID set to tenant (none when empty)
// and returns the status and body.
func doAs(t *testing.T, method, u, tenant string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-protobuf")
	}
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestTenantIsolationMicroservices checks tenant isolation across
// processes: the distributor and the readers (live-store, block-builder,
// querier, query-frontend) exchange spans over Kafka, and tenant B can
// neither fetch, find nor list the tags of tenant A's traces, while they are
// recent and again from blocks only; path-like tenant IDs get 400.
func TestTenantIsolationMicroservices(t *testing.T) {
	broker := startDevKafka(t)
	data := t.TempDir()
	dps, rps := newPorts(t), newPorts(t)
	dcfg := writeFile(t, "distributor.yaml", kafkaConfig(dps, data, broker)+"multitenancy_enabled: true\n")
	rcfg := writeFile(t, "readers.yaml", kafkaConfig(rps, data, broker)+"multitenancy_enabled: true\n")
	const readTargets = "-target=live-store,block-builder,querier,query-frontend"
	readers := startWeft(t, nil, "-config.file="+rcfg, readTargets)
	readers.waitReady(t, loopback(rps.http))
	dist := startWeft(t, nil, "-config.file="+dcfg, "-target=distributor")
	dist.waitReady(t, loopback(dps.http))

	push := "http://" + loopback(dps.otlpHTTP) + "/v1/traces"
	ids := map[string][][16]byte{}
	for seq := range uint64(40) {
		tenant, service := "team-a", "svc-a"
		if seq%2 == 1 {
			tenant, service = "team-b", "svc-b"
		}
		tid, body := tenantTrace(t, seq+1, service)
		if code, resp := doAs(t, http.MethodPost, push, tenant, body); code != http.StatusOK {
			t.Fatalf("push as %s: %d %s", tenant, code, resp)
		}
		ids[tenant] = append(ids[tenant], tid)
	}

	api := "http://" + loopback(rps.http)
	check := func(phase string) {
		t.Helper()
		// Wait until team-a sees all of its own traces.
		waitUntil(t, 30*time.Second, func() bool {
			for _, id := range ids["team-a"] {
				if code, _ := doAs(t, http.MethodGet, api+"/api/traces/"+hex.EncodeToString(id[:]), "team-a", nil); code != http.StatusOK {
					return false
				}
			}
			return true
		})
		for _, id := range ids["team-a"] {
			if code, _ := doAs(t, http.MethodGet, api+"/api/traces/"+hex.EncodeToString(id[:]), "team-b", nil); code != http.StatusNotFound {
				t.Errorf("%s: team-b fetching team-a's trace %x: %d, want 404", phase, id, code)
			}
		}
		now := time.Now().Unix()
		window := fmt.Sprintf("start=%d&end=%d", now-600, now+60)
		search := func(tenant, q string) string {
			code, body := doAs(t, http.MethodGet, api+"/api/search?limit=1000&q="+url.QueryEscape(q)+"&"+window, tenant, nil)
			if code != http.StatusOK {
				t.Fatalf("%s: search as %s: %d %s", phase, tenant, code, body)
			}
			return body
		}
		if n := strings.Count(search("team-b", `{ resource.service.name = "svc-a" }`), `"traceID"`); n != 0 {
			t.Errorf("%s: team-b finds %d of team-a's traces", phase, n)
		}
		if n := strings.Count(search("team-b", `{ name = "op-0" }`), `"traceID"`); n != len(ids["team-b"]) {
			t.Errorf("%s: team-b's search finds %d traces, want its own %d", phase, n, len(ids["team-b"]))
		}
		if n := strings.Count(search("team-a|team-b", `{ name = "op-0" }`), `"traceID"`); n != len(ids["team-a"])+len(ids["team-b"]) {
			t.Errorf("%s: a multi-tenant search finds %d traces, want %d", phase, n, len(ids["team-a"])+len(ids["team-b"]))
		}
		for _, route := range []string{"/api/search/tag/service.name/values", "/api/v2/search/tag/resource.service.name/values"} {
			code, body := doAs(t, http.MethodGet, api+route+"?"+window, "team-b", nil)
			if code != http.StatusOK || strings.Contains(body, "svc-a") || !strings.Contains(body, "svc-b") {
				t.Errorf("%s: %s as team-b: %d %s", phase, route, code, body)
			}
		}
	}
	check("recent")

	// Blocks only: once the blocks are written, stop the readers and run a
	// querier and a query-frontend alone (a live-store would replay Kafka).
	waitUntil(t, 30*time.Second, func() bool { return len(blockSpans(t, data+"/blocks")) >= 40*spansPerTrace })
	if code := readers.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("readers exited %d", code)
	}
	readers = startWeft(t, nil, "-config.file="+rcfg, "-target=querier,query-frontend")
	readers.waitReady(t, loopback(rps.http))
	check("blocks")

	for _, bad := range []string{"..", "../team-a", "team-a/x", "team-a|.."} {
		if code, _ := doAs(t, http.MethodGet, api+"/api/search?q=%7B%7D", bad, nil); code != http.StatusBadRequest {
			t.Errorf("search as %q: %d, want 400", bad, code)
		}
		_, body := tenantTrace(t, 999, "svc-x")
		if code, _ := doAs(t, http.MethodPost, push, bad, body); code != http.StatusBadRequest {
			t.Errorf("push as %q: %d, want 400", bad, code)
		}
	}
}
