package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/pipelines"
)

// httpResponse is an answer read whole.
type httpResponse struct {
	code   int
	header http.Header
	body   []byte
}

// post sends body to the source's /v1/traces with the given headers
// (name, value pairs).
func post(t *testing.T, s *Source, body io.Reader, headers ...string) httpResponse {
	t.Helper()
	return do(t, s, http.MethodPost, body, headers...)
}

func do(t *testing.T, s *Source, method string, body io.Reader, headers ...string) httpResponse {
	t.Helper()
	_, addr := s.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+TracesPath, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, TracesPath, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("cannot read the response: %v", err)
	}
	return httpResponse{code: resp.StatusCode, header: resp.Header, body: b}
}

// status decodes the body of an error answer as a google.rpc.Status in the
// given encoding.
func (r httpResponse) status(t *testing.T, json bool) *spb.Status {
	t.Helper()
	st := &spb.Status{}
	var err error
	if json {
		err = protojson.Unmarshal(r.body, st)
	} else {
		err = proto.Unmarshal(r.body, st)
	}
	if err != nil {
		t.Fatalf("cannot decode the answer %q as a google.rpc.Status: %v", r.body, err)
	}
	return st
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestHTTPExporter(t *testing.T) {
	for _, tc := range []struct {
		name        string
		encoding    otlptracehttp.Encoding
		compression otlptracehttp.Compression
	}{
		{"protobuf", otlptracehttp.EncodingProtobuf, otlptracehttp.NoCompression},
		{"protobuf gzip", otlptracehttp.EncodingProtobuf, otlptracehttp.GzipCompression},
		{"json", otlptracehttp.EncodingJSON, otlptracehttp.NoCompression},
		{"json gzip", otlptracehttp.EncodingJSON, otlptracehttp.GzipCompression},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &fakeOutput{}
			s, _ := startSource(t, out, func(c *Config) { c.Protocols.GRPC = nil })
			grpcAddr, addr := s.Addrs()
			if grpcAddr != "" {
				t.Errorf("gRPC address %q with gRPC off", grpcAddr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			exp, err := otlptracehttp.New(ctx,
				otlptracehttp.WithEndpoint(addr),
				otlptracehttp.WithInsecure(),
				otlptracehttp.WithEncoding(tc.encoding),
				otlptracehttp.WithCompression(tc.compression),
				otlptracehttp.WithHeaders(map[string]string{tenant.Header: "acme"}),
				otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
				otlptracehttp.WithTimeout(waitTimeout),
			)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = exp.Shutdown(ctx) }()
			if err := exp.ExportSpans(ctx, testSpans().Snapshots()); err != nil {
				t.Fatalf("ExportSpans: %v", err)
			}
			checkPushed(t, out, "acme")
		})
	}
}

func TestHTTPRawRequests(t *testing.T) {
	for _, tc := range []struct {
		name        string
		contentType string
		body        func(t *testing.T) []byte
		gzip        bool
		wantBody    string // for JSON answers
	}{
		{"protobuf", "application/x-protobuf", testProtoBody, false, ""},
		{"application/protobuf", "application/protobuf", testProtoBody, false, ""},
		{"protobuf gzip", "application/x-protobuf", testProtoBody, true, ""},
		{"json", "application/json", testJSONBody, false, "{}"},
		{"json charset gzip", "application/json; charset=utf-8", testJSONBody, true, "{}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := &fakeOutput{}
			s, _ := startSource(t, out, nil)
			body := tc.body(t)
			headers := []string{"Content-Type", tc.contentType, tenant.Header, "tenant-1"}
			if tc.gzip {
				body = gzipped(t, body)
				headers = append(headers, "Content-Encoding", "gzip")
			}
			resp := post(t, s, bytes.NewReader(body), headers...)
			if resp.code != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", resp.code, resp.body)
			}
			wantType, _, _ := strings.Cut(tc.contentType, ";")
			if got := resp.header.Get("Content-Type"); got != wantType {
				t.Errorf("answer Content-Type %q, want %q", got, wantType)
			}
			if tc.wantBody != "" && string(resp.body) != tc.wantBody {
				t.Errorf("answer %q, want %q", resp.body, tc.wantBody)
			}
			if tc.wantBody == "" && len(resp.body) != 0 {
				t.Errorf("protobuf answer %x, want an empty ExportTraceServiceResponse", resp.body)
			}
			checkPushed(t, out, "tenant-1")
		})
	}
}

func TestHTTPPartialSuccess(t *testing.T) {
	out := &fakeOutput{respond: answer(2, "2 spans are too old", nil, nil)}
	s, _ := startSource(t, out, nil)

	t.Run("protobuf", func(t *testing.T) {
		resp := post(t, s, bytes.NewReader(testProtoBody(t)), "Content-Type", "application/x-protobuf")
		if resp.code != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.code)
		}
		er := ptraceotlp.NewExportResponse()
		if err := er.UnmarshalProto(resp.body); err != nil {
			t.Fatal(err)
		}
		if ps := er.PartialSuccess(); ps.RejectedSpans() != 2 || ps.ErrorMessage() != "2 spans are too old" {
			t.Errorf("partial success %d %q, want 2 with the message", ps.RejectedSpans(), ps.ErrorMessage())
		}
	})
	t.Run("json", func(t *testing.T) {
		resp := post(t, s, bytes.NewReader(testJSONBody(t)), "Content-Type", "application/json")
		if resp.code != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.code)
		}
		want := `{"partialSuccess":{"rejectedSpans":"2","errorMessage":"2 spans are too old"}}`
		if string(resp.body) != want {
			t.Errorf("answer %s, want %s", resp.body, want)
		}
	})
}

func TestHTTPMalformedJSON(t *testing.T) {
	out := &fakeOutput{}
	s, _ := startSource(t, out, nil)
	for _, body := range []string{`{"resourceSpans": [`, `{"resourceSpans": 5}`, `not json`, "{\"resourceSpans\": \xff\xfe}"} {
		resp := post(t, s, strings.NewReader(body), "Content-Type", "application/json")
		if resp.code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", body, resp.code)
			continue
		}
		if got := resp.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("%s: answer Content-Type %q, want application/json", body, got)
		}
		st := resp.status(t, true)
		if codes.Code(st.GetCode()) != codes.InvalidArgument || !strings.Contains(st.GetMessage(), "cannot decode the OTLP/JSON request: ") {
			t.Errorf("%s: answer %v, want InvalidArgument saying the JSON cannot be decoded", body, st)
		}
		// The decoder's message says what it expected and where.
		if msg := st.GetMessage(); !strings.Contains(msg, "expect") || !strings.Contains(msg, "byte") || strings.Contains(msg, "\x00") {
			t.Errorf("%s: message %q does not say what is wrong and where", body, msg)
		}
		t.Logf("%s: %s", body, st.GetMessage())
	}
	if n := len(out.messages()); n != 0 {
		t.Errorf("%d messages pushed, want none", n)
	}
}

func TestHTTPBadRequests(t *testing.T) {
	out := &fakeOutput{}
	s, _ := startSource(t, out, nil)

	t.Run("method", func(t *testing.T) {
		for _, method := range []string{http.MethodGet, http.MethodPut} {
			resp := do(t, s, method, nil)
			if resp.code != http.StatusMethodNotAllowed || resp.header.Get("Allow") != http.MethodPost {
				t.Errorf("%s: status %d Allow %q, want 405 with Allow: POST", method, resp.code, resp.header.Get("Allow"))
			}
		}
	})
	t.Run("content type", func(t *testing.T) {
		for _, ct := range []string{"", "text/plain", "application/xml", "not a ; media type;"} {
			resp := post(t, s, bytes.NewReader(testProtoBody(t)), "Content-Type", ct)
			if resp.code != http.StatusUnsupportedMediaType {
				t.Errorf("Content-Type %q: status %d, want 415", ct, resp.code)
			}
		}
	})
	t.Run("content encoding", func(t *testing.T) {
		resp := post(t, s, bytes.NewReader(testProtoBody(t)), "Content-Type", "application/x-protobuf", "Content-Encoding", "br")
		if resp.code != http.StatusUnsupportedMediaType {
			t.Errorf("status %d, want 415", resp.code)
		}
	})
	t.Run("bad gzip", func(t *testing.T) {
		for name, body := range map[string][]byte{
			"not gzip":  testProtoBody(t),
			"truncated": gzipped(t, testProtoBody(t))[:20],
		} {
			resp := post(t, s, bytes.NewReader(body), "Content-Type", "application/x-protobuf", "Content-Encoding", "gzip")
			if resp.code != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400", name, resp.code)
				continue
			}
			if st := resp.status(t, false); !strings.Contains(st.GetMessage(), "gzip") {
				t.Errorf("%s: message %q does not name gzip", name, st.GetMessage())
			}
		}
	})
	t.Run("path", func(t *testing.T) {
		_, addr := s.Addrs()
		resp, err := http.Post("http://"+addr+"/v1/metrics", "application/x-protobuf", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
	})
	if n := len(out.messages()); n != 0 {
		t.Errorf("%d messages pushed, want none", n)
	}
}

func TestHTTPBodyTooLarge(t *testing.T) {
	const limit = 4096
	out := &fakeOutput{}
	s, _ := startSource(t, out, func(c *Config) { c.Protocols.HTTP.MaxRequestBodySize = limit })
	big := bytes.Repeat([]byte{0}, limit+1)
	bomb := gzipped(t, make([]byte, 1<<20))
	if len(bomb) >= limit {
		t.Fatalf("the gzip bomb is %d bytes, want it under the limit", len(bomb))
	}
	for _, tc := range []struct {
		name    string
		body    io.Reader
		headers []string
	}{
		{"content length", bytes.NewReader(big), nil},
		// A reader of unknown length makes the client send it chunked.
		{"chunked", io.MultiReader(bytes.NewReader(big)), nil},
		{"compressed over the limit", io.MultiReader(bytes.NewReader(gzipped(t, randomBytes(2*limit)))), []string{"Content-Encoding", "gzip"}},
		{"gzip bomb", bytes.NewReader(bomb), []string{"Content-Encoding", "gzip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, s, tc.body, append([]string{"Content-Type", "application/x-protobuf"}, tc.headers...)...)
			if resp.code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d (%s), want 413", resp.code, resp.body)
			}
			msg := resp.status(t, false).GetMessage()
			for _, want := range []string{fmt.Sprintf("%d bytes", limit), maxRequestBodySizeKey} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not contain %q", msg, want)
				}
			}
		})
	}
	// A body of exactly the limit passes.
	exact := gzipped(t, make([]byte, limit))
	if resp := post(t, s, bytes.NewReader(exact), "Content-Type", "application/x-protobuf", "Content-Encoding", "gzip"); resp.code != http.StatusOK {
		t.Errorf("body of exactly the limit: status %d (%s), want 200", resp.code, resp.body)
	}
	if n := len(out.messages()); n != 1 {
		t.Errorf("%d messages pushed, want 1", n)
	}
	// The four refusals are counted.
	if n := testutil.ToFloat64(s.metrics.requests.WithLabelValues(protocolHTTP, "ResourceExhausted")); n != 4 {
		t.Errorf("weft_otlp_requests_total{code=\"ResourceExhausted\"} = %v, want 4", n)
	}
}

// randomBytes returns n bytes that gzip cannot shrink.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestHTTPErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		out        *fakeOutput
		retryAfter time.Duration
		wantHTTP   int
		wantCode   codes.Code
		wantRetry  string
	}{
		{"invalid", &fakeOutput{respond: answer(0, "", status.Error(codes.InvalidArgument, "bad trace ID"), nil)},
			time.Second, http.StatusBadRequest, codes.InvalidArgument, ""},
		{"unauthenticated", &fakeOutput{respond: answer(0, "", status.Error(codes.Unauthenticated, "no org id"), nil)},
			time.Second, http.StatusUnauthorized, codes.Unauthenticated, ""},
		{"rate limited", &fakeOutput{respond: answer(0, "", status.Error(codes.ResourceExhausted, "rate limited"), nil)},
			5 * time.Second, http.StatusTooManyRequests, codes.ResourceExhausted, "5"},
		{"unavailable outcome", &fakeOutput{respond: answer(0, "", status.Error(codes.Unavailable, "ingesters down"), nil)},
			1500 * time.Millisecond, http.StatusServiceUnavailable, codes.Unavailable, "2"},
		{"push error", &fakeOutput{respond: answer(0, "", nil, status.Error(codes.Unavailable, "pipeline closed"))},
			5 * time.Second, http.StatusServiceUnavailable, codes.Unavailable, "5"},
		{"plain error", &fakeOutput{respond: answer(0, "", errors.New("disk on fire"), nil)},
			time.Second, http.StatusInternalServerError, codes.Internal, ""},
		{"other code", &fakeOutput{respond: answer(0, "", status.Error(codes.PermissionDenied, "no"), nil)},
			time.Second, http.StatusInternalServerError, codes.PermissionDenied, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startSource(t, tc.out, func(c *Config) { c.RetryAfter = tc.retryAfter })
			for _, json := range []bool{false, true} {
				body, ct := testProtoBody(t), "application/x-protobuf"
				if json {
					body, ct = testJSONBody(t), "application/json"
				}
				resp := post(t, s, bytes.NewReader(body), "Content-Type", ct)
				if resp.code != tc.wantHTTP {
					t.Fatalf("%s: status %d (%s), want %d", ct, resp.code, resp.body, tc.wantHTTP)
				}
				if got := resp.header.Get("Retry-After"); got != tc.wantRetry {
					t.Errorf("%s: Retry-After %q, want %q", ct, got, tc.wantRetry)
				}
				if got := resp.header.Get("Content-Type"); got != ct {
					t.Errorf("answer Content-Type %q, want %q", got, ct)
				}
				if st := resp.status(t, json); codes.Code(st.GetCode()) != tc.wantCode || st.GetMessage() == "" {
					t.Errorf("%s: answer %v, want code %s with a message", ct, st, tc.wantCode)
				}
			}
		})
	}
}

func TestHTTPPushTimeout(t *testing.T) {
	out := &fakeOutput{respond: func(ctx context.Context, _ *message.Message) (*pipelines.Outcome, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	s, _ := startSource(t, out, func(c *Config) {
		c.PushTimeout = 100 * time.Millisecond
		c.RetryAfter = 3 * time.Second
	})
	resp := post(t, s, bytes.NewReader(testProtoBody(t)), "Content-Type", "application/x-protobuf")
	if resp.code != http.StatusServiceUnavailable {
		t.Fatalf("status %d (%s), want 503", resp.code, resp.body)
	}
	if got := resp.header.Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After %q, want 3", got)
	}
	if st := resp.status(t, false); codes.Code(st.GetCode()) != codes.Unavailable || !strings.Contains(st.GetMessage(), "push_timeout") {
		t.Errorf("answer %v, want Unavailable naming push_timeout", st)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 5 * time.Second: 5,
	} {
		if got := retryAfterSeconds(d); got != want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}
