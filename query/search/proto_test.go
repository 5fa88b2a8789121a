package search

import (
	"reflect"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// tempoFile restates the messages of Tempo's pkg/tempopb/tempo.proto that
// weft writes, with Tempo's field numbers, so that the bytes are checked by
// real protobuf machinery rather than by the code that wrote them.
func tempoFile(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	type f struct {
		name     string
		num      int32
		repeated bool
		typ      descriptorpb.FieldDescriptorProto_Type
		typeName string
	}
	const (
		str = descriptorpb.FieldDescriptorProto_TYPE_STRING
		u64 = descriptorpb.FieldDescriptorProto_TYPE_UINT64
		u32 = descriptorpb.FieldDescriptorProto_TYPE_UINT32
		msg = descriptorpb.FieldDescriptorProto_TYPE_MESSAGE
	)
	const kv = ".opentelemetry.proto.common.v1.KeyValue"
	messages := []struct {
		name   string
		fields []f
	}{
		{"SearchResponse", []f{{"traces", 1, true, msg, ".tempopb.TraceSearchMetadata"}, {"metrics", 2, false, msg, ".tempopb.SearchMetrics"}}},
		{"TraceSearchMetadata", []f{{"traceID", 1, false, str, ""}, {"rootServiceName", 2, false, str, ""}, {"rootTraceName", 3, false, str, ""},
			{"startTimeUnixNano", 4, false, u64, ""}, {"durationMs", 5, false, u32, ""}, {"spanSet", 6, false, msg, ".tempopb.SpanSet"},
			{"spanSets", 7, true, msg, ".tempopb.SpanSet"}, {"serviceStats", 8, true, msg, ".tempopb.TraceSearchMetadata.ServiceStatsEntry"}}},
		{"ServiceStats", []f{{"spanCount", 1, false, u32, ""}, {"errorCount", 2, false, u32, ""}}},
		{"SpanSet", []f{{"spans", 1, true, msg, ".tempopb.Span"}, {"matched", 2, false, u32, ""}, {"attributes", 3, true, msg, kv}}},
		{"Span", []f{{"spanID", 1, false, str, ""}, {"name", 2, false, str, ""}, {"startTimeUnixNano", 3, false, u64, ""},
			{"durationNanos", 4, false, u64, ""}, {"attributes", 5, true, msg, kv}}},
		{"SearchMetrics", []f{{"inspectedTraces", 1, false, u32, ""}, {"inspectedBytes", 2, false, u64, ""}, {"totalBlocks", 3, false, u32, ""},
			{"completedJobs", 4, false, u32, ""}, {"totalJobs", 5, false, u32, ""}, {"totalBlockBytes", 6, false, u64, ""}, {"inspectedSpans", 7, false, u64, ""}}},
		{"MetadataMetrics", []f{{"inspectedBytes", 1, false, u64, ""}, {"totalJobs", 2, false, u32, ""}, {"completedJobs", 3, false, u32, ""},
			{"totalBlocks", 4, false, u32, ""}, {"totalBlockBytes", 5, false, u64, ""}}},
		{"SearchTagsResponse", []f{{"tagNames", 1, true, str, ""}, {"metrics", 2, false, msg, ".tempopb.MetadataMetrics"}}},
		{"SearchTagsV2Response", []f{{"scopes", 1, true, msg, ".tempopb.SearchTagsV2Scope"}, {"metrics", 2, false, msg, ".tempopb.MetadataMetrics"}}},
		{"SearchTagsV2Scope", []f{{"name", 1, false, str, ""}, {"tags", 2, true, str, ""}}},
		{"SearchTagValuesResponse", []f{{"tagValues", 1, true, str, ""}, {"metrics", 2, false, msg, ".tempopb.MetadataMetrics"}}},
		{"TagValue", []f{{"type", 1, false, str, ""}, {"value", 2, false, str, ""}}},
		{"SearchTagValuesV2Response", []f{{"tagValues", 1, true, msg, ".tempopb.TagValue"}, {"metrics", 2, false, msg, ".tempopb.MetadataMetrics"}}},
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("weft/test/tempopb_search.proto"),
		Package:    proto.String("tempopb"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{commonpb.File_opentelemetry_proto_common_v1_common_proto.Path()},
	}
	for _, m := range messages {
		dp := &descriptorpb.DescriptorProto{Name: proto.String(m.name)}
		for _, fl := range m.fields {
			label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
			if fl.repeated {
				label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
			}
			fd := &descriptorpb.FieldDescriptorProto{Name: proto.String(fl.name), JsonName: proto.String(fl.name),
				Number: proto.Int32(fl.num), Label: label.Enum(), Type: fl.typ.Enum()}
			if fl.typeName != "" {
				fd.TypeName = proto.String(fl.typeName)
			}
			dp.Field = append(dp.Field, fd)
		}
		if m.name == "TraceSearchMetadata" { // map<string, ServiceStats> serviceStats = 8
			dp.NestedType = append(dp.NestedType, &descriptorpb.DescriptorProto{
				Name: proto.String("ServiceStatsEntry"),
				Field: []*descriptorpb.FieldDescriptorProto{
					{Name: proto.String("key"), JsonName: proto.String("key"), Number: proto.Int32(1),
						Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: str.Enum()},
					{Name: proto.String("value"), JsonName: proto.String("value"), Number: proto.Int32(2),
						Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: msg.Enum(), TypeName: proto.String(".tempopb.ServiceStats")},
				},
				Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			})
		}
		fdp.MessageType = append(fdp.MessageType, dp)
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("cannot build descriptors: %v", err)
	}
	return fd
}

func decode(t *testing.T, fd protoreflect.FileDescriptor, name string, b []byte) *dynamicpb.Message {
	t.Helper()
	m := dynamicpb.NewMessage(fd.Messages().ByName(protoreflect.Name(name)))
	if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b, m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(m.GetUnknown()) > 0 {
		t.Fatalf("%s: unknown fields %x", name, m.GetUnknown())
	}
	return m
}

func get(m protoreflect.Message, name string) protoreflect.Value {
	return m.Get(m.Descriptor().Fields().ByName(protoreflect.Name(name)))
}

func sampleResponse() *Response {
	s, i, d, bl := "error", int64(-7), 2.5, true
	big := make([]byte, 300) // a length needing a two-byte varint
	for j := range big {
		big[j] = 'x'
	}
	long := string(big)
	set := &SpanSet{Matched: 4, Spans: []*Span{{SpanID: "0102030405060708", Name: long, StartTimeUnixNano: 1_700_000_000_000_000_001, DurationNanos: 42,
		Attributes: []*KeyValue{{Key: "status", Value: &AnyValue{StringValue: &s}}, {Key: "n", Value: &AnyValue{IntValue: &i}},
			{Key: "f", Value: &AnyValue{DoubleValue: &d}}, {Key: "b", Value: &AnyValue{BoolValue: &bl}},
			{Key: "arr", Value: &AnyValue{ArrayValue: &ArrayValue{Values: []*AnyValue{{IntValue: &i}, {StringValue: &s}}}}}}}},
		Attributes: []*KeyValue{{Key: "by(.a)", Value: &AnyValue{StringValue: &s}}}}
	return &Response{
		Traces: []*Trace{{TraceID: "abc", RootServiceName: "svc", RootTraceName: "root", StartTimeUnixNano: 1_700_000_000_000_000_000,
			DurationMs: 12, SpanSet: set, SpanSets: []*SpanSet{set, {Matched: 1}},
			ServiceStats: map[string]*ServiceStats{"svc": {SpanCount: 3, ErrorCount: 1}, "db": {SpanCount: 300}}}},
		Metrics: &Metrics{InspectedTraces: 3, InspectedBytes: 1 << 40, InspectedSpans: 9, TotalBlocks: 2, CompletedJobs: 3, TotalJobs: 3, TotalBlockBytes: 1234},
	}
}

func TestResponseProtoRoundTrip(t *testing.T) {
	want := sampleResponse()
	got, err := UnmarshalResponse(want.MarshalProto())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	empty, err := UnmarshalResponse(nil)
	if err != nil || len(empty.Traces) != 0 || empty.Metrics == nil {
		t.Fatalf("empty: %+v %v", empty, err)
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 0x01}, {0x08, 0x01}, {0x0a, 0x02, 0x08, 0x01}} {
		if _, err := UnmarshalResponse(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

func TestResponseProtoDescriptor(t *testing.T) {
	fd := tempoFile(t)
	m := decode(t, fd, "SearchResponse", sampleResponse().MarshalProto())
	traces := get(m, "traces").List()
	if traces.Len() != 1 {
		t.Fatalf("traces %d", traces.Len())
	}
	tr := traces.Get(0).Message()
	if get(tr, "traceID").String() != "abc" || get(tr, "rootServiceName").String() != "svc" || get(tr, "rootTraceName").String() != "root" ||
		get(tr, "startTimeUnixNano").Uint() != 1_700_000_000_000_000_000 || get(tr, "durationMs").Uint() != 12 || get(tr, "spanSets").List().Len() != 2 {
		t.Errorf("trace %v", tr)
	}
	stats := get(tr, "serviceStats").Map()
	svc, db := stats.Get(protoreflect.ValueOfString("svc").MapKey()), stats.Get(protoreflect.ValueOfString("db").MapKey())
	if stats.Len() != 2 || !svc.IsValid() || !db.IsValid() ||
		get(svc.Message(), "spanCount").Uint() != 3 || get(svc.Message(), "errorCount").Uint() != 1 ||
		get(db.Message(), "spanCount").Uint() != 300 || get(db.Message(), "errorCount").Uint() != 0 {
		t.Errorf("serviceStats %v", stats)
	}
	ss := get(tr, "spanSet").Message()
	if get(ss, "matched").Uint() != 4 {
		t.Errorf("matched %v", get(ss, "matched"))
	}
	sp := get(ss, "spans").List().Get(0).Message()
	if get(sp, "spanID").String() != "0102030405060708" || len(get(sp, "name").String()) != 300 || get(sp, "durationNanos").Uint() != 42 ||
		get(sp, "startTimeUnixNano").Uint() != 1_700_000_000_000_000_001 {
		t.Errorf("span %v", sp)
	}
	// Attributes are real OTLP KeyValues.
	attrs := get(sp, "attributes").List()
	var kvs []*commonpb.KeyValue
	for i := 0; i < attrs.Len(); i++ {
		b, err := proto.Marshal(attrs.Get(i).Message().Interface())
		if err != nil {
			t.Fatal(err)
		}
		kv := &commonpb.KeyValue{}
		if err := proto.Unmarshal(b, kv); err != nil {
			t.Fatal(err)
		}
		kvs = append(kvs, kv)
	}
	if len(kvs) != 5 || kvs[0].GetValue().GetStringValue() != "error" || kvs[1].GetValue().GetIntValue() != -7 ||
		kvs[2].GetValue().GetDoubleValue() != 2.5 || !kvs[3].GetValue().GetBoolValue() ||
		len(kvs[4].GetValue().GetArrayValue().GetValues()) != 2 {
		t.Errorf("attributes %v", kvs)
	}
	met := get(m, "metrics").Message()
	for name, want := range map[string]uint64{"inspectedTraces": 3, "inspectedBytes": 1 << 40, "totalBlocks": 2, "completedJobs": 3,
		"totalJobs": 3, "totalBlockBytes": 1234, "inspectedSpans": 9} {
		if got := get(met, name).Uint(); got != want {
			t.Errorf("metrics.%s = %d, want %d", name, got, want)
		}
	}
}

func TestTagProtoDescriptor(t *testing.T) {
	fd := tempoFile(t)
	mm := &MetadataMetrics{InspectedBytes: 77, TotalJobs: 2, CompletedJobs: 2, TotalBlocks: 1, TotalBlockBytes: 500}
	checkMetrics := func(m protoreflect.Message) {
		t.Helper()
		met := get(m, "metrics").Message()
		for name, want := range map[string]uint64{"inspectedBytes": 77, "totalJobs": 2, "completedJobs": 2, "totalBlocks": 1, "totalBlockBytes": 500} {
			if got := get(met, name).Uint(); got != want {
				t.Errorf("%s metrics.%s = %d, want %d", m.Descriptor().Name(), name, got, want)
			}
		}
	}
	strs := func(l protoreflect.List) []string {
		var out []string
		for i := 0; i < l.Len(); i++ {
			out = append(out, l.Get(i).String())
		}
		return out
	}

	m := decode(t, fd, "SearchTagsResponse", (&TagNamesResponse{TagNames: []string{"a", ""}, Metrics: mm}).MarshalProto())
	if got := strs(get(m, "tagNames").List()); !reflect.DeepEqual(got, []string{"a", ""}) {
		t.Errorf("tagNames %q", got)
	}
	checkMetrics(m)

	m = decode(t, fd, "SearchTagsV2Response", (&TagNamesV2Response{Scopes: []*TagScope{{Name: "span", Tags: []string{"x", "y"}}, {Name: "resource"}}, Metrics: mm}).MarshalProto())
	scopes := get(m, "scopes").List()
	if scopes.Len() != 2 || get(scopes.Get(0).Message(), "name").String() != "span" ||
		!reflect.DeepEqual(strs(get(scopes.Get(0).Message(), "tags").List()), []string{"x", "y"}) || get(scopes.Get(1).Message(), "name").String() != "resource" {
		t.Errorf("scopes %v", scopes)
	}
	checkMetrics(m)

	m = decode(t, fd, "SearchTagValuesResponse", (&TagValuesResponse{TagValues: []string{"v1", "v2"}, Metrics: mm}).MarshalProto())
	if got := strs(get(m, "tagValues").List()); !reflect.DeepEqual(got, []string{"v1", "v2"}) {
		t.Errorf("tagValues %q", got)
	}
	checkMetrics(m)

	m = decode(t, fd, "SearchTagValuesV2Response", (&TagValuesV2Response{TagValues: []TagValue{{Type: "int", Value: "200"}, {Type: "keyword", Value: "error"}}, Metrics: mm}).MarshalProto())
	vals := get(m, "tagValues").List()
	if vals.Len() != 2 || get(vals.Get(0).Message(), "type").String() != "int" || get(vals.Get(0).Message(), "value").String() != "200" ||
		get(vals.Get(1).Message(), "type").String() != "keyword" || get(vals.Get(1).Message(), "value").String() != "error" {
		t.Errorf("tagValues %v", vals)
	}
	checkMetrics(m)
}
