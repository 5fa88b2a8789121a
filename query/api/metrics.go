package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftdb/weft/query/frontend"
	tqmetrics "github.com/weftdb/weft/query/metrics"
)

// MetricsQuerier answers TraceQL metrics queries over the data of the
// tenants named, merged (query/frontend.Frontend.QueryRange). Errors map
// to HTTP codes as TraceFinder's do (InvalidArgument → 400).
type MetricsQuerier interface {
	QueryRange(ctx context.Context, req frontend.MetricsRequest, tenants []string) (*tqmetrics.Response, error)
}

// serveMetrics answers GET /api/metrics/query_range (instant false) and
// GET /api/metrics/query (instant true) with Tempo's QueryRangeResponse or
// QueryInstantResponse: binary protobuf when the Accept header asks for
// application/protobuf, else JSON.
func (h *handler) serveMetrics(instant bool) http.HandlerFunc {
	route := routeMetricsRange
	if instant {
		route = routeMetricsInstant
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if h.metricsQuerier == nil {
			writeError(w, http.StatusNotImplemented, "TraceQL metrics are not enabled")
			return
		}
		tenants, err := h.readTenants(r)
		if err != nil {
			writeFailure(w, err)
			return
		}
		req, err := parseMetricsRequest(r.URL.Query(), instant, time.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		ctx, notes := withNotes(r)
		resp, err := h.metricsQuerier.QueryRange(ctx, req, tenants)
		if err != nil {
			writeFailure(w, err)
			return
		}
		if msg := h.skips.report(w, route, notes, tenants); msg != "" {
			resp.Status = "PARTIAL"
			resp.Message = strings.TrimPrefix(resp.Message+"; "+msg, "; ")
		}
		proto := hasToken(r.Header.Values("Accept"), contentTypeProtobuf)
		var body []byte
		switch {
		case instant && proto:
			body = resp.Instant().MarshalProto()
		case proto:
			body = resp.MarshalProto()
		case instant:
			body, err = resp.Instant().MarshalJSON()
		default:
			body, err = resp.MarshalJSON()
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot encode metrics response: %v", err))
			return
		}
		ct := contentTypeJSON
		if proto {
			ct = contentTypeProtobuf
		}
		writeBody(w, http.StatusOK, ct, body)
	}
}

// parseMetricsRequest reads the parameters of the metrics routes, as
// Tempo's: q (or query; q wins), start, end and since as for a search,
// step (float seconds or a duration such as 30s), exemplars, maxSeries,
// and instant (query_range only: answer one interval). Defaults and limits
// are the query-frontend's, so that its errors name their config keys.
func parseMetricsRequest(q url.Values, instant bool, now time.Time) (frontend.MetricsRequest, error) {
	var req frontend.MetricsRequest
	req.Query = q.Get("q")
	if req.Query == "" {
		req.Query = q.Get("query")
	}
	var err error
	if req.Start, req.End, err = parseSearchTimes(q, now); err != nil {
		return req, err
	}
	req.Instant = instant
	if s := q.Get("instant"); s != "" && !instant {
		if req.Instant, err = strconv.ParseBool(s); err != nil {
			return req, fmt.Errorf("invalid instant %q: must be true or false", s)
		}
	}
	if s := q.Get("step"); s != "" && !req.Instant {
		if req.Step, err = parseStep(s); err != nil {
			return req, err
		}
	}
	if s := q.Get("exemplars"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return req, fmt.Errorf("invalid exemplars %q: must be a non-negative integer", s)
		}
		req.Exemplars = &n
	}
	if s := q.Get("maxSeries"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return req, fmt.Errorf("invalid maxSeries %q: must be a non-negative integer", s)
		}
		req.MaxSeries = n
	}
	return req, nil
}

// parseStep reads a step: float seconds ("15", "0.5") or a duration ("30s").
func parseStep(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid step %q: must be a positive number of seconds or a duration such as 30s", s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 || math.IsNaN(f) || f > math.MaxInt64/1e9 {
			return 0, bad
		}
		return time.Duration(f * 1e9), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}
