package app

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/query/search"
)

// getAs does a GET with the tenant header set (when tenant is not empty) and
// returns the status and body.
func getAs(t *testing.T, rawURL, tenant string) (int, []byte) {
	t.Helper()
	code, body, _ := fetch(t, rawURL, "", tenant)
	return code, body
}

// sendAs pushes traces of service for tenant with the SDK over OTLP/HTTP and
// returns their trace IDs in hex.
func sendAs(t *testing.T, a *App, tenant, service string, traces int) []string {
	t.Helper()
	_, httpAddr := a.OTLPAddrs()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
		otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": tenant}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sendTraces(t, exp, service, traces) {
		if !s.Parent.IsValid() {
			ids = append(ids, s.SpanContext.TraceID().String())
		}
	}
	return ids
}

// TestTenantIsolation pushes traces for two tenants and checks, while they
// are recent and again once they are only in blocks, that neither tenant
// can fetch, find or list the tags of the other's traces through any
// route; that a multi-tenant read "a|b" sees both; and that path-like
// tenant IDs are refused with 400 everywhere.
func TestTenantIsolation(t *testing.T) {
	dir := t.TempDir()
	paths := func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.Storage.Trace.Store.Local.Path = dir + "/blocks"
		c.BlockBuilder.WAL.Path = dir + "/wal"
		c.QueryFrontend.QueryEndCutoff = 0
	}
	a := startWeft(t, paths)
	idsA := sendAs(t, a, "team-a", "svc-a", 3)
	idsB := sendAs(t, a, "team-b", "svc-b", 3)
	// A span attribute only team-a has, for the tag routes.
	_, httpAddr := a.OTLPAddrs()
	sp := span(goodTrace, goodSpan, "secret")
	sp.StartTimeUnixNano, sp.EndTimeUnixNano = uint64(time.Now().Add(-time.Minute).UnixNano()), uint64(time.Now().Add(-time.Minute).UnixNano()+1000)
	sp.Attributes = []*commonpb.KeyValue{{Key: "secret.of.a", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "hush"}}}}
	body, _ := proto.Marshal(request(sp))
	if code, resp := postOTLP(t, "http://"+httpAddr+"/v1/traces", "application/x-protobuf", body, map[string]string{"X-Scope-OrgID": "team-a"}); code != http.StatusOK {
		t.Fatalf("push: %d %q", code, resp)
	}
	idsA = append(idsA, hex.EncodeToString(goodTrace))

	check := func(phase string) {
		t.Helper()
		api := "http://" + a.HTTPAddr()
		now := time.Now().Unix()
		window := fmt.Sprintf("&start=%d&end=%d", now-3600, now+60)
		traceStatus := func(id, tenant string) int {
			code, _ := getAs(t, api+"/api/traces/"+id, tenant)
			return code
		}
		for _, id := range idsA {
			if c := traceStatus(id, "team-b"); c != http.StatusNotFound {
				t.Errorf("%s: team-b fetching team-a's trace %s: %d, want 404", phase, id, c)
			}
			if c := traceStatus(id, "team-a"); c != http.StatusOK {
				t.Errorf("%s: team-a fetching its trace %s: %d", phase, id, c)
			}
			if c := traceStatus(id, "team-b|team-a"); c != http.StatusOK {
				t.Errorf("%s: multi-tenant read of %s: %d", phase, id, c)
			}
		}
		searchIDs := func(tenant, q string) []string {
			t.Helper()
			code, b := getAs(t, api+"/api/search?q="+url.QueryEscape(q)+window, tenant)
			if code != http.StatusOK {
				t.Fatalf("%s: search %s as %s: %d %s", phase, q, tenant, code, b)
			}
			var r search.Response
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, tr := range r.Traces {
				ids = append(ids, strings.Repeat("0", 32-len(tr.TraceID))+tr.TraceID)
			}
			slices.Sort(ids)
			return ids
		}
		sorted := func(ids ...[]string) []string { out := slices.Concat(ids...); slices.Sort(out); return out }
		if got := searchIDs("team-b", `{ resource.service.name = "svc-a" }`); len(got) != 0 {
			t.Errorf("%s: team-b finds team-a's traces: %v", phase, got)
		}
		if got, want := searchIDs("team-b", `{ }`), sorted(idsB); !slices.Equal(got, want) {
			t.Errorf("%s: team-b's { } = %v, want its own %v", phase, got, want)
		}
		if got, want := searchIDs("team-a", `{ }`), sorted(idsA); !slices.Equal(got, want) {
			t.Errorf("%s: team-a's { } = %v, want its own %v", phase, got, want)
		}
		if got, want := searchIDs("team-a|team-b", `{ }`), sorted(idsA, idsB); !slices.Equal(got, want) {
			t.Errorf("%s: multi-tenant { } = %v, want both tenants' %v", phase, got, want)
		}
		tagsHave := func(tenant, route, what string) bool {
			t.Helper()
			code, b := getAs(t, api+route+strings.TrimPrefix(window, "&")+"&", tenant)
			if code != http.StatusOK {
				t.Fatalf("%s: %s as %s: %d %s", phase, route, tenant, code, b)
			}
			return strings.Contains(string(b), what)
		}
		for _, route := range []string{"/api/search/tags?", "/api/v2/search/tags?"} {
			if tagsHave("team-b", route, "secret.of.a") {
				t.Errorf("%s: team-b lists team-a's tag through %s", phase, route)
			}
			if !tagsHave("team-a", route, "secret.of.a") || !tagsHave("team-b|team-a", route, "secret.of.a") {
				t.Errorf("%s: team-a's tag missing from %s for team-a or a multi-tenant read", phase, route)
			}
		}
		for _, route := range []string{"/api/search/tag/service.name/values?", "/api/v2/search/tag/resource.service.name/values?",
			"/api/search/tag/secret.of.a/values?", "/api/v2/search/tag/span.secret.of.a/values?"} {
			if tagsHave("team-b", route, "svc-a") || tagsHave("team-b", route, "hush") {
				t.Errorf("%s: team-b lists team-a's values through %s", phase, route)
			}
		}
		if !tagsHave("team-a|team-b", "/api/v2/search/tag/resource.service.name/values?", "svc-a") ||
			!tagsHave("team-a|team-b", "/api/v2/search/tag/resource.service.name/values?", "svc-b") {
			t.Errorf("%s: multi-tenant tag values lack a tenant's service", phase)
		}
	}
	check("recent")

	a = restartOnBlocks(t, a, paths, "team-a", "team-b")
	check("blocks")

	// Path-like and otherwise invalid tenant IDs: 400 on every route.
	api := "http://" + a.HTTPAddr()
	routes := []string{
		"/api/traces/" + idsA[0], "/api/v2/traces/" + idsA[0], "/api/search?q=%7B%7D",
		"/api/search/tags", "/api/v2/search/tags", "/api/search/tag/service.name/values", "/api/v2/search/tag/resource.service.name/values",
	}
	_, httpAddr = a.OTLPAddrs()
	for _, bad := range []string{"..", "../team-a", "team-a/../team-b", "team-a|..", "team-a||team-b", "%2e%2e"} {
		for _, r := range routes {
			if code, b := getAs(t, api+r, bad); code != http.StatusBadRequest || !strings.Contains(string(b), "invalid tenant ID") {
				t.Errorf("GET %s as %q: %d %q, want 400 naming the invalid tenant ID", r, bad, code, b)
			}
		}
		if code, _ := postOTLP(t, "http://"+httpAddr+"/v1/traces", "application/x-protobuf", body, map[string]string{"X-Scope-OrgID": bad}); code != http.StatusBadRequest {
			t.Errorf("push as %q: %d, want 400", bad, code)
		}
	}
}
