package app

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
	"github.com/weftdb/weft/internal/tenant"
)

// readsEnv is a weft with two blocks and traces in its live-store: the
// traces of set "one" are in block one (one of them also has a span in the
// live-store), those of "two" in block two, those of "live" only in the
// live-store.
type readsEnv struct {
	a       *App
	mutate  func(*config.Config)
	dir     string                                 // data directory (local backend)
	spans   map[trace.TraceID][]tracetest.SpanStub // what was sent, per trace
	set     map[trace.TraceID]string               // set of each trace
	blockOf map[string]string                      // block ID of sets one and two
	extra   trace.TraceID                          // trace of set one with a live span too
	// damaged is the ID of a block damaged on purpose, once there is one:
	// every answer may then be partial naming it (the block list leaves a
	// block out when data.parquet is not the size meta.json gives, and then
	// marks every answer for the tenant).
	damaged string
}

// newReadsEnv builds the env; storageCfg, when not nil, sets the backend
// (the local one under the env's directory otherwise). traces is the
// number of traces of each set.
func newReadsEnv(t *testing.T, traces int, storageCfg func(*config.Config)) *readsEnv {
	t.Helper()
	e := &readsEnv{dir: t.TempDir(), spans: map[trace.TraceID][]tracetest.SpanStub{}, set: map[trace.TraceID]string{}, blockOf: map[string]string{}}
	e.mutate = func(c *config.Config) {
		c.Storage.Trace.Store.Local.Path = e.dir + "/blocks"
		c.BlockBuilder.WAL.Path = e.dir + "/wal"
		c.Storage.Trace.ReadTimeout = time.Second
		// The tests damage given blocks: the backend does not compact them.
		c.Overrides.Defaults.Compaction.CompactionDisabled = true
		if storageCfg != nil {
			storageCfg(c)
		}
	}
	known := map[string]bool{}
	newBlock := func(a *App, want int) string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for a.blocks.Count(tenant.Single) < want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		var id string
		for _, en := range a.blocks.Blocks(tenant.Single, time.Time{}, time.Time{}) {
			if b := en.Meta.BlockID.String(); !known[b] {
				known[b], id = true, b
			}
		}
		if id == "" {
			t.Fatalf("no new block (the list has %d)", a.blocks.Count(tenant.Single))
		}
		return id
	}
	send := func(a *App, name string) {
		_, exp := exporters(t, a)
		for _, s := range sendTraces(t, exp, "svc-"+name, traces) {
			id := s.SpanContext.TraceID()
			e.spans[id] = append(e.spans[id], s)
			e.set[id] = name
		}
	}
	shutdown := func(a *App) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil { // uploads every open block
			t.Fatal(err)
		}
	}
	a := startWeft(t, e.mutate)
	send(a, "one")
	shutdown(a)
	a = startWeft(t, e.mutate)
	e.blockOf["one"] = newBlock(a, 1)
	send(a, "two")
	shutdown(a)
	e.a = startWeft(t, e.mutate)
	e.blockOf["two"] = newBlock(e.a, 2)
	send(e.a, "live")
	// One trace of block one gets a span in the live-store too.
	for id, name := range e.set {
		if name == "one" {
			e.extra = id
			break
		}
	}
	now := time.Now()
	sp := span(e.extra[:], []byte{0xee, 1, 2, 3, 4, 5, 6, 7}, "late-span")
	sp.StartTimeUnixNano, sp.EndTimeUnixNano = uint64(now.Add(-time.Minute).UnixNano()), uint64(now.Add(-time.Minute+time.Millisecond).UnixNano())
	if _, err := exportGRPC(t, e.a, "", request(sp)); err != nil {
		t.Fatal(err)
	}
	return e
}

// file is the path of a file of the block of set name (local backend).
func (e *readsEnv) file(name, file string) string {
	return filepath.Join(e.dir, "blocks", tenant.Single, e.blockOf[name], file)
}

// truncate cuts a file to half its size.
func truncate(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
}

// v2Answer is a trace-by-ID v2 answer.
type v2Answer struct {
	code    int
	spans   map[string]bool // span IDs, hex
	status  string
	message string
	warning string
	took    time.Duration
}

func traceV2(t *testing.T, a *App, id trace.TraceID) v2Answer {
	t.Helper()
	start := time.Now()
	code, body, header := fetch(t, "http://"+a.HTTPAddr()+"/api/v2/traces/"+hex.EncodeToString(id[:]), "", "")
	ans := v2Answer{code: code, spans: map[string]bool{}, warning: strings.Join(header.Values("Warning"), "\n"), took: time.Since(start)}
	if code != http.StatusOK {
		ans.message = string(body)
		return ans
	}
	var resp struct {
		Trace   json.RawMessage `json:"trace"`
		Status  string          `json:"status"`
		Message string          `json:"message"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("v2 answer: %v: %s", err, body)
	}
	var td tracepb.TracesData
	if err := protojson.Unmarshal(resp.Trace, &td); err != nil {
		t.Fatalf("v2 trace: %v: %s", err, body)
	}
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				ans.spans[hex.EncodeToString(sp.SpanId)] = true
			}
		}
	}
	ans.status, ans.message = resp.Status, resp.Message
	return ans
}

// searchAnswer is a search answer.
type searchAnswer struct {
	traces  map[string]bool // trace IDs, full hex
	status  string
	message string
	warning string
	took    time.Duration
}

func searchPartial(t *testing.T, a *App) searchAnswer {
	t.Helper()
	start := time.Now()
	code, body, header := fetch(t, "http://"+a.HTTPAddr()+"/api/search?limit=100000&q="+url.QueryEscape("{}"), "", "")
	took := time.Since(start)
	if code != http.StatusOK {
		t.Fatalf("search: %d %s (after %s)", code, body, took)
	}
	var resp struct {
		Traces []struct {
			TraceID string `json:"traceID"`
		} `json:"traces"`
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("search: %v: %s", err, body)
	}
	ans := searchAnswer{traces: map[string]bool{}, status: resp.Status, message: resp.Message, warning: strings.Join(header.Values("Warning"), "\n"), took: took}
	for _, tr := range resp.Traces {
		ans.traces[fmt.Sprintf("%032s", tr.TraceID)] = true
	}
	return ans
}

// wantSpans is what trace by ID must give for id when the places of the
// sets in lost are unreadable (the extra span is where set "live" is).
func (e *readsEnv) wantSpans(id trace.TraceID, lost ...string) map[string]bool {
	isLost := func(set string) bool {
		for _, l := range lost {
			if l == set {
				return true
			}
		}
		return false
	}
	out := map[string]bool{}
	if !isLost(e.set[id]) {
		for _, s := range e.spans[id] {
			sid := s.SpanContext.SpanID()
			out[hex.EncodeToString(sid[:])] = true
		}
	}
	if id == e.extra && !isLost("live") {
		out["ee01020304050607"] = true
	}
	return out
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// checkServed checks that every span not in a lost set is served by trace
// by ID and every trace not only in a lost set by search; answers that
// lack something must be partial with a message containing mention. It
// returns the longest answer time.
func (e *readsEnv) checkServed(t *testing.T, mention string, lost ...string) time.Duration {
	return e.checkSample(t, 0, mention, lost...)
}

// checkSample is checkServed looking up at most sample traces of each set
// by ID (the extra trace always), all when sample is 0.
func (e *readsEnv) checkSample(t *testing.T, sample int, mention string, lost ...string) time.Duration {
	t.Helper()
	var longest time.Duration
	looked := map[string]int{}
	for id := range e.spans {
		if sample > 0 && id != e.extra && looked[e.set[id]] >= sample {
			continue
		}
		looked[e.set[id]]++
		ans := traceV2(t, e.a, id)
		longest = max(longest, ans.took)
		want := e.wantSpans(id, lost...)
		if ans.code != http.StatusOK || !sameSet(ans.spans, want) {
			t.Fatalf("trace %s of set %s: %d, %d spans, want %d (%s)", id, e.set[id], ans.code, len(ans.spans), len(want), ans.message)
		}
		inLost := len(lost) > 0 && (e.set[id] == lost[0] || len(lost) > 1 && e.set[id] == lost[1])
		if inLost && (ans.status != "PARTIAL" || !strings.Contains(ans.message, mention) || !strings.Contains(ans.warning, mention)) {
			t.Fatalf("trace %s of lost set %s: status %q message %q warning %q, want PARTIAL naming %q", id, e.set[id], ans.status, ans.message, ans.warning, mention)
		}
		if !inLost && ans.status == "PARTIAL" && !strings.Contains(ans.message, mention) {
			t.Fatalf("trace %s: partial for another reason: %s", id, ans.message)
		}
	}
	s := searchPartial(t, e.a)
	t.Logf("looked up %v traces by ID; search found %d traces (%s)", looked, len(s.traces), s.status)
	longest = max(longest, s.took)
	for id := range e.spans {
		if len(e.wantSpans(id, lost...)) > 0 && !s.traces[hex.EncodeToString(id[:])] {
			t.Fatalf("search lacks trace %s of set %s (%d found; %s)", id, e.set[id], len(s.traces), s.message)
		}
	}
	if len(lost) > 0 && (s.status != "PARTIAL" || !strings.Contains(s.message, mention) || !strings.Contains(s.warning, mention)) {
		t.Fatalf("search: status %q message %q warning %q, want PARTIAL naming %q", s.status, s.message, s.warning, mention)
	}
	if len(lost) == 0 && s.status != "" {
		t.Fatalf("search marked %s: %s", s.status, s.message)
	}
	return longest
}

func counter(t *testing.T, a *App, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := a.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// A truncated bloom file fails nothing: every trace of the tenant is
// served whole by ID (live-store, both blocks), search finds them all, the
// answers are complete, and the bad bloom is counted once.
func TestFaultDamagedBloom(t *testing.T) {
	e := newReadsEnv(t, 8, nil)
	truncate(t, e.file("one", block.BloomName))
	e.checkServed(t, "")
	if n := counter(t, e.a, "weft_block_bloom_unreadable_total"); n != 1 {
		t.Fatalf("weft_block_bloom_unreadable_total = %v, want 1", n)
	}
}

// A truncated data.parquet loses only its own spans: trace by ID serves
// the others (a trace partly in the block with status PARTIAL naming it),
// v1 answers what was found, search, tag values and TraceQL metrics
// answer partially, and the skipped block is counted.
func TestFaultDamagedData(t *testing.T) {
	// Metrics count every span older than a millisecond from the blocks.
	e := newReadsEnv(t, 8, func(c *config.Config) { c.QueryFrontend.Metrics.QueryBackendAfter = time.Millisecond })
	truncate(t, e.file("one", block.DataName))
	bad := e.blockOf["one"]
	e.checkServed(t, bad, "one")
	if n := counter(t, e.a, "weft_query_blocks_skipped_total", "reason", "damaged"); n == 0 {
		t.Fatal("weft_query_blocks_skipped_total{reason=damaged} not counted")
	}
	// v1: the live span of the trace partly in the block, with a Warning.
	code, body, header := fetch(t, "http://"+e.a.HTTPAddr()+"/api/traces/"+hex.EncodeToString(e.extra[:]), "", "")
	if code != http.StatusOK || !strings.Contains(string(body), "late-span") || !strings.Contains(strings.Join(header.Values("Warning"), " "), bad) {
		t.Fatalf("v1 of a trace partly in the damaged block: %d %.200s %q", code, body, header.Values("Warning"))
	}
	// Tag values over a range: the other block's and the live-store's.
	now := time.Now()
	q := fmt.Sprintf("?start=%d&end=%d", now.Add(-time.Hour).Unix(), now.Unix())
	code, body, header = fetch(t, "http://"+e.a.HTTPAddr()+"/api/v2/search/tag/resource.service.name/values"+q, "", "")
	if code != http.StatusOK || !strings.Contains(string(body), "svc-two") || !strings.Contains(string(body), "svc-live") ||
		!strings.Contains(string(body), `"status":"PARTIAL"`) || !strings.Contains(strings.Join(header.Values("Warning"), " "), bad) {
		t.Fatalf("tag values: %d %s %q", code, body, header.Values("Warning"))
	}
	// A metrics query over the blocks: the other block's spans, the
	// damaged block named.
	q += "&q=" + url.QueryEscape("{ } | count_over_time() by (resource.service.name)")
	code, body, header = fetch(t, "http://"+e.a.HTTPAddr()+"/api/metrics/query_range"+q, "", "")
	if code != http.StatusOK || !strings.Contains(string(body), "svc-two") || strings.Contains(string(body), `"svc-one"`) ||
		!strings.Contains(string(body), `"status":"PARTIAL"`) || !strings.Contains(string(body), bad) ||
		!strings.Contains(strings.Join(header.Values("Warning"), " "), bad) {
		t.Fatalf("metrics: %d %s %q", code, body, header.Values("Warning"))
	}
}

// With the blocks in S3 and S3 hung (a proxy that never answers) or down
// (a proxy that resets every connection): trace by ID and search serve
// what the live-store holds, traces pushed during the outage included,
// marked partial, within the read timeout (300ms here) rather than the query
// timeouts (10s, 30s); once S3 is back every span is served again.
func TestFaultS3Outage(t *testing.T) {
	srv := s3test.StartServer(t)
	s3cfg := srv.NewBucket(t)
	proxy := s3test.NewProxy(t, s3cfg.Endpoint)
	s3cfg.Endpoint = proxy.Addr
	const readTimeout = 300 * time.Millisecond
	e := newReadsEnv(t, 6, func(c *config.Config) {
		c.Storage.Trace.Store.Backend = storage.BackendS3
		c.Storage.Trace.Store.S3 = s3cfg
		c.Storage.Trace.ReadTimeout = readTimeout
	})
	defer proxy.SetMode(s3test.ProxyPass) // let the last shutdown upload
	for _, mode := range []struct {
		name string
		mode s3test.ProxyMode
	}{{"hung", s3test.ProxyBlackhole}, {"down", s3test.ProxyRefuse}} {
		proxy.SetMode(mode.mode)
		// Traces pushed during the outage.
		_, exp := exporters(t, e.a)
		for _, s := range sendTraces(t, exp, "svc-during-"+mode.name, 3) {
			id := s.SpanContext.TraceID()
			e.spans[id] = append(e.spans[id], s)
			e.set[id] = "live"
		}
		took := e.checkSample(t, 2, "object storage failed", "one", "two")
		if took > readTimeout+time.Second {
			t.Fatalf("S3 %s: an answer took %s, with storage.trace.read_timeout %s", mode.name, took, readTimeout)
		}
		if n := counter(t, e.a, "weft_query_blocks_skipped_total", "reason", "storage"); n == 0 {
			t.Fatalf("S3 %s: weft_query_blocks_skipped_total{reason=storage} not counted", mode.name)
		}
	}
	proxy.SetMode(s3test.ProxyPass)
	e.checkServed(t, "")
}
