// Package search answers TraceQL searches (Tempo's /api/search) over the
// two places traces live: the live-stores and the blocks in object storage.
//
// A search is cut into jobs (job.go): one over the live-stores and, for
// each block overlapping the time range, newest first, jobs over ranges of
// its row groups. A job evaluates the query on the traces of its place
// that have a span satisfying the query's per-span condition
// (traceql.Condition, pushed into the block read by block.Reader.Scan).
// A Combiner (combine.go) merges job results, says when enough was found,
// and finally re-evaluates the traces it returns on their whole data (all
// places), so that the spansets and metadata returned are those of the
// whole trace. Search runs the jobs in process, one after the other; the
// query-frontend (query/frontend) runs them on queriers concurrently.
package search

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/traceql"
)

// Limits of a request, as Tempo's defaults.
const (
	DefaultLimit           = 20
	MaxLimit               = 262144
	DefaultSpansPerSpanSet = 3
	MaxSpansPerSpanSet     = 100
)

// Request is one search.
type Request struct {
	// Query is TraceQL; empty means {} (every trace).
	Query string `json:"q,omitempty"`
	// Limit is the most traces returned: 0 means DefaultLimit, above
	// MaxLimit is an error.
	Limit int `json:"limit,omitempty"`
	// SpansPerSpanSet is the most spans returned per spanset: 0 means
	// DefaultSpansPerSpanSet, above MaxSpansPerSpanSet is an error.
	SpansPerSpanSet int `json:"spss,omitempty"`
	// Start and End bound the traces searched (a zero time is unbounded):
	// a trace is searched when its span time range overlaps [Start, End].
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// MinDuration and MaxDuration (0 = no bound) filter traces by
	// duration, truncated to whole milliseconds, in a legacy search only
	// (no Query, or Legacy): Tempo ignores them with a TraceQL query.
	MinDuration time.Duration `json:"minDuration,omitempty"`
	MaxDuration time.Duration `json:"maxDuration,omitempty"`
	// Legacy marks Query as translated from the legacy tags parameter:
	// the search is Tempo's legacy search, whose traces carry metadata
	// only (no spansets), as when Query is empty.
	Legacy bool `json:"legacy,omitempty"`
}

// Live is where recent traces are: livestore.Set.
type Live interface {
	// Scan calls fn with each trace of the tenant that sel selects (its
	// ID and its spans as OTLP TracesData), until fn returns false or ctx
	// is done, and returns the bytes of the traces it tested.
	Scan(ctx context.Context, tenant string, sel spanpred.Selection, fn func(traceID [16]byte, data []byte) bool) (bytes int64, err error)
	// EachPart calls fn with each part of the tenant's recent spans (a
	// live-store segment, newest first), until fn returns false or ctx
	// is done.
	EachPart(ctx context.Context, tenant string, fn func(p spanpred.Part) bool) error
	Finder
}

// Finder finds the whole of one trace (query/querier.Querier, or one
// place of it).
type Finder interface {
	FindTraceByID(ctx context.Context, tenant string, traceID [16]byte, start, end int64) ([]byte, error)
}

// Searcher searches live-stores and blocks.
type Searcher struct {
	live   Live
	blocks *blocklist.List
	bkt    objstore.BucketReader
	finder Finder
	// remoteTags, when set, answers the live part of tag requests from
	// the live-stores of other processes (SetRemoteTags).
	remoteTags RemoteTags
	// TargetBytesPerJob is the size of the block jobs Plan cuts (bytes of
	// data.parquet); 0 means DefaultTargetBytesPerJob.
	TargetBytesPerJob int64
}

// New returns a searcher over live and the blocks of bkt; either of live
// and blocks may be nil.
func New(live Live, blocks *blocklist.List, bkt objstore.BucketReader) *Searcher {
	s := &Searcher{live: live, blocks: blocks, bkt: bkt}
	s.finder = placesFinder{s}
	return s
}

// SetFinder makes the searcher read whole traces with f (the querier's
// trace by ID, which reads blocks concurrently) instead of one place after
// the other.
func (s *Searcher) SetFinder(f Finder) { s.finder = f }

// Finder is how the searcher reads whole traces.
func (s *Searcher) Finder() Finder { return s.finder }

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// query is a request checked and parsed.
type query struct {
	req   Request
	limit int
	spss  int
	root  *traceql.RootExpr
	// sel is what storage hands the job: the traces with a span that
	// may satisfy the query's per-span condition, or the traces the query
	// names by ID.
	sel        spanpred.Selection
	mostRecent bool
	// metadataOnly is set for a search without a query (Tempo's legacy
	// search): its traces carry no spansets.
	metadataOnly bool
	// readsName is set when the query reads the span name: only then do
	// the spans of the result carry it, as Tempo's do.
	readsName bool
	// attrNames are the names the spans of the result give the fields
	// that addSelect selected, by the field's text.
	attrNames map[string]string
}

// parse checks req and parses its query. Bad requests fail with a gRPC
// InvalidArgument status.
func parse(req Request) (*query, error) {
	q := &query{req: req, limit: req.Limit, spss: req.SpansPerSpanSet}
	switch {
	case q.limit < 0 || q.limit > MaxLimit:
		return nil, invalid("invalid limit %d: must be between 1 and %d", q.limit, MaxLimit)
	case q.limit == 0:
		q.limit = DefaultLimit
	}
	switch {
	case q.spss < 0 || q.spss > MaxSpansPerSpanSet:
		return nil, invalid("invalid spss %d: must be between 1 and %d", q.spss, MaxSpansPerSpanSet)
	case q.spss == 0:
		q.spss = DefaultSpansPerSpanSet
	}
	if req.MinDuration > 0 && req.MaxDuration > 0 && req.MinDuration > req.MaxDuration {
		return nil, invalid("invalid duration range: minDuration (%s) is greater than maxDuration (%s)", req.MinDuration, req.MaxDuration)
	}
	text := req.Query
	if strings.TrimSpace(text) == "" {
		text = "{}"
		q.metadataOnly = true
	}
	if req.Legacy {
		q.metadataOnly = true
	}
	if q.metadataOnly { // as Tempo's SearchRequest carries them
		q.req.MinDuration = req.MinDuration.Truncate(time.Millisecond)
		q.req.MaxDuration = req.MaxDuration.Truncate(time.Millisecond)
	} else {
		q.req.MinDuration, q.req.MaxDuration = 0, 0
	}
	// The query-frontend applied the configured size, nesting, stage and
	// regular expression limits; here only the parser's own bounds hold.
	root, err := traceql.ParseWithLimits(text, traceql.Limits{MaxBytes: math.MaxInt, MaxDepth: traceql.HardMaxDepth, MaxStages: math.MaxInt, MaxRegexSize: math.MaxInt})
	if err != nil {
		return nil, invalid("%s", err.Error())
	}
	if root.IsMetrics() {
		return nil, invalid("metrics queries are not supported by the search API: send %s to /api/metrics/query_range or /api/metrics/query", root)
	}
	q.sel.Pred = root.Predicate()
	q.sel.TraceIDs, q.sel.ByTraceID = root.TraceIDs()
	if q.sel.Pred != nil {
		q.sel.MinSpans = root.MinSpans()
	}
	q.attrNames, q.readsName = addSelect(root)
	q.root = root
	if root.Hints != nil {
		for _, h := range root.Hints.Hints {
			if h.Name == "most_recent" && h.Value != nil && h.Value.Type == traceql.TypeBoolean {
				q.mostRecent = h.Value.Bool
			}
		}
	}
	return q, nil
}

// MostRecent reports whether req's query asks `with (most_recent=true)`;
// false for a query that does not parse.
func MostRecent(req Request) bool {
	q, err := parse(req)
	return err == nil && q.mostRecent
}

// Search runs req for tenant: every job in process, one after the other,
// stopping as the Combiner says, within the ResultBudget ctx carries, if
// any. Bad requests fail with a gRPC InvalidArgument status.
func (s *Searcher) Search(ctx context.Context, req Request, tenant string) (*Response, error) {
	q, err := parse(req)
	if err != nil {
		return nil, err
	}
	jobs := s.Plan(req, tenant)
	c, err := NewCombiner(req, jobs)
	if err != nil {
		return nil, err
	}
	c.SetBudget(ResultBudgetFrom(ctx))
	for i, j := range jobs {
		if c.Enough(jobs[i:]) {
			break
		}
		res, err := s.runJob(ctx, q, tenant, j)
		if err != nil && !j.Live && Skippable(ctx, err) {
			res, err = SkippedJob(tenant, j, err), nil
			partial.FromContext(ctx).Add(*res.Skipped)
		}
		if err != nil {
			return nil, err
		}
		if err := c.Add(res); err != nil {
			return nil, err
		}
	}
	return c.Finish(ctx, tenant, s.finder)
}

// Skippable reports whether a block job that failed with err may be
// skipped, the search answering partially: a read of the block failed.
// Not an error with a gRPC status (a bad request, a limit), nor when the
// search's ctx ended.
func Skippable(ctx context.Context, err error) bool {
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return false
	}
	return partial.Skippable(ctx, err)
}

// placesFinder reads a whole trace from the searcher's live-stores and
// blocks, one after the other.
type placesFinder struct{ s *Searcher }

func (f placesFinder) FindTraceByID(ctx context.Context, tenant string, id [16]byte, start, end int64) ([]byte, error) {
	var parts [][]byte
	if f.s.live != nil {
		data, err := f.s.live.FindTraceByID(ctx, tenant, id, start, end)
		if err != nil {
			return nil, err
		}
		parts = append(parts, data)
	}
	if f.s.blocks != nil {
		for _, e := range f.s.blocks.Blocks(tenant, time.Time{}, time.Time{}) {
			// A block rewritten under the same ID is reopened once.
			data, err := blocklist.Read(ctx, f.s.blocks, f.s.bkt, e, func(r *block.Reader) ([]byte, error) {
				return r.FindTraceByID(ctx, id)
			})
			if err != nil && partial.Skippable(ctx, err) {
				partial.FromContext(ctx).Add(partial.Skip{Tenant: tenant, Block: e.Meta.BlockID.String(), Reason: partial.ReasonOf(err), Error: err.Error()})
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("cannot read block %s: %w", e.Meta.BlockID, err)
			}
			parts = append(parts, data)
		}
	}
	return otlpwire.Merge(parts...)
}

// overlaps reports whether the trace's time range overlaps the request's.
func overlaps(t *traceql.Trace, req Request) bool {
	if !req.Start.IsZero() && t.EndUnixNano < uint64(req.Start.UnixNano()) {
		return false
	}
	return req.End.IsZero() || t.StartUnixNano <= uint64(req.End.UnixNano())
}

// durationIn applies the request's duration bounds.
func durationIn(t *traceql.Trace, req Request) bool {
	d := time.Duration(t.DurationNanos())
	return (req.MinDuration <= 0 || d >= req.MinDuration) && (req.MaxDuration <= 0 || d <= req.MaxDuration)
}

// addSelect appends a select() of the span attributes and intrinsics the
// query reads, so that the spans of the result carry them as Tempo's do
// (name, duration, span ID and trace-level intrinsics are not repeated).
// It returns the name each selected field has in the result (Tempo's:
// the attribute's name without its scope, the intrinsic's canonical
// spelling such as status, childCount, event:name, span:parentID) and
// whether the query reads the span name.
func addSelect(root *traceql.RootExpr) (names map[string]string, readsName bool) {
	if root.Pipeline == nil {
		return nil, false
	}
	var fields []*traceql.Attribute
	names = map[string]string{}
	traceql.Inspect(root.Pipeline, func(n traceql.Node) bool {
		a, ok := n.(*traceql.Attribute)
		if !ok || a.Parent {
			return true
		}
		name := a.Name
		switch a.Intrinsic {
		case traceql.IntrinsicNone:
		case traceql.IntrinsicName:
			readsName = true
			return true
		case traceql.IntrinsicStatus, traceql.IntrinsicStatusMessage, traceql.IntrinsicKind,
			traceql.IntrinsicChildCount, traceql.IntrinsicParentID,
			traceql.IntrinsicEventName, traceql.IntrinsicEventTimeSinceStart,
			traceql.IntrinsicLinkTraceID, traceql.IntrinsicLinkSpanID,
			traceql.IntrinsicInstrumentationName, traceql.IntrinsicInstrumentationVersion:
			name = a.Intrinsic.String()
		default:
			return true
		}
		if k := a.String(); names[k] == "" {
			names[k] = name
			fields = append(fields, a)
		}
		return true
	})
	if len(fields) > 0 {
		root.Pipeline.Stages = append(root.Pipeline.Stages, &traceql.Select{Pos: root.Pipeline.Pos, Fields: fields})
	}
	return names, readsName
}

// traceResult is the result of a matching trace. Its strings are copies:
// the trace's point into its encoded data, which a result kept until the
// search ends would otherwise keep whole (every span, not the spss
// returned: 6 times what the result holds for traces of 10 spans).
func traceResult(id [16]byte, t *traceql.Trace, sets []traceql.Spanset, q *query) *Trace {
	out := &Trace{
		TraceID:           traceIDString(id),
		RootServiceName:   strings.Clone(t.RootServiceName()),
		RootTraceName:     strings.Clone(t.RootName()),
		StartTimeUnixNano: t.StartUnixNano,
		DurationMs:        uint32(min(t.DurationNanos()/uint64(time.Millisecond), uint64(^uint32(0)))),
		ServiceStats:      serviceStats(t),
	}
	if out.RootServiceName == "" {
		out.RootServiceName = RootSpanNotYetReceived
	}
	if q.metadataOnly {
		return out
	}
	for _, ss := range sets {
		set := &SpanSet{Matched: uint32(ss.Matched)}
		for _, sp := range ss.Spans[:min(len(ss.Spans), q.spss)] {
			set.Spans = append(set.Spans, spanResult(sp, q))
		}
		for _, kv := range ss.Attributes {
			v := AnyValueOf(kv.Value)
			if v == nil { // by() of a missing attribute, as Tempo writes it
				nilText := "nil"
				v = &AnyValue{StringValue: &nilText}
			}
			set.Attributes = append(set.Attributes, &KeyValue{Key: strings.Clone(kv.Key), Value: v})
		}
		out.SpanSets = append(out.SpanSets, set)
	}
	if len(out.SpanSets) > 0 {
		out.SpanSet = out.SpanSets[0]
	}
	return out
}

// serviceStats counts the spans and error spans of each service of t.
func serviceStats(t *traceql.Trace) map[string]*ServiceStats {
	stats := map[string]*ServiceStats{}
	for _, sp := range t.Spans {
		name := sp.ServiceName()
		st := stats[name]
		if st == nil {
			st = &ServiceStats{}
			stats[strings.Clone(name)] = st
		}
		st.SpanCount++
		if sp.Fields.StatusCode == 2 { // STATUS_CODE_ERROR
			st.ErrorCount++
		}
	}
	return stats
}

func spanResult(sp *traceql.Span, q *query) *Span {
	out := &Span{
		SpanID:            hex.EncodeToString(sp.Fields.SpanID),
		StartTimeUnixNano: sp.Fields.StartTimeUnixNano,
		DurationNanos:     sp.DurationNanos(),
	}
	if q.readsName {
		out.Name = strings.Clone(sp.Name)
	}
	seen := map[string]bool{}
	for _, kv := range sp.Selected {
		key, ok := q.attrNames[kv.Key]
		if !ok {
			key = bareName(kv.Key)
		}
		if seen[key] {
			continue
		}
		if v := AnyValueOf(kv.Value); v != nil {
			seen[key] = true
			out.Attributes = append(out.Attributes, &KeyValue{Key: strings.Clone(key), Value: v})
		}
	}
	return out
}
