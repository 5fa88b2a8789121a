package search

import (
	"context"
	"fmt"
)

// Tag look-ups in microservices mode: the live-stores of other processes
// answer the live part of a tag request (TagsJob, run there by RunTagsJob
// over their own live-store), and the Searcher of the query path merges
// their names or values into its own, deduplicated, under the request's
// limit and byte cap.

// Kinds of TagsJob.
const (
	TagsJobNames    = "names"
	TagsJobNamesV2  = "namesV2"
	TagsJobValues   = "values"
	TagsJobValuesV2 = "valuesV2"
)

// TagsJob is the live part of a tag request, sent to the live-stores of
// other processes. It has no time range: a live-store answers from what it
// holds.
type TagsJob struct {
	Kind         string `json:"kind"`
	Scope        string `json:"scope,omitempty"`
	Name         string `json:"name,omitempty"`
	Query        string `json:"query,omitempty"`
	Limit        int    `json:"limit,omitempty"`
	MaxBytes     int    `json:"maxBytes,omitempty"`
	MaxReadBytes int64  `json:"maxReadBytes,omitempty"`
}

// TagsJobResult is a live-store's answer to a TagsJob: names by scope (v1
// names under scope ""), or values (v1 values have no type).
type TagsJobResult struct {
	Scopes         []*TagScope `json:"scopes,omitempty"`
	Values         []TagValue  `json:"values,omitempty"`
	InspectedBytes uint64      `json:"inspectedBytes,omitempty"`
	// Truncated is why the live-store's answer is incomplete, "" if it is not.
	Truncated string `json:"truncated,omitempty"`
}

// RemoteTags runs tag jobs on the live-stores of other processes
// (query/querier.RemoteLiveStores). TagsJob returns one result per
// live-store that answered; live-stores that cannot be reached are left
// out; any other failure is an error.
type RemoteTags interface {
	TagsJob(ctx context.Context, tenant string, job TagsJob) ([]*TagsJobResult, error)
}

// SetRemoteTags makes tag requests also ask the live-stores of other
// processes through r. The searcher serving a live-store's TagsJob must
// not have one (it would ask the others back).
func (s *Searcher) SetRemoteTags(r RemoteTags) { s.remoteTags = r }

// RunTagsJob answers job from the searcher's live-store (and its remote
// live-stores if it has any).
func (s *Searcher) RunTagsJob(ctx context.Context, tenant string, job TagsJob) (*TagsJobResult, error) {
	req := TagsRequest{Scope: job.Scope, Name: job.Name, Query: job.Query, Limit: job.Limit, MaxBytes: job.MaxBytes, MaxReadBytes: job.MaxReadBytes}
	out := &TagsJobResult{}
	var m *MetadataMetrics
	switch job.Kind {
	case TagsJobNames:
		r, err := s.TagNames(ctx, req, tenant)
		if err != nil {
			return nil, err
		}
		out.Scopes, m, out.Truncated = []*TagScope{{Tags: r.TagNames}}, r.Metrics, r.Truncated
	case TagsJobNamesV2:
		r, err := s.TagNamesV2(ctx, req, tenant)
		if err != nil {
			return nil, err
		}
		out.Scopes, m, out.Truncated = r.Scopes, r.Metrics, r.Truncated
	case TagsJobValues:
		r, err := s.TagValues(ctx, req, tenant)
		if err != nil {
			return nil, err
		}
		for _, v := range r.TagValues {
			out.Values = append(out.Values, TagValue{Value: v})
		}
		m, out.Truncated = r.Metrics, r.Truncated
	case TagsJobValuesV2:
		r, err := s.TagValuesV2(ctx, req, tenant)
		if err != nil {
			return nil, err
		}
		out.Values, m, out.Truncated = r.TagValues, r.Metrics, r.Truncated
	default:
		return nil, invalid("invalid tags job kind %q: must be one of %s, %s, %s, %s", job.Kind, TagsJobNames, TagsJobNamesV2, TagsJobValues, TagsJobValuesV2)
	}
	if m != nil {
		out.InspectedBytes = m.InspectedBytes
	}
	return out, nil
}

// askRemoteTags runs the live part of req on the remote live-stores, if
// any, adding their statistics to m; it returns their answers and why
// some of them are incomplete ("" if none is).
func (s *Searcher) askRemoteTags(ctx context.Context, tenant, kind string, req TagsRequest, m *MetadataMetrics) ([]*TagsJobResult, string, error) {
	if s.remoteTags == nil {
		return nil, "", nil
	}
	rs, err := s.remoteTags.TagsJob(ctx, tenant, TagsJob{Kind: kind, Scope: req.Scope, Name: req.Name, Query: req.Query,
		Limit: req.Limit, MaxBytes: req.MaxBytes, MaxReadBytes: req.MaxReadBytes})
	if err != nil {
		return nil, "", fmt.Errorf("cannot ask the live-stores of other processes: %w", err)
	}
	cut := ""
	for _, r := range rs {
		m.TotalJobs++
		m.CompletedJobs++
		m.InspectedBytes += r.InspectedBytes
		if r.Truncated != "" && cut == "" {
			cut = "a live-store of another process: " + r.Truncated
		}
	}
	return rs, cut, nil
}

// joinCut joins the reasons an answer is incomplete.
func joinCut(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
