package querier

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/grpc"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/search"
)

// memLive is a live-store of whole traces (search.Live).
type memLive map[[16]byte][]byte

// EachPart gives every trace as one part that still changes (no memo).
func (l memLive) EachPart(_ context.Context, _ string, fn func(spanpred.Part) bool) error {
	fn(openPart(l))
	return nil
}

// openPart is a spanpred.Part that still changes.
type openPart memLive

func (p openPart) EachData(fn func([]byte) bool) {
	for _, data := range p {
		if !fn(data) {
			return
		}
	}
}

func (openPart) Memo(string, func() (any, int64)) (any, bool) { return nil, false }

// Scan hands over every trace whatever the selection: a selection is
// only what may match, the engine decides.
func (l memLive) Scan(_ context.Context, _ string, _ spanpred.Selection, fn func([16]byte, []byte) bool) (n int64, err error) {
	for id, data := range l {
		n += int64(len(data))
		if !fn(id, data) {
			break
		}
	}
	return n, nil
}

func (l memLive) FindTraceByID(_ context.Context, _ string, id [16]byte, _, _ int64) ([]byte, error) {
	return l[id], nil
}

func liveTrace(tid pcommon.TraceID, service, color string) []byte {
	td := trace(tid, time.Now(), 1)
	rs := td.ResourceSpans().At(0)
	rs.Resource().Attributes().PutStr("service.name", service)
	sp := rs.ScopeSpans().At(0).Spans().At(0)
	sp.Attributes().PutStr("color", color)
	sp.Attributes().PutStr(service+".only", "x")
	sp.SetName("op-" + service)
	return spangen.Marshal(td)
}

type staticPeers []string

func (p staticPeers) LiveStorePeers() []string { return p }

// startLiveStore serves live as the live-store of another process on a
// loopback gRPC port and returns its address.
func startLiveStore(t *testing.T, live search.Live) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	RegisterLiveStoreService(srv, live, search.New(live, nil, nil), nil)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// Tag names and values of a searcher with remote live-stores include the
// names and values of spans only those live-stores hold, deduplicated with
// its own, with and without a time range, under the request's limit.
func TestTagsAskRemoteLiveStores(t *testing.T) {
	local := memLive{{1}: liveTrace(pcommon.TraceID{1}, "front", "red")}
	remoteA := memLive{{2}: liveTrace(pcommon.TraceID{2}, "back", "blue")}
	remoteB := memLive{{3}: liveTrace(pcommon.TraceID{3}, "db", "red")}
	peers := staticPeers{startLiveStore(t, remoteA), startLiveStore(t, remoteB)}
	remote := NewRemoteLiveStores(peers, nil)
	t.Cleanup(func() { _ = remote.Close() })
	s := search.New(local, nil, nil)
	s.SetRemoteTags(remote)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now()
	for _, rng := range []struct {
		name       string
		start, end time.Time
	}{{"no range", time.Time{}, time.Time{}}, {"range", now.Add(-time.Hour), now.Add(time.Hour)}} {
		req := search.TagsRequest{Start: rng.start, End: rng.end}
		names, err := s.TagNames(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"back.only", "color", "db.only", "front.only", "service.name"}; !slices.Equal(names.TagNames, want) {
			t.Errorf("%s: v1 names %v, want %v", rng.name, names.TagNames, want)
		}
		if names.Metrics.TotalJobs != 3 || names.Metrics.CompletedJobs != 3 {
			t.Errorf("%s: v1 names metrics %+v", rng.name, names.Metrics)
		}
		req.Scope = search.ScopeSpan
		v2, err := s.TagNamesV2(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if len(v2.Scopes) != 1 || !slices.Equal(v2.Scopes[0].Tags, []string{"back.only", "color", "db.only", "front.only"}) {
			t.Errorf("%s: v2 span names %+v", rng.name, v2.Scopes)
		}
		req.Scope, req.Name = "", "color"
		vals, err := s.TagValues(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"blue", "red"}; !slices.Equal(vals.TagValues, want) {
			t.Errorf("%s: v1 values %v, want %v", rng.name, vals.TagValues, want)
		}
		req.Name = "resource.service.name"
		v2vals, err := s.TagValuesV2(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		want := []search.TagValue{{Type: "string", Value: "back"}, {Type: "string", Value: "db"}, {Type: "string", Value: "front"}}
		if !slices.Equal(v2vals.TagValues, want) {
			t.Errorf("%s: v2 values %v, want %v", rng.name, v2vals.TagValues, want)
		}
		req.Name = "name"
		v2vals, err = s.TagValuesV2(ctx, req, "t")
		if err != nil {
			t.Fatal(err)
		}
		if len(v2vals.TagValues) != 3 {
			t.Errorf("%s: span names %v", rng.name, v2vals.TagValues)
		}
	}
	// The limit holds over the merged answer.
	vals, err := s.TagValues(ctx, search.TagsRequest{Name: "service.name", Limit: 2}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(vals.TagValues) != 2 {
		t.Errorf("limit 2: %v", vals.TagValues)
	}
	// So does the byte cap, and the answer says it was cut.
	vals, err = s.TagValues(ctx, search.TagsRequest{Name: "service.name", MaxBytes: 7}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if len(vals.TagValues) > 2 || vals.Truncated == "" {
		t.Errorf("max bytes 7: %v truncated %q", vals.TagValues, vals.Truncated)
	}
	// A live-store that is gone is skipped.
	gone := NewRemoteLiveStores(staticPeers{"127.0.0.1:1", peers[0]}, nil)
	t.Cleanup(func() { _ = gone.Close() })
	s.SetRemoteTags(gone)
	vals, err = s.TagValues(ctx, search.TagsRequest{Name: "service.name"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"back", "front"}; !slices.Equal(vals.TagValues, want) {
		t.Errorf("one live-store gone: %v, want %v", vals.TagValues, want)
	}
}
