// Package redaction checks redaction requests and finds the traces they
// name: by trace ID, or by a TraceQL query restricted to `=` on resource.
// and span. attributes joined by && and || (as Tempo's tempo-cli redact
// accepts), optionally within a time window. The scheduler checks requests
// with Check; a worker's find job matches traces with Query.Match.
package redaction

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/query/traceql"
)

// MaxTraceIDs bounds the trace IDs of one request (and the traces a query
// request may match): they travel with every job of the request.
const MaxTraceIDs = 10_000

// Spec is what a redaction request asks for.
type Spec struct {
	// Tenant whose blocks are rewritten.
	Tenant string `json:"tenant"`
	// TraceIDs (hex) name the traces to remove; or Query selects them.
	TraceIDs []string `json:"traceIDs,omitempty"`
	Query    string   `json:"query,omitempty"`
	// Start and End, when set, limit the blocks read to those whose time
	// range overlaps [Start, End] (both inclusive).
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// DryRun counts what would be removed and changes nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// ErrInvalid is wrapped by the errors of Check.
var ErrInvalid = errors.New("invalid redaction request")

// Check checks s: a tenant, trace IDs (1 to MaxTraceIDs, each of 1 to 32
// hex digits) or a query (see ParseQuery), not both, and a window whose
// start is not after its end. It returns the trace IDs parsed, sorted and
// without repeats. Errors wrap ErrInvalid and name the problem.
func Check(s *Spec) ([][16]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Tenant == "":
		return nil, bad("no tenant")
	case len(s.TraceIDs) == 0 && s.Query == "":
		return nil, bad("give trace IDs or a query")
	case len(s.TraceIDs) > 0 && s.Query != "":
		return nil, bad("give trace IDs or a query, not both")
	case len(s.TraceIDs) > MaxTraceIDs:
		return nil, bad("%d trace IDs, at most %d in one request", len(s.TraceIDs), MaxTraceIDs)
	case !s.Start.IsZero() && !s.End.IsZero() && s.Start.After(s.End):
		return nil, bad("start %s is after end %s", s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339))
	}
	if s.Query != "" {
		if _, err := ParseQuery(s.Query); err != nil {
			return nil, err
		}
		return nil, nil
	}
	ids := make([][16]byte, 0, len(s.TraceIDs))
	for _, t := range s.TraceIDs {
		id, err := block.ParseTraceID(t)
		if err != nil {
			return nil, bad("%v", err)
		}
		if id == ([16]byte{}) {
			return nil, bad("trace ID %q is all zeros", t)
		}
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	return slices.Compact(ids), nil
}

func compareIDs(a, b [16]byte) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// Query is a parsed redaction query.
type Query struct {
	root *traceql.RootExpr
}

// ParseQuery parses a redaction query: spanset filters whose conditions
// are `resource.<key> = <value>` or `span.<key> = <value>`, joined by &&
// and || (inside a filter, or between filters). Anything else (other
// operators, intrinsics, unscoped attributes, pipelines, hints, an empty
// filter) is refused with an error that wraps ErrInvalid and names the
// part at fault.
func ParseQuery(q string) (*Query, error) {
	root, err := traceql.Parse(q)
	if err != nil {
		return nil, fmt.Errorf("%w: query: %v", ErrInvalid, err)
	}
	refuse := func(n traceql.Node, why string) error {
		return fmt.Errorf("%w: query: %s at %v: %s (a redaction query takes only `=` on resource. and span. attributes, joined by && and ||)", ErrInvalid, n.String(), n.Position(), why)
	}
	if root.Hints != nil {
		return nil, refuse(root.Hints, "hints are not allowed")
	}
	if root.IsMetrics() {
		return nil, refuse(root.Metrics, "a metrics function is not allowed")
	}
	if root.Pipeline == nil || len(root.Pipeline.Stages) != 1 {
		return nil, refuse(root, "a pipeline is not allowed")
	}
	var spanset func(e traceql.Stage) error
	var field func(e traceql.FieldExpr) error
	field = func(e traceql.FieldExpr) error {
		b, ok := e.(*traceql.BinaryExpr)
		if !ok {
			return refuse(e, "not a comparison")
		}
		switch b.Op {
		case traceql.OpAnd, traceql.OpOr:
			if err := field(b.LHS); err != nil {
				return err
			}
			return field(b.RHS)
		case traceql.OpEqual:
		default:
			return refuse(b, "operator "+b.Op.String()+" is not allowed")
		}
		attr, ok := b.LHS.(*traceql.Attribute)
		val, ok2 := b.RHS.(*traceql.Static)
		if !ok || !ok2 {
			return refuse(b, "the left side must be an attribute and the right side a value")
		}
		if attr.Intrinsic != traceql.IntrinsicNone || attr.Parent || attr.Scope != traceql.ScopeResource && attr.Scope != traceql.ScopeSpan {
			return refuse(attr, "only resource. and span. attributes are allowed")
		}
		if val.Type == traceql.TypeNil {
			return refuse(val, "nil is not allowed")
		}
		return nil
	}
	spanset = func(e traceql.Stage) error {
		switch n := e.(type) {
		case *traceql.SpansetFilter:
			if n.Expr == nil {
				return refuse(n, "an empty filter would match every trace")
			}
			return field(n.Expr)
		case *traceql.SpansetOp:
			if n.Op != traceql.SpansetAnd && n.Op != traceql.SpansetUnion {
				return refuse(n, "operator "+n.Op.String()+" is not allowed")
			}
			if err := spanset(n.LHS); err != nil {
				return err
			}
			return spanset(n.RHS)
		}
		return refuse(e, "not a spanset filter")
	}
	if err := spanset(root.Pipeline.Stages[0]); err != nil {
		return nil, err
	}
	return &Query{root: root}, nil
}

// Root is the parsed query, for storage's predicate (Predicate).
func (q *Query) Root() *traceql.RootExpr { return q.root }

// Match reports whether the trace data (an OTLP TracesData message, as a
// block's Scan gives it) matches the query: exactly, on the spans given.
func (q *Query) Match(data []byte) (bool, error) {
	t, err := traceql.NewTrace(data)
	if err != nil {
		return false, fmt.Errorf("cannot decode a trace: %w", err)
	}
	sets, err := q.root.Eval(t)
	if err != nil {
		return false, err
	}
	return len(sets) > 0, nil
}

// Overlaps reports whether a block of time range [start, end] overlaps the
// window of s (none: every block does).
func (s *Spec) Overlaps(start, end time.Time) bool {
	if !s.Start.IsZero() && end.Before(s.Start) {
		return false
	}
	if !s.End.IsZero() && start.After(s.End) {
		return false
	}
	return true
}
