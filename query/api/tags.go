package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftdb/weft/query/search"
)

// Tagger answers tag name and tag value look-ups; see query/search.Searcher.
// Errors map to HTTP codes as TraceFinder's do (InvalidArgument → 400).
type Tagger interface {
	TagNames(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagNamesResponse, error)
	TagNamesV2(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagNamesV2Response, error)
	TagValues(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagValuesResponse, error)
	TagValuesV2(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagValuesV2Response, error)
}

// Route labels of the tag routes.
const (
	routeTagsV1      = "/api/search/tags"
	routeTagsV2      = "/api/v2/search/tags"
	routeTagValuesV1 = "/api/search/tag/{tagName}/values"
	routeTagValuesV2 = "/api/v2/search/tag/{tagName}/values"
)

// TagQueryTimeoutKey is the config key of Options.TagQueryTimeout, named
// in the 504 of a tag request that passes it.
const TagQueryTimeoutKey = "query_frontend.search.query_timeout"

// headerTruncated tells that a tag answer was cut by the byte cap; Tempo's
// response messages have no field for it.
const headerTruncated = "Warning"

// tagAnswer is what the tag handlers write: JSON or protobuf, and why the
// answer is incomplete.
type tagAnswer interface {
	MarshalProto() []byte
}

// registerTags adds the four tag routes. Tag names may hold any character,
// "/" included: the values routes take the rest of the path and cut the
// "/values" suffix.
func (h *handler) registerTags() {
	h.handle("GET /api/search/tags", routeTagsV1, h.tagHandler(routeTagsV1, false, false))
	h.handle("GET /api/v2/search/tags", routeTagsV2, h.tagHandler(routeTagsV2, true, false))
	h.handle("GET /api/search/tag/{rest...}", routeTagValuesV1, h.tagHandler(routeTagValuesV1, false, true))
	h.handle("GET /api/v2/search/tag/{rest...}", routeTagValuesV2, h.tagHandler(routeTagValuesV2, true, true))
}

func (h *handler) tagHandler(route string, v2, values bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var name string
		if values {
			rest := r.PathValue("rest")
			var ok bool
			if name, ok = strings.CutSuffix(rest, "/values"); !ok {
				http.NotFound(w, r)
				return
			}
		}
		if h.tagger == nil {
			writeError(w, http.StatusNotImplemented, "tag search is not enabled")
			return
		}
		tenants, err := h.readTenants(r)
		if err != nil {
			writeFailure(w, err)
			return
		}
		req, err := parseTagsRequest(r.URL.Query(), v2, values)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if values && name == "" {
			writeError(w, http.StatusBadRequest, "invalid tag name: empty")
			return
		}
		req.Name = name
		ctx, notes := withNotes(r)
		resp, truncated, err := h.answerTags(ctx, tenants, req, v2, values)
		if err != nil {
			if errors.Is(err, errTagTimeout) && r.Context().Err() == nil {
				writeError(w, http.StatusGatewayTimeout, h.tagTimeoutMessage())
				return
			}
			writeFailure(w, err)
			return
		}
		if truncated != "" {
			h.tagsCut.WithLabelValues(route).Inc()
			w.Header().Set(headerTruncated, `299 weft "`+strings.ReplaceAll(truncated, `"`, `'`)+`"`)
		}
		writeMessage(w, r, resp, h.skips.report(w, route, notes, tenants))
	}
}

// errTagTimeout marks a tag look-up that ran past the tag timeout.
var errTagTimeout = errors.New("tag look-up timed out")

// tagTimeoutMessage says that a tag look-up ran past its timeout.
func (h *handler) tagTimeoutMessage() string {
	return fmt.Sprintf("tag look-up did not finish within %s (%s)", h.tagTimeout, TagQueryTimeoutKey)
}

// answerTags runs a tag request (names or values, v1 or v2) for tenants,
// bounded by the tag timeout: the answer, why it was cut ("" if it was
// not), or an error; past the timeout the error wraps errTagTimeout.
func (h *handler) answerTags(ctx context.Context, tenants []string, req search.TagsRequest, v2, values bool) (tagAnswer, string, error) {
	if h.tagTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.tagTimeout)
		defer cancel()
	}
	var (
		resp      tagAnswer
		truncated string
		err       error
	)
	switch {
	case !v2 && !values:
		var res *search.TagNamesResponse
		if res, err = tagsOfTenants(ctx, h, tenants, req, h.tagger.TagNames, mergeTagNames); err == nil {
			resp, truncated = res, res.Truncated
		}
	case v2 && !values:
		var res *search.TagNamesV2Response
		if res, err = tagsOfTenants(ctx, h, tenants, req, h.tagger.TagNamesV2, mergeTagNamesV2); err == nil {
			resp, truncated = res, res.Truncated
		}
	case !v2:
		var res *search.TagValuesResponse
		if res, err = tagsOfTenants(ctx, h, tenants, req, h.tagger.TagValues, mergeTagValues); err == nil {
			resp, truncated = res, res.Truncated
		}
	default:
		var res *search.TagValuesV2Response
		if res, err = tagsOfTenants(ctx, h, tenants, req, h.tagger.TagValuesV2, mergeTagValuesV2); err == nil {
			resp, truncated = res, res.Truncated
		}
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, "", fmt.Errorf("%w: %w", errTagTimeout, err)
		}
		return nil, "", err
	}
	return resp, truncated, nil
}

// writeMessage answers with resp as protobuf when the client accepts it,
// else as JSON, marked partial with partialMsg when it is not "".
func writeMessage(w http.ResponseWriter, r *http.Request, resp tagAnswer, partialMsg string) {
	if hasToken(r.Header.Values("Accept"), contentTypeProtobuf) {
		writeBody(w, http.StatusOK, contentTypeProtobuf, resp.MarshalProto())
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("cannot encode response: %v", err))
		return
	}
	if partialMsg != "" {
		body = withPartialJSON(body, partialMsg)
	}
	writeBody(w, http.StatusOK, contentTypeJSON, body)
}

// parseTagsRequest reads the parameters of the tag routes: scope (names
// only), q (v2 only; v1 ignores it as Tempo does), start, end, limit and
// maxStaleValues (checked, not used).
func parseTagsRequest(q url.Values, v2, values bool) (search.TagsRequest, error) {
	var req search.TagsRequest
	if !values {
		req.Scope = q.Get("scope")
		switch req.Scope {
		case "", search.ScopeResource, search.ScopeSpan, search.ScopeIntrinsic, search.ScopeEvent, search.ScopeLink, search.ScopeInstrumentation:
		case search.ScopeNone:
			if !v2 {
				return req, fmt.Errorf("invalid scope %q: must be one of resource, span, intrinsic, event, link, instrumentation", req.Scope)
			}
		default:
			valid := "resource, span, intrinsic, event, link, instrumentation"
			if v2 {
				valid += ", none"
			}
			return req, fmt.Errorf("invalid scope %q: must be one of %s", req.Scope, valid)
		}
	}
	if v2 {
		req.Query = q.Get("q")
	}
	for _, name := range []string{"limit", "maxStaleValues"} {
		s := q.Get(name)
		if s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return req, fmt.Errorf("invalid %s %q: must be a non-negative integer", name, s)
		}
		if name == "limit" {
			req.Limit = v
		}
	}
	var err error
	if req.Start, req.End, err = parseSearchTimes(q, time.Now()); err != nil {
		return req, err
	}
	return req, nil
}
