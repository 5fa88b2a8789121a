package search

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sinks/livestore"
)

// recentData is the data of BenchmarkSearchRecent: 3,000 spangen traces
// of 15 spans (45,000 spans) in 15 pushes of 200 traces, as the outside
// check that found recent searches slow had. It returns the pushes and
// the ID of one trace in the middle.
func recentData() (pushes [][]byte, mid [16]byte) {
	for i := range 15 {
		td := spangen.Generate(spangen.Options{Seed: uint64(i + 1), Traces: 200, SpansPerTrace: 15, Services: 10,
			Start: base.Add(time.Duration(i) * 200 * time.Millisecond)})
		if i == 7 {
			mid = td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
		}
		pushes = append(pushes, spangen.Marshal(td))
	}
	return pushes, mid
}

// recentSearchers returns a searcher over the data in a live-store only,
// and one over the same data in one block only.
func recentSearchers(b *testing.B, pushes [][]byte) (live, blocks *Searcher) {
	b.Helper()
	set := &livestore.Set{}
	cfg := livestore.DefaultConfig()
	f := livestore.NewFactory(cfg, set)
	node, err := f.Create(pipelines.Settings{Metrics: prometheus.NewRegistry()}, f.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	st := node.(*livestore.Store)
	buf := block.NewBuffer(nil)
	defer buf.Release()
	for _, p := range pushes {
		m := message.NewMessage(watermill.NewUUID(), p)
		m.Metadata.Set(pipelines.MetaTenant, "t")
		if err := st.Consume(m); err != nil {
			b.Fatal(err)
		}
		var batch otlpwire.Batch
		if err := batch.Parse(p); err != nil {
			b.Fatal(err)
		}
		if err := buf.Add(&batch); err != nil {
			b.Fatal(err)
		}
	}
	bkt, err := filesystem.NewBucket(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	meta, err := block.Write(context.Background(), bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	list.Add(meta)
	// As when a running weft is searched, the pushes are older than the
	// live-store's open segment (the last 2 s), whose spans are tested
	// one by one.
	time.Sleep(2100 * time.Millisecond)
	return New(set, nil, nil), New(nil, list, bkt)
}

// BenchmarkSearchRecent runs the searches of `go run ./bench`, and a
// search by trace ID, over the same 45,000 spans held by a live-store
// ("live") and written to a block ("blocks"). Recent searches should be
// at least as fast as the same searches over blocks:
//
//	go test ./query/search -run '^$' -bench BenchmarkSearchRecent -benchmem
func BenchmarkSearchRecent(b *testing.B) {
	pushes, mid := recentData()
	live, blocks := recentSearchers(b, pushes)
	queries := []struct{ name, q string }{
		{"service", `{ resource.service.name = "service-1" }`},
		{"status-and-duration", `{ span.http.response.status_code >= 500 && duration > 100ms }`},
		{"structural", `{ status = error } >> { kind = client }`},
		{"regex-none", `{ span.db.statement =~ "INSERT.*" && resource.k8s.namespace.name = "shop" }`},
		{"no-such-service", `{ resource.service.name = "no-such-service" }`},
		{"trace-id", `{ trace:id = "` + hex.EncodeToString(mid[:]) + `" }`},
		{"most-recent", `{ span.http.route = "/api/cart" } with (most_recent=true)`},
	}
	for _, where := range []struct {
		name string
		s    *Searcher
	}{{"live", live}, {"blocks", blocks}} {
		for _, q := range queries {
			b.Run(where.name+"/"+q.name, func(b *testing.B) {
				req := Request{Query: q.q, Start: base.Add(-time.Hour), End: base.Add(time.Hour)}
				var found int
				for b.Loop() {
					resp, err := where.s.Search(context.Background(), req, "t")
					if err != nil {
						b.Fatal(err)
					}
					found = len(resp.Traces)
				}
				b.ReportMetric(float64(found), "traces")
			})
		}
	}
}
