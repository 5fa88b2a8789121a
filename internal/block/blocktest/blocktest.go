// Package blocktest has helpers for tests that check what is stored in
// blocks, whichever component wrote them.
package blocktest

import (
	"context"
	"encoding/hex"
	"testing"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
)

// SpanCounts reads every listed block of every tenant in bkt, as the block
// list sees them (a block named in another's CompactedFrom is hidden: a
// compaction or redaction cut short before it let its inputs go shows only
// its output), and returns how many times each span is stored, keyed
// "tenant/traceID/spanID" (hex), and the number of blocks read.
func SpanCounts(t testing.TB, bkt objstore.BucketReader) (map[string]int, int) {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
	blocks := 0
	tenants, err := block.ListTenants(ctx, bkt)
	if err != nil {
		t.Fatal(err)
	}
	for _, ten := range tenants {
		metas, err := block.ListBlocks(ctx, bkt, ten)
		if err != nil {
			t.Fatal(err)
		}
		hidden := map[uuid.UUID]bool{}
		for _, m := range metas {
			for _, in := range m.CompactedFrom {
				hidden[in] = true
			}
		}
		for _, m := range metas {
			if hidden[m.BlockID] {
				continue
			}
			blocks++
			r, err := block.Open(ctx, bkt, m)
			if err != nil {
				t.Fatal(err)
			}
			data, err := r.ReadAll(ctx)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
			var b otlpwire.Batch
			if err := b.Parse(data); err != nil {
				t.Fatal(err)
			}
			for _, res := range b.Resources {
				for _, sc := range res.Scopes {
					for _, sp := range sc.Spans {
						counts[ten+"/"+hex.EncodeToString(sp.TraceID)+"/"+hex.EncodeToString(sp.SpanID)]++
					}
				}
			}
		}
	}
	return counts, blocks
}
