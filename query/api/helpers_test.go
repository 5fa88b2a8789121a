package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// findCall is one call to fakeFinder.FindTraceByID.
type findCall struct {
	tenant     string
	id         [16]byte
	start, end int64
}

// fakeFinder answers from a map of trace ID to TracesData bytes and records
// every call.
type fakeFinder struct {
	mu     sync.Mutex
	traces map[[16]byte][]byte
	err    error
	calls  []findCall
}

func (f *fakeFinder) FindTraceByID(_ context.Context, tenant string, id [16]byte, start, end int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, findCall{tenant, id, start, end})
	if f.err != nil {
		return nil, f.err
	}
	return f.traces[id], nil
}

func (f *fakeFinder) lastCall(t *testing.T) findCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatalf("finder was not called")
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeFinder) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

var (
	testTraceID = [16]byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc7, 0x00}
	// testTraceHex is testTraceID in hex.
	testTraceHex = "5b8efff798038103d269b633813fc700"
	rootSpanID   = []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x00}
	childSpanID  = []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}
	otherSpanID  = []byte{0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18}
	linkTraceID  = []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99}
)

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// testTrace is a trace of two ResourceSpans covering most of OTLP: resource
// attributes, scopes, attributes of every value type, events, links, parent
// span IDs, an error status and server/client kinds.
func testTrace() *tracepb.TracesData {
	return &tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{
		{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
				strAttr("service.name", "frontend"),
				{Key: "host.cpus", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 8}}},
			}},
			ScopeSpans: []*tracepb.ScopeSpans{{
				Scope: &commonpb.InstrumentationScope{Name: "my.library", Version: "1.0.0"},
				Spans: []*tracepb.Span{{
					TraceId:           testTraceID[:],
					SpanId:            rootSpanID,
					Name:              "GET /checkout",
					Kind:              tracepb.Span_SPAN_KIND_SERVER,
					StartTimeUnixNano: 1689969302000000000,
					EndTimeUnixNano:   1689970000000000000,
					Attributes: []*commonpb.KeyValue{
						strAttr("http.method", "GET"),
						{Key: "http.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 500}}},
						{Key: "sampled", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}},
						{Key: "ratio", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.25}}},
						{Key: "payload", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1, 2, 0xff}}}},
						{Key: "tags", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
							{Value: &commonpb.AnyValue_StringValue{StringValue: "a"}},
							{Value: &commonpb.AnyValue_IntValue{IntValue: -3}},
						}}}}},
						{Key: "labels", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
							strAttr("team", "payments"),
						}}}}},
					},
					Events: []*tracepb.Span_Event{{
						TimeUnixNano: 1689969303000000000,
						Name:         "exception",
						Attributes:   []*commonpb.KeyValue{strAttr("exception.message", "out of stock")},
					}},
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "checkout failed"},
				}},
			}},
			SchemaUrl: "https://opentelemetry.io/schemas/1.21.0",
		},
		{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "cart")}},
			ScopeSpans: []*tracepb.ScopeSpans{{
				Scope: &commonpb.InstrumentationScope{Name: "cart.client", Version: "2.3.4"},
				Spans: []*tracepb.Span{
					{
						TraceId:           testTraceID[:],
						SpanId:            childSpanID,
						ParentSpanId:      rootSpanID,
						TraceState:        "vendor=1",
						Name:              "reserve",
						Kind:              tracepb.Span_SPAN_KIND_CLIENT,
						StartTimeUnixNano: 1689969302100000000,
						EndTimeUnixNano:   1689969302900000000,
						Links: []*tracepb.Span_Link{{
							TraceId:    linkTraceID,
							SpanId:     otherSpanID,
							Attributes: []*commonpb.KeyValue{strAttr("link.kind", "follows")},
						}},
						DroppedAttributesCount: 2,
						Status:                 &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK},
					},
					{
						TraceId:           testTraceID[:],
						SpanId:            otherSpanID,
						ParentSpanId:      childSpanID,
						Name:              "db",
						Kind:              tracepb.Span_SPAN_KIND_INTERNAL,
						StartTimeUnixNano: 1689969302200000000,
						EndTimeUnixNano:   1689969302300000000,
						Status:            &tracepb.Status{},
					},
				},
			}},
		},
	}}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("cannot marshal %T: %v", m, err)
	}
	return b
}

// newTestAPI returns the handler over finder, with multi-tenancy as given.
func newTestAPI(t *testing.T, finder TraceFinder, multitenancy bool) http.Handler {
	t.Helper()
	h, err := New(Options{Finder: finder, MultitenancyEnabled: multitenancy})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

// response is what do returns.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// do serves a request with the given method, target and headers (pairs of
// name and value).
func do(t *testing.T, h http.Handler, method, target string, headers ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("cannot read body: %v", err)
	}
	return response{code: res.StatusCode, header: res.Header, body: body}
}

// tempoSchema holds Tempo's response messages (pkg/tempopb/tempo.proto),
// restated here so that responses are decoded by real protobuf machinery:
// strictly for JSON (an unknown field name fails, as in Tempo's own client)
// and by field number for the binary encoding.
type tempoSchema struct {
	trace, traceV1, response protoreflect.MessageDescriptor
}

var (
	tempoSchemaOnce sync.Once
	tempoSchemaVal  tempoSchema
	tempoSchemaErr  error
)

func loadTempoSchema(t *testing.T) tempoSchema {
	t.Helper()
	tempoSchemaOnce.Do(func() {
		repeated := descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
		optional := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
		field := func(name string, num int32, label *descriptorpb.FieldDescriptorProto_Label, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
			f := &descriptorpb.FieldDescriptorProto{
				Name:     proto.String(name),
				JsonName: proto.String(name),
				Number:   proto.Int32(num),
				Label:    label,
				Type:     typ.Enum(),
			}
			if typeName != "" {
				f.TypeName = proto.String(typeName)
			}
			return f
		}
		const rs = ".opentelemetry.proto.trace.v1.ResourceSpans"
		fdp := &descriptorpb.FileDescriptorProto{
			Name:       proto.String("weft/test/tempopb.proto"),
			Package:    proto.String("tempopb"),
			Syntax:     proto.String("proto3"),
			Dependency: []string{tracepb.File_opentelemetry_proto_trace_v1_trace_proto.Path()},
			MessageType: []*descriptorpb.DescriptorProto{
				{Name: proto.String("Trace"), Field: []*descriptorpb.FieldDescriptorProto{
					field("resourceSpans", 1, repeated, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, rs),
				}},
				// TraceV1 is Trace as the v1 JSON names its field.
				{Name: proto.String("TraceV1"), Field: []*descriptorpb.FieldDescriptorProto{
					field("batches", 1, repeated, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, rs),
				}},
				{Name: proto.String("TraceByIDMetrics"), Field: []*descriptorpb.FieldDescriptorProto{
					field("inspectedBytes", 1, optional, descriptorpb.FieldDescriptorProto_TYPE_UINT64, ""),
				}},
				{
					Name: proto.String("TraceByIDResponse"),
					Field: []*descriptorpb.FieldDescriptorProto{
						field("trace", 1, optional, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".tempopb.Trace"),
						field("metrics", 2, optional, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".tempopb.TraceByIDMetrics"),
						field("status", 3, optional, descriptorpb.FieldDescriptorProto_TYPE_ENUM, ".tempopb.TraceByIDResponse.PartialStatus"),
						field("message", 4, optional, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
					},
					EnumType: []*descriptorpb.EnumDescriptorProto{{
						Name: proto.String("PartialStatus"),
						Value: []*descriptorpb.EnumValueDescriptorProto{
							{Name: proto.String("COMPLETE"), Number: proto.Int32(0)},
							{Name: proto.String("PARTIAL"), Number: proto.Int32(1)},
						},
					}},
				},
			},
		}
		fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
		if err != nil {
			tempoSchemaErr = err
			return
		}
		msgs := fd.Messages()
		tempoSchemaVal = tempoSchema{
			trace:    msgs.ByName("Trace"),
			traceV1:  msgs.ByName("TraceV1"),
			response: msgs.ByName("TraceByIDResponse"),
		}
	})
	if tempoSchemaErr != nil {
		t.Fatalf("cannot build Tempo schema: %v", tempoSchemaErr)
	}
	return tempoSchemaVal
}

// toTracesData converts a message whose field 1 is repeated ResourceSpans
// (Trace, TraceV1, TracesData) to TracesData by way of the wire format.
func toTracesData(t *testing.T, m proto.Message) *tracepb.TracesData {
	t.Helper()
	td := &tracepb.TracesData{}
	if err := proto.Unmarshal(mustMarshal(t, m), td); err != nil {
		t.Fatalf("cannot unmarshal TracesData: %v", err)
	}
	return td
}

func newDynamic(md protoreflect.MessageDescriptor) *dynamicpb.Message {
	return dynamicpb.NewMessage(md)
}

// wireFields lists the field numbers at the top level of protobuf bytes.
func wireFields(t *testing.T, b []byte) []protowire.Number {
	t.Helper()
	var nums []protowire.Number
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		nums = append(nums, num)
	}
	return nums
}
