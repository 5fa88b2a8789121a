package app

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	dto "github.com/prometheus/client_model/go"
	"github.com/thanos-io/objstore"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/query/search"
)

// testBlock is a block written to the bucket as another process's
// block-builder would, and the spans of each of its traces.
type testBlock struct {
	meta  *block.Meta
	spans map[string]int // trace ID (hex) → spans
}

// writeTestBlock writes block id of tenant with traces traces of spans
// spans each for each of seeds, starting an hour ago.
func writeTestBlock(t *testing.T, bkt objstore.Bucket, tenant string, id uuid.UUID, traces, spans int, seeds ...uint64) testBlock {
	t.Helper()
	buf := block.NewBuffer(nil)
	defer buf.Release()
	td := ptrace.NewTraces()
	for _, seed := range seeds {
		one := spangen.Generate(spangen.Options{Seed: seed, Traces: traces, SpansPerTrace: spans, Services: 2, Start: time.Now().Add(-time.Hour)})
		one.ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	var b otlpwire.Batch
	if err := b.Parse(spangen.Marshal(td)); err != nil {
		t.Fatal(err)
	}
	if err := buf.Add(&b); err != nil {
		t.Fatal(err)
	}
	meta, err := block.Write(context.Background(), bkt, tenant, id, block.Source{}, buf, block.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tb := testBlock{meta: meta, spans: map[string]int{}}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			sps := sss.At(j).Spans()
			for k := range sps.Len() {
				id := sps.At(k).TraceID()
				tb.spans[hex.EncodeToString(id[:])]++
			}
		}
	}
	return tb
}

func localBucketAt(t *testing.T, dir string) objstore.Bucket {
	t.Helper()
	bkt, err := storage.NewBucket(storage.Config{Backend: storage.BackendLocal, Local: storage.LocalConfig{Path: dir}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

// metricValue is the value of the gauge or counter name whose labels
// include labels (name=value pairs), or -1 when absent.
func metricValue(t *testing.T, a *App, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// searchAll searches every trace of the last two hours and returns the
// trace IDs found, zero-padded to 32 digits.
func searchAll(t *testing.T, a *App) (map[string]bool, int) {
	t.Helper()
	now := time.Now()
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/search?q=%7B%7D&limit=10000&start="+
		itoa(now.Add(-2*time.Hour).Unix())+"&end="+itoa(now.Add(time.Minute).Unix()), "", "")
	if code != http.StatusOK {
		return nil, code
	}
	var resp search.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	found := map[string]bool{}
	for _, tr := range resp.Traces {
		found[strings.Repeat("0", 32-len(tr.TraceID))+tr.TraceID] = true
	}
	return found, code
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// firstID is one of the trace IDs of spans.
func firstID(spans map[string]int) string {
	for id := range spans {
		return id
	}
	return ""
}

// spansOf fetches a trace by ID (v1, protobuf) and counts its spans: the
// status, and the spans when it is 200.
func spansOf(t *testing.T, a *App, traceID string) (int, int, string) {
	t.Helper()
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/traces/"+traceID, "application/protobuf", "")
	if code != http.StatusOK {
		return code, 0, string(body)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
	if err != nil {
		t.Fatal(err)
	}
	return code, td.SpanCount(), ""
}

// TestDamagedMetaSkipsOnlyThatBlock is issue 12 items 3 and 15 end to end:
// one block with a truncated meta.json, one with an empty one, one whose
// rowGroups is empty and one whose size is wrong. Before, every block of
// the tenant answered 404 and searches came back empty (a corrupt meta
// stopped the poll), or the block's traces 404'd silently (empty rowGroups)
// or tag values answered 500 (bad size). Now every other block is served
// by trace-by-ID, search and tag values, the damaged blocks are counted in
// weft_blocklist_unreadable_blocks, and a repaired meta.json brings its
// block back at the next poll.
func TestDamagedMetaSkipsOnlyThatBlock(t *testing.T) {
	dir := t.TempDir()
	bkt := localBucketAt(t, dir+"/blocks")
	ctx := context.Background()
	var blocks []testBlock
	for i := range 6 {
		blocks = append(blocks, writeTestBlock(t, bkt, tenant.Single, uuid.New(), 5, 3, uint64(100+i)))
	}
	good := []testBlock{blocks[0], blocks[5]}
	damaged := blocks[1:5]
	rc, err := bkt.Get(ctx, blocks[1].meta.ObjectName(block.MetaName))
	if err != nil {
		t.Fatal(err)
	}
	original, _ := io.ReadAll(rc)
	_ = rc.Close()
	put := func(m *block.Meta, data []byte) {
		t.Helper()
		if err := bkt.Upload(ctx, m.ObjectName(block.MetaName), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	edit := func(m *block.Meta, f func(*block.Meta)) {
		c := *m
		f(&c)
		data, _ := json.Marshal(&c)
		put(m, data)
	}
	put(blocks[1].meta, original[:len(original)/2])
	put(blocks[2].meta, nil)
	edit(blocks[3].meta, func(m *block.Meta) { m.RowGroups = []block.RowGroupMeta{} })
	edit(blocks[4].meta, func(m *block.Meta) { m.Size *= 3 })

	a := startWeft(t, func(c *config.Config) {
		c.Storage.Trace.Store.Local.Path = dir + "/blocks"
		c.Storage.Trace.BlocklistPoll = time.Hour // polls are made by the test
	})
	get(t, "http://"+a.HTTPAddr()+"/ready", "", http.StatusOK)
	found, code := searchAll(t, a)
	if code != http.StatusOK {
		t.Fatalf("search: %d", code)
	}
	for _, b := range good {
		for id, n := range b.spans {
			if code, got, msg := spansOf(t, a, id); code != http.StatusOK || got != n {
				t.Errorf("trace %s of a good block: %d %s, %d spans, want %d", id, code, msg, got, n)
			}
			if !found[id] {
				t.Errorf("trace %s of a good block is not found by search", id)
			}
		}
	}
	for _, b := range damaged {
		for id := range b.spans {
			if code, _, _ := spansOf(t, a, id); code != http.StatusNotFound {
				t.Errorf("trace %s of a damaged block: %d, want 404", id, code)
			}
		}
	}
	if len(found) != 10 {
		t.Errorf("search found %d traces, want the 10 of the good blocks", len(found))
	}
	if v := metricValue(t, a, "weft_blocklist_unreadable_blocks", "tenant", tenant.Single); v != 4 {
		t.Fatalf("weft_blocklist_unreadable_blocks = %v, want 4", v)
	}
	// Every answer for the tenant says it is partial, naming a block left
	// out: the blocks' time ranges are unknown, so any query may miss them.
	for _, route := range []string{"/api/search?q=%7B%7D", "/api/v2/traces/" + firstID(good[0].spans), "/api/search/tags", "/api/search/tag/service.name/values", "/api/v2/search/tag/resource.service.name/values"} {
		code, body, header := fetch(t, "http://"+a.HTTPAddr()+route, "", "")
		if code != http.StatusOK || !strings.Contains(string(body), `"PARTIAL"`) || !strings.Contains(string(body), damaged[0].meta.BlockID.String()) ||
			!strings.Contains(header.Get("Warning"), "left out of the block list") {
			t.Errorf("%s: %d %.300s (Warning %q), want 200 marked PARTIAL naming the blocks left out", route, code, body, header.Get("Warning"))
		}
	}

	// Repaired: found again after the next poll.
	put(blocks[1].meta, original)
	if err := a.blocks.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	for id, n := range blocks[1].spans {
		if code, got, msg := spansOf(t, a, id); code != http.StatusOK || got != n {
			t.Errorf("trace %s of the repaired block: %d %s, %d spans, want %d", id, code, msg, got, n)
		}
	}
	if v := metricValue(t, a, "weft_blocklist_unreadable_blocks", "tenant", tenant.Single); v != 3 {
		t.Fatalf("weft_blocklist_unreadable_blocks after the repair = %v, want 3", v)
	}
}

// TestRewrittenBlockIsServed is issue 12 item 5 end to end: a block
// rewritten under the same ID by another process (a block-builder's replay
// after a crash between upload and commit) made this process's searches
// answer 500 "invalid magic footer" until a restart. Now trace-by-ID
// rereads the meta and reopens the block at once, and searches serve the
// new block once the poll notices it.
func TestRewrittenBlockIsServed(t *testing.T) {
	dir := t.TempDir()
	bkt := localBucketAt(t, dir+"/blocks")
	id := uuid.New()
	other := writeTestBlock(t, bkt, tenant.Single, uuid.New(), 4, 2, 1)
	before := writeTestBlock(t, bkt, tenant.Single, id, 4, 2, 2)
	a := startWeft(t, func(c *config.Config) {
		c.Storage.Trace.Store.Local.Path = dir + "/blocks"
		c.Storage.Trace.BlocklistPoll = 200 * time.Millisecond
	})
	// Read both blocks, so that their readers and footers are cached.
	for _, b := range []testBlock{other, before} {
		for tid, n := range b.spans {
			if code, got, msg := spansOf(t, a, tid); code != http.StatusOK || got != n {
				t.Fatalf("trace %s: %d %s, %d spans, want %d", tid, code, msg, got, n)
			}
		}
	}
	if found, code := searchAll(t, a); code != http.StatusOK || len(found) != 8 {
		t.Fatalf("search before the rewrite: %d, %d traces", code, len(found))
	}

	// The replay holds more records: the same ones and later ones.
	after := writeTestBlock(t, bkt, tenant.Single, id, 4, 2, 2, 3)
	if after.meta.Size == before.meta.Size {
		t.Fatal("the rewrite has the same size; the test shows nothing")
	}
	// At once for the traces the cached reader knew: reading them with
	// the old footer fails, and the block is reopened.
	for tid, n := range before.spans {
		if code, got, msg := spansOf(t, a, tid); code != http.StatusOK || got != n {
			t.Fatalf("trace %s just after the rewrite: %d %s, %d spans, want %d", tid, code, msg, got, n)
		}
	}
	// Every trace once the poll has seen the new meta.json.
	deadline := time.Now().Add(10 * time.Second)
	for {
		found, code := searchAll(t, a)
		if code == http.StatusOK && len(found) == 12 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("search after the rewrite: %d, %d traces, want 12", code, len(found))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for tid, n := range after.spans {
		if code, got, msg := spansOf(t, a, tid); code != http.StatusOK || got != n {
			t.Fatalf("trace %s after the poll: %d %s, %d spans, want %d", tid, code, msg, got, n)
		}
	}
	for tid, n := range other.spans {
		if code, got, _ := spansOf(t, a, tid); code != http.StatusOK || got != n {
			t.Fatalf("trace %s of the other block: %d, %d spans", tid, code, got)
		}
	}
	if v := metricValue(t, a, "weft_blocklist_blocks_reopened_total"); v < 1 {
		t.Fatalf("weft_blocklist_blocks_reopened_total = %v", v)
	}
}

// TestStartWithStorageUnreachable is issue 12 item 9: weft started with
// object storage unreachable reported ready and answered 404 for traces
// that exist. Now it starts (pushes are still taken), /ready answers 503
// naming the block list, trace-by-ID of a trace not in the live-store
// answers 503 saying the blocks cannot be searched, and all is well once
// storage is back. The fault: the bucket directory is replaced by a
// symbolic link to itself, so that listing it fails (as root, permissions
// would not stop us).
func TestStartWithStorageUnreachable(t *testing.T) {
	dir := t.TempDir()
	blocksDir := dir + "/blocks"
	bkt := localBucketAt(t, blocksDir)
	stored := writeTestBlock(t, bkt, tenant.Single, uuid.New(), 3, 2, 7)

	cfg := config.Default()
	cfg.Server.HTTPListenAddress, cfg.Server.HTTPListenPort = "127.0.0.1", 0
	cfg.Server.GRPCListenAddress, cfg.Server.GRPCListenPort = "127.0.0.1", 0
	cfg.Distributor.Receivers.OTLP.Protocols.GRPC.Endpoint = "127.0.0.1:0"
	cfg.Distributor.Receivers.OTLP.Protocols.HTTP.Endpoint = "127.0.0.1:0"
	cfg.Storage.Trace.Store.Local.Path = blocksDir
	cfg.Storage.Trace.BlocklistPoll = 100 * time.Millisecond
	cfg.BlockBuilder.WAL.Path = dir + "/wal"
	a, err := New(cfg, slog.New(slog.DiscardHandler), BuildInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// Storage goes away between the configuration check and the start.
	if err := os.Rename(blocksDir, blocksDir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(blocksDir, blocksDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatalf("weft did not start with storage unreachable: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/ready", "", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "blocklist: no poll of the blocks in object storage has succeeded yet") ||
		!strings.Contains(string(body), "too many levels of symbolic links") {
		t.Fatalf("/ready: %d %q, want 503 naming the block list and the storage error", code, body)
	}
	for tid := range stored.spans {
		code, _, msg := spansOf(t, a, tid)
		if code != http.StatusServiceUnavailable || !strings.Contains(msg, "the blocks cannot be searched") {
			t.Fatalf("trace %s in an unreachable block: %d %q, want 503", tid, code, msg)
		}
	}
	if v := metricValue(t, a, "weft_blocklist_last_successful_poll_timestamp_seconds"); v != 0 {
		t.Fatalf("weft_blocklist_last_successful_poll_timestamp_seconds = %v, want 0", v)
	}
	// The write path works: a pushed trace is found (in the live-store).
	_, httpExp := exporters(t, a)
	sent := sendTraces(t, httpExp, "while-down", 1)
	pushed := sent[0].SpanContext.TraceID().String()
	if code, got, msg := spansOf(t, a, pushed); code != http.StatusOK || got != 2 {
		t.Fatalf("pushed trace while storage is down: %d %q, %d spans", code, msg, got)
	}

	// Storage is back.
	if err := os.Remove(blocksDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(blocksDir+".away", blocksDir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/ready", "", "")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready after storage came back: %d %q", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for tid, n := range stored.spans {
		if code, got, msg := spansOf(t, a, tid); code != http.StatusOK || got != n {
			t.Fatalf("trace %s after storage came back: %d %q, %d spans, want %d", tid, code, msg, got, n)
		}
	}
	if v := metricValue(t, a, "weft_blocklist_last_successful_poll_timestamp_seconds"); v <= 0 {
		t.Fatalf("weft_blocklist_last_successful_poll_timestamp_seconds = %v after a success", v)
	}
}
