package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/pipelines"
)

// lastPayload is an Output that keeps only the last payload pushed.
type lastPayload struct{ p atomic.Pointer[[]byte] }

func (o *lastPayload) Push(_ context.Context, msg *message.Message) (*pipelines.Outcome, error) {
	b := []byte(msg.Payload)
	o.p.Store(&b)
	return pipelines.NewOutcomeForTest(0, "", nil), nil
}

// FuzzHTTPTraces posts arbitrary bodies to the OTLP/HTTP handler, as
// protobuf or JSON, plain or gzipped. The handler must not panic or answer
// 500; a refusal is 400, 413 or 415 with a google.rpc.Status body; an
// accepted OTLP/JSON request reaches the pipeline as protobuf holding the
// same spans.
func FuzzHTTPTraces(f *testing.F) {
	td := testTraces()
	pb, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	js, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	f.Add(pb, false, false)
	f.Add(pb, false, true)
	f.Add(js, true, false)
	f.Add(js, true, true)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x"}]}]}]}`), true, false)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8e","spanId":""}]}]}]}`), true, false)
	f.Add([]byte(`{"resourceSpans":`), true, false)
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00}, false, true)
	out := &lastPayload{}
	cfg := testConfig()
	cfg.Protocols.HTTP.MaxRequestBodySize = 1 << 20
	s, err := New(pipelines.Settings{Name: "otlp", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: prometheus.NewRegistry(), Output: out}, cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, isJSON, gz bool) {
		sent := body
		if gz {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			_, _ = w.Write(body)
			_ = w.Close()
			sent = buf.Bytes()
		}
		req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(sent))
		ct := contentTypeProtobuf
		if isJSON {
			ct = contentTypeJSON
		}
		req.Header.Set("Content-Type", ct)
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		out.p.Store(nil)
		rec := httptest.NewRecorder()
		s.handleTraces(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			var st spb.Status
			var err error
			if isJSON {
				err = protojson.Unmarshal(rec.Body.Bytes(), &st)
			} else {
				err = proto.Unmarshal(rec.Body.Bytes(), &st)
			}
			if err != nil || st.GetMessage() == "" {
				t.Fatalf("%d with a body that is not a google.rpc.Status with a message: %q (%v)", rec.Code, rec.Body.Bytes(), err)
			}
			return
		default:
			t.Fatalf("answered %d: %s", rec.Code, rec.Body.Bytes())
		}
		if !isJSON {
			return // protobuf is passed on as is; the distributor parses it (FuzzProcess)
		}
		pushed := out.p.Load()
		if pushed == nil {
			t.Fatal("200 but nothing reached the pipeline")
		}
		want := ptraceotlp.NewExportRequest()
		if err := want.UnmarshalJSON(body); err != nil {
			t.Fatalf("200 for JSON that does not decode: %v", err)
		}
		got, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(*pushed)
		if err != nil {
			t.Fatalf("the pipeline got protobuf that does not decode: %v", err)
		}
		if got.SpanCount() != want.Traces().SpanCount() {
			t.Fatalf("%d spans reached the pipeline, the request had %d", got.SpanCount(), want.Traces().SpanCount())
		}
	})
}
