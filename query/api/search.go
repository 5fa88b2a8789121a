package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/query/search"
)

// Searcher answers TraceQL searches; see query/search.Searcher. Errors map
// to HTTP codes as TraceFinder's do (InvalidArgument → 400).
type Searcher interface {
	Search(ctx context.Context, req search.Request, tenant string) (*search.Response, error)
}

// serveSearch answers GET /api/search with Tempo's JSON SearchResponse.
// Only JSON is served for now (protobuf answers are not implemented yet),
// and only TraceQL (q): the legacy tags search is refused.
func (h *handler) serveSearch(w http.ResponseWriter, r *http.Request) {
	if h.searcher == nil {
		writeError(w, http.StatusNotImplemented, "search is not enabled")
		return
	}
	tenantID, err := tenant.Resolve(h.multitenancy, r.Header.Get(tenant.Header))
	if err != nil {
		writeFailure(w, err)
		return
	}
	req, err := parseSearchRequest(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	resp, err := h.searcher.Search(r.Context(), req, tenantID)
	if err != nil {
		writeFailure(w, err)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot encode search response: %v", err))
		return
	}
	writeBody(w, http.StatusOK, contentTypeJSON, body)
}

// parseSearchRequest reads the parameters of /api/search. Absent start and
// end leave the range unbounded.
func parseSearchRequest(q url.Values) (search.Request, error) {
	var req search.Request
	if q.Get("tags") != "" {
		return req, fmt.Errorf("tags search is not supported yet; use q")
	}
	req.Query = q.Get("q")
	var err error
	if req.Limit, err = parseCount(q, "limit", search.MaxLimit); err != nil {
		return req, err
	}
	if q.Get("limit") != "" && req.Limit == 0 {
		return req, fmt.Errorf("invalid limit %q: must be a positive integer", q.Get("limit"))
	}
	if req.SpansPerSpanSet, err = parseCount(q, "spss", search.MaxSpansPerSpanSet); err != nil {
		return req, err
	}
	start, end, err := parseTimeRange(q)
	if err != nil {
		return req, err
	}
	if start > 0 {
		req.Start = time.Unix(start, 0)
	}
	if end > 0 {
		req.End = time.Unix(end, 0)
	}
	if req.MinDuration, err = parseDuration(q, "minDuration"); err != nil {
		return req, err
	}
	if req.MaxDuration, err = parseDuration(q, "maxDuration"); err != nil {
		return req, err
	}
	if req.MinDuration > 0 && req.MaxDuration > 0 && req.MinDuration > req.MaxDuration {
		return req, fmt.Errorf("invalid maxDuration: must be greater than minDuration")
	}
	return req, nil
}

func parseCount(q url.Values, name string, max int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid %s %q: must be a non-negative integer", name, s)
	}
	if v > max {
		return 0, fmt.Errorf("invalid %s %d: must be at most %d", name, v, max)
	}
	return v, nil
}

func parseDuration(q url.Values, name string) (time.Duration, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid %s %q: must be a non-negative duration such as 100ms or 2s", name, s)
	}
	return d, nil
}
