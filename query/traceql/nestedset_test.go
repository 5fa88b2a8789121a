package traceql

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// nestedSets renders "name:left,right,parent" for every span of the
// result of q, in trace order.
func nestedSets(t *testing.T, tr *Trace, q string) string {
	t.Helper()
	root, err := Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	sets, err := root.Eval(tr)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var parts []string
	for _, ss := range sets {
		for _, s := range ss.Spans {
			var vals []string
			for _, kv := range s.Selected {
				vals = append(vals, fmt.Sprint(kv.Value.Int))
			}
			parts = append(parts, s.Name+":"+strings.Join(vals, ","))
		}
	}
	return strings.Join(parts, " ")
}

const selectNestedSet = ` | select(nestedSetLeft, nestedSetRight, nestedSetParent)`

func TestNestedSetNumbers(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	// Children in start-time order: auth, cart, render under GET /.
	want := "GET /:1,16,-1 auth:2,5,1 cart:6,13,1 render:14,15,1 verify:3,4,2 " +
		"cart-handle:7,12,6 db-query:8,9,7 cache-get:10,11,7"
	if got := nestedSets(t, tr, `{ }`+selectNestedSet); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	for q, want := range map[string]string{
		`{ nestedSetParent = -1 }`:                                        "GET /",
		`{ nestedSetLeft > 1 && nestedSetRight < 6 }`:                     "auth verify",
		`{ nestedSetRight - nestedSetLeft = 1 }`:                          "render verify db-query cache-get",
		`{ nestedSetParent = 7 }`:                                         "db-query cache-get",
		`{ nestedSetLeft = 6 } >> { }`:                                    "cart-handle db-query cache-get",
		`{ name = "cart-handle" } | select(name) | { nestedSetLeft = 7 }`: "cart-handle",
	} {
		root, err := Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		sets, err := root.Eval(tr)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var got []string
		for _, ss := range sets {
			for _, s := range ss.Spans {
				got = append(got, s.Name)
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
}

// TestNestedSetMalformed: spans no root leads to (parent missing, parent
// cycle, own parent) are 0, 0, 0; a duplicate span ID is numbered where
// link puts it; several roots continue one counter; a trace without a root
// is all zeros.
func TestNestedSetMalformed(t *testing.T) {
	type sp struct {
		name       string
		id, parent int // parent 0: root
		start      time.Duration
	}
	build := func(spans []sp) *Trace {
		td := ptrace.NewTraces()
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		for _, s := range spans {
			p := ss.Spans().AppendEmpty()
			p.SetName(s.name)
			p.SetTraceID(testTraceID)
			p.SetSpanID(testSpanID(s.id))
			if s.parent != 0 {
				p.SetParentSpanID(testSpanID(s.parent))
			}
			p.SetStartTimestamp(pcommon.NewTimestampFromTime(testBase.Add(s.start)))
			p.SetEndTimestamp(pcommon.NewTimestampFromTime(testBase.Add(s.start + time.Millisecond)))
		}
		data, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrace(data)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	tr := build([]sp{
		{"late-root", 10, 0, 5 * time.Second},
		{"cycle-a", 20, 21, 0},
		{"cycle-b", 21, 20, 0},
		{"self", 30, 30, 0},
		{"orphan", 40, 99, 0},
		{"orphan-child", 41, 40, 0},
		{"root", 1, 0, 0},
		{"child", 2, 1, time.Second},
		{"dup", 2, 1, time.Second}, // same ID as child: link keeps child for children
		{"grandchild", 3, 2, 2 * time.Second},
	})
	want := "late-root:9,10,-1 cycle-a:0,0,0 cycle-b:0,0,0 self:0,0,0 orphan:0,0,0 orphan-child:0,0,0 " +
		"root:1,8,-1 child:2,5,1 dup:6,7,1 grandchild:3,4,2"
	if got := nestedSets(t, tr, `{ }`+selectNestedSet); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	noRoot := build([]sp{{"a", 1, 9, 0}, {"b", 2, 1, 0}})
	if got, want := nestedSets(t, noRoot, `{ }`+selectNestedSet), "a:0,0,0 b:0,0,0"; got != want {
		t.Errorf("no root: got %s, want %s", got, want)
	}
}

// TestNestedSetConcurrent: the numbering computed on first use is safe
// when several evaluations of one Trace start at once (run with -race).
func TestNestedSetConcurrent(t *testing.T) {
	tr, err := NewTrace(buildTestTrace(t))
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(`{ nestedSetParent = -1 } >> { nestedSetRight - nestedSetLeft = 1 }`)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	for range 4 {
		go func() {
			sets, err := q.Eval(tr)
			if err != nil {
				done <- err.Error()
				return
			}
			done <- names(sets)
		}()
	}
	for range 4 {
		if got := <-done; got != "cache-get,db-query,render,verify" {
			t.Errorf("got %s", got)
		}
	}
}
