package api

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/query/traceql"
)

// The q parameter of /api/v2/traces/{traceID}: a single TraceQL spanset
// filter, `{ ... }`, applied to the assembled trace. The answer keeps the
// spans it matches, each under its own resource and scope, as Tempo does.
// Like Tempo, the filter refuses what needs more than one span at a time to
// mean anything: pipelines (`|`), spanset operators (`&&`, `||`, `>>`…)
// and trace-level intrinsics (trace:id, trace:rootName, trace:rootService,
// trace:duration).

// filteredMessage is the message of a v2 answer whose spans q cut, Tempo's.
const filteredMessage = "Trace filtered, only a subset of spans matching the filter is returned"

// Results of weft_query_trace_filters_total.
const (
	filterSubset     = "subset"
	filterWhole      = "whole"
	filterBadRequest = "bad_request"
)

// parseTraceFilter parses q with limits. An error is an InvalidArgument
// status whose message names the problem and where it is in q (and for a
// limit, the limit and its config key).
func parseTraceFilter(q string, limits traceql.Limits) (*traceql.RootExpr, error) {
	root, err := traceql.ParseWithLimits(q, limits)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid q: %v", err)
	}
	if err := checkTraceFilter(root); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid q: %v", err)
	}
	return root, nil
}

// checkTraceFilter accepts a query that is one spanset filter without
// trace-level intrinsics.
func checkTraceFilter(root *traceql.RootExpr) error {
	const want = "trace by ID takes a single spanset filter { ... }"
	if root.Pipeline == nil || len(root.Pipeline.Stages) == 0 {
		return errors.New(want)
	}
	if root.IsMetrics() {
		return fmt.Errorf("%s, not metrics function %s (at %s)", want, root.Metrics.Func, root.Metrics.Pos)
	}
	if n := len(root.Pipeline.Stages); n > 1 {
		return fmt.Errorf("%s, not a pipeline of %d stages", want, n)
	}
	switch st := root.Pipeline.Stages[0].(type) {
	case *traceql.SpansetFilter:
	case *traceql.SpansetOp:
		return fmt.Errorf("%s, not spanset operator %s (at %s)", want, st.Op, st.Pos)
	default:
		return fmt.Errorf("%s, not %s (at %s)", want, st, st.Position())
	}
	var bad *traceql.Attribute
	traceql.Inspect(root.Pipeline, func(n traceql.Node) bool {
		if a, ok := n.(*traceql.Attribute); ok && bad == nil && a.Intrinsic != traceql.IntrinsicNone && a.Intrinsic.Scope() == traceql.ScopeTrace {
			bad = a
		}
		return bad == nil
	})
	if bad != nil {
		return fmt.Errorf("trace-level intrinsic %s (at %s) is not supported by the trace by ID filter, which matches spans one by one", bad, bad.Pos)
	}
	return nil
}

// filterTrace keeps the spans of OTLP TracesData data that root matches,
// under their resources and scopes, and says how many it kept of how many.
// It returns data itself when every span matches. A query the evaluator
// cannot run on the trace is an InvalidArgument status.
func filterTrace(root *traceql.RootExpr, data []byte) (out []byte, kept, total int, err error) {
	t, err := traceql.NewTrace(data)
	if err != nil {
		return nil, 0, 0, err
	}
	total = len(t.Spans)
	sets, err := root.Eval(t)
	if err != nil {
		if errors.Is(err, traceql.ErrUnsupported) {
			return nil, 0, 0, status.Errorf(codes.InvalidArgument, "invalid q: %v", err)
		}
		return nil, 0, 0, fmt.Errorf("cannot evaluate q: %w", err)
	}
	keep := make([]bool, total)
	for _, ss := range sets {
		for _, sp := range ss.Spans {
			if i := sp.Index(); i >= 0 && i < total && !keep[i] {
				keep[i] = true
				kept++
			}
		}
	}
	if kept == total {
		return data, kept, total, nil
	}
	// traceql.NewTrace numbers the spans in this same order.
	var batch otlpwire.Batch
	if err := batch.Scan(data); err != nil {
		return nil, 0, 0, err
	}
	var b otlpwire.Builder
	i := 0
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			for _, sp := range sc.Spans {
				if keep[i] {
					b.Add(res, sc, sp.Raw)
				}
				i++
			}
		}
	}
	return b.AppendTo(make([]byte, 0, b.Size())), kept, total, nil
}
