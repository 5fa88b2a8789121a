package metrics

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/query/traceql"
)

// genSpan is what the reference model knows of a generated span.
type genSpan struct {
	traceID, spanID string
	svc, name       string
	start           uint64 // unix ns
	dur             uint64 // ns
	size            any    // int64, string, or nil (missing)
	isErr           bool
}

type genTrace struct {
	data  []byte
	spans []genSpan
}

var (
	genServices = []string{"api", "db", "cache", "auth"}
	genNames    = []string{"GET /", "query", "get", "verify", "render"}
)

// genTraces makes n traces of 1 to 6 spans: several services and names,
// durations from 1µs to about 2s, span.size an int (or a string, or
// missing), starts uniformly in [from, to), one in eight on a whole minute.
func genTraces(t testing.TB, seed uint64, n int, from, to uint64) []genTrace {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
	out := make([]genTrace, 0, n)
	for ti := 0; ti < n; ti++ {
		td := ptrace.NewTraces()
		var tid pcommon.TraceID
		binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rng.Uint64()|1)
		var gt genTrace
		nspans := 1 + rng.IntN(6)
		bySvc := map[string]ptrace.SpanSlice{}
		var rootID pcommon.SpanID
		for si := 0; si < nspans; si++ {
			svc := genServices[rng.IntN(len(genServices))]
			spans, ok := bySvc[svc]
			if !ok {
				rs := td.ResourceSpans().AppendEmpty()
				rs.Resource().Attributes().PutStr("service.name", svc)
				spans = rs.ScopeSpans().AppendEmpty().Spans()
				bySvc[svc] = spans
			}
			sp := spans.AppendEmpty()
			var sid pcommon.SpanID
			binary.BigEndian.PutUint64(sid[:], rng.Uint64()|1)
			sp.SetTraceID(tid)
			sp.SetSpanID(sid)
			if si == 0 {
				rootID = sid
			} else {
				sp.SetParentSpanID(rootID)
			}
			name := genNames[rng.IntN(len(genNames))]
			sp.SetName(name)
			start := from + rng.Uint64N(to-from)
			if rng.IntN(8) == 0 { // exactly on a minute: an interval's edge
				start -= start % uint64(time.Minute)
			}
			// Durations spread over six orders of magnitude.
			dur := uint64(1000 * (1 + rng.IntN(1000)) * []int{1, 10, 100, 1000, 1, 2}[rng.IntN(6)])
			sp.SetStartTimestamp(pcommon.Timestamp(start))
			sp.SetEndTimestamp(pcommon.Timestamp(start + dur))
			gs := genSpan{traceID: fmt.Sprintf("%x", tid[:]), spanID: fmt.Sprintf("%x", sid[:]), svc: svc, name: name, start: start, dur: dur}
			switch r := rng.IntN(10); {
			case r < 6:
				v := int64(rng.IntN(100))
				sp.Attributes().PutInt("size", v)
				gs.size = v
			case r < 7:
				sp.Attributes().PutStr("size", "big")
				gs.size = "big"
			}
			if rng.IntN(5) == 0 {
				sp.Status().SetCode(ptrace.StatusCodeError)
				gs.isErr = true
			}
			gt.spans = append(gt.spans, gs)
		}
		data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		gt.data = data
		out = append(out, gt)
	}
	return out
}

// attr parses a field as the parser writes it.
func attr(t testing.TB, text string) *traceql.Attribute {
	t.Helper()
	root, err := traceql.Parse("{ } | select(" + text + ")")
	if err != nil {
		t.Fatalf("parse %s: %v", text, err)
	}
	return root.Pipeline.Stages[len(root.Pipeline.Stages)-1].(*traceql.Select).Fields[0]
}

// metricsRoot is a metrics query: search parsed by traceql.Parse, the
// metrics stage attached by hand (until Parse reads metrics functions).
func metricsRoot(t testing.TB, search string, st *traceql.MetricsStage) *traceql.RootExpr {
	t.Helper()
	root, err := traceql.Parse(search)
	if err != nil {
		t.Fatalf("parse %s: %v", search, err)
	}
	root.Metrics = st
	return root
}

func mustCompile(t testing.TB, req Request, root *traceql.RootExpr) *Query {
	t.Helper()
	q, err := compile(req, root)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// runJobs feeds every trace to one accumulator per window (cut at the
// given times), sends each result through JSON as between processes, and
// merges them (in reverse order) into a combiner.
func runJobs(t testing.TB, q *Query, traces []genTrace, cuts ...uint64) *Combiner {
	t.Helper()
	req := q.Request()
	bounds := append([]uint64{req.Start}, cuts...)
	bounds = append(bounds, req.End)
	var parts []*Partial
	for w := 0; w+1 < len(bounds); w++ {
		acc := q.NewAccumulator(bounds[w], bounds[w+1])
		for _, gt := range traces {
			tr, err := traceql.NewTrace(gt.data)
			if err != nil {
				t.Fatal(err)
			}
			if err := acc.ObserveTrace(tr); err != nil {
				t.Fatal(err)
			}
		}
		parts = append(parts, roundTrip(t, acc.Result()))
	}
	c := q.NewCombiner()
	for i := len(parts) - 1; i >= 0; i-- {
		if err := c.Add(parts[i]); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// roundTrip sends p through encoding/json and checks it comes back equal.
func roundTrip(t testing.TB, p *Partial) *Partial {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal partial: %v", err)
	}
	var back Partial
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal partial: %v", err)
	}
	b2, err := json.Marshal(&back)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(b2) {
		t.Fatalf("partial does not round-trip through JSON:\n%s\n%s", b, b2)
	}
	return &back
}

var testBase = uint64(time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC).UnixNano())
