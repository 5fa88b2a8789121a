// Package metrics evaluates TraceQL metrics queries (Tempo's
// /api/metrics/query_range and /api/metrics/query): `{ status = error } |
// rate() by (resource.service.name)` turns the spans a search pipeline
// selects into time series.
//
// A Request is compiled once per job (Compile); each job feeds the traces
// of its place (the live-stores, a range of a block) to an Accumulator,
// which counts the spans starting in the job's part of time into compact
// per-series cells and returns a Partial. The query-frontend merges the
// partials of all jobs with a Combiner (exactly for counts, sums, minima
// and maxima, by sketch merge for quantiles) and builds the Response:
// functions applied, compare() finished, the sample filter and the
// topk/bottomk stages run, in Tempo's JSON or protobuf shape.
//
// Time math is Tempo's (request.go): intervals are right-closed and a
// sample's timestamp is the end of its interval.
package metrics

import (
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/DataDog/sketches-go/ddsketch/mapping"

	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/traceql"
)

// QuantileRelativeAccuracy is the relative accuracy of quantile_over_time:
// the value returned for a quantile is within 1% of the value of the span
// at that rank (DDSketch's guarantee, kept through merges).
const QuantileRelativeAccuracy = 0.01

// DefaultCompareTopN is the most values per attribute compare() keeps when
// the query does not say (Tempo's default).
const DefaultCompareTopN = 10

// Label names Tempo gives its series.
const (
	labelName      = "__name__"
	labelBucket    = "__bucket"
	labelQuantile  = "p"
	labelMetaType  = "__meta_type"
	labelMetaError = "__meta_error"

	metaBaseline       = "baseline"
	metaSelection      = "selection"
	metaBaselineTotal  = "baseline_total"
	metaSelectionTotal = "selection_total"
	errTooManyValues   = "__too_many_values__"
)

// Query is a compiled request. It is read-only once compiled: any number
// of accumulators and combiners may use it concurrently.
type Query struct {
	req   Request
	root  *traceql.RootExpr
	stage *traceql.MetricsStage
	sel   spanpred.Selection
	fn    traceql.MetricsFunc

	intervals int
	stepSecs  float64 // seconds of a step (the range for an instant query)
	topN      int     // compare's values per attribute
	mapping   mapping.IndexMapping
	// spans, when set, lets block jobs count spans from the columns of
	// their fields (spans.go).
	spans *spanPlan
}

func badRequest(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// Compile parses and checks req (already aligned: Request.Align). A query
// that does not parse, is not a metrics query, or a bad time range fails
// with a gRPC InvalidArgument status naming the problem.
func Compile(req Request) (*Query, error) {
	root, err := traceql.ParseWithLimits(req.Query, traceql.Limits{
		MaxBytes: math.MaxInt, MaxDepth: traceql.HardMaxDepth, MaxStages: math.MaxInt, MaxRegexSize: math.MaxInt,
	})
	if err != nil {
		return nil, badRequest("%s", err.Error())
	}
	return compile(req, root)
}

// compile checks req and the parsed root.
func compile(req Request, root *traceql.RootExpr) (*Query, error) {
	switch {
	case req.Step == 0:
		return nil, badRequest("invalid step: must be greater than 0")
	case req.End <= req.Start:
		return nil, badRequest("invalid time range: end (%d) must be after start (%d)", req.End, req.Start)
	case req.Exemplars < 0:
		return nil, badRequest("invalid exemplars %d: must not be negative", req.Exemplars)
	case req.MaxSeries < 0:
		return nil, badRequest("invalid maxSeries %d: must not be negative", req.MaxSeries)
	}
	if root == nil || !root.IsMetrics() {
		return nil, badRequest("not a metrics query: %q needs a metrics function such as `| rate()`", req.Query)
	}
	st := root.Metrics
	q := &Query{req: req, root: root, stage: st, fn: st.Func, intervals: req.Intervals()}
	if st.Func.TakesAttribute() && st.Attr == nil {
		return nil, badRequest("%s needs an attribute to measure", st.Func)
	}
	if st.Func == traceql.MetricsQuantileOverTime {
		if len(st.Quantiles) == 0 {
			return nil, badRequest("quantile_over_time needs at least one quantile")
		}
		for _, p := range st.Quantiles {
			if !(p >= 0 && p <= 1) {
				return nil, badRequest("quantile must be between 0 and 1: %v", p)
			}
		}
		m, err := mapping.NewLogarithmicMapping(QuantileRelativeAccuracy)
		if err != nil {
			return nil, badRequest("cannot build the quantile sketch: %v", err)
		}
		q.mapping = m
	}
	if st.Func == traceql.MetricsCompare {
		if st.Selection == nil {
			return nil, badRequest("compare needs a selection spanset filter")
		}
		q.topN = st.TopN
		if q.topN <= 0 {
			q.topN = DefaultCompareTopN
		}
	}
	q.stepSecs = float64(req.Step) / 1e9
	q.sel.Pred = root.Predicate()
	q.sel.TraceIDs, q.sel.ByTraceID = root.TraceIDs()
	if !q.sel.ByTraceID {
		q.spans = q.planSpans()
	}
	return q, nil
}

// Request is the request the query was compiled from.
func (q *Query) Request() Request { return q.req }

// Root is the parsed query.
func (q *Query) Root() *traceql.RootExpr { return q.root }

// Selection is what storage hands a job: the traces with a span that may
// satisfy the search part, or the traces it names by ID.
func (q *Query) Selection() spanpred.Selection { return q.sel }

// cellKind says which cells a series keeps.
type cellKind int

const (
	cellCount  cellKind = iota // rate, count_over_time, histogram_over_time, compare
	cellSum                    // sum_over_time, avg_over_time (with the count)
	cellMin                    // min_over_time
	cellMax                    // max_over_time
	cellSketch                 // quantile_over_time
)

func (q *Query) kind() cellKind {
	switch q.fn {
	case traceql.MetricsSumOverTime, traceql.MetricsAvgOverTime:
		return cellSum
	case traceql.MetricsMinOverTime:
		return cellMin
	case traceql.MetricsMaxOverTime:
		return cellMax
	case traceql.MetricsQuantileOverTime:
		return cellSketch
	}
	return cellCount
}

// measured reports whether the function observes a value per span (the
// exemplars then carry it).
func (q *Query) measured() bool {
	switch q.kind() {
	case cellSum, cellMin, cellMax, cellSketch:
		return true
	}
	return false
}

// metricValue is v as a number: ints and floats as they are, durations in
// seconds (as Tempo); ok is false for anything else, NaN and infinities.
func metricValue(v traceql.Value) (float64, bool) {
	switch v.Type {
	case traceql.TypeInt:
		return float64(v.Int), true
	case traceql.TypeFloat:
		if math.IsNaN(v.Float) || math.IsInf(v.Float, 0) {
			return 0, false
		}
		return v.Float, true
	case traceql.TypeDuration:
		return v.Duration.Seconds(), true
	}
	return 0, false
}

// histogramBucket is Tempo's bucket of a value for histogram_over_time:
// the next power of two of a duration's nanoseconds (in seconds) or of an
// int; ok is false for smaller than 2, floats and other types.
func histogramBucket(v traceql.Value) (float64, bool) {
	switch v.Type {
	case traceql.TypeDuration:
		if v.Duration < 2 {
			return 0, false
		}
		return pow2Ceil(uint64(v.Duration)) / 1e9, true
	case traceql.TypeInt:
		if v.Int < 2 {
			return 0, false
		}
		return pow2Ceil(uint64(v.Int)), true
	}
	return 0, false
}

func pow2Ceil(v uint64) float64 { return math.Pow(2, math.Ceil(math.Log2(float64(v)))) }
