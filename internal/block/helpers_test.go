package block

import (
	"context"
	"encoding/hex"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

func newBucket(t testing.TB) *spyBucket {
	t.Helper()
	fs, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &spyBucket{Bucket: fs}
}

// spyBucket records uploads and reads.
type spyBucket struct {
	objstore.Bucket
	mu      sync.Mutex
	uploads []string
	gets    []string
	ranges  []readRange
}

type readRange struct {
	name     string
	off, len int64
}

func (b *spyBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.mu.Lock()
	b.uploads = append(b.uploads, name)
	b.mu.Unlock()
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *spyBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.mu.Lock()
	b.gets = append(b.gets, name)
	b.mu.Unlock()
	return b.Bucket.Get(ctx, name)
}

func (b *spyBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	b.mu.Lock()
	b.ranges = append(b.ranges, readRange{name, off, length})
	b.mu.Unlock()
	return b.Bucket.GetRange(ctx, name, off, length)
}

// reads returns and forgets the recorded reads.
func (b *spyBucket) reads() (gets []string, ranges []readRange) {
	b.mu.Lock()
	defer b.mu.Unlock()
	gets, ranges = b.gets, b.ranges
	b.gets, b.ranges = nil, nil
	return gets, ranges
}

func rangeBytes(rs []readRange) (n int64) {
	for _, r := range rs {
		n += r.len
	}
	return n
}

// parse parses TracesData bytes into a batch.
func parse(t testing.TB, data []byte) *otlpwire.Batch {
	t.Helper()
	b := &otlpwire.Batch{}
	if err := b.Parse(data); err != nil {
		t.Fatal(err)
	}
	return b
}

func addTraces(t testing.TB, buf *Buffer, td ptrace.Traces) {
	t.Helper()
	if err := buf.Add(parse(t, spangen.Marshal(td))); err != nil {
		t.Fatal(err)
	}
}

func unmarshal(t testing.TB, data []byte) ptrace.Traces {
	t.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data)
	if err != nil {
		t.Fatalf("pdata cannot read the block's output: %v", err)
	}
	return td
}

// spanRecords encodes each span of td alone with its resource and scope
// (schema URLs included), keyed by trace ID: comparing them compares every
// field of every span, resource and scope.
func spanRecords(t testing.TB, td ptrace.Traces) map[pcommon.TraceID][]string {
	t.Helper()
	out := map[pcommon.TraceID][]string{}
	m := &ptrace.ProtoMarshaler{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				sp := ss.Spans().At(k)
				one := ptrace.NewTraces()
				nrs := one.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(nrs.Resource())
				nrs.SetSchemaUrl(rs.SchemaUrl())
				nss := nrs.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(nss.Scope())
				nss.SetSchemaUrl(ss.SchemaUrl())
				sp.CopyTo(nss.Spans().AppendEmpty())
				b, err := m.MarshalTraces(one)
				if err != nil {
					t.Fatal(err)
				}
				out[sp.TraceID()] = append(out[sp.TraceID()], string(b))
			}
		}
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

// mergeRecords adds the records of b to a.
func mergeRecords(a, b map[pcommon.TraceID][]string) {
	for k, v := range b {
		a[k] = append(a[k], v...)
		slices.Sort(a[k])
	}
}

// richTraces has one trace whose spans use every OTLP field and attribute
// type, under resources and scopes with schema URLs, attributes and dropped
// counts.
func richTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	tid := pcommon.TraceID{0xfe, 0xed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	for r := 0; r < 2; r++ {
		rs := td.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		ra := rs.Resource().Attributes()
		if r == 0 {
			ra.PutStr("service.name", "rich")
		} else {
			ra.PutInt("service.name", 7) // not a string: stays a generic attribute
		}
		ra.PutStr("k8s.cluster.name", "prod-eu")
		ra.PutStr("k8s.container.name", "app")
		ra.PutInt("process.pid", 4242)
		ra.PutEmptySlice("process.command_args").FromRaw([]any{"app", "--flag"})
		rs.Resource().SetDroppedAttributesCount(3)
		for s := 0; s < 2; s++ {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.SetSchemaUrl("https://scope.example/schema")
			ss.Scope().SetName("rich-scope-" + string(rune('a'+s)))
			ss.Scope().SetVersion("v9")
			ss.Scope().Attributes().PutBool("scope.flag", true)
			ss.Scope().SetDroppedAttributesCount(2)
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(tid)
			sp.SetSpanID(pcommon.SpanID{8, 7, 6, 5, 4, 3, byte(r), byte(s)})
			if r+s > 0 {
				sp.SetParentSpanID(pcommon.SpanID{8, 7, 6, 5, 4, 3, 0, 0})
			}
			sp.TraceState().FromRaw("vendor=a,other=b")
			sp.SetName("rich span <&>")
			sp.SetKind(ptrace.SpanKindConsumer)
			sp.SetStartTimestamp(pcommon.Timestamp(1_767_225_600_000_000_000 + uint64(r*10+s)))
			sp.SetEndTimestamp(pcommon.Timestamp(1_767_225_601_000_000_000 + uint64(r*10+s)))
			sp.SetFlags(0x301)
			sp.Status().SetCode(ptrace.StatusCodeOk)
			sp.Status().SetMessage("fine")
			sp.SetDroppedAttributesCount(5)
			sp.SetDroppedEventsCount(6)
			sp.SetDroppedLinksCount(7)
			a := sp.Attributes()
			a.PutStr("http.request.method", "POST")
			a.PutStr("http.response.status_code", "201") // wrong type: generic
			a.PutInt("http.status_code", 201)
			a.PutStr("url.path", "")
			a.PutStr("str", "a \"quoted\" <string>")
			a.PutBool("bool", true)
			a.PutInt("int", -42)
			a.PutDouble("double", 3.25)
			a.PutDouble("nan", math.NaN())
			a.PutEmptyBytes("bytes").FromRaw([]byte{0, 1, 2, 250})
			arr := a.PutEmptySlice("array")
			arr.AppendEmpty().SetStr("x<y")
			arr.AppendEmpty().SetInt(7)
			arr.AppendEmpty().SetDouble(0.5)
			m := a.PutEmptyMap("map")
			m.PutStr("z", "last")
			m.PutEmptyMap("inner").PutInt("n", 1)
			a.PutEmpty("empty")
			ev := sp.Events().AppendEmpty()
			ev.SetName("ev1")
			ev.SetTimestamp(1_767_225_600_500_000_000)
			ev.Attributes().PutInt("ev.n", 1)
			ev.SetDroppedAttributesCount(9)
			sp.Events().AppendEmpty().SetName("ev2")
			l := sp.Links().AppendEmpty()
			l.SetTraceID(pcommon.TraceID{9})
			l.SetSpanID(pcommon.SpanID{9})
			l.TraceState().FromRaw("k=v")
			l.SetFlags(1)
			l.SetDroppedAttributesCount(4)
			l.Attributes().PutStr("link.attr", "la")
		}
	}
	// A resource and scope with nothing set, and a span with little more.
	bare := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	bare.SetTraceID(tid)
	bare.SetSpanID(pcommon.SpanID{1})
	bare.SetStartTimestamp(1_767_225_599_000_000_000)
	bare.SetEndTimestamp(1_767_225_599_000_000_000)
	return td
}

// splitBySpan returns one TracesData per span of td, each with the span's
// resource and scope.
func splitBySpan(td ptrace.Traces) []ptrace.Traces {
	var out []ptrace.Traces
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				one := ptrace.NewTraces()
				nrs := one.ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(nrs.Resource())
				nrs.SetSchemaUrl(rs.SchemaUrl())
				nss := nrs.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(nss.Scope())
				nss.SetSchemaUrl(ss.SchemaUrl())
				ss.Spans().At(k).CopyTo(nss.Spans().AppendEmpty())
				out = append(out, one)
			}
		}
	}
	return out
}

func traceIDs(recs map[pcommon.TraceID][]string) []pcommon.TraceID {
	ids := make([]pcommon.TraceID, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b pcommon.TraceID) int {
		return strings.Compare(hex.EncodeToString(a[:]), hex.EncodeToString(b[:]))
	})
	return ids
}

// findsEveryTrace checks that FindTraceByID gives back each trace of want,
// alone and with exactly its spans; what names the source in failures.
func findsEveryTrace(t testing.TB, r *Reader, want map[pcommon.TraceID][]string, what string) {
	t.Helper()
	for _, id := range traceIDs(want) {
		data, err := r.FindTraceByID(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: trace %x: %v", what, id, err)
		}
		if data == nil {
			t.Fatalf("%s: trace %x not found", what, id)
		}
		got := spanRecords(t, unmarshal(t, data))
		if len(got) != 1 {
			t.Fatalf("%s: trace %x: result holds %d traces", what, id, len(got))
		}
		if !slices.Equal(got[id], want[id]) {
			t.Fatalf("%s: trace %x: %d spans differ from the %d expected", what, id, len(got[id]), len(want[id]))
		}
	}
}
