package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logfmt/logfmt"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/streaming/tempopb"
)

// The streaming API: Tempo's gRPC service tempopb.StreamingQuerier, which
// Grafana's Tempo data source uses for searches, tag look-ups and TraceQL
// metrics. Each call is translated to the parameters of the HTTP route it
// mirrors and answered by the same code, so that its final answer is the
// HTTP answer and its errors carry the HTTP answer's wording (as gRPC
// statuses: InvalidArgument where HTTP says 400, and so on).
//
// A search sends, every DiffInterval while its jobs run, the traces added
// or changed since the message before with the metrics so far, then the
// whole answer. Tag look-ups and metrics queries send the whole answer
// only. Every answer is cut into messages of at most MaxPacketSize bytes,
// each carrying the metrics.

// DefaultMaxStreamingPacketSize is Tempo's default
// query_frontend.max_grpc_streaming_packet_size: 1 MiB.
const DefaultMaxStreamingPacketSize = 1 << 20

// DefaultDiffInterval is how often a streamed search sends its progress,
// as Tempo's frontend does.
const DefaultDiffInterval = 500 * time.Millisecond

// StreamOptions configures the streaming API.
type StreamOptions struct {
	// MaxPacketSize caps the bytes of one message
	// (query_frontend.max_grpc_streaming_packet_size); an answer larger
	// is cut into several. One trace, series or tag value larger than it
	// is sent alone. 0 means DefaultMaxStreamingPacketSize.
	MaxPacketSize int
	// DiffInterval is how often a search sends its progress; 0 means
	// DefaultDiffInterval.
	DiffInterval time.Duration
	// Metrics registers weft_query_stream_requests_total. Nil means the
	// counter is kept but not registered.
	Metrics prometheus.Registerer
}

// streamServer implements tempopb.StreamingQuerierServer over a handler.
type streamServer struct {
	tempopb.UnimplementedStreamingQuerierServer
	h        *handler
	maxBytes int
	every    time.Duration
	requests *prometheus.CounterVec
}

// NewStreamingServer returns the tempopb.StreamingQuerier service answering
// as api, a handler returned by New, answers over HTTP. Register it on a
// gRPC server with tempopb.RegisterStreamingQuerierServer. It is safe for
// concurrent use.
func NewStreamingServer(api http.Handler, opts StreamOptions) (tempopb.StreamingQuerierServer, error) {
	h, ok := api.(*handler)
	if !ok {
		return nil, errors.New("cannot create the streaming API: the handler is not one of api.New")
	}
	if opts.MaxPacketSize < 0 || opts.DiffInterval < 0 {
		return nil, errors.New("cannot create the streaming API: MaxPacketSize and DiffInterval must not be negative")
	}
	return &streamServer{
		h:        h,
		maxBytes: cmp.Or(opts.MaxPacketSize, DefaultMaxStreamingPacketSize),
		every:    cmp.Or(opts.DiffInterval, DefaultDiffInterval),
		requests: metrics.Register(opts.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_query_stream_requests_total",
			Help: "Calls of the streaming query API (tempopb.StreamingQuerier), by method and gRPC status code.",
		}, []string{"method", "code"})),
	}, nil
}

// count records a call's result and returns err.
func (s *streamServer) count(method string, err error) error {
	s.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	return err
}

// tenants reads the tenants of a call from its x-scope-orgid metadata, with
// the rules of the HTTP API.
func (s *streamServer) tenants(ctx context.Context) ([]string, error) {
	var org string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(strings.ToLower(tenant.Header)); len(v) > 0 {
			org = v[0]
		}
	}
	return tenant.ResolveRead(s.h.multitenancy, s.h.multiTenantReads, org)
}

// badRequest is the status of what HTTP answers with 400.
func badRequest(err error) error { return status.Error(codes.InvalidArgument, err.Error()) }

// grpcError turns an answer's error into a gRPC status, keeping a status
// as it is.
func grpcError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	code, msg := httpStatusFromError(err)
	c := codes.Internal
	switch code {
	case http.StatusBadRequest:
		c = codes.InvalidArgument
	case http.StatusNotFound:
		c = codes.NotFound
	case http.StatusTooManyRequests:
		c = codes.ResourceExhausted
	case statusClientClosedRequest:
		c = codes.Canceled
	case http.StatusServiceUnavailable:
		c = codes.Unavailable
	case http.StatusGatewayTimeout:
		c = codes.DeadlineExceeded
	}
	return status.Error(c, msg)
}

// partialTrailer reports the blocks an answer was given without, as the
// HTTP API's Warning header, in the call's trailer "warning"; it returns
// the message ("" when the answer is whole).
func (s *streamServer) partialTrailer(ctx context.Context, route string, notes *partial.Notes, tenants []string) string {
	w := headerOnly{}
	msg := s.h.skips.report(w, route, notes, tenants)
	if msg != "" {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("warning", w.Header().Get("Warning")))
	}
	return msg
}

// headerOnly is a ResponseWriter that keeps headers and drops the rest.
type headerOnly http.Header

func (h headerOnly) Header() http.Header       { return http.Header(h) }
func (headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (headerOnly) WriteHeader(int)             {}

// searchValues are the /api/search parameters of req.
func searchValues(req *tempopb.SearchRequest) (url.Values, error) {
	q := url.Values{}
	setNonZero(q, "limit", req.GetLimit())
	setNonZero(q, "spss", req.GetSpansPerSpanSet())
	setNonZero(q, "start", req.GetStart())
	setNonZero(q, "end", req.GetEnd())
	if ms := req.GetMinDurationMs(); ms > 0 {
		q.Set("minDuration", strconv.FormatUint(uint64(ms), 10)+"ms")
	}
	if ms := req.GetMaxDurationMs(); ms > 0 {
		q.Set("maxDuration", strconv.FormatUint(uint64(ms), 10)+"ms")
	}
	if req.GetQuery() != "" {
		q.Set("q", req.GetQuery())
	}
	if len(req.GetTags()) > 0 {
		var b strings.Builder
		enc := logfmt.NewEncoder(&b)
		for _, k := range sortedKeys(req.GetTags()) {
			if err := enc.EncodeKeyval(k, req.GetTags()[k]); err != nil {
				return nil, fmt.Errorf("invalid tags: %v", err)
			}
		}
		q.Set("tags", b.String())
	}
	return q, nil
}

func setNonZero[T uint32 | uint64](q url.Values, name string, v T) {
	if v != 0 {
		q.Set(name, strconv.FormatUint(uint64(v), 10))
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Search answers a search as /api/search does, sending its progress
// while it runs.
func (s *streamServer) Search(req *tempopb.SearchRequest, stream grpc.ServerStreamingServer[tempopb.SearchResponse]) error {
	return s.count("Search", s.search(req, stream))
}

func (s *streamServer) search(req *tempopb.SearchRequest, stream grpc.ServerStreamingServer[tempopb.SearchResponse]) error {
	h := s.h
	if h.searcher == nil {
		return status.Error(codes.Unimplemented, "search is not enabled")
	}
	ctx := stream.Context()
	tenants, err := s.tenants(ctx)
	if err != nil {
		return err
	}
	values, err := searchValues(req)
	if err != nil {
		return badRequest(err)
	}
	sreq, err := parseSearchRequest(values)
	if err != nil {
		return badRequest(err)
	}
	limit := cmp.Or(sreq.Limit, h.defaultLimit)
	d := &differ{sent: map[string]string{}, s: s, stream: stream, latest: make([]*search.Response, len(tenants))}
	ctx, notes := partial.NewContext(ctx)
	resps, err := eachTenant(ctx, tenants, func(ctx context.Context, t string) (*search.Response, error) {
		i := indexOf(tenants, t)
		ctx = search.WithProgress(ctx, s.every, func(r *search.Response) { d.progress(i, r, limit) })
		return h.searcher.Search(ctx, sreq, t)
	})
	if err != nil {
		return grpcError(err)
	}
	final := mergeSearch(resps, limit)
	s.partialTrailer(ctx, routeSearch, notes, tenants)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return d.err
	}
	msg, err := searchMessage(final)
	if err != nil {
		return err
	}
	return sendSearch(stream, msg, s.maxBytes)
}

func indexOf(ts []string, t string) int {
	for i, x := range ts {
		if x == t {
			return i
		}
	}
	return 0
}

// differ sends a search's progress: the traces that changed since the
// message before.
type differ struct {
	s      *streamServer
	stream grpc.ServerStreamingServer[tempopb.SearchResponse]

	mu     sync.Mutex
	latest []*search.Response // each tenant's answer so far
	sent   map[string]string  // trace ID → the encoding last sent
	err    error              // the first send that failed
}

// progress merges tenant i's answer so far r with the other tenants' and
// sends the traces that changed.
func (d *differ) progress(i int, r *search.Response, limit int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return
	}
	d.latest[i] = r
	merged := mergeSearch(d.latest, limit)
	// Compare each trace's encoding with the one sent last; only the
	// traces that changed are decoded into the message.
	changed := &search.Response{Metrics: merged.Metrics}
	one := &search.Response{Traces: make([]*search.Trace, 1)}
	for _, t := range merged.Traces {
		one.Traces[0] = t
		b := one.MarshalProto()
		if d.sent[t.TraceID] != string(b) {
			d.sent[t.TraceID] = string(b)
			changed.Traces = append(changed.Traces, t)
		}
	}
	diff, err := searchMessage(changed)
	if err != nil {
		d.err = err
		return
	}
	d.err = sendSearch(d.stream, diff, d.s.maxBytes)
}

// searchMessage is r as the generated message, through r's own protobuf
// encoding (the one /api/search answers with).
func searchMessage(r *search.Response) (*tempopb.SearchResponse, error) {
	if r.Metrics == nil {
		r = &search.Response{Traces: r.Traces, Metrics: &search.Metrics{}}
	}
	var msg tempopb.SearchResponse
	if err := proto.Unmarshal(r.MarshalProto(), &msg); err != nil {
		return nil, status.Errorf(codes.Internal, "cannot encode the search answer: %v", err)
	}
	return &msg, nil
}

// fieldSize is the bytes a length-delimited field of n bytes takes
// (field numbers up to 15).
func fieldSize(n int) int { return 1 + protowire.SizeBytes(n) }

// segments cuts items into groups whose sizes (size of each, plus base for
// the group) stay within max; an item larger alone is a group of its own.
// There is always at least one group, maybe empty.
func segments[T any](items []T, size func(T) int, base, max int) [][]T {
	var out [][]T
	start, cur := 0, base
	for i, it := range items {
		n := size(it)
		if i > start && cur+n > max {
			out = append(out, items[start:i])
			start, cur = i, base
		}
		cur += n
	}
	return append(out, items[start:])
}

func sendSearch(stream grpc.ServerStreamingServer[tempopb.SearchResponse], msg *tempopb.SearchResponse, max int) error {
	base := proto.Size(&tempopb.SearchResponse{Metrics: msg.GetMetrics()})
	for _, group := range segments(msg.GetTraces(), func(t *tempopb.TraceSearchMetadata) int { return fieldSize(proto.Size(t)) }, base, max) {
		if err := stream.Send(&tempopb.SearchResponse{Traces: group, Metrics: msg.GetMetrics()}); err != nil {
			return err
		}
	}
	return nil
}

// tagValues are the parameters of the tag routes for a tag names request.
func tagsValues(req *tempopb.SearchTagsRequest) url.Values {
	q := url.Values{}
	if req.GetScope() != "" {
		q.Set("scope", req.GetScope())
	}
	if req.GetQuery() != "" {
		q.Set("q", req.GetQuery())
	}
	setNonZero(q, "start", req.GetStart())
	setNonZero(q, "end", req.GetEnd())
	setNonZero(q, "limit", req.GetMaxTagsPerScope())
	setNonZero(q, "maxStaleValues", req.GetStaleValueThreshold())
	return q
}

// tagValuesValues are the parameters of the tag values routes.
func tagValuesValues(req *tempopb.SearchTagValuesRequest) url.Values {
	q := url.Values{}
	if req.GetQuery() != "" {
		q.Set("q", req.GetQuery())
	}
	setNonZero(q, "start", req.GetStart())
	setNonZero(q, "end", req.GetEnd())
	setNonZero(q, "limit", req.GetMaxTagValues())
	setNonZero(q, "maxStaleValues", req.GetStaleValueThreshold())
	return q
}

// tags answers a tag request as the HTTP route does: the answer as the
// generated message m (through the answer's own protobuf encoding).
func (s *streamServer) tags(ctx context.Context, route string, q url.Values, name string, v2, values bool, m proto.Message) error {
	h := s.h
	if h.tagger == nil {
		return status.Error(codes.Unimplemented, "tag search is not enabled")
	}
	tenants, err := s.tenants(ctx)
	if err != nil {
		return err
	}
	req, err := parseTagsRequest(q, v2, values)
	if err != nil {
		return badRequest(err)
	}
	if values && name == "" {
		return status.Error(codes.InvalidArgument, "invalid tag name: empty")
	}
	req.Name = name
	ctx, notes := partial.NewContext(ctx)
	resp, truncated, err := h.answerTags(ctx, tenants, req, v2, values)
	if err != nil {
		if errors.Is(err, errTagTimeout) {
			return status.Error(codes.DeadlineExceeded, h.tagTimeoutMessage())
		}
		return grpcError(err)
	}
	if truncated != "" {
		h.tagsCut.WithLabelValues(route).Inc()
		_ = grpc.SetTrailer(ctx, metadata.Pairs(strings.ToLower(headerTruncated), `299 weft "`+strings.ReplaceAll(truncated, `"`, `'`)+`"`))
	}
	s.partialTrailer(ctx, route, notes, tenants)
	if err := proto.Unmarshal(resp.MarshalProto(), m); err != nil {
		return status.Errorf(codes.Internal, "cannot encode the tag answer: %v", err)
	}
	return nil
}

// SearchTags answers as /api/search/tags does.
func (s *streamServer) SearchTags(req *tempopb.SearchTagsRequest, stream grpc.ServerStreamingServer[tempopb.SearchTagsResponse]) error {
	var m tempopb.SearchTagsResponse
	err := s.tags(stream.Context(), routeTagsV1, tagsValues(req), "", false, false, &m)
	if err == nil {
		err = sendStrings(m.GetTagNames(), proto.Size(&tempopb.SearchTagsResponse{Metrics: m.GetMetrics()}), s.maxBytes, func(part []string) error {
			return stream.Send(&tempopb.SearchTagsResponse{TagNames: part, Metrics: m.GetMetrics()})
		})
	}
	return s.count("SearchTags", err)
}

// SearchTagsV2 answers as /api/v2/search/tags does.
func (s *streamServer) SearchTagsV2(req *tempopb.SearchTagsRequest, stream grpc.ServerStreamingServer[tempopb.SearchTagsV2Response]) error {
	var m tempopb.SearchTagsV2Response
	err := s.tags(stream.Context(), routeTagsV2, tagsValues(req), "", true, false, &m)
	if err == nil {
		err = sendScopes(&m, s.maxBytes, func(r *tempopb.SearchTagsV2Response) error { return stream.Send(r) })
	}
	return s.count("SearchTagsV2", err)
}

// SearchTagValues answers as /api/search/tag/{name}/values does.
func (s *streamServer) SearchTagValues(req *tempopb.SearchTagValuesRequest, stream grpc.ServerStreamingServer[tempopb.SearchTagValuesResponse]) error {
	var m tempopb.SearchTagValuesResponse
	err := s.tags(stream.Context(), routeTagValuesV1, tagValuesValues(req), req.GetTagName(), false, true, &m)
	if err == nil {
		err = sendStrings(m.GetTagValues(), proto.Size(&tempopb.SearchTagValuesResponse{Metrics: m.GetMetrics()}), s.maxBytes, func(part []string) error {
			return stream.Send(&tempopb.SearchTagValuesResponse{TagValues: part, Metrics: m.GetMetrics()})
		})
	}
	return s.count("SearchTagValues", err)
}

// SearchTagValuesV2 answers as /api/v2/search/tag/{name}/values does.
func (s *streamServer) SearchTagValuesV2(req *tempopb.SearchTagValuesRequest, stream grpc.ServerStreamingServer[tempopb.SearchTagValuesV2Response]) error {
	var m tempopb.SearchTagValuesV2Response
	err := s.tags(stream.Context(), routeTagValuesV2, tagValuesValues(req), req.GetTagName(), true, true, &m)
	if err == nil {
		base := proto.Size(&tempopb.SearchTagValuesV2Response{Metrics: m.GetMetrics()})
		for _, part := range segments(m.GetTagValues(), func(v *tempopb.TagValue) int { return fieldSize(proto.Size(v)) }, base, s.maxBytes) {
			if err = stream.Send(&tempopb.SearchTagValuesV2Response{TagValues: part, Metrics: m.GetMetrics()}); err != nil {
				break
			}
		}
	}
	return s.count("SearchTagValuesV2", err)
}

func sendStrings(all []string, base, max int, send func([]string) error) error {
	for _, part := range segments(all, func(s string) int { return fieldSize(len(s)) }, base, max) {
		if err := send(part); err != nil {
			return err
		}
	}
	return nil
}

// sendScopes sends m cut by its tags; a scope cut in several messages
// appears in each with its part of the tags.
func sendScopes(m *tempopb.SearchTagsV2Response, max int, send func(*tempopb.SearchTagsV2Response) error) error {
	type tag struct{ scope, name string }
	var all []tag
	scopeCost := map[string]int{}
	for _, sc := range m.GetScopes() {
		// The scope message's own field, its name and the widest length
		// prefix it may take.
		scopeCost[sc.GetName()] = 1 + binaryVarintMax + fieldSize(len(sc.GetName()))
		if len(sc.GetTags()) == 0 {
			all = append(all, tag{scope: sc.GetName()})
			continue
		}
		for _, t := range sc.GetTags() {
			all = append(all, tag{sc.GetName(), t})
		}
	}
	base := proto.Size(&tempopb.SearchTagsV2Response{Metrics: m.GetMetrics()})
	// Each tag is charged its scope's cost too, so that a group holding
	// tags of several scopes still fits.
	size := func(t tag) int { return fieldSize(len(t.name)) + scopeCost[t.scope] }
	for _, part := range segments(all, size, base, max) {
		out := &tempopb.SearchTagsV2Response{Metrics: m.GetMetrics()}
		for _, t := range part {
			if n := len(out.Scopes); n == 0 || out.Scopes[n-1].GetName() != t.scope {
				out.Scopes = append(out.Scopes, &tempopb.SearchTagsV2Scope{Name: t.scope})
			}
			if t.name != "" {
				sc := out.Scopes[len(out.Scopes)-1]
				sc.Tags = append(sc.Tags, t.name)
			}
		}
		if err := send(out); err != nil {
			return err
		}
	}
	return nil
}

// binaryVarintMax is the widest length prefix of a message under 4 GiB.
const binaryVarintMax = 5

// metricsValues are the /api/metrics parameters of a range query.
func metricsValues(query string, start, end, step uint64, exemplars, maxSeries uint32) url.Values {
	q := url.Values{}
	if query != "" {
		q.Set("q", query)
	}
	// Nanoseconds: more than 10 digits for any time after 1970-01-01T00:00:10Z.
	setNonZero(q, "start", start)
	setNonZero(q, "end", end)
	if step > 0 {
		q.Set("step", time.Duration(step).String())
	}
	setNonZero(q, "exemplars", exemplars)
	setNonZero(q, "maxSeries", maxSeries)
	return q
}

// metrics answers a metrics query as the HTTP route does.
func (s *streamServer) metrics(ctx context.Context, route string, q url.Values, instant bool) (proto.Message, error) {
	h := s.h
	if h.metricsQuerier == nil {
		return nil, status.Error(codes.Unimplemented, "TraceQL metrics are not enabled")
	}
	tenants, err := s.tenants(ctx)
	if err != nil {
		return nil, err
	}
	req, err := parseMetricsRequest(q, instant, time.Now())
	if err != nil {
		return nil, badRequest(err)
	}
	ctx, notes := partial.NewContext(ctx)
	resp, err := h.metricsQuerier.QueryRange(ctx, req, tenants)
	if err != nil {
		return nil, grpcError(err)
	}
	if msg := s.partialTrailer(ctx, route, notes, tenants); msg != "" {
		resp.Status = "PARTIAL"
		resp.Message = strings.TrimPrefix(resp.Message+"; "+msg, "; ")
	}
	if instant {
		var m tempopb.QueryInstantResponse
		if err := proto.Unmarshal(resp.Instant().MarshalProto(), &m); err != nil {
			return nil, status.Errorf(codes.Internal, "cannot encode the metrics answer: %v", err)
		}
		return &m, nil
	}
	var m tempopb.QueryRangeResponse
	if err := proto.Unmarshal(resp.MarshalProto(), &m); err != nil {
		return nil, status.Errorf(codes.Internal, "cannot encode the metrics answer: %v", err)
	}
	return &m, nil
}

// MetricsQueryRange answers as /api/metrics/query_range does; start, end
// and step are nanoseconds.
func (s *streamServer) MetricsQueryRange(req *tempopb.QueryRangeRequest, stream grpc.ServerStreamingServer[tempopb.QueryRangeResponse]) error {
	q := metricsValues(req.GetQuery(), req.GetStart(), req.GetEnd(), req.GetStep(), req.GetExemplars(), req.GetMaxSeries())
	m, err := s.metrics(stream.Context(), routeMetricsRange, q, false)
	if err == nil {
		r := m.(*tempopb.QueryRangeResponse)
		base := proto.Size(&tempopb.QueryRangeResponse{Metrics: r.GetMetrics(), Status: r.GetStatus(), Message: r.GetMessage()})
		for _, part := range segments(r.GetSeries(), func(x *tempopb.TimeSeries) int { return fieldSize(proto.Size(x)) }, base, s.maxBytes) {
			if err = stream.Send(&tempopb.QueryRangeResponse{Series: part, Metrics: r.GetMetrics(), Status: r.GetStatus(), Message: r.GetMessage()}); err != nil {
				break
			}
		}
	}
	return s.count("MetricsQueryRange", err)
}

// MetricsQueryInstant answers as /api/metrics/query does; start and end
// are nanoseconds.
func (s *streamServer) MetricsQueryInstant(req *tempopb.QueryInstantRequest, stream grpc.ServerStreamingServer[tempopb.QueryInstantResponse]) error {
	q := metricsValues(req.GetQuery(), req.GetStart(), req.GetEnd(), 0, 0, 0)
	m, err := s.metrics(stream.Context(), routeMetricsInstant, q, true)
	if err == nil {
		r := m.(*tempopb.QueryInstantResponse)
		base := proto.Size(&tempopb.QueryInstantResponse{Metrics: r.GetMetrics(), Status: r.GetStatus(), Message: r.GetMessage()})
		for _, part := range segments(r.GetSeries(), func(x *tempopb.InstantSeries) int { return fieldSize(proto.Size(x)) }, base, s.maxBytes) {
			if err = stream.Send(&tempopb.QueryInstantResponse{Series: part, Metrics: r.GetMetrics(), Status: r.GetStatus(), Message: r.GetMessage()}); err != nil {
				break
			}
		}
	}
	return s.count("MetricsQueryInstant", err)
}
