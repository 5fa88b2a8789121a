package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/query/traceql"
)

const (
	contentTypeJSON     = "application/json"
	contentTypeProtobuf = "application/protobuf"

	// statusClientClosedRequest is the non-standard code Tempo (and nginx)
	// answer when the client went away before the response.
	statusClientClosedRequest = 499
)

// traceVersion selects the response shape of a trace-by-ID route.
type traceVersion int

const (
	// traceV1 answers tempopb.Trace: {"batches":[…]}, 404 when not found.
	traceV1 traceVersion = iota + 1
	// traceV2 answers tempopb.TraceByIDResponse, 200 even when not found.
	traceV2
)

func (h *handler) traceByIDHandler(v traceVersion) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serveTraceByID(w, r, v)
	})
}

func (h *handler) serveTraceByID(w http.ResponseWriter, r *http.Request, v traceVersion) {
	tenants, err := h.readTenants(r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	id, err := ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	start, end, err := parseTimeRange(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var filter *traceql.RootExpr
	if q := r.URL.Query().Get("q"); v == traceV2 && q != "" {
		if filter, err = parseTraceFilter(q, h.traceQLLimits); err != nil {
			h.filters.WithLabelValues(filterBadRequest).Inc()
			writeFailure(w, err)
			return
		}
	}
	ctx, notes := withNotes(r)
	trace, err := h.findTraceInTenants(ctx, tenants, id, start, end)
	if err != nil {
		writeFailure(w, err)
		return
	}
	// Blocks that could not be read: v2 answers PARTIAL with the message,
	// v1 (which has no such field) what was found, 404 when nothing was;
	// both with a Warning header.
	partialMsg := h.skips.report(w, routeOf(v), notes, tenants)
	batches, err := countResourceSpans(trace)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot decode trace %x: %v", id, err))
		return
	}
	found := batches > 0
	if found {
		// Root spans as the OpenTelemetry Collector encodes them carry an
		// empty parent_span_id: answer them without it, as an SDK sends
		// them. Data that cannot be scanned is left for the encoders below
		// to report.
		if dropped, err := otlpwire.DropEmptyParents(trace); err == nil {
			trace = dropped
		}
	}
	asProto := hasToken(r.Header.Values("Accept"), contentTypeProtobuf)
	// A trace over its tenant's max_bytes_per_trace: 422 on v1, the
	// ResourceSpans that fit and PARTIAL on v2, as in Tempo.
	var tooLarge string
	limit := h.traceLimit(tenants)
	if limit > 0 && len(trace) > limit && found {
		ten := strings.Join(tenants, tenant.ReadSeparator)
		tooLarge = fmt.Sprintf("trace %x is %d bytes, over the limit of %d bytes of tenant %q (overrides.defaults.global.max_bytes_per_trace)",
			id, len(trace), limit, ten)
		h.tooLarge.WithLabelValues(ten).Inc()
		if v == traceV1 {
			writeError(w, http.StatusUnprocessableEntity, tooLarge)
			return
		}
		tooLarge += "; only the first spans that fit are returned"
	}

	if v == traceV1 {
		switch {
		case !found:
			w.WriteHeader(http.StatusNotFound)
		case asProto:
			// tempopb.Trace and OTLP TracesData are the same on the wire.
			writeBody(w, http.StatusOK, contentTypeProtobuf, trace)
		default:
			body, err := traceJSON(trace)
			if err != nil {
				writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot encode trace %x: %v", id, err))
				return
			}
			writeBody(w, http.StatusOK, contentTypeJSON, body)
		}
		return
	}

	resp := traceByIDResponse{inspectedBytes: uint64(len(trace))}
	if found {
		resp.trace = trace
	}
	if tooLarge != "" {
		resp.trace = cutTrace(trace, limit)
		resp.status, resp.message = partialStatusPartial, tooLarge
	}
	if filter != nil && found {
		// As in Tempo, after the cut to max_bytes_per_trace; inspectedBytes
		// stays the size of the whole trace read.
		out, kept, total, err := filterTrace(filter, resp.trace)
		if err != nil {
			if status.Code(err) == codes.InvalidArgument {
				h.filters.WithLabelValues(filterBadRequest).Inc()
				writeFailure(w, err)
				return
			}
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot filter trace %x: %v", id, err))
			return
		}
		resp.trace = out
		if kept < total {
			h.filters.WithLabelValues(filterSubset).Inc()
			resp.status = partialStatusPartial
			resp.message = strings.TrimPrefix(resp.message+"; "+fmt.Sprintf("%s (%d of %d spans)", filteredMessage, kept, total), "; ")
		} else {
			h.filters.WithLabelValues(filterWhole).Inc()
		}
	}
	if partialMsg != "" {
		resp.status = partialStatusPartial
		resp.message = strings.TrimPrefix(resp.message+"; "+partialMsg, "; ")
	}
	if asProto {
		writeBody(w, http.StatusOK, contentTypeProtobuf, resp.appendProto(nil))
		return
	}
	body, err := resp.marshalJSON()
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot encode trace %x: %v", id, err))
		return
	}
	writeBody(w, http.StatusOK, contentTypeJSON, body)
}

func routeOf(v traceVersion) string {
	if v == traceV1 {
		return routeTraceV1
	}
	return routeTraceV2
}

// parseTimeRange reads the optional start and end parameters: non-negative
// integer unix seconds, 0 or absent meaning unbounded. As in Tempo, end must
// be after start only when both bound the range.
func parseTimeRange(q url.Values) (start, end int64, err error) {
	if start, err = parseUnixSeconds(q, "start"); err != nil {
		return 0, 0, err
	}
	if end, err = parseUnixSeconds(q, "end"); err != nil {
		return 0, 0, err
	}
	if start != 0 && end != 0 && end <= start {
		return 0, 0, fmt.Errorf("invalid time range: end (%d) must be after start (%d)", end, start)
	}
	return start, end, nil
}

func parseUnixSeconds(q url.Values, name string) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid %s %q: must be a non-negative integer number of unix seconds", name, s)
	}
	return v, nil
}

// writeFailure answers an error from tenant resolution or the finder,
// keeping the HTTP meaning of a gRPC status.
func writeFailure(w http.ResponseWriter, err error) {
	code, msg := httpStatusFromError(err)
	writeError(w, code, msg)
}

// httpStatusFromError maps err to an HTTP status code and a message: the
// inverse of Tempo's HTTP→gRPC mapping for codes that have one, 500 else.
func httpStatusFromError(err error) (int, string) {
	if st, ok := status.FromError(err); ok {
		code := http.StatusInternalServerError
		switch st.Code() {
		case codes.InvalidArgument:
			code = http.StatusBadRequest
		case codes.Unauthenticated:
			code = http.StatusUnauthorized
		case codes.PermissionDenied:
			code = http.StatusForbidden
		case codes.NotFound:
			code = http.StatusNotFound
		case codes.ResourceExhausted:
			code = http.StatusTooManyRequests
		case codes.Canceled:
			code = statusClientClosedRequest
		case codes.Unavailable:
			code = http.StatusServiceUnavailable
		case codes.DeadlineExceeded:
			code = http.StatusGatewayTimeout
		}
		return code, st.Message()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, err.Error()
	}
	return http.StatusInternalServerError, err.Error()
}

// countResourceSpans counts the ResourceSpans (field 1) of OTLP TracesData
// bytes, checking only the top-level framing.
func countResourceSpans(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		b = b[l:]
		if num == 1 && typ != protowire.BytesType {
			return 0, fmt.Errorf("field resource_spans has wire type %d, want %d", typ, protowire.BytesType)
		}
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		b = b[l:]
		if num == 1 {
			n++
		}
	}
	return n, nil
}

// traceLimit is the smallest max_bytes_per_trace of tenants, 0 when none
// has one.
func (h *handler) traceLimit(tenants []string) int {
	limit := 0
	for _, t := range tenants {
		if l := h.maxTraceBytes(t); l > 0 && (limit == 0 || l < limit) {
			limit = l
		}
	}
	return limit
}

// cutTrace keeps the leading ResourceSpans entries of OTLP TracesData b
// that fit in max bytes together.
func cutTrace(b []byte, max int) []byte {
	end := 0
	for rest := b; len(rest) > 0; {
		num, typ, l := protowire.ConsumeTag(rest)
		if l < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[l:])
		if m < 0 || end+l+m > max {
			break
		}
		end += l + m
		rest = rest[l+m:]
	}
	return b[:end]
}

// unmarshalTrace decodes OTLP TracesData bytes for JSON encoding.
func unmarshalTrace(b []byte) (*tracepb.TracesData, error) {
	td := &tracepb.TracesData{}
	if err := proto.Unmarshal(b, td); err != nil {
		return nil, fmt.Errorf("cannot unmarshal TracesData: %w", err)
	}
	fillSpanStatus(td)
	return td, nil
}

// fillSpanStatus gives every span without a status an empty one, so that
// its JSON carries "status":{} as Tempo's does.
func fillSpanStatus(td *tracepb.TracesData) {
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.GetScopeSpans() {
			for _, span := range ss.GetSpans() {
				if span != nil && span.Status == nil {
					span.Status = &tracepb.Status{}
				}
			}
		}
	}
}

// traceJSON encodes TracesData bytes as Tempo's v1 JSON: tempopb.Trace in
// jsonpb with its repeated field named "batches".
func traceJSON(trace []byte) ([]byte, error) {
	td, err := unmarshalTrace(trace)
	if err != nil {
		return nil, err
	}
	if len(td.ResourceSpans) == 0 {
		// jsonpb leaves an empty repeated field out.
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	buf.Grow(2 * len(trace))
	buf.WriteString(`{"batches":[`)
	for i, rs := range td.ResourceSpans {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := appendProtoJSON(&buf, rs); err != nil {
			return nil, err
		}
	}
	buf.WriteString("]}")
	return buf.Bytes(), nil
}

// appendProtoJSON appends m in protojson's default encoding (the same as
// jsonpb's: lowerCamelCase names, base64 bytes, 64-bit integers as strings,
// enum names, default values left out), without protojson's random spaces.
func appendProtoJSON(buf *bytes.Buffer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("cannot marshal %s to JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	if err := json.Compact(buf, b); err != nil {
		return fmt.Errorf("cannot compact JSON of %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// partialStatus is tempopb.TraceByIDResponse.PartialStatus.
type partialStatus int32

const (
	partialStatusComplete partialStatus = 0
	partialStatusPartial  partialStatus = 1
)

// traceByIDResponse is tempopb.TraceByIDResponse, the v2 answer:
//
//	message TraceByIDResponse {
//	  Trace trace = 1;               // wire-identical to OTLP TracesData
//	  TraceByIDMetrics metrics = 2;  // { uint64 inspectedBytes = 1; }
//	  PartialStatus status = 3;      // COMPLETE = 0, PARTIAL = 1
//	  string message = 4;
//	}
type traceByIDResponse struct {
	// trace is OTLP TracesData bytes; nil or empty for an empty trace.
	trace          []byte
	inspectedBytes uint64
	status         partialStatus
	message        string
}

// appendProto appends r in protobuf binary encoding. Trace and metrics are
// always present, as in Tempo, even when empty.
func (r traceByIDResponse) appendProto(b []byte) []byte {
	if b == nil {
		b = make([]byte, 0, len(r.trace)+len(r.message)+32)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, r.trace)
	var metrics []byte
	if r.inspectedBytes != 0 {
		metrics = protowire.AppendTag(metrics, 1, protowire.VarintType)
		metrics = protowire.AppendVarint(metrics, r.inspectedBytes)
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, metrics)
	if r.status != partialStatusComplete {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.status))
	}
	if r.message != "" {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, r.message)
	}
	return b
}

// marshalJSON encodes r as jsonpb does:
// {"trace":{"resourceSpans":[…]},"metrics":{"inspectedBytes":"…"}}, with
// "status" and "message" only when set.
func (r traceByIDResponse) marshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(2*len(r.trace) + len(r.message) + 64)
	buf.WriteString(`{"trace":`)
	if len(r.trace) == 0 {
		buf.WriteString("{}")
	} else {
		td, err := unmarshalTrace(r.trace)
		if err != nil {
			return nil, err
		}
		if err := appendProtoJSON(&buf, td); err != nil {
			return nil, err
		}
	}
	buf.WriteString(`,"metrics":{`)
	if r.inspectedBytes != 0 {
		buf.WriteString(`"inspectedBytes":"`)
		buf.WriteString(strconv.FormatUint(r.inspectedBytes, 10))
		buf.WriteByte('"')
	}
	buf.WriteByte('}')
	switch r.status {
	case partialStatusComplete:
	case partialStatusPartial:
		buf.WriteString(`,"status":"PARTIAL"`)
	default:
		// jsonpb writes an enum value without a name as its number.
		buf.WriteString(`,"status":`)
		buf.WriteString(strconv.FormatInt(int64(r.status), 10))
	}
	if r.message != "" {
		msg, err := json.Marshal(r.message)
		if err != nil {
			return nil, fmt.Errorf("cannot marshal message to JSON: %w", err)
		}
		buf.WriteString(`,"message":`)
		buf.Write(msg)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
