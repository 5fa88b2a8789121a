// Package search answers TraceQL searches (Tempo's /api/search) over the
// two places traces live: the live-stores and the blocks in object storage.
//
// This first version is correct but not optimized: it reads every span of
// the live-stores and of every block overlapping the time range, gathers
// the spans of each trace from all places (one copy per span ID), evaluates
// the query on every trace and keeps the most recent matches. There is no
// push-down to storage, no early stop and no sharding.
package search

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/thanos-io/objstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
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
	Query string
	// Limit is the most traces returned: 0 means DefaultLimit, above
	// MaxLimit is an error.
	Limit int
	// SpansPerSpanSet is the most spans returned per spanset: 0 means
	// DefaultSpansPerSpanSet, above MaxSpansPerSpanSet is an error.
	SpansPerSpanSet int
	// Start and End bound the traces searched (a zero time is unbounded):
	// a trace is searched when its span time range overlaps [Start, End].
	Start, End time.Time
	// MinDuration and MaxDuration (0 = no bound) filter traces by duration.
	MinDuration, MaxDuration time.Duration
}

// Live is where recent traces are: livestore.Set.
type Live interface {
	EachTrace(tenant string, fn func(traceID [16]byte, data []byte) bool)
}

// Searcher searches live-stores and blocks.
type Searcher struct {
	live   Live
	blocks *blocklist.List
	bkt    objstore.BucketReader
}

// New returns a searcher over live and the blocks of bkt; either of live
// and blocks may be nil.
func New(live Live, blocks *blocklist.List, bkt objstore.BucketReader) *Searcher {
	return &Searcher{live: live, blocks: blocks, bkt: bkt}
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// Search runs req for tenant. Bad requests (a query that does not parse,
// limits out of range) fail with a gRPC InvalidArgument status.
func (s *Searcher) Search(ctx context.Context, req Request, tenant string) (*Response, error) {
	limit, spss := req.Limit, req.SpansPerSpanSet
	switch {
	case limit < 0 || limit > MaxLimit:
		return nil, invalid("invalid limit %d: must be between 1 and %d", limit, MaxLimit)
	case limit == 0:
		limit = DefaultLimit
	}
	switch {
	case spss < 0 || spss > MaxSpansPerSpanSet:
		return nil, invalid("invalid spss %d: must be between 1 and %d", spss, MaxSpansPerSpanSet)
	case spss == 0:
		spss = DefaultSpansPerSpanSet
	}
	if req.MinDuration > 0 && req.MaxDuration > 0 && req.MinDuration > req.MaxDuration {
		return nil, invalid("invalid duration range: minDuration (%s) is greater than maxDuration (%s)", req.MinDuration, req.MaxDuration)
	}
	q := req.Query
	if q == "" {
		q = "{}"
	}
	root, err := traceql.Parse(q)
	if err != nil {
		return nil, invalid("%s", err.Error())
	}
	addSelect(root)

	// Gather the spans of every trace, per trace ID, from every place.
	m := &Metrics{TotalJobs: 1}
	parts := map[[16]byte][][]byte{}
	if s.live != nil {
		s.live.EachTrace(tenant, func(id [16]byte, data []byte) bool {
			parts[id] = append(parts[id], data)
			m.InspectedBytes += uint64(len(data))
			return ctx.Err() == nil
		})
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	m.CompletedJobs++
	var entries []*blocklist.Entry
	if s.blocks != nil {
		entries = s.blocks.Blocks(tenant, req.Start, req.End)
	}
	m.TotalBlocks = uint32(len(entries))
	m.TotalJobs += uint32(len(entries))
	for _, e := range entries {
		m.TotalBlockBytes += uint64(e.Meta.Size)
		r, err := e.Reader(ctx, s.bkt)
		if err != nil {
			return nil, fmt.Errorf("cannot open block %s: %w", e.Meta.BlockID, err)
		}
		data, err := r.ReadAll(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot read block %s: %w", e.Meta.BlockID, err)
		}
		m.InspectedBytes += uint64(len(data))
		if err := splitTraces(data, parts); err != nil {
			return nil, fmt.Errorf("cannot read block %s: %w", e.Meta.BlockID, err)
		}
		m.CompletedJobs++
	}

	// Evaluate every trace.
	var found []*Trace
	for id, p := range parts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := otlpwire.Merge(p...)
		if err != nil {
			return nil, fmt.Errorf("cannot merge trace %x: %w", id, err)
		}
		t, err := traceql.NewTrace(data)
		if err != nil {
			return nil, fmt.Errorf("cannot decode trace %x: %w", id, err)
		}
		if len(t.Spans) == 0 {
			continue
		}
		m.InspectedTraces++
		m.InspectedSpans += uint64(len(t.Spans))
		if !inRange(t, req) {
			continue
		}
		sets, err := root.Eval(t)
		if err != nil {
			if errors.Is(err, traceql.ErrUnsupported) || errors.Is(err, traceql.ErrSpansetOperationMultiple) {
				return nil, invalid("%s", err.Error())
			}
			return nil, fmt.Errorf("cannot evaluate the query on trace %x: %w", id, err)
		}
		if len(sets) == 0 {
			continue
		}
		found = append(found, traceResult(id, t, sets, spss))
	}
	slices.SortFunc(found, func(a, b *Trace) int {
		return cmp.Or(cmp.Compare(b.StartTimeUnixNano, a.StartTimeUnixNano), cmp.Compare(a.TraceID, b.TraceID))
	})
	if len(found) > limit {
		found = found[:limit]
	}
	return &Response{Traces: found, Metrics: m}, nil
}

// splitTraces adds the spans of TracesData data to parts, one TracesData
// per trace ID.
func splitTraces(data []byte, parts map[[16]byte][][]byte) error {
	var batch otlpwire.Batch
	if err := batch.Scan(data); err != nil {
		return err
	}
	builders := map[[16]byte]*otlpwire.Builder{}
	var order [][16]byte
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			for _, sp := range sc.Spans {
				var id [16]byte
				copy(id[:], sp.TraceID)
				b := builders[id]
				if b == nil {
					b = &otlpwire.Builder{}
					builders[id] = b
					order = append(order, id)
				}
				b.Add(res, sc, sp.Raw)
			}
		}
	}
	for _, id := range order {
		parts[id] = append(parts[id], builders[id].AppendTo(nil))
	}
	return nil
}

// inRange applies the request's time range and duration bounds.
func inRange(t *traceql.Trace, req Request) bool {
	if !req.Start.IsZero() && t.EndUnixNano < uint64(req.Start.UnixNano()) {
		return false
	}
	if !req.End.IsZero() && t.StartUnixNano > uint64(req.End.UnixNano()) {
		return false
	}
	d := time.Duration(t.DurationNanos())
	if req.MinDuration > 0 && d < req.MinDuration {
		return false
	}
	if req.MaxDuration > 0 && d > req.MaxDuration {
		return false
	}
	return true
}

// addSelect appends a select() of the span attributes the query reads, so
// that the spans of the result carry them as Tempo's do (names, durations
// and trace-level intrinsics are not repeated).
func addSelect(root *traceql.RootExpr) {
	if root.Pipeline == nil {
		return
	}
	var fields []*traceql.Attribute
	seen := map[string]bool{}
	traceql.Inspect(root.Pipeline, func(n traceql.Node) bool {
		a, ok := n.(*traceql.Attribute)
		if !ok || a.Parent {
			return true
		}
		switch a.Intrinsic {
		case traceql.IntrinsicNone, traceql.IntrinsicStatus, traceql.IntrinsicStatusMessage, traceql.IntrinsicKind:
		default:
			return true
		}
		if k := a.String(); !seen[k] {
			seen[k] = true
			fields = append(fields, a)
		}
		return true
	})
	if len(fields) > 0 {
		root.Pipeline.Stages = append(root.Pipeline.Stages, &traceql.Select{Pos: root.Pipeline.Pos, Fields: fields})
	}
}

func traceResult(id [16]byte, t *traceql.Trace, sets []traceql.Spanset, spss int) *Trace {
	out := &Trace{
		TraceID:           traceIDString(id),
		RootServiceName:   t.RootServiceName(),
		RootTraceName:     t.RootName(),
		StartTimeUnixNano: t.StartUnixNano,
		DurationMs:        uint32(min(t.DurationNanos()/uint64(time.Millisecond), uint64(^uint32(0)))),
	}
	if out.RootServiceName == "" {
		out.RootServiceName = RootSpanNotYetReceived
	}
	for _, ss := range sets {
		set := &SpanSet{Matched: uint32(ss.Matched)}
		for _, sp := range ss.Spans[:min(len(ss.Spans), spss)] {
			set.Spans = append(set.Spans, spanResult(sp))
		}
		for _, kv := range ss.Attributes {
			if v := anyValue(kv.Value); v != nil {
				set.Attributes = append(set.Attributes, &KeyValue{Key: kv.Key, Value: v})
			}
		}
		out.SpanSets = append(out.SpanSets, set)
	}
	if len(out.SpanSets) > 0 {
		out.SpanSet = out.SpanSets[0]
	}
	return out
}

func spanResult(sp *traceql.Span) *Span {
	out := &Span{
		SpanID:            hex.EncodeToString(sp.Fields.SpanID),
		Name:              sp.Name,
		StartTimeUnixNano: sp.Fields.StartTimeUnixNano,
		DurationNanos:     sp.DurationNanos(),
	}
	seen := map[string]bool{}
	for _, kv := range sp.Selected {
		key := bareName(kv.Key)
		if seen[key] {
			continue
		}
		if v := anyValue(kv.Value); v != nil {
			seen[key] = true
			out.Attributes = append(out.Attributes, &KeyValue{Key: key, Value: v})
		}
	}
	return out
}
