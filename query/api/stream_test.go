package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/streaming/tempopb"
)

// progressSearcher reports, for each tenant, the answers of reports in
// turn as progress, then answers final.
type progressSearcher struct {
	reports map[string][][]*search.Trace
	final   map[string][]*search.Trace
}

func (s progressSearcher) Search(ctx context.Context, _ search.Request, tenant string) (*search.Response, error) {
	p := search.ProgressFromContext(ctx)
	if p == nil {
		return nil, errors.New("no progress in the context")
	}
	for i, ts := range s.reports[tenant] {
		p.Report(&search.Response{Traces: ts, Metrics: &search.Metrics{TotalJobs: 10, CompletedJobs: uint32(i + 1)}})
	}
	return &search.Response{Traces: s.final[tenant], Metrics: &search.Metrics{TotalJobs: 10, CompletedJobs: 10}}, nil
}

func startStream(t *testing.T, opts Options, sopts StreamOptions) tempopb.StreamingQuerierClient {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := NewStreamingServer(h, sopts)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	tempopb.RegisterStreamingQuerierServer(g, ss)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tempopb.NewStreamingQuerierClient(conn)
}

func ids(ts []*tempopb.TraceSearchMetadata) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.TraceID)
	}
	return out
}

// A streamed search of a|b sends, for each progress report, the traces of
// the tenants' answers so far merged that changed since the message
// before (none when nothing changed), then the merged final answer.
func TestStreamSearchDiffs(t *testing.T) {
	tr := func(id string, start uint64, name string) *search.Trace {
		return &search.Trace{TraceID: id, StartTimeUnixNano: start, RootTraceName: name}
	}
	s := progressSearcher{
		reports: map[string][][]*search.Trace{
			"a": {{tr("a1", 50, "first")}, {tr("a1", 50, "first")}, {tr("a1", 50, "changed"), tr("a2", 10, "x")}},
		},
		final: map[string][]*search.Trace{
			"a": {tr("a1", 50, "changed"), tr("a2", 10, "x")},
			"b": {tr("b1", 40, "y")},
		},
	}
	c := startStream(t, Options{Finder: &fakeFinder{}, Searcher: s, MultitenancyEnabled: true}, StreamOptions{DiffInterval: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := c.Search(metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", "a|b"), &tempopb.SearchRequest{Query: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	var names []string
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(m.Traces))
		for _, tr := range m.Traces {
			if tr.TraceID == "a1" {
				names = append(names, tr.RootTraceName)
			}
		}
	}
	want := [][]string{{"a1"}, nil, {"a1", "a2"}, {"a1", "b1", "a2"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("messages %v, want %v (diffs, then the whole answer)", got, want)
	}
	if !slices.Equal(names, []string{"first", "changed", "changed"}) {
		t.Errorf("a1's root names %v", names)
	}
}

// An answer larger than MaxPacketSize comes in several messages within
// it, which hold the whole answer, each with the metrics; a scope of
// SearchTagsV2 cut in two is in both messages with its part of the tags.
func TestStreamSegments(t *testing.T) {
	m := &tempopb.SearchTagsV2Response{Metrics: &tempopb.MetadataMetrics{InspectedBytes: 12345, TotalJobs: 3}}
	for _, sc := range []string{"resource", "span", "intrinsic", "event"} {
		scope := &tempopb.SearchTagsV2Scope{Name: sc}
		for i := range 40 {
			scope.Tags = append(scope.Tags, fmt.Sprintf("%s.attribute.%03d", sc, i))
		}
		if sc == "event" {
			scope.Tags = nil // an empty scope is kept
		}
		m.Scopes = append(m.Scopes, scope)
	}
	const max = 300
	var msgs []*tempopb.SearchTagsV2Response
	if err := sendScopes(m, max, func(r *tempopb.SearchTagsV2Response) error { msgs = append(msgs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 2 {
		t.Fatalf("%d messages for %d bytes at most %d", len(msgs), proto.Size(m), max)
	}
	union := map[string][]string{}
	var order []string
	for _, r := range msgs {
		if n := proto.Size(r); n > max {
			t.Errorf("a message of %d bytes, over %d", n, max)
		}
		if !proto.Equal(r.Metrics, m.Metrics) {
			t.Errorf("a message without the metrics: %v", r.Metrics)
		}
		for _, sc := range r.Scopes {
			if _, ok := union[sc.Name]; !ok {
				order = append(order, sc.Name)
			}
			union[sc.Name] = append(union[sc.Name], sc.Tags...)
		}
	}
	if !slices.Equal(order, []string{"resource", "span", "intrinsic", "event"}) {
		t.Errorf("scopes %v", order)
	}
	for _, sc := range m.Scopes {
		if !slices.Equal(union[sc.Name], sc.Tags) {
			t.Errorf("scope %s: %v, want %v", sc.Name, union[sc.Name], sc.Tags)
		}
	}

	// One item larger than the limit is a message of its own.
	parts := segments([]string{"a", "bbbbbbbbbbbbbbbbbbbb", "c", "d"}, func(s string) int { return len(s) }, 0, 5)
	if fmt.Sprint(parts) != "[[a] [bbbbbbbbbbbbbbbbbbbb] [c d]]" {
		t.Errorf("segments %v", parts)
	}
	if parts := segments([]string(nil), func(s string) int { return len(s) }, 0, 5); len(parts) != 1 || len(parts[0]) != 0 {
		t.Errorf("no items: %v, want one empty message", parts)
	}
}

// Without x-scope-orgid under multi-tenancy the call fails as HTTP's
// request does; a bad request parameter is InvalidArgument with the HTTP
// wording; a missing searcher is Unimplemented.
func TestStreamErrors(t *testing.T) {
	c := startStream(t, Options{Finder: &fakeFinder{}, Searcher: tenantSearcher{}, MultitenancyEnabled: true}, StreamOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recvErr := func(s interface {
		Recv() (*tempopb.SearchResponse, error)
	}, err error) error {
		if err != nil {
			return err
		}
		for {
			if _, err := s.Recv(); err != nil {
				return err
			}
		}
	}
	err := recvErr(c.Search(ctx, &tempopb.SearchRequest{Query: "{}"}))
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "no org id" {
		t.Errorf("no org id: %v", err)
	}
	octx := metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", "a")
	err = recvErr(c.Search(octx, &tempopb.SearchRequest{Query: "{}", MinDurationMs: 200, MaxDurationMs: 100}))
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != "invalid maxDuration: must be greater than minDuration" {
		t.Errorf("min over max: %v", err)
	}
	tags, err := c.SearchTags(octx, &tempopb.SearchTagsRequest{})
	if err == nil {
		_, err = tags.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("tags without a tagger: %v, want Unimplemented", err)
	}
}
