package search

// This file answers Tempo's tag look-ups: the attribute names
// (/api/search/tags, /api/v2/search/tags) and the values of one attribute
// (/api/search/tag/{name}/values, /api/v2/search/tag/{name}/values), over
// the live-stores and, when the request has a time range, the blocks
// overlapping it (as in Tempo, a request without start and end looks at
// recent data only).
//
// Without a filter, blocks are read through block.Reader's tag methods,
// which read dictionary pages and the few columns needed (see
// internal/block/tags.go); event and link attributes of blocks are read
// (a scan of every span) only when the request names the event or link
// scope, or is a v1 names request without scope. With a v2 filter q that parses as TraceQL, every trace is read
// whole, evaluated, and only the spans it matches contribute; a q that does
// not parse, or that the evaluator cannot run, is ignored as Tempo ignores
// an invalid filter.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/traceql"
)

// DefaultMaxBytesPerTagValuesQuery is Tempo's default cap on the bytes of
// names or values one tag request returns.
const DefaultMaxBytesPerTagValuesQuery = 1_000_000

// MaxBytesPerTagValuesQueryKey is the configuration key of that cap, named
// in the truncation message.
const MaxBytesPerTagValuesQueryKey = "overrides.defaults.read.max_bytes_per_tag_values_query"

// Tag scopes of the scope parameter and of v2 responses.
const (
	ScopeResource        = "resource"
	ScopeSpan            = "span"
	ScopeIntrinsic       = "intrinsic"
	ScopeEvent           = "event"
	ScopeLink            = "link"
	ScopeInstrumentation = "instrumentation"
	// ScopeNone (v2 only) and "" ask for every scope.
	ScopeNone = "none"
)

// v2Scopes is the order of scopes in a v2 answer.
var v2Scopes = []string{ScopeResource, ScopeSpan, ScopeIntrinsic, ScopeEvent, ScopeLink, ScopeInstrumentation}

// IntrinsicTagNames are the intrinsic names Tempo lists (virtual: they are
// returned whatever the data).
var IntrinsicTagNames = []string{
	"duration", "name", "status", "statusMessage", "kind", "rootServiceName", "rootName", "traceDuration",
	"event:name", "event:timeSinceStart", "link:spanID", "link:traceID", "instrumentation:name",
	"instrumentation:version", "trace:id", "span:id", "span:parentID", "span:status", "span:statusMessage",
	"span:duration", "span:name", "span:kind", "trace:rootName", "trace:rootService", "trace:duration",
}

// Virtual values.
var (
	statusKeywords = []string{"ok", "error", "unset"}
	kindKeywords   = []string{"client", "server", "producer", "consumer", "internal", "unspecified"}
	// v1StatusCodes are the values of the legacy status.code tag.
	v1StatusCodes = []string{"unset", "ok", "error"}
)

// TagsRequest is a tag names or tag values request.
type TagsRequest struct {
	// Scope (names only) is "", ScopeNone (v2), or one scope name.
	Scope string
	// Name (values only) is the attribute: a raw attribute name for v1
	// (service.name), a TraceQL identifier for v2 (.service.name,
	// resource.service.name, status, span:kind...).
	Name string
	// Query (v2 only) is a TraceQL filter: only the spans it matches
	// contribute. An invalid query is ignored.
	Query string
	// Start and End bound the blocks read; both zero means the live-stores
	// only.
	Start, End time.Time
	// Limit is the most names (per scope for v2) or values returned; 0 is
	// no limit.
	Limit int
	// MaxBytes caps the bytes of names or values returned; 0 means
	// DefaultMaxBytesPerTagValuesQuery.
	MaxBytes int
	// MaxReadBytes caps the trace data a request that reads whole traces
	// (a v2 filter q, rootName and rootServiceName values) holds to
	// evaluate them; past it the blocks left are not read and the answer
	// says so (Truncated). 0 is no cap.
	MaxReadBytes int64
}

// MetadataMetrics are a tag request's statistics (tempopb.MetadataMetrics).
type MetadataMetrics struct {
	InspectedBytes  uint64 `json:"inspectedBytes,omitempty,string"`
	TotalJobs       uint32 `json:"totalJobs,omitempty"`
	CompletedJobs   uint32 `json:"completedJobs,omitempty"`
	TotalBlocks     uint32 `json:"totalBlocks,omitempty"`
	TotalBlockBytes uint64 `json:"totalBlockBytes,omitempty,string"`
	// readCut is why the traces read were cut short (MaxReadBytes), "" if
	// they were not.
	readCut string
}

// TagNamesResponse is tempopb.SearchTagsResponse (v1).
type TagNamesResponse struct {
	TagNames []string         `json:"tagNames,omitempty"`
	Metrics  *MetadataMetrics `json:"metrics"`
	// Truncated is why the answer is incomplete ("" when complete); it is
	// not part of the response body.
	Truncated string `json:"-"`
}

// TagNamesV2Response is tempopb.SearchTagsV2Response.
type TagNamesV2Response struct {
	Scopes    []*TagScope      `json:"scopes,omitempty"`
	Metrics   *MetadataMetrics `json:"metrics"`
	Truncated string           `json:"-"`
}

// TagScope is the names of one scope (tempopb.SearchTagsV2Scope).
type TagScope struct {
	Name string   `json:"name,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

// TagValuesResponse is tempopb.SearchTagValuesResponse (v1).
type TagValuesResponse struct {
	TagValues []string         `json:"tagValues,omitempty"`
	Metrics   *MetadataMetrics `json:"metrics"`
	Truncated string           `json:"-"`
}

// TagValuesV2Response is tempopb.SearchTagValuesV2Response.
type TagValuesV2Response struct {
	TagValues []TagValue       `json:"tagValues,omitempty"`
	Metrics   *MetadataMetrics `json:"metrics"`
	Truncated string           `json:"-"`
}

// TagValue is one typed value (tempopb.TagValue): Type is string, int,
// float, bool, duration or keyword.
type TagValue struct {
	Type  string `json:"type,omitempty"`
	Value string `json:"value,omitempty"`
}

// budget is the byte cap shared by the collectors of one request.
type budget struct {
	max, used int
	truncated string
}

func (b *budget) take(n int) bool {
	if b.used+n > b.max {
		if b.truncated == "" {
			b.truncated = fmt.Sprintf("response truncated at %d bytes (%s)", b.max, MaxBytesPerTagValuesQueryKey)
		}
		return false
	}
	b.used += n
	return true
}

// collector gathers distinct strings up to a count limit and the budget.
type collector struct {
	limit int
	b     *budget
	seen  map[string]bool
	out   []string
}

func newCollector(limit int, b *budget) *collector {
	return &collector{limit: limit, b: b, seen: map[string]bool{}}
}

// add adds s (whose cost is size bytes), reporting whether there is room for more.
func (c *collector) add(s string, size int) bool {
	if c.seen[s] {
		return true
	}
	if c.full() || !c.b.take(size) {
		return false
	}
	c.seen[s] = true
	c.out = append(c.out, s)
	return true
}

func (c *collector) full() bool {
	return c.limit > 0 && len(c.out) >= c.limit || c.b.truncated != ""
}

func newBudget(req TagsRequest) *budget {
	max := req.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytesPerTagValuesQuery
	}
	return &budget{max: max}
}

// scopeMask maps scope names to block scopes.
var scopeMask = map[string]block.TagScope{
	ScopeResource:        block.TagScopeResource,
	ScopeSpan:            block.TagScopeSpan,
	ScopeEvent:           block.TagScopeEvent,
	ScopeLink:            block.TagScopeLink,
	ScopeInstrumentation: block.TagScopeInstrumentation,
}

func checkScope(scope string, v2 bool) error {
	switch scope {
	case "", ScopeResource, ScopeSpan, ScopeIntrinsic, ScopeEvent, ScopeLink, ScopeInstrumentation:
		return nil
	case ScopeNone:
		if v2 {
			return nil
		}
	}
	valid := "resource, span, intrinsic, event, link, instrumentation"
	if v2 {
		valid += ", none"
	}
	return invalid("invalid scope %q: must be one of %s", scope, valid)
}

// TagNames answers the v1 tag names request: without scope the attribute
// names of every scope (span, resource, instrumentation, event, link)
// merged, with scope intrinsic the intrinsics,
// else the names of that scope; sorted.
func (s *Searcher) TagNames(ctx context.Context, req TagsRequest, tenant string) (*TagNamesResponse, error) {
	if err := checkScope(req.Scope, false); err != nil {
		return nil, err
	}
	resp := &TagNamesResponse{Metrics: &MetadataMetrics{}}
	if req.Scope == ScopeIntrinsic {
		resp.TagNames = slices.Clone(IntrinsicTagNames)
		resp.Metrics.TotalJobs, resp.Metrics.CompletedJobs = 1, 1
		return resp, nil
	}
	// Unscoped: every attribute scope, as Tempo (blocks then scan every
	// span for event and link names).
	mask := block.TagScopeSpan | block.TagScopeResource | block.TagScopeInstrumentation | block.TagScopeEvent | block.TagScopeLink
	if req.Scope != "" {
		mask = scopeMask[req.Scope]
	}
	b := newBudget(req)
	c := newCollector(req.Limit, b)
	collect := func(_ block.TagScope, name string) bool { return c.add(name, len(name)) }
	m, err := s.collectNames(ctx, req, tenant, nil, mask, mask, collect)
	if err != nil {
		return nil, err
	}
	remote, cut, err := s.askRemoteTags(ctx, tenant, TagsJobNames, req, m)
	if err != nil {
		return nil, err
	}
	for _, r := range remote {
		for _, sc := range r.Scopes {
			for _, name := range sc.Tags {
				if !c.add(name, len(name)) {
					break
				}
			}
		}
	}
	slices.Sort(c.out)
	resp.TagNames, resp.Metrics, resp.Truncated = c.out, m, joinCut(b.truncated, cut)
	return resp, nil
}

// TagNamesV2 answers the v2 tag names request: names per scope (limit per
// scope), intrinsics for the unscoped and intrinsic requests, filtered by
// req.Query when it is valid TraceQL. Scopes without names are left out.
func (s *Searcher) TagNamesV2(ctx context.Context, req TagsRequest, tenant string) (*TagNamesV2Response, error) {
	if err := checkScope(req.Scope, true); err != nil {
		return nil, err
	}
	all := req.Scope == "" || req.Scope == ScopeNone
	var mask, explicit block.TagScope
	if all {
		mask = block.TagScopeSpan | block.TagScopeResource | block.TagScopeInstrumentation | block.TagScopeEvent | block.TagScopeLink
		// Event and link names of blocks cost a scan of every span: only
		// when asked by name.
		explicit = mask &^ (block.TagScopeEvent | block.TagScopeLink)
	} else {
		mask = scopeMask[req.Scope]
		explicit = mask
	}
	b := newBudget(req)
	colls := map[block.TagScope]*collector{}
	for _, sc := range scopeMask {
		colls[sc] = newCollector(req.Limit, b)
	}
	collect := func(sc block.TagScope, name string) bool { return colls[sc].add(name, len(name)) }
	resp := &TagNamesV2Response{}
	var err error
	remoteCut := ""
	if mask != 0 {
		resp.Metrics, err = s.collectNames(ctx, req, tenant, parseFilter(req.Query), mask, explicit, collect)
		if err != nil {
			return nil, err
		}
		var remote []*TagsJobResult
		remote, remoteCut, err = s.askRemoteTags(ctx, tenant, TagsJobNamesV2, req, resp.Metrics)
		if err != nil {
			return nil, err
		}
		for _, r := range remote {
			for _, sc := range r.Scopes {
				bs, ok := scopeMask[sc.Name]
				if !ok || mask&bs == 0 {
					continue // intrinsics are added below
				}
				for _, name := range sc.Tags {
					if !collect(bs, name) {
						break
					}
				}
			}
		}
	} else {
		resp.Metrics = &MetadataMetrics{TotalJobs: 1, CompletedJobs: 1}
	}
	for _, name := range v2Scopes {
		if !all && name != req.Scope {
			continue
		}
		var tags []string
		if name == ScopeIntrinsic {
			tags = slices.Clone(IntrinsicTagNames)
		} else {
			tags = colls[scopeMask[name]].out
			slices.Sort(tags)
		}
		if len(tags) > 0 {
			resp.Scopes = append(resp.Scopes, &TagScope{Name: name, Tags: tags})
		}
	}
	resp.Truncated = joinCut(truncation(b, resp.Metrics), remoteCut)
	return resp, nil
}

// parseFilter returns the filter of a v2 request, nil when there is none,
// it keeps every span ({}), or it does not parse (Tempo then answers
// unfiltered).
func parseFilter(q string) *traceql.RootExpr {
	if strings.TrimSpace(q) == "" {
		return nil
	}
	root, err := traceql.Parse(q)
	if err != nil || root.Pipeline == nil {
		return nil
	}
	if len(root.Pipeline.Stages) == 1 {
		if f, ok := root.Pipeline.Stages[0].(*traceql.SpansetFilter); ok && f.Expr == nil {
			return nil
		}
	}
	return root
}

// MaxTagReadBytesKey is the config key of TagsRequest.MaxReadBytes.
const MaxTagReadBytesKey = "query_frontend.search.max_tag_read_bytes"

// DefaultMaxTagReadBytes is the default of MaxTagReadBytesKey: 256 MiB.
const DefaultMaxTagReadBytes = 256 << 20

// errReadCut stops reading blocks at TagsRequest.MaxReadBytes.
var errReadCut = errors.New("read limit reached")

// overRead reports whether held bytes of traces reach req's cap.
func overRead(req TagsRequest, held int64) bool {
	return req.MaxReadBytes > 0 && held >= req.MaxReadBytes
}

// truncation is why an answer is incomplete: the byte cap of what it
// returns, what it read, or both.
func truncation(b *budget, m *MetadataMetrics) string {
	switch {
	case m == nil || m.readCut == "":
		return b.truncated
	case b.truncated == "":
		return m.readCut
	}
	return b.truncated + "; " + m.readCut
}

// errDegrade reports that the filter cannot be evaluated: answer unfiltered.
var errDegrade = errors.New("filter cannot be evaluated")

// collectNames feeds collect with the attribute names of the scopes in
// mask; blocks contribute event and link names only when explicit has them.
func (s *Searcher) collectNames(ctx context.Context, req TagsRequest, tenant string, filter *traceql.RootExpr,
	mask, explicit block.TagScope, collect func(block.TagScope, string) bool) (*MetadataMetrics, error) {
	v := &namesVisitor{mask: mask, collect: collect}
	if filter != nil {
		m, err := s.eachTrace(ctx, req, tenant, filter, func(_ *traceql.Trace, data []byte, match func(int) bool) error {
			return walkBatch(data, match, v)
		})
		if !errors.Is(err, errDegrade) {
			return m, err
		}
		// Collections may hold names of a partial filtered pass: harmless
		// as the unfiltered pass is a superset.
	}
	m := &MetadataMetrics{TotalJobs: 1}
	type name struct {
		sc   block.TagScope
		name string
	}
	err := s.eachLivePart(ctx, tenant, m, fmt.Sprintf("tag names %d", mask), v,
		func(record func(any, int64) bool) batchVisitor {
			return &namesVisitor{mask: mask, collect: func(sc block.TagScope, n string) bool {
				return record(name{sc, n}, int64(len(n))+24)
			}}
		},
		func(rec any) { r := rec.(name); collect(r.sc, r.name) })
	if err != nil {
		return nil, err
	}
	err = s.eachBlock(ctx, req, tenant, m, func(r *block.Reader) (int64, error) {
		names, n, err := r.TagNames(ctx, mask&explicit)
		if err != nil {
			return n, err
		}
		for _, l := range []struct {
			sc    block.TagScope
			names []string
		}{{block.TagScopeSpan, names.Span}, {block.TagScopeResource, names.Resource},
			{block.TagScopeInstrumentation, names.Instrumentation}, {block.TagScopeEvent, names.Event}, {block.TagScopeLink, names.Link}} {
			for _, name := range l.names {
				if !collect(l.sc, name) {
					break
				}
			}
		}
		return n, nil
	})
	return m, err
}

// eachLivePart walks the spans of the tenant's live-stores with v, part by
// part. What a sealed part gives is recorded once, by the visitor
// recorder makes, kept in the part under key, and replayed (each distinct
// record given to replay) by later requests.
func (s *Searcher) eachLivePart(ctx context.Context, tenant string, m *MetadataMetrics, key string, v batchVisitor,
	recorder func(record func(rec any, bytes int64) bool) batchVisitor, replay func(rec any)) error {
	if s.live == nil {
		m.CompletedJobs++
		return nil
	}
	walk := func(p spanpred.Part, v batchVisitor) error {
		var err error
		p.EachData(func(data []byte) bool {
			m.InspectedBytes += uint64(len(data))
			err = walkBatch(data, nil, v)
			return err == nil
		})
		return err
	}
	var werr error
	err := s.live.EachPart(ctx, tenant, func(p spanpred.Part) bool {
		recs, ok := p.Memo(key, func() (any, int64) {
			out := []any{} // not nil: an empty part is kept too
			seen := map[any]bool{}
			var size int64
			werr = walk(p, recorder(func(rec any, n int64) bool {
				if !seen[rec] {
					seen[rec] = true
					out = append(out, rec)
					size += n
				}
				return true
			}))
			if werr != nil {
				return nil, 0
			}
			return out, size
		})
		if werr != nil {
			return false
		}
		if !ok {
			werr = walk(p, v)
			return werr == nil
		}
		for _, rec := range recs.([]any) {
			replay(rec)
		}
		return true
	})
	if err = cmp.Or(werr, err); err != nil {
		return err
	}
	m.CompletedJobs++
	return nil
}

// eachBlock calls fn with a reader of each block of the request's time
// range (none without a range); fn returns the bytes it read.
func (s *Searcher) eachBlock(ctx context.Context, req TagsRequest, tenant string, m *MetadataMetrics, fn func(*block.Reader) (int64, error)) error {
	if s.blocks == nil || req.Start.IsZero() && req.End.IsZero() {
		return nil
	}
	entries := s.blocks.Blocks(tenant, req.Start, req.End)
	m.TotalBlocks = uint32(len(entries))
	m.TotalJobs += uint32(len(entries))
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		m.TotalBlockBytes += uint64(e.Meta.Size)
		if notes := partial.FromContext(ctx); notes.StorageFailed() {
			// Object storage failed on an earlier block: the others
			// would fail the same way, after the read timeout.
			notes.Add(partial.Skip{Tenant: tenant, Block: e.Meta.BlockID.String(), Reason: partial.ReasonStorage})
			continue
		}
		r, err := e.Reader(ctx, s.bkt)
		if err != nil {
			return fmt.Errorf("cannot open block %s: %w", e.Meta.BlockID, err)
		}
		n, err := fn(r)
		m.InspectedBytes += uint64(max(n, 0))
		if errors.Is(err, errReadCut) {
			return err // the read bound, not a damaged block
		}
		if err != nil && Skippable(ctx, err) {
			// A block that cannot be read is left out, the answer partial.
			err = fmt.Errorf("cannot read tags of block %s: %w", e.Meta.BlockID, err)
			partial.FromContext(ctx).Add(partial.Skip{Tenant: tenant, Block: e.Meta.BlockID.String(), Reason: partial.ReasonOf(err), Error: err.Error()})
			err = nil
		}
		if err != nil {
			return fmt.Errorf("cannot read tags of block %s: %w", e.Meta.BlockID, err)
		}
		m.CompletedJobs++
	}
	return nil
}

// eachTrace evaluates filter on every whole trace (live-stores and blocks
// of the range, spans of one trace merged) and calls fn with the trace,
// its TracesData and which of its spans (by index) matched. It returns
// errDegrade when the evaluator cannot run the filter.
func (s *Searcher) eachTrace(ctx context.Context, req TagsRequest, tenant string, filter *traceql.RootExpr,
	fn func(t *traceql.Trace, data []byte, match func(int) bool) error) (*MetadataMetrics, error) {
	m := &MetadataMetrics{TotalJobs: 1}
	parts := map[[16]byte][][]byte{}
	var held int64 // bytes of traces in parts
	cut := false   // traces were left unread
	if s.live != nil {
		n, err := s.live.Scan(ctx, tenant, spanpred.Selection{}, func(id [16]byte, data []byte) bool {
			if cut = overRead(req, held); cut {
				return false
			}
			parts[id] = append(parts[id], data)
			held += int64(len(data))
			return true
		})
		m.InspectedBytes += uint64(n)
		if err != nil {
			return nil, err
		}
	}
	m.CompletedJobs++
	err := s.eachBlock(ctx, req, tenant, m, func(r *block.Reader) (int64, error) {
		if overRead(req, held) {
			return 0, errReadCut
		}
		data, err := r.ReadAll(ctx)
		if err != nil {
			return 0, err
		}
		held += int64(len(data))
		return int64(len(data)), splitByTrace(data, parts)
	})
	if errors.Is(err, errReadCut) || err == nil && cut {
		err = nil
		m.readCut = fmt.Sprintf("only %d bytes of traces were read (%s): narrow the time range", held, MaxTagReadBytesKey)
	}
	if err != nil {
		return nil, err
	}
	ids := make([][16]byte, 0, len(parts))
	for id := range parts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b [16]byte) int { return slices.Compare(a[:], b[:]) })
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := otlpwire.Merge(parts[id]...)
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
		sets, err := filter.Eval(t)
		if err != nil {
			return nil, errDegrade
		}
		matched := map[int]bool{}
		for _, ss := range sets {
			for _, sp := range ss.Spans {
				matched[sp.Index()] = true
			}
		}
		if len(matched) == 0 {
			continue
		}
		if err := fn(t, data, func(i int) bool { return matched[i] }); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// batchVisitor receives the parts of a TracesData message: each resource
// and scope once, before their spans.
type batchVisitor interface {
	resource(header []byte) error
	scope(header []byte) error
	span(raw []byte) error
}

// walkBatch visits the spans of data for which match (by index in data
// order, nil = all) is true, with their resources and scopes.
func walkBatch(data []byte, match func(int) bool, v batchVisitor) error {
	var b otlpwire.Batch
	if err := b.Scan(data); err != nil {
		return fmt.Errorf("cannot read trace: %w", err)
	}
	i := 0
	for ri := range b.Resources {
		res := &b.Resources[ri]
		resDone := false
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			scDone := false
			for _, sp := range sc.Spans {
				idx := i
				i++
				if match != nil && !match(idx) {
					continue
				}
				if !resDone {
					resDone = true
					if err := v.resource(res.Header); err != nil {
						return err
					}
				}
				if !scDone {
					scDone = true
					if err := v.scope(sc.Header); err != nil {
						return err
					}
				}
				if err := v.span(sp.Raw); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// namesVisitor collects attribute names.
type namesVisitor struct {
	mask    block.TagScope
	collect func(block.TagScope, string) bool
}

func (v *namesVisitor) keys(msg []byte, kind otlpwire.MessageKind, sc block.TagScope) error {
	if v.mask&sc == 0 {
		return nil
	}
	return otlpwire.EachAttribute(msg, kind, func(k []byte, _ otlpwire.AnyValueView) bool {
		return v.collect(sc, string(k))
	})
}

func (v *namesVisitor) resource(h []byte) error {
	return v.keys(h, otlpwire.MessageResourceHeader, block.TagScopeResource)
}

func (v *namesVisitor) scope(h []byte) error {
	return v.keys(h, otlpwire.MessageScopeHeader, block.TagScopeInstrumentation)
}

func (v *namesVisitor) span(raw []byte) error {
	if err := v.keys(raw, otlpwire.MessageSpan, block.TagScopeSpan); err != nil {
		return err
	}
	return eachNested(raw, v.mask, func(sc block.TagScope, msg []byte, kind otlpwire.MessageKind) error {
		return v.keys(msg, kind, sc)
	})
}

// eachNested calls fn with each event and link of an encoded span, for the
// scopes in mask.
func eachNested(raw []byte, mask block.TagScope, fn func(block.TagScope, []byte, otlpwire.MessageKind) error) error {
	var inner error
	if mask&block.TagScopeEvent != 0 {
		err := otlpwire.EachEvent(raw, func(ev []byte) bool {
			inner = fn(block.TagScopeEvent, ev, otlpwire.MessageEvent)
			return inner == nil
		})
		if err = cmp.Or(inner, err); err != nil {
			return err
		}
	}
	if mask&block.TagScopeLink != 0 {
		err := otlpwire.EachLink(raw, func(l []byte) bool {
			inner = fn(block.TagScopeLink, l, otlpwire.MessageLink)
			return inner == nil
		})
		if err = cmp.Or(inner, err); err != nil {
			return err
		}
	}
	return nil
}

// target is the attribute or intrinsic whose values a request asks for.
type target struct {
	mask      block.TagScope // where an attribute lives (span|resource|instrumentation when unscoped)
	name      string
	intrinsic traceql.Intrinsic
}

// parseTagName parses a v2 tag name: a TraceQL attribute or intrinsic.
func parseTagName(name string) (target, error) {
	bad := invalid("invalid tag name %q: must be a TraceQL identifier such as .service.name, resource.service.name, span.http.method, name, status or span:kind", name)
	if strings.TrimSpace(name) == "" {
		return target{}, bad
	}
	root, err := traceql.Parse("{} | select(" + name + ")")
	if err != nil || root.Hints != nil || root.Pipeline == nil || len(root.Pipeline.Stages) != 2 {
		return target{}, bad
	}
	sel, ok := root.Pipeline.Stages[1].(*traceql.Select)
	if !ok || len(sel.Fields) != 1 || sel.Fields[0].Parent {
		return target{}, bad
	}
	a := sel.Fields[0]
	if a.Intrinsic != traceql.IntrinsicNone {
		return target{intrinsic: a.Intrinsic}, nil
	}
	t := target{name: a.Name}
	switch a.Scope {
	case traceql.ScopeNone:
		t.mask = block.TagScopeSpan | block.TagScopeResource | block.TagScopeInstrumentation
	case traceql.ScopeSpan:
		t.mask = block.TagScopeSpan
	case traceql.ScopeResource:
		t.mask = block.TagScopeResource
	case traceql.ScopeEvent:
		t.mask = block.TagScopeEvent
	case traceql.ScopeLink:
		t.mask = block.TagScopeLink
	case traceql.ScopeInstrumentation:
		t.mask = block.TagScopeInstrumentation
	default:
		return target{}, bad
	}
	return t, nil
}

// v1Target maps a v1 tag name: Tempo's legacy names of intrinsics, else an
// unscoped attribute.
func v1Target(name string) target {
	switch name {
	case "name":
		return target{intrinsic: traceql.IntrinsicName}
	case "root.name":
		return target{intrinsic: traceql.IntrinsicTraceRootName}
	case "root.service.name":
		return target{intrinsic: traceql.IntrinsicTraceRootService}
	}
	return target{mask: block.TagScopeSpan | block.TagScopeResource | block.TagScopeInstrumentation, name: name}
}

// TagValues answers the v1 tag values request: the values of req.Name as
// text (any scalar type), sorted. status.code and error have Tempo's
// virtual values; name, root.name and root.service.name are the
// intrinsics. req.Query is not used, as in Tempo.
func (s *Searcher) TagValues(ctx context.Context, req TagsRequest, tenant string) (*TagValuesResponse, error) {
	if req.Name == "" {
		return nil, invalid("invalid tag name: empty")
	}
	resp := &TagValuesResponse{}
	switch req.Name {
	case "status.code":
		resp.TagValues = slices.Clone(v1StatusCodes)
	case "error":
		resp.TagValues = []string{"true"}
	}
	if resp.TagValues != nil {
		resp.Metrics = &MetadataMetrics{TotalJobs: 1, CompletedJobs: 1}
		return resp, nil
	}
	b := newBudget(req)
	c := newCollector(req.Limit, b)
	m, err := s.collectValues(ctx, req, tenant, nil, v1Target(req.Name), func(v TagValue) bool {
		return c.add(v.Value, len(v.Value))
	})
	if err != nil {
		return nil, err
	}
	remote, cut, err := s.askRemoteTags(ctx, tenant, TagsJobValues, req, m)
	if err != nil {
		return nil, err
	}
	for _, r := range remote {
		for _, v := range r.Values {
			if !c.add(v.Value, len(v.Value)) {
				break
			}
		}
	}
	slices.Sort(c.out)
	resp.TagValues, resp.Metrics, resp.Truncated = c.out, m, joinCut(truncation(b, m), cut)
	return resp, nil
}

// TagValuesV2 answers the v2 tag values request: the typed values of the
// TraceQL identifier req.Name, from the spans req.Query matches when it is
// valid TraceQL, sorted by type then value. status and kind have their
// keywords.
func (s *Searcher) TagValuesV2(ctx context.Context, req TagsRequest, tenant string) (*TagValuesV2Response, error) {
	t, err := parseTagName(req.Name)
	if err != nil {
		return nil, err
	}
	resp := &TagValuesV2Response{}
	var keywords []string
	switch t.intrinsic {
	case traceql.IntrinsicStatus:
		keywords = statusKeywords
	case traceql.IntrinsicKind:
		keywords = kindKeywords
	}
	if keywords != nil {
		for _, k := range keywords {
			resp.TagValues = append(resp.TagValues, TagValue{Type: "keyword", Value: k})
		}
		resp.Metrics = &MetadataMetrics{TotalJobs: 1, CompletedJobs: 1}
		return resp, nil
	}
	b := newBudget(req)
	c := newCollector(req.Limit, b)
	byKey := map[string]TagValue{}
	add := func(v TagValue) bool {
		key := v.Type + "\x00" + v.Value
		byKey[key] = v
		return c.add(key, len(v.Type)+len(v.Value))
	}
	m, err := s.collectValues(ctx, req, tenant, parseFilter(req.Query), t, add)
	if err != nil {
		return nil, err
	}
	remote, cut, err := s.askRemoteTags(ctx, tenant, TagsJobValuesV2, req, m)
	if err != nil {
		return nil, err
	}
	for _, r := range remote {
		for _, v := range r.Values {
			if !add(v) {
				break
			}
		}
	}
	for _, k := range c.out {
		resp.TagValues = append(resp.TagValues, byKey[k])
	}
	slices.SortFunc(resp.TagValues, func(a, b TagValue) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Value, b.Value))
	})
	resp.Metrics, resp.Truncated = m, joinCut(truncation(b, m), cut)
	return resp, nil
}

// blockIntrinsic maps intrinsics whose values a block lists from a column.
var blockIntrinsic = map[traceql.Intrinsic]block.IntrinsicColumn{
	traceql.IntrinsicName:                   block.IntrinsicSpanName,
	traceql.IntrinsicStatusMessage:          block.IntrinsicStatusMessage,
	traceql.IntrinsicEventName:              block.IntrinsicEventName,
	traceql.IntrinsicInstrumentationName:    block.IntrinsicScopeName,
	traceql.IntrinsicInstrumentationVersion: block.IntrinsicScopeVersion,
}

// collectValues feeds collect with the values of t.
func (s *Searcher) collectValues(ctx context.Context, req TagsRequest, tenant string, filter *traceql.RootExpr,
	t target, collect func(TagValue) bool) (*MetadataMetrics, error) {
	v := &valuesVisitor{t: t, collect: collect}
	traceLevel := t.intrinsic == traceql.IntrinsicTraceRootName || t.intrinsic == traceql.IntrinsicTraceRootService
	_, blockColumn := blockIntrinsic[t.intrinsic]
	if t.intrinsic != traceql.IntrinsicNone && !traceLevel && !blockColumn {
		// Durations, IDs and the like: no values listed.
		return &MetadataMetrics{TotalJobs: 1, CompletedJobs: 1}, nil
	}
	if filter != nil || traceLevel {
		if filter == nil {
			filter = traceql.MustParse("{}")
		}
		m, err := s.eachTrace(ctx, req, tenant, filter, func(tr *traceql.Trace, data []byte, match func(int) bool) error {
			switch t.intrinsic {
			// A trace without its root span (or whose root has no
			// service.name) gives "": Tempo stores "" as its root name and
			// service and lists it.
			case traceql.IntrinsicTraceRootName:
				collect(TagValue{Type: "string", Value: tr.RootName()})
				return nil
			case traceql.IntrinsicTraceRootService:
				collect(TagValue{Type: "string", Value: tr.RootServiceName()})
				return nil
			}
			return walkBatch(data, match, v)
		})
		if !errors.Is(err, errDegrade) {
			return m, err
		}
		if traceLevel {
			return nil, fmt.Errorf("cannot list values of %s: %w", t.intrinsic, err)
		}
	}
	m := &MetadataMetrics{TotalJobs: 1}
	err := s.eachLivePart(ctx, tenant, m, fmt.Sprintf("tag values %d %d %s", t.mask, t.intrinsic, t.name), v,
		func(record func(any, int64) bool) batchVisitor {
			return &valuesVisitor{t: t, collect: func(tv TagValue) bool {
				return record(tv, int64(len(tv.Type)+len(tv.Value))+32)
			}}
		},
		func(rec any) { collect(rec.(TagValue)) })
	if err != nil {
		return nil, err
	}
	err = s.eachBlock(ctx, req, tenant, m, func(r *block.Reader) (int64, error) {
		if col, ok := blockIntrinsic[t.intrinsic]; ok {
			vals, n, err := r.IntrinsicValues(ctx, col)
			for _, s := range vals {
				if !collect(TagValue{Type: "string", Value: s}) {
					break
				}
			}
			return n, err
		}
		vals, n, err := r.TagValues(ctx, t.mask, t.name)
		for _, bv := range vals {
			if !storedValues(bv.Type, bv.Value, collect) {
				break
			}
		}
		return n, err
	})
	return m, err
}

// typedValue is a scalar value (its text as otlpwire.AnyValueView's
// AppendString gives it) as a TagValue; maps, bytes and empty values are
// not listed, nor are arrays (see storedValues and valueViews).
func typedValue(typ otlpwire.ValueType, text string) (TagValue, bool) {
	switch typ {
	case otlpwire.ValueTypeStr:
		return TagValue{Type: "string", Value: text}, true
	case otlpwire.ValueTypeInt:
		return TagValue{Type: "int", Value: text}, true
	case otlpwire.ValueTypeDouble:
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return TagValue{}, false
		}
		return TagValue{Type: "float", Value: tempoFloat(f)}, true
	case otlpwire.ValueTypeBool:
		return TagValue{Type: "bool", Value: text}, true
	}
	return TagValue{}, false
}

// tempoFloat formats f as Tempo formats a float value (traceql.Static's
// EncodeToString): the shortest 'g' form, with ".0" added when that has
// neither a point nor an exponent (2 is "2.0", 1e21 is "1e+21").
func tempoFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, "e.") {
		s += ".0"
	}
	return s
}

// storedValues feeds collect with a value a block stores as text: a
// scalar, or the elements of an array whose elements are all strings, all
// numbers or all bools (Tempo lists the elements of such arrays; mixed
// arrays are not listed). A block keeps an array as JSON, where a double
// with no fraction cannot be told from an int: an array of numbers is
// listed as floats when one of them has a fraction or an exponent, else as
// ints. It returns false when collect wants no more.
func storedValues(typ otlpwire.ValueType, text string, collect func(TagValue) bool) bool {
	if typ != otlpwire.ValueTypeArray {
		if tv, ok := typedValue(typ, text); ok {
			return collect(tv)
		}
		return true
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var elems []any
	if err := dec.Decode(&elems); err != nil || len(elems) == 0 {
		return true
	}
	out := make([]TagValue, 0, len(elems))
	typ0, float := "", false
	for _, e := range elems {
		var tv TagValue
		switch e := e.(type) {
		case string:
			tv = TagValue{Type: "string", Value: e}
		case bool:
			tv = TagValue{Type: "bool", Value: strconv.FormatBool(e)}
		case json.Number:
			tv = TagValue{Type: "int", Value: e.String()}
			float = float || strings.ContainsAny(e.String(), ".eE")
		default:
			return true // nested arrays, maps, nulls: not listed
		}
		if typ0 == "" {
			typ0 = tv.Type
		} else if tv.Type != typ0 {
			return true
		}
		out = append(out, tv)
	}
	for _, tv := range out {
		if float {
			f, err := strconv.ParseFloat(tv.Value, 64)
			if err != nil {
				continue
			}
			tv = TagValue{Type: "float", Value: tempoFloat(f)}
		}
		if !collect(tv) {
			return false
		}
	}
	return true
}

// valueViews feeds collect with a value of a live trace: a scalar, or the
// elements of an array whose elements all have the same scalar type. It
// returns false when collect wants no more.
func valueViews(val otlpwire.AnyValueView, collect func(TagValue) bool) (bool, error) {
	if val.Type() != otlpwire.ValueTypeArray {
		b, err := val.AppendString(nil)
		if err != nil {
			return false, err
		}
		if tv, ok := typedValue(val.Type(), string(b)); ok {
			return collect(tv), nil
		}
		return true, nil
	}
	var out []TagValue
	var typ0 otlpwire.ValueType
	first, mixed := true, false
	var eerr error
	err := val.EachValue(func(e otlpwire.AnyValueView) bool {
		if first {
			first, typ0 = false, e.Type()
		}
		if e.Type() != typ0 {
			mixed = true
			return false
		}
		b, err := e.AppendString(nil)
		if err != nil {
			eerr = err
			return false
		}
		tv, ok := typedValue(e.Type(), string(b))
		if !ok {
			mixed = true // nested arrays, maps, bytes: not listed
			return false
		}
		out = append(out, tv)
		return true
	})
	if err = cmp.Or(eerr, err); err != nil || mixed {
		return err == nil, err
	}
	for _, tv := range out {
		if !collect(tv) {
			return false, nil
		}
	}
	return true, nil
}

// valuesVisitor collects the values of one target.
type valuesVisitor struct {
	t       target
	collect func(TagValue) bool
}

func (v *valuesVisitor) attrs(msg []byte, kind otlpwire.MessageKind, sc block.TagScope) error {
	if v.t.intrinsic != traceql.IntrinsicNone || v.t.mask&sc == 0 {
		return nil
	}
	var verr error
	err := otlpwire.EachAttribute(msg, kind, func(k []byte, val otlpwire.AnyValueView) bool {
		if string(k) != v.t.name {
			return true
		}
		more, err := valueViews(val, v.collect)
		verr = err
		return more
	})
	return cmp.Or(verr, err)
}

func (v *valuesVisitor) resource(h []byte) error {
	return v.attrs(h, otlpwire.MessageResourceHeader, block.TagScopeResource)
}

func (v *valuesVisitor) scope(h []byte) error {
	switch v.t.intrinsic {
	case traceql.IntrinsicInstrumentationName, traceql.IntrinsicInstrumentationVersion:
		sf, err := otlpwire.ReadScopeHeader(h)
		if err != nil {
			return err
		}
		val := sf.Name
		if v.t.intrinsic == traceql.IntrinsicInstrumentationVersion {
			val = sf.Version
		}
		v.collect(TagValue{Type: "string", Value: string(val)})
		return nil
	}
	return v.attrs(h, otlpwire.MessageScopeHeader, block.TagScopeInstrumentation)
}

func (v *valuesVisitor) span(raw []byte) error {
	switch v.t.intrinsic {
	case traceql.IntrinsicName, traceql.IntrinsicStatusMessage:
		f, err := otlpwire.ReadSpan(raw)
		if err != nil {
			return err
		}
		val := f.Name
		if v.t.intrinsic == traceql.IntrinsicStatusMessage {
			val = f.StatusMessage
		}
		v.collect(TagValue{Type: "string", Value: string(val)})
		return nil
	case traceql.IntrinsicEventName:
		return eachNested(raw, block.TagScopeEvent, func(_ block.TagScope, ev []byte, _ otlpwire.MessageKind) error {
			f, err := otlpwire.ReadEvent(ev)
			if err == nil {
				v.collect(TagValue{Type: "string", Value: string(f.Name)})
			}
			return err
		})
	}
	if err := v.attrs(raw, otlpwire.MessageSpan, block.TagScopeSpan); err != nil {
		return err
	}
	return eachNested(raw, v.t.mask, func(sc block.TagScope, msg []byte, kind otlpwire.MessageKind) error {
		return v.attrs(msg, kind, sc)
	})
}

// splitByTrace adds the spans of TracesData data to parts, one TracesData
// per trace ID.
func splitByTrace(data []byte, parts map[[16]byte][][]byte) error {
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
