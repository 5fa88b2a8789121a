package app

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/cmd/weft/redactcli"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/query/search"
)

// fastRedaction is fastBackend with a live-store that lets traces go a
// second after their last span (so that they are read from blocks only)
// and redaction requests moved on every 100 ms.
func fastRedaction(c *config.Config) {
	fastBackend(c)
	// No compaction: a trace stays split over the blocks it was cut into.
	c.Overrides.Defaults.Compaction.CompactionDisabled = true
	c.LiveStore.Window, c.LiveStore.SweepInterval = time.Second, 100*time.Millisecond
	r := &c.BackendScheduler.Provider.Redaction
	r.PollInterval, r.RescanDelay = 100*time.Millisecond, 300*time.Millisecond
}

// sendAttrTraces sends n traces of two spans of service with the OTel SDK;
// the child span has the attributes attrs. It returns the spans sent.
func sendAttrTraces(t *testing.T, a *App, service string, n int, attrs ...attribute.KeyValue) []tracetest.SpanStub {
	t.Helper()
	exp, _ := exporters(t, a)
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes("", attribute.String("service.name", service))),
		sdktrace.WithSyncer(mem), sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)))
	tracer := tp.Tracer("weft.redaction")
	base := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	for i := range n {
		start := base.Add(time.Duration(i) * time.Millisecond)
		ctx, root := tracer.Start(context.Background(), fmt.Sprintf("%s root %d", service, i), trace.WithTimestamp(start))
		_, child := tracer.Start(ctx, "child", trace.WithTimestamp(start.Add(time.Millisecond)), trace.WithAttributes(attrs...))
		child.End(trace.WithTimestamp(start.Add(3 * time.Millisecond)))
		root.End(trace.WithTimestamp(start.Add(5 * time.Millisecond)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	spans := mem.GetSpans()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return spans
}

// sendSplitTrace sends a trace of service whose child span (with attrs)
// is exported, then, after a block was cut, its root: the trace is split
// over two blocks. It returns the spans sent.
func sendSplitTrace(t *testing.T, a *App, service string, attrs ...attribute.KeyValue) []tracetest.SpanStub {
	t.Helper()
	exp, _ := exporters(t, a)
	mem := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes("", attribute.String("service.name", service))),
		sdktrace.WithSyncer(mem), sdktrace.WithSyncer(exp))
	tracer := tp.Tracer("weft.redaction")
	start := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	ctx, root := tracer.Start(context.Background(), service+" split root", trace.WithTimestamp(start))
	_, child := tracer.Start(ctx, "child", trace.WithTimestamp(start.Add(time.Millisecond)), trace.WithAttributes(attrs...))
	child.End(trace.WithTimestamp(start.Add(3 * time.Millisecond)))
	time.Sleep(700 * time.Millisecond) // past max_block_duration: the root goes into another block
	root.End(trace.WithTimestamp(start.Add(5 * time.Millisecond)))
	ctx2, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spans := mem.GetSpans()
	if err := tp.Shutdown(ctx2); err != nil {
		t.Fatal(err)
	}
	return spans
}

// blocksHolding counts the listed blocks that hold spans of trace id.
func blocksHolding(t *testing.T, a *App, id trace.TraceID) int {
	t.Helper()
	n := 0
	for _, e := range a.blocks.Blocks(tenant.Single, time.Time{}, time.Time{}) {
		r, err := e.Reader(context.Background(), a.bucket)
		if err != nil {
			t.Fatal(err)
		}
		data, err := r.FindTraceByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if data != nil {
			n++
		}
	}
	return n
}

// traceByID is the trace of id as GET /api/traces/{id} (protobuf) gives
// it, as a sorted list of its spans each with its resource and scope
// (deterministic protobuf): equal lists are the same spans, whatever
// blocks they were read from. nil when the trace is not found.
func traceByID(t *testing.T, a *App, id trace.TraceID) []string {
	t.Helper()
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/traces/"+id.String(), "application/protobuf", "")
	if code == http.StatusNotFound {
		return nil
	}
	if code != http.StatusOK {
		t.Fatalf("trace %s: HTTP %d: %s", id, code, body)
	}
	det := proto.MarshalOptions{Deterministic: true}
	var out []string
	for _, rs := range decodeV1Proto(t, body) {
		res, _ := det.Marshal(rs.Resource)
		for _, ss := range rs.ScopeSpans {
			sc, _ := det.Marshal(ss.Scope)
			for _, sp := range ss.Spans {
				b, _ := det.Marshal(sp)
				out = append(out, string(res)+"|"+rs.SchemaUrl+"|"+string(sc)+"|"+ss.SchemaUrl+"|"+string(b))
			}
		}
	}
	slices.Sort(out)
	return out
}

func searchIDs(t *testing.T, a *App, q string) []string {
	t.Helper()
	rng := fmt.Sprintf("&start=%d&end=%d", time.Now().Add(-time.Hour).Unix(), time.Now().Add(time.Minute).Unix())
	body := get(t, "http://"+a.HTTPAddr()+"/api/search?limit=1000&q="+url.QueryEscape(q)+rng, "", http.StatusOK)
	var resp search.Response
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var ids []string
	for _, tr := range resp.Traces {
		ids = append(ids, strings.TrimLeft(tr.TraceID, "0"))
	}
	slices.Sort(ids)
	return ids
}

func tagValues(t *testing.T, a *App, tag string) string {
	t.Helper()
	rng := fmt.Sprintf("?start=%d&end=%d", time.Now().Add(-time.Hour).Unix(), time.Now().Add(time.Minute).Unix())
	return string(get(t, "http://"+a.HTTPAddr()+"/api/v2/search/tag/"+tag+"/values"+rng, "", http.StatusOK))
}

// followHTTP reads request id over HTTP until it is finished.
func followHTTP(t *testing.T, a *App, id string) *scheduler.RequestStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		body := get(t, "http://"+a.HTTPAddr()+RedactionsPath+"/"+id, "", http.StatusOK)
		var st scheduler.RequestStatus
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if st.Done() {
			return &st
		}
		if time.Now().After(deadline) {
			t.Fatalf("redaction request not done after 60 s: %s\n%s", body, get(t, "http://"+a.HTTPAddr()+"/status/backendscheduler", "", http.StatusOK))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func submitHTTP(t *testing.T, a *App, body string) *scheduler.RequestStatus {
	t.Helper()
	resp, err := http.Post("http://"+a.HTTPAddr()+RedactionsPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data := new(bytes.Buffer)
	_, _ = data.ReadFrom(resp.Body)
	var st scheduler.RequestStatus
	if err := json.Unmarshal(data.Bytes(), &st); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: HTTP %d, %v: %s\n%s", body, resp.StatusCode, err, data, get(t, "http://"+a.HTTPAddr()+"/status/backendscheduler", "", http.StatusOK))
	}
	return &st
}

// TestRedaction: monolithic weft, spans pushed with the OTel SDK, then in
// blocks only. A dry run by query (over HTTP) counts the traces and
// changes nothing; the redaction by query (HTTP) and one by trace ID (weft
// redact over gRPC) remove their traces from trace by ID, search and tag
// values (a trace split over two blocks, its matching span in one, goes
// from both); every other trace reads back exactly as before.
func TestRedaction(t *testing.T) {
	a := startWeft(t, fastRedaction)
	var sent []tracetest.SpanStub
	xy := sendAttrTraces(t, a, "x", 3, attribute.String("foo", "y"), attribute.String("secret", "s3cr3t"))
	sent = append(sent, xy...)
	sent = append(sent, sendAttrTraces(t, a, "x", 2, attribute.String("foo", "z"))...)
	sent = append(sent, sendAttrTraces(t, a, "other", 2, attribute.String("foo", "y"))...)
	// A trace whose matching span is in one block and its root in another:
	// the query's find on the first block names it, and it goes from both.
	split := sendSplitTrace(t, a, "x", attribute.String("foo", "y"))
	sent = append(sent, split...)
	xy = append(xy, split...)
	time.Sleep(400 * time.Millisecond) // another block
	keep := sendAttrTraces(t, a, "keep", 4, attribute.String("foo", "n"))
	sent = append(sent, keep...)
	victim := keep[0].SpanContext.TraceID()
	sent = append(sent, sendAttrTraces(t, a, "keep", 1, attribute.String("victim", "v1"))...)
	// The victim trace gets the span with victim=v1 too: one more trace
	// of keep holds the attribute, and is not the victim.

	want := map[trace.TraceID]int{}
	for _, s := range sent {
		want[s.SpanContext.TraceID()]++
	}
	var ids []trace.TraceID
	for id := range want {
		ids = append(ids, id)
	}
	redacted := map[trace.TraceID]bool{victim: true}
	for _, s := range xy {
		redacted[s.SpanContext.TraceID()] = true
	}
	if len(redacted) != 5 {
		t.Fatalf("%d traces to redact, want 5", len(redacted))
	}

	// Wait until every span is in the blocks and none in the live-store.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := spansInBlocks(t, a, ids)
		whole := true
		for id, n := range want {
			whole = whole && got[id] == n
		}
		live := 0
		if _, err := a.stores.Scan(context.Background(), tenant.Single, spanpred.Selection{}, func([16]byte, []byte) bool { live++; return true }); err != nil {
			t.Fatal(err)
		}
		if whole && live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: traces whole in blocks %v, %d traces in the live-store", whole, live)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The scheduler takes its lock (a few seconds after start).
	for !strings.Contains(string(get(t, "http://"+a.HTTPAddr()+"/status/backendscheduler", "", http.StatusOK)), "backend scheduler: running") {
		if time.Now().After(deadline) {
			t.Fatal("the backend scheduler does not run")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := blocksHolding(t, a, split[0].SpanContext.TraceID()); n != 2 {
		t.Fatalf("the split trace is in %d blocks, want 2", n)
	}
	before := map[trace.TraceID][]string{}
	for _, id := range ids {
		if before[id] = traceByID(t, a, id); len(before[id]) != want[id] {
			t.Fatalf("trace %s: %d spans by ID, %d sent", id, len(before[id]), want[id])
		}
	}
	const q = `{ resource.service.name = "x" && span.foo = "y" }`
	var xyIDs []string
	for id := range redacted {
		if id != victim {
			xyIDs = append(xyIDs, strings.TrimLeft(hex.EncodeToString(id[:]), "0"))
		}
	}
	slices.Sort(xyIDs)
	if got := searchIDs(t, a, q); !slices.Equal(got, xyIDs) {
		t.Fatalf("before: search %s finds %v, want %v", q, got, xyIDs)
	}
	if v := tagValues(t, a, "span.secret"); !strings.Contains(v, "s3cr3t") {
		t.Fatalf("before: tag values of span.secret: %s", v)
	}

	// A query the redaction does not take.
	resp, err := http.Post("http://"+a.HTTPAddr()+RedactionsPath, "application/json", strings.NewReader(`{"query":"{ span.foo != \"y\" }"}`))
	if err != nil {
		t.Fatal(err)
	}
	msg := new(bytes.Buffer)
	_, _ = msg.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg.String(), "operator !=") {
		t.Fatalf("a query with !=: HTTP %d: %s", resp.StatusCode, msg)
	}
	resp, err = http.Post("http://"+a.HTTPAddr()+RedactionsPath, "application/json", strings.NewReader(`{"trace_ids":["ab"]}`))
	if err != nil {
		t.Fatal(err)
	}
	msg.Reset()
	_, _ = msg.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg.String(), "trace_ids") {
		t.Fatalf("an unknown field: HTTP %d: %s", resp.StatusCode, msg)
	}
	if m := string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK)); !strings.Contains(m, `weft_backend_scheduler_redaction_requests_total{result="invalid"} 2`) {
		t.Fatalf("/metrics does not count the 2 invalid requests:\n%s", grep(m, "redaction_requests"))
	}

	// The dry run counts and changes nothing.
	qBody, _ := json.Marshal(map[string]any{"query": q, "dryRun": true})
	st := followHTTP(t, a, submitHTTP(t, a, string(qBody)).ID)
	if st.State != scheduler.RequestDone || st.Counts.Traces != 4 || st.Counts.Spans != 8 || st.Counts.BlocksMatched < 2 || st.Counts.BlocksRewritten != 0 {
		t.Fatalf("dry run: %+v (counts %+v), want 4 traces of 8 spans counted, no block rewritten", st, st.Counts)
	}
	time.Sleep(500 * time.Millisecond) // a poll of the block list or two
	metas, err := block.ListBlocks(context.Background(), a.bucket, tenant.Single)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		if m.Redaction != nil {
			t.Fatalf("the dry run wrote block %s", m.BlockID)
		}
	}
	for _, id := range ids {
		if got := traceByID(t, a, id); !slices.Equal(got, before[id]) {
			t.Fatalf("after the dry run, trace %s reads back otherwise (%d spans, %d before)", id, len(got), len(before[id]))
		}
	}

	// The redaction by query, over HTTP.
	qBody, _ = json.Marshal(map[string]any{"query": q})
	st = followHTTP(t, a, submitHTTP(t, a, string(qBody)).ID)
	if st.State != scheduler.RequestDone || st.Counts.Traces != 4 || st.Counts.Spans != 8 || st.Counts.BlocksRewritten+st.Counts.BlocksEmptied < 2 {
		t.Fatalf("redaction by query: %+v (counts %+v)", st, st.Counts)
	}

	// A dry run by trace ID, with weft redact over HTTP.
	var out, errOut bytes.Buffer
	dry := []string{"-trace-id", victim.String(), "-dry-run", "-follow", "-poll", "100ms", "-timeout", "60s", "http://" + a.HTTPAddr()}
	if err := redactcli.Redact(context.Background(), dry, &out, &errOut); err != nil {
		t.Fatalf("weft redact -dry-run: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "dry run: would remove 1 traces (2 spans) from 1 blocks") {
		t.Fatalf("weft redact -dry-run printed:\n%s", out.String())
	}
	if got := traceByID(t, a, victim); !slices.Equal(got, before[victim]) {
		t.Fatal("the dry run by trace ID changed the trace")
	}

	// The redaction by trace ID, with weft redact over gRPC.
	out.Reset()
	args := []string{"-trace-id", victim.String(), "-follow", "-poll", "100ms", "-timeout", "60s", a.grpcLn.Addr().String()}
	if err := redactcli.Redact(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("weft redact: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "removed 1 traces (2 spans)") {
		t.Fatalf("weft redact printed:\n%s", out.String())
	}

	for _, id := range ids {
		got := traceByID(t, a, id)
		switch {
		case redacted[id] && got != nil:
			t.Errorf("trace %s: found by ID (%d spans) after it was redacted", id, len(got))
		case !redacted[id] && !slices.Equal(got, before[id]):
			t.Errorf("trace %s: reads back otherwise after the redaction (%d spans, %d before)", id, len(got), len(before[id]))
		}
	}
	if got := searchIDs(t, a, q); len(got) != 0 {
		t.Errorf("after: search %s finds %v", q, got)
	}
	if got := searchIDs(t, a, `{ span.foo = "y" }`); len(got) != 2 {
		t.Errorf(`after: search { span.foo = "y" } finds %d traces, want the 2 of service other`, len(got))
	}
	if got := searchIDs(t, a, `{ resource.service.name = "keep" }`); len(got) != 4 {
		t.Errorf("after: %d traces of service keep, want 4 (5 sent, one redacted)", len(got))
	}
	if v := tagValues(t, a, "span.secret"); strings.Contains(v, "s3cr3t") {
		t.Errorf("after: tag values of span.secret: %s", v)
	}
	if v := tagValues(t, a, "span.foo"); !strings.Contains(v, `"z"`) || !strings.Contains(v, `"n"`) {
		t.Errorf("after: tag values of span.foo: %s, want z and n still", v)
	}
	metrics := string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK))
	for _, m := range []string{`tempo_backend_scheduler_jobs_completed_total{job_type="redaction",tenant="single-tenant"}`, `weft_redaction_spans_removed_total{tenant="single-tenant"} 10`} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	status := string(get(t, "http://"+a.HTTPAddr()+"/status/backendscheduler", "", http.StatusOK))
	if !strings.Contains(status, "redaction requests:") || !strings.Contains(status, "done") {
		t.Errorf("status page:\n%s", status)
	}
}
