package api

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-logfmt/logfmt"

	"github.com/weftdb/weft/query/search"
)

// Searcher answers TraceQL searches; see query/search.Searcher. Errors map
// to HTTP codes as TraceFinder's do (InvalidArgument → 400).
type Searcher interface {
	Search(ctx context.Context, req search.Request, tenant string) (*search.Response, error)
}

// serveSearch answers GET /api/search with Tempo's SearchResponse: binary
// protobuf when the Accept header asks for application/protobuf, else JSON.
// The legacy tags parameter is translated to TraceQL (see legacyTagsQuery).
func (h *handler) serveSearch(w http.ResponseWriter, r *http.Request) {
	if h.searcher == nil {
		writeError(w, http.StatusNotImplemented, "search is not enabled")
		return
	}
	tenants, err := h.readTenants(r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	req, err := parseSearchRequest(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, notes := withNotes(r)
	resp, err := h.searchTenants(ctx, tenants, req)
	if err != nil {
		writeFailure(w, err)
		return
	}
	partialMsg := h.skips.report(w, routeSearch, notes, tenants)
	if hasToken(r.Header.Values("Accept"), contentTypeProtobuf) {
		writeBody(w, http.StatusOK, contentTypeProtobuf, resp.MarshalProto())
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot encode search response: %v", err))
		return
	}
	if partialMsg != "" {
		body = withPartialJSON(body, partialMsg)
	}
	writeBody(w, http.StatusOK, contentTypeJSON, body)
}

// parseSearchRequest reads the parameters of /api/search. Absent start and
// end leave the range to the searcher (the query-frontend covers the last
// query_backend_after). Limits on limit and spss are the searcher's too,
// so that their errors name their config keys.
func parseSearchRequest(q url.Values) (search.Request, error) {
	var req search.Request
	req.Query = q.Get("q")
	if tags := q.Get("tags"); tags != "" {
		if req.Query != "" {
			return req, fmt.Errorf("invalid parameters: q and tags cannot be used together")
		}
		query, err := legacyTagsQuery(tags)
		if err != nil {
			return req, err
		}
		req.Query = query
		req.Legacy = true
	}
	var err error
	if req.Limit, err = parseCount(q, "limit", math.MaxInt32); err != nil {
		return req, err
	}
	if q.Get("limit") != "" && req.Limit == 0 {
		return req, fmt.Errorf("invalid limit %q: must be a positive integer", q.Get("limit"))
	}
	if req.SpansPerSpanSet, err = parseCount(q, "spss", math.MaxInt32); err != nil {
		return req, err
	}
	if req.Start, req.End, err = parseSearchTimes(q, time.Now()); err != nil {
		return req, err
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

// legacySubstring are the tags of the legacy search that match as a
// substring, with the TraceQL field each one reads: Tempo's well-known
// columns and weft's dedicated string columns (internal/block/schema.go).
var legacySubstring = map[string]string{
	"service.name":        "resource.service.name",
	"name":                "name",
	"root.name":           "rootName",
	"root.service.name":   "rootServiceName",
	"http.request.method": "span.http.request.method",
	"url.path":            "span.url.path",
	"http.route":          "span.http.route",
	"server.address":      "span.server.address",
	"http.method":         "span.http.method",
	"http.url":            "span.http.url",
	"k8s.cluster.name":    "resource.k8s.cluster.name",
	"k8s.namespace.name":  "resource.k8s.namespace.name",
	"k8s.pod.name":        "resource.k8s.pod.name",
	"k8s.container.name":  "resource.k8s.container.name",
}

// legacyStatus maps the values of the legacy status.code tag.
var legacyStatus = map[string]string{
	"unset": "unset", "ok": "ok", "error": "error",
	"status_code_unset": "unset", "status_code_ok": "ok", "status_code_error": "error",
	"0": "unset", "1": "ok", "2": "error",
}

// legacyTagsQuery translates the logfmt tags parameter of the legacy
// search (key=value key2="v 2") into TraceQL: one spanset filter per tag,
// joined with &&, so that each tag may match on a different span of the
// trace, as in Tempo (resource attributes count for every span of the
// resource). Tempo's legacy semantics: the well-known and dedicated
// string tags of legacySubstring match as a substring; status.code
// (unset, ok, error or 0, 1, 2) and http.status_code (an integer) match
// exactly; error=true matches a span with status error or an attribute
// error that is true or "true"; any other tag matches key and value
// exactly as a string span or resource attribute. A key given twice is
// an error.
func legacyTagsQuery(tags string) (string, error) {
	dec := logfmt.NewDecoder(strings.NewReader(tags))
	seen := map[string]bool{}
	var conds []string
	for dec.ScanRecord() {
		for dec.ScanKeyval() {
			key, value := string(dec.Key()), string(dec.Value())
			if seen[key] {
				return "", fmt.Errorf("invalid tags: key %q appears more than once", key)
			}
			seen[key] = true
			cond, err := legacyCondition(key, value)
			if err != nil {
				return "", err
			}
			conds = append(conds, cond)
		}
	}
	if err := dec.Err(); err != nil {
		return "", fmt.Errorf("invalid tags %q: must be logfmt such as key=value key2=\"v 2\": %v", tags, err)
	}
	if len(conds) == 0 {
		return "", fmt.Errorf("invalid tags %q: no key=value pair", tags)
	}
	return "{ " + strings.Join(conds, " } && { ") + " }", nil
}

func legacyCondition(key, value string) (string, error) {
	if field, ok := legacySubstring[key]; ok {
		return field + " =~ " + traceqlString(".*"+regexp.QuoteMeta(value)+".*"), nil
	}
	switch key {
	case "status.code":
		st, ok := legacyStatus[strings.ToLower(value)]
		if !ok {
			return "", fmt.Errorf("invalid tags: status.code %q must be unset, ok, error, 0, 1 or 2", value)
		}
		return "status = " + st, nil
	case "http.status_code":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return "", fmt.Errorf("invalid tags: http.status_code %q must be an integer", value)
		}
		return "span.http.status_code = " + strconv.FormatInt(n, 10), nil
	case "error":
		if value != "true" {
			return "", fmt.Errorf("invalid tags: error %q must be true", value)
		}
		return `(status = error || .error = true || .error = "true")`, nil
	}
	if key == "" {
		return "", fmt.Errorf("invalid tags: empty key")
	}
	return "." + traceqlString(key) + " = " + traceqlString(value), nil
}

// traceqlString quotes s as a TraceQL string literal.
func traceqlString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(s) + `"`
}
