package distributor

import (
	"context"
	"hash/fnv"
	"strconv"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// newTest returns a distributor without per-tenant limits; a zero
// TraceIdlePeriod in cfg takes the default.
func newTest(t testing.TB, cfg Config) (*Distributor, *prometheus.Registry) {
	t.Helper()
	if cfg.TraceIdlePeriod == 0 {
		cfg.TraceIdlePeriod = DefaultConfig().TraceIdlePeriod
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return New(pipelines.Settings{Name: "distributor", Metrics: reg}, cfg, nil), reg
}

func msgOf(payload []byte, orgID string) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), payload)
	if orgID != "" {
		m.Metadata.Set(pipelines.MetaOrgID, orgID)
	}
	return m
}

func decode(t *testing.T, b []byte) ptrace.Traces {
	t.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
	if err != nil {
		t.Fatal(err)
	}
	return td
}

func TestRegroupsByPartitionKeepingEverySpan(t *testing.T) {
	d, _ := newTest(t, Config{MaxAttributeBytes: 2048, Partitions: 8})
	td := spangen.Generate(spangen.Options{Seed: 7, Traces: 100, SpansPerTrace: 6, Services: 4})
	payload := spangen.Marshal(td)
	out, err := d.Process(msgOf(payload, ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 2 || len(out) > 8 {
		t.Fatalf("got %d messages, want one per used partition (2..8)", len(out))
	}
	total := 0
	for _, m := range out {
		if m.Metadata.Get(pipelines.MetaTenant) != "single-tenant" {
			t.Fatalf("tenant = %q", m.Metadata.Get(pipelines.MetaTenant))
		}
		part := m.Metadata.Get(pipelines.MetaPartition)
		got := decode(t, m.Payload)
		total += got.SpanCount()
		for i := 0; i < got.ResourceSpans().Len(); i++ {
			rs := got.ResourceSpans().At(i)
			if _, ok := rs.Resource().Attributes().Get("service.name"); !ok {
				t.Fatalf("resource lost its attributes")
			}
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				spans := rs.ScopeSpans().At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					tid := spans.At(k).TraceID()
					if want := Partition("single-tenant", tid, 8); part != strconv.Itoa(want) {
						t.Fatalf("span of trace %x in partition %s, want %d", tid, part, want)
					}
				}
			}
		}
	}
	if total != td.SpanCount() {
		t.Fatalf("spans out = %d, want %d", total, td.SpanCount())
	}
	if got := testutil.ToFloat64(d.received.WithLabelValues("single-tenant")); got != float64(td.SpanCount()) {
		t.Fatalf("spans received metric = %v, want %d", got, td.SpanCount())
	}
	if got := testutil.ToFloat64(d.bytes.WithLabelValues("single-tenant")); got != float64(len(payload)) {
		t.Fatalf("bytes received metric = %v, want %d", got, len(payload))
	}
}

// Partition is a function of tenant and trace ID only, spreading traces.
func TestPartitionIsStableAndSpread(t *testing.T) {
	seen := map[int]int{}
	for i := 0; i < 1000; i++ {
		var id [16]byte
		id[0], id[15] = byte(i), byte(i>>8)
		p := Partition("t", id, 10)
		if p != Partition("t", id, 10) {
			t.Fatal("partition not stable")
		}
		seen[p]++
	}
	if len(seen) != 10 {
		t.Fatalf("1000 traces used %d of 10 partitions", len(seen))
	}
	// Tempo's token: FNV-1 32 over the tenant bytes, then the 16 ID bytes.
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	h := fnv.New32()
	h.Write([]byte("single-tenant"))
	h.Write(id[:])
	if got, want := Partition("single-tenant", id, 1000), int(h.Sum32()%1000); got != want {
		t.Fatalf("partition = %d, want %d", got, want)
	}
}

func TestTenant(t *testing.T) {
	payload := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 1, SpansPerTrace: 2}))
	d, _ := newTest(t, Config{MultitenancyEnabled: true, MaxAttributeBytes: 10, Partitions: 1})

	_, err := d.Process(msgOf(payload, ""))
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "no org id" {
		t.Fatalf("missing tenant: %v", err)
	}
	_, err = d.Process(msgOf(payload, "../etc"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "invalid tenant ID") {
		t.Fatalf("bad tenant: %v", err)
	}
	out, err := d.Process(msgOf(payload, "team-a"))
	if err != nil || len(out) != 1 || out[0].Metadata.Get(pipelines.MetaTenant) != "team-a" {
		t.Fatalf("good tenant: %v, %d messages", err, len(out))
	}
	if got := testutil.ToFloat64(d.refused.WithLabelValues("no_org_id")); got != 1 {
		t.Fatalf("refused{no_org_id} = %v", got)
	}
}

func TestMalformedIsInvalidArgument(t *testing.T) {
	d, _ := newTest(t, DefaultConfig())
	_, err := d.Process(msgOf([]byte{0x0a, 0xff, 0x01}, ""))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "cannot parse OTLP traces") {
		t.Fatalf("err = %v", err)
	}
}

// Invalid spans are refused one by one with a message naming the span; the
// valid spans beside them go on.
func TestInvalidSpansArePartialSuccess(t *testing.T) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	good := ss.Spans().AppendEmpty()
	good.SetName("good")
	good.SetTraceID(pcommon.TraceID{1})
	good.SetSpanID(pcommon.SpanID{1})
	zeroSpan := ss.Spans().AppendEmpty()
	zeroSpan.SetName("zero-span-id")
	zeroSpan.SetTraceID(pcommon.TraceID{1})
	payload := spangen.Marshal(td)
	// Add a span with a 15-byte trace ID by hand: pdata cannot build one.
	short := []byte{0x0a, 15}
	short = append(short, make([]byte, 15)...)
	short[2] = 9
	short = append(short, 0x12, 8, 1, 2, 3, 4, 5, 6, 7, 8)
	short = append(short, 0x2a, 5, 's', 'h', 'o', 'r', 't')
	payload = append(payload, wrapSpan(short)...)

	d, _ := newTest(t, DefaultConfig())
	m := msgOf(payload, "")
	ctx, outcome := pipelines.ContextWithOutcome(context.Background())
	m.SetContext(ctx)
	out, err := d.Process(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || decode(t, out[0].Payload).SpanCount() != 1 {
		t.Fatalf("the valid span did not go on")
	}
	if outcome.Rejected() != 2 {
		t.Fatalf("rejected = %d, want 2", outcome.Rejected())
	}
	if msg := outcome.RejectionMessage(); !strings.Contains(msg, `span "zero-span-id"`) || !strings.Contains(msg, "span ID must be 8 bytes, got 0") {
		t.Fatalf("message %q does not name the span and the problem", msg)
	}
	if got := testutil.ToFloat64(d.discarded.WithLabelValues("single-tenant", "invalid_trace_id")); got != 1 {
		t.Fatalf("discarded{invalid_trace_id} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(d.discarded.WithLabelValues("single-tenant", "invalid_span_id")); got != 1 {
		t.Fatalf("discarded{invalid_span_id} = %v, want 1", got)
	}
}

func wrapSpan(span []byte) []byte {
	ss := append([]byte{0x12, byte(len(span))}, span...)
	rs := append([]byte{0x12, byte(len(ss))}, ss...)
	return append([]byte{0x0a, byte(len(rs))}, rs...)
}

func TestAttributesAreTruncated(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", strings.Repeat("s", 40))
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{1})
	sp.Attributes().PutStr("long", strings.Repeat("v", 100))
	d, _ := newTest(t, Config{MaxAttributeBytes: 16, Partitions: 1})
	out, err := d.Process(msgOf(spangen.Marshal(td), ""))
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, out[0].Payload).ResourceSpans().At(0)
	if v, _ := got.Resource().Attributes().Get("service.name"); len(v.Str()) != 16 {
		t.Fatalf("resource attribute has %d bytes, want 16", len(v.Str()))
	}
	if v, _ := got.ScopeSpans().At(0).Spans().At(0).Attributes().Get("long"); len(v.Str()) != 16 {
		t.Fatalf("span attribute has %d bytes, want 16", len(v.Str()))
	}
	if got := testutil.ToFloat64(d.truncated.WithLabelValues("single-tenant")); got != 2 {
		t.Fatalf("truncated metric = %v, want 2", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{MaxAttributeBytes: -1, Partitions: 0}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "max_attribute_bytes") || !strings.Contains(err.Error(), "partitions") {
		t.Fatalf("err = %v", err)
	}
}

// With one partition and nothing to change, the request bytes go on as they
// are; with something to change, they are re-encoded.
func TestPassThroughWhenUnchanged(t *testing.T) {
	payload := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 9, Traces: 10, SpansPerTrace: 3}))
	d, _ := newTest(t, DefaultConfig())
	out, err := d.Process(msgOf(payload, ""))
	if err != nil || len(out) != 1 {
		t.Fatalf("%v, %d messages", err, len(out))
	}
	if &out[0].Payload[0] != &payload[0] {
		t.Fatal("unchanged request was copied")
	}
	if out[0].Metadata.Get(pipelines.MetaPartition) != "0" || out[0].Metadata.Get(pipelines.MetaTenant) != "single-tenant" {
		t.Fatalf("metadata %v", out[0].Metadata)
	}
	d, _ = newTest(t, Config{MaxAttributeBytes: 8, Partitions: 1})
	out, err = d.Process(msgOf(payload, ""))
	if err != nil || len(out) != 1 || &out[0].Payload[0] == &payload[0] {
		t.Fatalf("truncating distributor passed the request through: %v", err)
	}
}
