package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/query/search"
)

// Multi-tenant reads: with multi-tenancy on, "X-Scope-OrgID: a|b|c" runs a
// query for each tenant and merges the answers, as Tempo's query-frontend
// does (query_frontend.multi_tenant_queries_enabled). The stores never see
// more than one tenant at a time, so isolation stays where it is.

// readTenants are the tenants a query covers.
func (h *handler) readTenants(r *http.Request) ([]string, error) {
	return tenant.ResolveRead(h.multitenancy, h.multiTenantReads, r.Header.Get(tenant.Header))
}

// eachTenant runs fn for every tenant at once and returns the results in
// the order of tenants, or the first error.
func eachTenant[T any](ctx context.Context, tenants []string, fn func(ctx context.Context, tenant string) (T, error)) ([]T, error) {
	out := make([]T, len(tenants))
	if len(tenants) == 1 {
		v, err := fn(ctx, tenants[0])
		out[0] = v
		return out, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(tenants))
	var wg sync.WaitGroup
	for i, t := range tenants {
		wg.Go(func() {
			out[i], errs[i] = fn(ctx, t)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// Report the failure that canceled the others, not their cancellation.
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case !canceled(err):
			return nil, err
		case first == nil:
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return out, nil
}

func canceled(err error) bool {
	return errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled
}

// findTraceInTenants concatenates the trace's spans from every tenant: OTLP
// TracesData is a sequence of ResourceSpans, so the bytes add up.
func (h *handler) findTraceInTenants(ctx context.Context, tenants []string, id [16]byte, start, end int64) ([]byte, error) {
	parts, err := eachTenant(ctx, tenants, func(ctx context.Context, t string) ([]byte, error) {
		return h.finder.FindTraceByID(ctx, t, id, start, end)
	})
	if err != nil {
		return nil, err
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return slices.Concat(parts...), nil
}

// searchTenants runs the search for every tenant and merges the answers:
// the traces of all, the most recent first, cut to the limit, and the
// metrics summed.
func (h *handler) searchTenants(ctx context.Context, tenants []string, req search.Request) (*search.Response, error) {
	resps, err := eachTenant(ctx, tenants, func(ctx context.Context, t string) (*search.Response, error) {
		return h.searcher.Search(ctx, req, t)
	})
	if err != nil {
		return nil, err
	}
	return mergeSearch(resps, cmp.Or(req.Limit, h.defaultLimit)), nil
}

// mergeSearch merges the answers of several tenants: the traces of all,
// the most recent first, cut to limit, and the metrics summed. One answer
// is returned as it is.
func mergeSearch(resps []*search.Response, limit int) *search.Response {
	if len(resps) == 1 {
		return resps[0]
	}
	merged := &search.Response{Metrics: &search.Metrics{}}
	for _, r := range resps {
		if r == nil {
			continue
		}
		merged.Traces = append(merged.Traces, r.Traces...)
		if m := r.Metrics; m != nil {
			merged.Metrics.InspectedTraces += m.InspectedTraces
			merged.Metrics.InspectedBytes += m.InspectedBytes
			merged.Metrics.InspectedSpans += m.InspectedSpans
			merged.Metrics.TotalBlocks += m.TotalBlocks
			merged.Metrics.CompletedJobs += m.CompletedJobs
			merged.Metrics.TotalJobs += m.TotalJobs
			merged.Metrics.TotalBlockBytes += m.TotalBlockBytes
		}
	}
	slices.SortStableFunc(merged.Traces, func(a, b *search.Trace) int {
		return cmp.Compare(b.StartTimeUnixNano, a.StartTimeUnixNano)
	})
	if len(merged.Traces) > limit {
		merged.Traces = merged.Traces[:limit]
	}
	return merged
}

// tagsOfTenants runs a tag request for every tenant, each with its own
// byte cap, and merges the answers with merge.
func tagsOfTenants[T any](ctx context.Context, h *handler, tenants []string, req search.TagsRequest,
	get func(context.Context, search.TagsRequest, string) (*T, error), merge func([]*T) *T) (*T, error) {
	resps, err := eachTenant(ctx, tenants, func(ctx context.Context, t string) (*T, error) {
		r := req
		r.MaxBytes = h.maxTagBytes(t)
		r.MaxReadBytes = h.tagReadBytes
		return get(ctx, r, t)
	})
	if err != nil {
		return nil, err
	}
	if len(resps) == 1 {
		return resps[0], nil
	}
	return merge(resps), nil
}

// union returns the sorted distinct elements of lists.
func union[E cmp.Ordered](lists ...[]E) []E {
	var out []E
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// mergeMeta sums the metrics of the tenants' tag answers and names every
// reason one was cut.
func mergeMeta[T any](rs []*T, meta func(*T) (*search.MetadataMetrics, string)) (*search.MetadataMetrics, string) {
	sum := &search.MetadataMetrics{}
	var why []string
	for _, r := range rs {
		m, truncated := meta(r)
		if m != nil {
			sum.InspectedBytes += m.InspectedBytes
			sum.TotalJobs += m.TotalJobs
			sum.CompletedJobs += m.CompletedJobs
			sum.TotalBlocks += m.TotalBlocks
			sum.TotalBlockBytes += m.TotalBlockBytes
		}
		if truncated != "" && !slices.Contains(why, truncated) {
			why = append(why, truncated)
		}
	}
	return sum, strings.Join(why, "; ")
}

func mergeTagNames(rs []*search.TagNamesResponse) *search.TagNamesResponse {
	m, why := mergeMeta(rs, func(r *search.TagNamesResponse) (*search.MetadataMetrics, string) { return r.Metrics, r.Truncated })
	var lists [][]string
	for _, r := range rs {
		lists = append(lists, r.TagNames)
	}
	return &search.TagNamesResponse{TagNames: union(lists...), Metrics: m, Truncated: why}
}

func mergeTagNamesV2(rs []*search.TagNamesV2Response) *search.TagNamesV2Response {
	m, why := mergeMeta(rs, func(r *search.TagNamesV2Response) (*search.MetadataMetrics, string) { return r.Metrics, r.Truncated })
	out := &search.TagNamesV2Response{Metrics: m, Truncated: why}
	byScope := map[string][][]string{}
	var order []string
	for _, r := range rs {
		for _, sc := range r.Scopes {
			if _, ok := byScope[sc.Name]; !ok {
				order = append(order, sc.Name)
			}
			byScope[sc.Name] = append(byScope[sc.Name], sc.Tags)
		}
	}
	for _, name := range order {
		out.Scopes = append(out.Scopes, &search.TagScope{Name: name, Tags: union(byScope[name]...)})
	}
	return out
}

func mergeTagValues(rs []*search.TagValuesResponse) *search.TagValuesResponse {
	m, why := mergeMeta(rs, func(r *search.TagValuesResponse) (*search.MetadataMetrics, string) { return r.Metrics, r.Truncated })
	var lists [][]string
	for _, r := range rs {
		lists = append(lists, r.TagValues)
	}
	return &search.TagValuesResponse{TagValues: union(lists...), Metrics: m, Truncated: why}
}

func mergeTagValuesV2(rs []*search.TagValuesV2Response) *search.TagValuesV2Response {
	m, why := mergeMeta(rs, func(r *search.TagValuesV2Response) (*search.MetadataMetrics, string) { return r.Metrics, r.Truncated })
	out := &search.TagValuesV2Response{Metrics: m, Truncated: why}
	for _, r := range rs {
		out.TagValues = append(out.TagValues, r.TagValues...)
	}
	slices.SortFunc(out.TagValues, func(a, b search.TagValue) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Value, b.Value))
	})
	out.TagValues = slices.Compact(out.TagValues)
	return out
}
