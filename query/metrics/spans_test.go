package metrics

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

// spanBlock writes a block of spangen traces, some spans of which carry
// an array attribute (which the columns cannot give exactly), in row
// groups of 32 KiB, and returns a runner over it, its meta, and the trace
// ID (hex) of each span ID (hex) with the start time (unix ms) of the
// span.
func spanBlock(t testing.TB) (*Runner, *block.Meta, map[string]spanOf) {
	t.Helper()
	ctx := context.Background()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	td := spangen.Generate(spangen.Options{Seed: 3, Traces: 600, SpansPerTrace: 6})
	ids := map[string]spanOf{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				sid, tid := sp.SpanID(), sp.TraceID()
				ids[hex.EncodeToString(sid[:])] = spanOf{
					traceID: hex.EncodeToString(tid[:]), startMs: int64(sp.StartTimestamp()) / 1e6,
				}
				if k%97 == 5 {
					sl := spans.At(k).Attributes().PutEmptySlice("tags")
					sl.AppendEmpty().SetStr("a")
					sl.AppendEmpty().SetStr("b")
				} else if k%3 == 0 {
					spans.At(k).Attributes().PutStr("tags", "plain")
				}
			}
		}
	}
	var b otlpwire.Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	buf := block.NewBuffer(nil)
	defer buf.Release()
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	meta, err := block.Write(ctx, bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{RowGroupBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	if err := list.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	return NewRunner(nil, list, bkt), meta, ids
}

// spanOf is what the test knows of a span of spanBlock.
type spanOf struct {
	traceID string
	startMs int64
}

// TestSpanPathAgreesWithTracePath runs block jobs of many queries both
// from the columns of their fields and on whole traces: the series are
// the same, value for value, and so is the number of exemplars. Queries
// the columns cannot answer exactly fall back to whole traces.
func TestSpanPathAgreesWithTracePath(t *testing.T) {
	r, meta, spans := spanBlock(t)
	if len(meta.RowGroups) < 4 {
		t.Fatalf("only %d row groups", len(meta.RowGroups))
	}
	ctx := context.Background()
	start, end := uint64(meta.StartTime.Add(-time.Minute).UnixNano()), uint64(meta.EndTime.Add(time.Minute).UnixNano())
	for _, c := range []struct {
		q     string
		spans bool // answered from the columns
	}{
		{"{ } | rate()", true},
		{"{ } | rate() by (resource.service.name)", true},
		{"{ } | count_over_time() by (name, status)", true},
		{"{ } | count_over_time() by (span.http.route, kind)", true},
		{"{ } | count_over_time() by (.http.route)", true},
		{`{ resource.service.name = "service-1" && status = error } | count_over_time()`, true},
		{`{ span.http.response.status_code >= 500 || duration > 200ms } | sum_over_time(span.http.response.status_code) by (resource.host.name)`, true},
		{"{ duration > 10ms } | avg_over_time(duration) by (resource.service.name)", true},
		{"{ } | min_over_time(duration) by (span.db.system)", true},
		{"{ } | max_over_time(span.server.port)", true},
		{"{ } | quantile_over_time(duration, .5, .99) by (resource.service.name)", true},
		{"{ } | histogram_over_time(duration)", true},
		{`{ span.http.route =~ "/api/.*" } | rate() by (statusMessage)`, true},
		{`{ .tags = "plain" } | count_over_time()`, true}, // an array value: back to whole traces
		{`{ span.tags = "a" } | count_over_time()`, true},
		{"{ } | count_over_time() by (span.tags)", true},
		{`{ status = error } >> { } | count_over_time()`, false},
		{"{ } | compare({ status = error })", false},
	} {
		req := Request{Query: c.q, Start: start, End: end, Step: uint64(time.Minute), Exemplars: 20}.Align()
		q, err := Compile(req)
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		if (q.spans != nil) != c.spans {
			t.Errorf("%s: span plan %v, want %v", c.q, q.spans != nil, c.spans)
		}
		job := Job{Request: req, BlockID: meta.BlockID.String(), From: req.Start, To: req.End}
		r.wholeTraces = false
		fast, err := r.RunJob(ctx, "t", job)
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		r.wholeTraces = true
		slow, err := r.RunJob(ctx, "t", job)
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		fs, ss := seriesOnly(t, fast), seriesOnly(t, slow)
		if fs != ss {
			t.Errorf("%s: the span path and the trace path differ:\n%s\n%s", c.q, fs, ss)
		}
		if len(slow.Parts[0].Series) == 0 {
			t.Errorf("%s: no series", c.q)
		}
		if n, m := exemplarCount(fast), exemplarCount(slow); n != m {
			t.Errorf("%s: %d exemplars from the columns, %d from traces", c.q, n, m)
		}
		// The IDs the span path reads afterwards are those of the span
		// the exemplar was taken from.
		for _, ser := range fast.Parts[0].Series {
			for _, ex := range ser.Exemplars {
				var tid, sid string
				for _, l := range ex.Labels {
					switch l.Key {
					case "trace:id":
						tid = *l.Value.StringValue
					case "span:id":
						sid = *l.Value.StringValue
					}
				}
				if sp, ok := spans[sid]; !ok || sp.traceID != tid || sp.startMs != ex.TimestampMs {
					t.Errorf("%s: exemplar trace %s span %s at %d: not a span of the block (%+v, %v)", c.q, tid, sid, ex.TimestampMs, sp, ok)
				}
			}
		}
	}
}

// seriesOnly is the JSON of a job's series without their exemplars.
func seriesOnly(t *testing.T, res *JobResult) string {
	t.Helper()
	var out []string
	for _, s := range res.Parts[0].Series {
		c := *s
		c.Exemplars = nil
		b, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	slices.Sort(out)
	b, _ := json.Marshal(out)
	return string(b)
}

func exemplarCount(res *JobResult) int {
	n := 0
	for _, s := range res.Parts[0].Series {
		n += len(s.Exemplars)
	}
	return n
}
