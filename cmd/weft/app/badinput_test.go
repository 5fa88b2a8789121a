package app

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
)

func span(traceID, spanID []byte, name string) *tracepb.Span {
	return &tracepb.Span{TraceId: traceID, SpanId: spanID, Name: name, StartTimeUnixNano: 1, EndTimeUnixNano: 2}
}

func request(spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "bad-input"}, Spans: spans}},
	}}}
}

func postOTLP(t *testing.T, url, contentType string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// exportGRPC sends req to a's OTLP/gRPC receiver, with x-scope-orgid set
// to tenant when it is not empty, and returns the answer.
func exportGRPC(t *testing.T, a *App, tenant string, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	t.Helper()
	grpcAddr, _ := a.OTLPAddrs()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tenant)
	}
	return coltracepb.NewTraceServiceClient(conn).Export(ctx, req)
}

var (
	goodTrace = bytes.Repeat([]byte{0x11}, 16)
	goodSpan  = bytes.Repeat([]byte{0x22}, 8)
)

func traceExists(t *testing.T, a *App, traceID []byte, tenant string) bool {
	t.Helper()
	code, _, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/traces/"+hex.EncodeToString(traceID), "", tenant)
	return code == http.StatusOK
}

func TestBadInputOverHTTP(t *testing.T) {
	a := startWeft(t, func(c *config.Config) { c.Distributor.Receivers.OTLP.Protocols.HTTP.MaxRequestBodySize = 64 << 10 })
	_, httpAddr := a.OTLPAddrs()
	url := "http://" + httpAddr + "/v1/traces"

	t.Run("malformed protobuf", func(t *testing.T) {
		code, body := postOTLP(t, url, "application/x-protobuf", []byte{0x0a, 0x50, 0x01, 0x02}, nil)
		st := decodeStatus(t, body, false)
		if code != http.StatusBadRequest || !strings.Contains(st.GetMessage(), "cannot parse OTLP traces") {
			t.Fatalf("status %d, message %q", code, st.GetMessage())
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		code, body := postOTLP(t, url, "application/json", []byte(`{"resourceSpans":[{"scopeSpans":[`), nil)
		st := decodeStatus(t, body, true)
		if code != http.StatusBadRequest || st.GetMessage() == "" {
			t.Fatalf("status %d, message %q", code, st.GetMessage())
		}
	})
	t.Run("15-byte trace ID and zero span ID beside a good span", func(t *testing.T) {
		body, _ := proto.Marshal(request(
			span(goodTrace, goodSpan, "good"),
			span(goodTrace[:15], goodSpan, "short-trace-id"),
			span(goodTrace, make([]byte, 8), "zero-span-id"),
		))
		code, resp := postOTLP(t, url, "application/x-protobuf", body, nil)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, resp)
		}
		var out coltracepb.ExportTraceServiceResponse
		if err := proto.Unmarshal(resp, &out); err != nil {
			t.Fatal(err)
		}
		ps := out.GetPartialSuccess()
		if ps.GetRejectedSpans() != 2 {
			t.Fatalf("rejected %d spans, want 2 (%q)", ps.GetRejectedSpans(), ps.GetErrorMessage())
		}
		for _, w := range []string{`span "short-trace-id"`, "trace ID must be 16 bytes, got 15"} {
			if !strings.Contains(ps.GetErrorMessage(), w) {
				t.Fatalf("message %q lacks %q", ps.GetErrorMessage(), w)
			}
		}
		if !traceExists(t, a, goodTrace, "") {
			t.Fatal("the good span beside the bad ones was not kept")
		}
	})
	t.Run("OTLP/JSON: zero span ID is partial success, 15-byte trace ID is a 400", func(t *testing.T) {
		// OTLP/JSON writes IDs in hex.
		const tmpl = `{"resourceSpans":[{"scopeSpans":[{"spans":[
			{"traceId":"33333333333333333333333333333333","spanId":"4444444444444444","name":"good-json"},
			{"traceId":"33333333333333333333333333333333","spanId":"0000000000000000","name":"zero-json"}%s]}]}]}`
		code, resp := postOTLP(t, url, "application/json", []byte(fmt.Sprintf(tmpl, "")), nil)
		var out coltracepb.ExportTraceServiceResponse
		if err := protojson.Unmarshal(resp, &out); err != nil || code != http.StatusOK {
			t.Fatalf("status %d %q: %v", code, resp, err)
		}
		if ps := out.GetPartialSuccess(); ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), `span "zero-json"`) {
			t.Fatalf("partial success %v", ps)
		}
		if !traceExists(t, a, bytes.Repeat([]byte{0x33}, 16), "") {
			t.Fatal("good JSON span not kept")
		}
		// A 15-byte ID cannot be held by the OTLP/JSON decoder at all.
		short := `,{"traceId":"555555555555555555555555555555","spanId":"4444444444444444","name":"short"}`
		code, resp = postOTLP(t, url, "application/json", []byte(fmt.Sprintf(tmpl, short)), nil)
		if st := decodeStatus(t, resp, true); code != http.StatusBadRequest || !strings.Contains(st.GetMessage(), "length mismatch") {
			t.Fatalf("status %d, message %q", code, st.GetMessage())
		}
	})
	t.Run("oversize body", func(t *testing.T) {
		big := request(span(goodTrace, goodSpan, strings.Repeat("x", 100<<10)))
		body, _ := proto.Marshal(big)
		code, resp := postOTLP(t, url, "application/x-protobuf", body, nil)
		st := decodeStatus(t, resp, false)
		if code != http.StatusRequestEntityTooLarge || !strings.Contains(st.GetMessage(), "max_request_body_size") || !strings.Contains(st.GetMessage(), "65536") {
			t.Fatalf("status %d, message %q", code, st.GetMessage())
		}
	})
}

func decodeStatus(t *testing.T, body []byte, isJSON bool) interface{ GetMessage() string } {
	t.Helper()
	st := &statusMsg{}
	var err error
	if isJSON {
		err = protojson.Unmarshal(body, st.pb())
	} else {
		err = proto.Unmarshal(body, st.pb())
	}
	if err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v: %q", err, body)
	}
	return st
}

func TestMissingTenant(t *testing.T) {
	a := startWeft(t, func(c *config.Config) { c.MultitenancyEnabled = true })
	_, httpAddr := a.OTLPAddrs()
	body, _ := proto.Marshal(request(span(goodTrace, goodSpan, "good")))

	code, resp := postOTLP(t, "http://"+httpAddr+"/v1/traces", "application/x-protobuf", body, nil)
	if st := decodeStatus(t, resp, false); code != http.StatusUnauthorized || st.GetMessage() != "no org id" {
		t.Fatalf("HTTP: status %d, message %q", code, st.GetMessage())
	}
	code, resp = postOTLP(t, "http://"+httpAddr+"/v1/traces", "application/x-protobuf", body, map[string]string{"X-Scope-OrgID": "../x"})
	if st := decodeStatus(t, resp, false); code != http.StatusBadRequest || !strings.Contains(st.GetMessage(), "invalid tenant ID") {
		t.Fatalf("HTTP bad tenant: status %d, message %q", code, st.GetMessage())
	}

	_, err := exportGRPC(t, a, "", request(span(goodTrace, goodSpan, "good")))
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "no org id" {
		t.Fatalf("gRPC: %v", err)
	}
	// With the tenant, the push lands in that tenant only.
	if _, err := exportGRPC(t, a, "team-a", request(span(goodTrace, goodSpan, "good"))); err != nil {
		t.Fatal(err)
	}
	if !traceExists(t, a, goodTrace, "team-a") || traceExists(t, a, goodTrace, "team-b") {
		t.Fatal("trace not in team-a only")
	}
	// Reads need the tenant too.
	code, b, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/traces/"+hex.EncodeToString(goodTrace), "", "")
	if code != http.StatusUnauthorized || strings.TrimSpace(string(b)) != "no org id" {
		t.Fatalf("read without tenant: %d %q", code, b)
	}
}

func TestBadSpansOverGRPC(t *testing.T) {
	a := startWeft(t, nil)
	resp, err := exportGRPC(t, a, "", request(
		span(goodTrace, goodSpan, "good"),
		span(goodTrace, make([]byte, 8), "zero-span-id"),
	))
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.GetPartialSuccess()
	if ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), `span "zero-span-id"`) || !strings.Contains(ps.GetErrorMessage(), "span ID must not be all zeros") {
		t.Fatalf("partial success %v", ps)
	}
	if !traceExists(t, a, goodTrace, "") {
		t.Fatal("good span not kept")
	}
	metrics := string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK))
	if !strings.Contains(metrics, `weft_discarded_spans_total{reason="invalid_span_id",tenant="single-tenant"} 1`) {
		t.Fatalf("discarded metric:\n%s", grep(metrics, "discarded"))
	}
}
