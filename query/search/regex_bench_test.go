package search

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
)

// regexBlock writes one block of 10,000 spangen traces of 10 spans
// (100,000 spans) in row groups of 1 MiB, and returns a searcher over it
// cutting a job per row group.
func regexBlock(b *testing.B) *Searcher {
	b.Helper()
	bkt, err := filesystem.NewBucket(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	list := blocklist.New(bkt, time.Hour, prometheus.NewRegistry(), nil)
	buf := block.NewBuffer(nil)
	defer buf.Release()
	for i := range 20 {
		td := spangen.Generate(spangen.Options{Seed: uint64(i), Traces: 500, SpansPerTrace: 10, Start: base.Add(time.Duration(i) * time.Second)})
		var batch otlpwire.Batch
		if err := batch.Parse(spangen.Marshal(td)); err != nil {
			b.Fatal(err)
		}
		if err := buf.Add(&batch); err != nil {
			b.Fatal(err)
		}
	}
	meta, err := block.Write(context.Background(), bkt, "t", uuid.New(), block.Source{}, buf, block.WriteOptions{RowGroupBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	list.Add(meta)
	s := New(nil, list, bkt)
	s.TargetBytesPerJob = 1 // a job per row group, as a large block has
	return s
}

// largePattern is an alternation of 300 paths of about 30 characters:
// about 10,000 instructions compiled, as a dashboard variable listing
// many values makes.
func largePattern() string {
	var alts []string
	for i := range 300 {
		alts = append(alts, fmt.Sprintf("/api/v1/products/item-%04d/detail", i))
	}
	return strings.Join(alts, "|")
}

// BenchmarkSearchRegex searches 100,000 spans with regular expressions
// whose matches no storage statistics can skip: a !~ that matches nearly
// every span (with most_recent, so that every trace is read), and ones
// that match no span (every trace read, none kept):
//
//	go test ./query/search -run '^$' -bench BenchmarkSearchRegex -benchmem
func BenchmarkSearchRegex(b *testing.B) {
	s := regexBlock(b)
	for _, tc := range []struct{ name, q string }{
		{"not-match-most-recent", `{ span.http.route !~ "/api/c.*" } with (most_recent=true)`},
		{"not-match-large-pattern-most-recent", `{ span.http.route !~ "` + largePattern() + `" } with (most_recent=true)`},
		// 100 × [a-z/]{100}: 10,000 instructions of counted repetition.
		{"not-match-repetition-most-recent", `{ span.http.route !~ "` + strings.Repeat("[a-z/]{100}", 100) + `" } with (most_recent=true)`},
		{"not-equal-most-recent", `{ span.http.route != "/api/cart" } with (most_recent=true)`},
		{"not-match-none", `{ span.http.route !~ ".*" }`},
		{"match-none", `{ span.db.statement =~ "DELETE.*" }`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := Request{Query: tc.q, Start: base.Add(-time.Hour), End: base.Add(time.Hour)}
			for b.Loop() {
				if _, err := s.Search(context.Background(), req, "t"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
