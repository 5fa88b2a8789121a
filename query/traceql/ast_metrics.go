package traceql

// This file holds the syntax tree of TraceQL metrics: a search pipeline
// followed by a metrics function, `{ status = error } | rate() by
// (resource.service.name)`, optionally a filter on its samples
// (`... > 10`) and second stages (`| topk(5)`). The metrics engine
// (query/metrics) evaluates it; Eval evaluates only the search part.

// MetricsFunc is a first-stage metrics function.
type MetricsFunc int

// The metrics functions, as Tempo names them.
const (
	MetricsRate MetricsFunc = iota + 1
	MetricsCountOverTime
	MetricsSumOverTime
	MetricsAvgOverTime
	MetricsMinOverTime
	MetricsMaxOverTime
	MetricsQuantileOverTime
	MetricsHistogramOverTime
	MetricsCompare
)

var metricsFuncNames = map[MetricsFunc]string{
	MetricsRate:              "rate",
	MetricsCountOverTime:     "count_over_time",
	MetricsSumOverTime:       "sum_over_time",
	MetricsAvgOverTime:       "avg_over_time",
	MetricsMinOverTime:       "min_over_time",
	MetricsMaxOverTime:       "max_over_time",
	MetricsQuantileOverTime:  "quantile_over_time",
	MetricsHistogramOverTime: "histogram_over_time",
	MetricsCompare:           "compare",
}

// String returns the function's name, e.g. "rate".
func (f MetricsFunc) String() string { return metricsFuncNames[f] }

// TakesAttribute reports whether the function measures an attribute
// (its first argument): every *_over_time function except
// count_over_time, quantile_over_time and histogram_over_time.
func (f MetricsFunc) TakesAttribute() bool {
	switch f {
	case MetricsSumOverTime, MetricsAvgOverTime, MetricsMinOverTime, MetricsMaxOverTime,
		MetricsQuantileOverTime, MetricsHistogramOverTime:
		return true
	}
	return false
}

// MetricsStage is the first metrics stage, which turns the spans the
// search pipeline returns into time series: `rate()`,
// `count_over_time()`, `sum_over_time(attr)`, `avg_over_time(attr)`,
// `min_over_time(attr)`, `max_over_time(attr)`,
// `quantile_over_time(attr, q1, q2, ...)`, `histogram_over_time(attr)`,
// each with an optional `by (a, b, ...)`, or
// `compare({ selection }[, topN[, start, end]])`.
type MetricsStage struct {
	Pos  Position
	Func MetricsFunc
	// Attr is the measured field of the functions that take one (see
	// MetricsFunc.TakesAttribute): an intrinsic such as duration or an
	// attribute, numeric at query time.
	Attr *Attribute
	// Quantiles are the quantiles of quantile_over_time, each in [0, 1],
	// in the order written; Parse guarantees at least one.
	Quantiles []float64
	// By are the group-by fields, in the order written; nil without by,
	// at most MaxMetricsGroupBy (Parse rejects more); never for compare.
	By []*Attribute
	// Selection, TopN, CompareStart and CompareEnd are compare's
	// arguments: the spans of the selection are compared with the
	// others (the baseline). TopN is the most values kept per attribute,
	// above 0 (DefaultCompareTopN, Tempo's default, when not written).
	// CompareStart and CompareEnd, unix nanoseconds, restrict the
	// selection to spans starting in [CompareStart, CompareEnd); both 0
	// when not written, 0 <= CompareStart < CompareEnd when written.
	Selection                *SpansetFilter
	TopN                     int
	CompareStart, CompareEnd int64
	// Filter is an optional comparison of the samples with a number,
	// written right after the function (`rate() by (x) > 10`): samples
	// for which it does not hold are dropped. nil without one.
	Filter *MetricsFilter
}

// MetricsSecondStage is a stage after the first metrics stage:
// *TopK.
type MetricsSecondStage interface {
	Node
	metricsSecondStage()
}

// TopK is `topk(n)` or `bottomk(n)` (Bottom), N > 0: only the n series
// with the highest (lowest) average of their samples are kept, as in
// Tempo; series without samples come last. Filter is an optional
// comparison of the remaining samples with a number, written right after
// it (`| topk(5) > 10`).
type TopK struct {
	Pos    Position
	Bottom bool
	N      int
	Filter *MetricsFilter
}

// MetricsFilter is `<op> <number>` after a metrics function or stage:
// samples for which `sample Op Value` is false are dropped (a series left
// without samples is dropped). Op is a comparison (= != < <= > >=).
type MetricsFilter struct {
	Pos   Position
	Op    Operator
	Value float64
}

func (n *MetricsStage) Position() Position  { return n.Pos }
func (n *TopK) Position() Position          { return n.Pos }
func (n *MetricsFilter) Position() Position { return n.Pos }

func (*TopK) metricsSecondStage() {}

// IsMetrics reports whether the query is a metrics query.
func (n *RootExpr) IsMetrics() bool { return n.Metrics != nil }
