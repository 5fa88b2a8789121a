package search

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/query/partial"
)

// damageData truncates the data.parquet of the block holding trace id
// (found by its span's service) and returns the block's ID.
func (e *env) damageData(service string) string {
	e.t.Helper()
	ctx := context.Background()
	for _, en := range e.list.Blocks("t", time.Time{}, time.Time{}) {
		r, err := en.Reader(ctx, e.bkt)
		if err != nil {
			e.t.Fatal(err)
		}
		all, err := r.ReadAll(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if !bytes.Contains(all, []byte(service)) {
			continue
		}
		name := en.Meta.ObjectName(block.DataName)
		rc, err := e.bkt.Get(ctx, name)
		if err != nil {
			e.t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.bkt.Upload(ctx, name, bytes.NewReader(data[:len(data)/2])); err != nil {
			e.t.Fatal(err)
		}
		_ = r.Close() // forget the footer read from the good file
		return en.Meta.BlockID.String()
	}
	e.t.Fatalf("no block holds service %q", service)
	return ""
}

// A search over a damaged data.parquet answers with the traces of the
// live-store and the other blocks, and notes the block it skipped.
func TestSearchSkipsDamagedBlock(t *testing.T) {
	e := setup(t)
	bad := e.damageData("back")
	ctx, notes := partial.NewContext(context.Background())
	resp, err := e.s.Search(ctx, Request{Query: `{}`}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(resp); got != "1,ab000000000000000000000000000003" {
		t.Fatalf("traces %q, want the live one and the undamaged block's", got)
	}
	skips := notes.Skips()
	if len(skips) != 1 || skips[0].Block != bad || skips[0].Reason != partial.ReasonDamaged {
		t.Fatalf("skips %+v, want block %s damaged", skips, bad)
	}
	// The job of the damaged block fails alone; SkippedJob turns it into a
	// result saying so.
	for _, j := range e.s.Plan(Request{Query: `{}`}, "t") {
		if j.BlockID != bad {
			continue
		}
		_, err := e.s.RunJob(context.Background(), "t", j)
		if err == nil || !Skippable(context.Background(), err) {
			t.Fatalf("job of the damaged block: %v", err)
		}
		if res := SkippedJob("t", j, err); res.Skipped == nil || res.Skipped.Block != bad || !strings.Contains(res.Skipped.Error, "data.parquet") {
			t.Fatalf("skipped job %+v", res.Skipped)
		}
	}
}

// Tag names and values over a damaged data.parquet list what the
// live-store and the other blocks hold, and note the block.
func TestTagsSkipDamagedBlock(t *testing.T) {
	e := tagEnv(t)
	e.block(mkTrace(tidBoth, spanDef{id: 1, service: "other", name: "x", start: time.Second, dur: time.Second, attr: "green"}))
	bad := e.damageData("back")
	ctx, notes := partial.NewContext(context.Background())
	req := everything
	req.Name = ".color"
	resp, err := e.s.TagValuesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := valuesString(resp.TagValues); got != "string:green,string:red" {
		t.Fatalf("values %q, want green (other block) and red (live)", got)
	}
	if skips := notes.Skips(); len(skips) != 1 || skips[0].Block != bad {
		t.Fatalf("skips %+v, want block %s", skips, bad)
	}
	ctx, notes = partial.NewContext(context.Background())
	names, err := e.s.TagNamesV2(ctx, everything, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := scopeMap(names)["resource"]; got != "service.name" || len(notes.Skips()) != 1 {
		t.Fatalf("names %v, skips %+v", scopeMap(names), notes.Skips())
	}
	// With a filter, traces are read whole.
	ctx, notes = partial.NewContext(context.Background())
	req.Query = `{ .color != "" }`
	if resp, err = e.s.TagValuesV2(ctx, req, "t"); err != nil || valuesString(resp.TagValues) != "string:green,string:red" || len(notes.Skips()) != 1 {
		t.Fatalf("filtered values: %v, %v, skips %+v", resp, err, notes.Skips())
	}
}

// hungBucket never answers a read.
type hungBucket struct{ objstore.Bucket }

func (hungBucket) Get(ctx context.Context, _ string) (io.ReadCloser, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hungBucket) GetRange(ctx context.Context, _ string, _, _ int64) (io.ReadCloser, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// With object storage hung, tag values answer within the read timeout
// with what the live-store holds; after the first block, no other is read.
func TestTagsHungStorage(t *testing.T) {
	e := tagEnv(t)
	e.block(mkTrace(tidBoth, spanDef{id: 1, service: "other", name: "x", start: time.Second, dur: time.Second, attr: "green"}))
	const timeout = 200 * time.Millisecond
	s := New(e.set, e.list, storage.NewReadBucket(hungBucket{e.bkt}, timeout))
	ctx, notes := partial.NewContext(context.Background())
	req := everything
	req.Name = ".color"
	start := time.Now()
	resp, err := s.TagValuesV2(ctx, req, "t")
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 4*timeout {
		t.Fatalf("took %s with a read timeout of %s", took, timeout)
	}
	if got := valuesString(resp.TagValues); got != "string:red" {
		t.Fatalf("values %q, want the live one", got)
	}
	skips := notes.Skips()
	if len(skips) != 2 || skips[0].Reason != partial.ReasonStorage || !strings.Contains(notes.Message(), storage.ReadTimeoutKey) {
		t.Fatalf("skips %+v, message %q", skips, notes.Message())
	}
}
