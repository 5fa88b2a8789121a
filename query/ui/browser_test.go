package ui_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftdb/weft/cmd/weft/app"
	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/query/ui"
)

// screenshotsEnv, set to 1, makes TestBrowser write its screenshots over
// docs/images/ui-*.png (make test leaves the tree clean without it).
const screenshotsEnv = "WEFT_UI_SCREENSHOTS"

// chromiumPath finds Debian's chromium (or the browser WEFT_CHROMIUM_BIN
// names); the test skips with the way to install it when there is none.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WEFT_CHROMIUM_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("WEFT_CHROMIUM_BIN=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("the browser tests need Chromium, which is not installed: run `make tools` as root (it runs apt-get install -y chromium), or set WEFT_CHROMIUM_BIN")
	return ""
}

// startWeft runs a monolithic weft on free loopback ports.
func startWeft(t testing.TB, mutate func(*config.Config)) *app.App {
	t.Helper()
	cfg := config.Default()
	cfg.UseLoopback(t.TempDir())
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.BuildInfo{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return a
}

// pusher sends spans of several services to weft with the OpenTelemetry
// SDK (OTLP/HTTP), one tracer provider per service.
type pusher struct {
	t   testing.TB
	exp sdktrace.SpanExporter
	tps map[string]*sdktrace.TracerProvider
}

// newPusher pushes to a's OTLP/HTTP receiver; a non-empty tenant is sent
// as X-Scope-OrgID.
func newPusher(t testing.TB, a *app.App, tenant string) *pusher {
	_, httpAddr := a.OTLPAddrs()
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure()}
	if tenant != "" {
		opts = append(opts, otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": tenant}))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &pusher{t: t, exp: exp, tps: map[string]*sdktrace.TracerProvider{}}
}

func (p *pusher) tracer(service string) trace.Tracer {
	tp, ok := p.tps[service]
	if !ok {
		res := resource.NewWithAttributes("", attribute.String("service.name", service), attribute.String("deployment.environment", "test"))
		tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res),
			sdktrace.WithBatcher(p.exp, sdktrace.WithBatchTimeout(50*time.Millisecond), sdktrace.WithMaxQueueSize(20000), sdktrace.WithMaxExportBatchSize(2000)))
		p.tps[service] = tp
	}
	return tp.Tracer("weft.ui.test", trace.WithInstrumentationVersion("0.1.0"))
}

// flush exports everything started so far.
func (p *pusher) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for name, tp := range p.tps {
		if err := tp.ForceFlush(ctx); err != nil {
			p.t.Fatalf("export of %s to weft failed: %v", name, err)
		}
	}
}

func (p *pusher) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tp := range p.tps {
		_ = tp.Shutdown(ctx)
	}
}

// shopTrace is frontend → backend → ledger: GET /checkout (server) calls
// POST /pay (client, then server in backend), which writes to the ledger
// (server in ledger, with an event). Every second payment is declined:
// status error on the backend's span.
func (p *pusher) shopTrace(i int, base time.Time) string {
	at := func(ms int) trace.SpanStartEventOption {
		return trace.WithTimestamp(base.Add(time.Duration(ms) * time.Millisecond))
	}
	end := func(ms int) trace.SpanEndOption {
		return trace.WithTimestamp(base.Add(time.Duration(ms) * time.Millisecond))
	}
	ctx, root := p.tracer("frontend").Start(context.Background(), "GET /checkout", trace.WithSpanKind(trace.SpanKindServer), at(0),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200)))
	ctx, call := p.tracer("frontend").Start(ctx, "POST /pay", trace.WithSpanKind(trace.SpanKindClient), at(2))
	ctx, pay := p.tracer("backend").Start(ctx, "POST /pay", trace.WithSpanKind(trace.SpanKindServer), at(3),
		trace.WithAttributes(attribute.String("payment.method", "card"), attribute.Int("payment.amount", 40+i)))
	_, write := p.tracer("ledger").Start(ctx, "INSERT entry", trace.WithSpanKind(trace.SpanKindServer), at(5))
	write.AddEvent("row.written", trace.WithTimestamp(base.Add(7*time.Millisecond)), trace.WithAttributes(attribute.Int("rows", 1)))
	write.End(end(9))
	if i%2 == 1 {
		pay.SetStatus(codes.Error, "card declined")
	}
	pay.End(end(12))
	call.End(end(13))
	root.End(end(15))
	return root.SpanContext().TraceID().String()
}

// bigTrace makes one trace of n spans in service "bulk": a root, 100
// children, and the others spread below them.
func (p *pusher) bigTrace(n int, base time.Time) string {
	tr := p.tracer("bulk")
	ctx, root := tr.Start(context.Background(), "batch import", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(base))
	made := 1
	const fan = 100
	per := (n - 1 - fan) / fan
	for c := 0; c < fan && made < n; c++ {
		cs := base.Add(time.Duration(c) * 10 * time.Millisecond)
		cctx, child := tr.Start(ctx, fmt.Sprintf("chunk %d", c), trace.WithTimestamp(cs))
		made++
		for g := 0; g < per && made < n; g++ {
			_, gs := tr.Start(cctx, fmt.Sprintf("record %d.%d", c, g), trace.WithTimestamp(cs.Add(time.Duration(g)*50*time.Microsecond)),
				trace.WithAttributes(attribute.Int("record", g)))
			gs.End(trace.WithTimestamp(cs.Add(time.Duration(g)*50*time.Microsecond + 40*time.Microsecond)))
			made++
		}
		child.End(trace.WithTimestamp(cs.Add(9 * time.Millisecond)))
	}
	for ; made < n; made++ {
		_, s := tr.Start(ctx, "tail", trace.WithTimestamp(base.Add(time.Second)))
		s.End(trace.WithTimestamp(base.Add(time.Second + time.Millisecond)))
	}
	root.End(trace.WithTimestamp(base.Add(1100 * time.Millisecond)))
	return root.SpanContext().TraceID().String()
}

// browser is one headless Chromium for all subtests; tab is its page.
type browser struct {
	t      testing.TB
	tab    context.Context
	mu     sync.Mutex
	errors []string // JavaScript exceptions seen
}

func startBrowser(t testing.TB) *browser {
	t.Helper()
	path := chromiumPath(t)
	// Not t.TempDir: Chromium's child processes may still write in the
	// profile for a moment after the browser stops, and a failed removal
	// must not fail the test.
	dir, err := os.MkdirTemp("", "weft-ui-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove Chromium's profile %s", dir)
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 800),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t}
	tab, cancelTab := chromedp.NewContext(alloc, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			b.mu.Lock()
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.errors = append(b.errors, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber))
			b.mu.Unlock()
		}
	}))
	b.tab = tab
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	start := time.Now()
	// The first action starts the browser: it runs on the tab's own
	// context (a shorter-lived child would take the browser down with it).
	stop := time.AfterFunc(30*time.Second, cancelTab)
	err = chromedp.Do(tab, chromedp.EmulateViewport(1280, 800))
	stop.Stop()
	if err != nil {
		t.Fatalf("cannot start Chromium (%s): %v", path, err)
	}
	t.Logf("Chromium started in %s", time.Since(start).Round(time.Millisecond))
	return b
}

func (b *browser) do(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.tab, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// must runs steps and fails the test on an error.
func (b *browser) must(t testing.TB, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := b.do(20*time.Second, steps...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates js (awaiting a promise) into T.
func eval[T any](t testing.TB, b *browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.tab, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitFor polls the JavaScript condition cond until it is true.
func (b *browser) waitFor(t testing.TB, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := eval[bool](t, b, "!!("+cond+")")
		if ok {
			return
		}
		if time.Now().After(deadline) {
			html := eval[string](t, b, `(document.getElementById('error').hidden ? '' : 'error box: ' + document.getElementById('error').textContent + '\n') + location.href + ' find=' + JSON.stringify(document.getElementById('find').value) + ' ' + document.getElementById('find-count').textContent`)
			t.Fatalf("%s: still not true after 15s: %s\n%s", what, cond, html)
		}
		time.Sleep(40 * time.Millisecond)
	}
}

func (b *browser) screenshot(t testing.TB, name string) {
	t.Helper()
	if os.Getenv(screenshotsEnv) != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(b.tab, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join("..", "..", "docs", "images", name)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", out)
}

func (b *browser) noJSErrors(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		t.Fatalf("JavaScript exceptions in the page: %s", strings.Join(b.errors, "; "))
	}
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// TestBrowser drives the explorer in headless Chromium against a
// monolithic weft holding traces pushed with the OpenTelemetry SDK.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	chromiumPath(t) // skip early, before starting weft
	a := startWeft(t, nil)
	base := "http://" + a.HTTPAddr() + "/"

	p := newPusher(t, a, "")
	start := time.Now().Add(-2 * time.Minute).Truncate(time.Millisecond)
	shop := map[string]bool{}
	for i := 0; i < 6; i++ {
		shop[p.shopTrace(i, start.Add(time.Duration(i)*time.Second))] = true // 32 hex digits
	}
	const bigSpans = 10000
	big := p.bigTrace(bigSpans, start.Add(10*time.Second))
	p.flush()
	p.shutdown()

	b := startBrowser(t)
	searchURL := func(q string) string {
		return base + "?" + url.Values{"view": {"search"}, "q": {q}, "range": {"1h"}}.Encode()
	}
	rowIDs := func(t *testing.T) []string {
		return eval[[]string](t, b, `[...document.querySelectorAll('#results tbody tr')].map(r => r.dataset.traceId)`)
	}
	// tableTop is where the results table starts on the search page; no
	// message (error, partial answer) may move it.
	tableTop := func(t *testing.T) float64 {
		return eval[float64](t, b, `document.getElementById('results').getBoundingClientRect().top`)
	}
	var searchTop float64

	t.Run("search", func(t *testing.T) {
		b.must(t, chromedp.Navigate(searchURL(`{ resource.service.name = "backend" }`)))
		b.waitFor(t, "the search ends", `document.querySelector('#results').dataset.state === 'done'`)
		ids := rowIDs(t)
		if len(ids) != len(shop) {
			t.Fatalf("%d rows, want the %d shop traces: %v", len(ids), len(shop), ids)
		}
		for _, id := range ids {
			// The API writes trace IDs without leading zeros, as Tempo.
			if !shop[strings.Repeat("0", 32-len(id))+id] {
				t.Fatalf("row of trace %s, which is not a shop trace", id)
			}
		}
		cells := eval[[]string](t, b, `[...document.querySelector('#results tbody tr').cells].map(c => c.textContent)`)
		if !strings.Contains(cells[1], "frontend") || cells[2] != "GET /checkout" || cells[4] != "15.0 ms" || !strings.HasPrefix(cells[5], "4") {
			t.Fatalf("first row %q: want root service frontend, root name GET /checkout, 15.0 ms, 4 spans", cells)
		}
		// The landing page lists the most recent traces.
		b.must(t, chromedp.Navigate(base))
		b.waitFor(t, "the landing page's search ends", `document.querySelector('#results').dataset.state === 'done'`)
		if n := len(rowIDs(t)); n != len(shop)+1 {
			t.Fatalf("the landing page lists %d traces, want all %d", n, len(shop)+1)
		}
		// Over 24 hours the search runs as three requests, newest slice
		// first, whose rows are added as each answers.
		b.must(t, chromedp.Navigate(base+"?view=search&q=%7B+%7D&range=24h"))
		b.waitFor(t, "the 24-hour search ends", `document.querySelector('#results').dataset.state === 'done'`)
		slices := eval[[]string](t, b, `performance.getEntriesByType('resource').filter(e => e.name.includes('/api/search?')).map(e => { const u = new URL(e.name); return u.searchParams.get('start') + '-' + u.searchParams.get('end') })`)
		if len(slices) != 3 {
			t.Fatalf("a 24-hour search made %d requests (%v), want 3 slices", len(slices), slices)
		}
		if n := len(rowIDs(t)); n != len(shop)+1 {
			t.Fatalf("the 24-hour search lists %d traces, want %d", n, len(shop)+1)
		}
		var s0, e0, s1, e1 int64
		fmt.Sscanf(slices[0], "%d-%d", &s0, &e0)
		fmt.Sscanf(slices[1], "%d-%d", &s1, &e1)
		if e0-s0 != 300 || e1 != s0 {
			t.Fatalf("slices %v: want the last 5 minutes first, then the range before it", slices)
		}
		b.must(t, chromedp.Navigate(searchURL(`{ resource.service.name = "backend" }`)))
		b.waitFor(t, "the search ends", `document.querySelector('#results').dataset.state === 'done'`)
		// Completion of a tag name from the tag names API...
		b.must(t, chromedp.Focus(chromedp.CSS("#q")))
		eval[bool](t, b, `(() => { const q = document.getElementById('q'); q.value = '{ resource.serv'; q.setSelectionRange(q.value.length, q.value.length); q.dispatchEvent(new Event('input')); return true })()`)
		b.waitFor(t, "the completion of a tag name", `document.querySelector('#complete li') && document.querySelector('#complete li').firstChild.textContent === 'resource.service.name'`)
		b.must(t, chromedp.KeyEvent(kb.Tab))
		if v := eval[string](t, b, `document.getElementById('q').value`); v != `{ resource.service.name` {
			t.Fatalf("after accepting the tag name the query is %q", v)
		}
		// ... and of a tag value from the tag values API.
		b.must(t, chromedp.Focus(chromedp.CSS("#q")))
		eval[bool](t, b, `(() => { const q = document.getElementById('q'); q.value = '{ resource.service.name = "le'; q.setSelectionRange(q.value.length, q.value.length); q.dispatchEvent(new Event('input')); return true })()`)
		b.waitFor(t, "the completion of a service name", `[...document.querySelectorAll('#complete li')].some(li => li.textContent.startsWith('ledger'))`)
		b.must(t, chromedp.KeyEvent("\r"))
		if v := eval[string](t, b, `document.getElementById('q').value`); v != `{ resource.service.name = "ledger"` {
			t.Fatalf("after accepting the completion the query is %q", v)
		}
		// Enter runs the search; the URL holds the query, and a reload
		// (or the link shared) shows the same rows.
		b.must(t, chromedp.SendKeys(chromedp.CSS("#q"), " }"), chromedp.KeyEvent(kb.Enter))
		b.waitFor(t, "the typed search ends", `location.search.includes('ledger') && document.querySelector('#results').dataset.state === 'done'`)
		typed := rowIDs(t)
		if len(typed) != len(shop) {
			t.Fatalf("the typed search found %d traces, want %d", len(typed), len(shop))
		}
		b.must(t, chromedp.Reload())
		b.waitFor(t, "the reloaded search ends", `document.querySelector('#results').dataset.state === 'done'`)
		if again := rowIDs(t); strings.Join(again, ",") != strings.Join(typed, ",") || eval[string](t, b, `document.getElementById('q').value`) != `{ resource.service.name = "ledger" }` {
			t.Fatalf("after a reload: rows %v (were %v), query %q", again, typed, eval[string](t, b, `document.getElementById('q').value`))
		}
		b.must(t, chromedp.Navigate(searchURL(`{ resource.service.name = "backend" }`)))
		b.waitFor(t, "the search ends", `document.querySelector('#results').dataset.state === 'done'`)
		load := eval[map[string]float64](t, b, `(() => {
			const nav = performance.getEntriesByType('navigation')[0];
			const done = performance.getEntriesByName('weft-search-done')[0];
			return { dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, done: done ? done.startTime : -1 };
		})()`)
		t.Logf("search page, from navigation start: DOM content loaded %.0f ms, load event %.0f ms, results shown %.0f ms", load["dcl"], load["load"], load["done"])
		if load["done"] < 0 || load["done"] > 5000 {
			t.Fatalf("the search page showed its results at %.0f ms", load["done"])
		}
		searchTop = tableTop(t)
		b.screenshot(t, "ui-search.png")
		b.noJSErrors(t)
	})

	var declined string
	t.Run("trace", func(t *testing.T) {
		// The first row is the most recent trace, i = 5: declined.
		first := rowIDs(t)[0]
		b.must(t, chromedp.Click(chromedp.CSS(`#results tbody tr:first-child a`)))
		b.waitFor(t, "the trace is shown", `document.body.dataset.traceState === 'ready'`)
		if n := eval[string](t, b, `document.getElementById('trace-span-count').dataset.count`); n != "4" {
			t.Fatalf("span count %s, want 4", n)
		}
		// Nesting: each span one level below its parent.
		rows := eval[[]string](t, b, `[...document.querySelectorAll('#rows .row')].map(r => r.querySelector('.sname').textContent + ' ' + r.querySelector('.nm').textContent + ' @' + r.getAttribute('aria-level'))`)
		want := []string{"frontend GET /checkout @1", "frontend POST /pay @2", "backend POST /pay @3", "ledger INSERT entry @4"}
		if strings.Join(rows, "|") != strings.Join(want, "|") {
			t.Fatalf("rows %q, want %q", rows, want)
		}
		// The declined payment is marked as an error; the chain to the
		// ledger is the critical path.
		marks := eval[[]string](t, b, `[...document.querySelectorAll('#rows .row')].map(r => (r.classList.contains('is-error') ? 'E' : '-') + (r.classList.contains('is-critical') ? 'C' : '-'))`)
		if strings.Join(marks, "") != "-C-CEC-C" {
			t.Fatalf("error/critical marks %q, want [-C -C EC -C]", marks)
		}
		// Each service of the trace has its own colour, far apart in hue.
		bars := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#rows .row')].map(r => [r.querySelector('.sname').textContent, getComputedStyle(r.querySelector('.bar')).backgroundColor]))`)
		distinctHues(t, "the trace's bars", bars, 3, 80)
		// One span's attributes, by scope, in the details.
		b.must(t, chromedp.Click(chromedp.CSS(`#rows .row[aria-level="3"]`)))
		b.waitFor(t, "the details of POST /pay", `document.querySelector('#details [data-section="span-attributes"] tr[data-key="payment.method"]')`)
		attrs := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#details [data-section="span-attributes"] tr')].map(r => [r.dataset.key, r.cells[1].textContent]))`)
		if attrs["payment.method"] != "card" || attrs["payment.amount"] != "45" {
			t.Fatalf("span attributes %v, want payment.method card, payment.amount 45", attrs)
		}
		res := eval[string](t, b, `document.querySelector('#details [data-section="resource-attributes"] tr[data-key="service.name"] td:last-child').textContent`)
		status := eval[string](t, b, `document.querySelector('#details [data-section="span"] tr[data-key="Status"] td:last-child').textContent`)
		if res != "backend" || status != "error: card declined" {
			t.Fatalf("resource service.name %q, status %q", res, status)
		}
		declined = first
		// Keyboard: Left on the root folds the trace, Right unfolds it.
		b.must(t, chromedp.Focus(chromedp.CSS("#waterfall")), chromedp.KeyEvent(kb.Home), chromedp.KeyEvent(kb.ArrowLeft))
		if n := eval[int](t, b, `document.querySelectorAll('#rows .row').length`); n != 1 {
			t.Fatalf("%d rows after folding the root, want 1", n)
		}
		b.must(t, chromedp.KeyEvent(kb.ArrowRight))
		if n := eval[int](t, b, `document.querySelectorAll('#rows .row').length`); n != 4 {
			t.Fatalf("%d rows after unfolding the root, want 4", n)
		}
		b.must(t, chromedp.Click(chromedp.CSS(`#rows .row[aria-level="3"]`)))
		// Keyboard: Down moves to the ledger span.
		b.must(t, chromedp.Focus(chromedp.CSS("#waterfall")), chromedp.KeyEvent(kbDown))
		if n := eval[string](t, b, `document.getElementById('details-title').textContent`); n != "INSERT entry" {
			t.Fatalf("after the Down key the details show %q, want INSERT entry", n)
		}
		// The download holds the trace as OTLP JSON.
		dl := eval[string](t, b, `fetch(document.getElementById('download').href).then(r => r.text())`)
		if !strings.Contains(dl, `"resourceSpans"`) || !strings.Contains(dl, `"card declined"`) {
			t.Fatalf("the download is not the trace's OTLP JSON: %.200s", dl)
		}
		b.must(t, chromedp.Click(chromedp.CSS(`#rows .row[aria-level="3"]`)))
		b.screenshot(t, "ui-trace.png")
		b.noJSErrors(t)
	})

	t.Run("find in trace", func(t *testing.T) {
		if declined == "" {
			t.Skip("the trace subtest failed")
		}
		b.must(t, chromedp.Navigate(base+"?view=trace&id="+declined))
		b.waitFor(t, "the trace is shown", `document.body.dataset.traceState === 'ready'`)
		b.must(t, chromedp.SendKeys(chromedp.CSS("#find"), "ledger"), chromedp.KeyEvent("\r"))
		b.waitFor(t, "the find box counts", `document.getElementById('find-count').dataset.count === '1'`)
		hits := eval[[]string](t, b, `[...document.querySelectorAll('#rows .row.hit .nm')].map(e => e.textContent)`)
		sel := eval[string](t, b, `document.querySelector('#rows .row.sel .nm').textContent`)
		if strings.Join(hits, ",") != "INSERT entry" || sel != "INSERT entry" {
			t.Fatalf("find 'ledger': highlighted %q, selected %q; want INSERT entry", hits, sel)
		}
		// An attribute value finds its span too.
		b.must(t, chromedp.Focus(chromedp.CSS("#find")), chromedp.KeyEvent(kb.Escape), chromedp.SendKeys(chromedp.CSS("#find"), "payment.method=card"), chromedp.KeyEvent("\r"))
		b.waitFor(t, "the find box counts", `document.querySelector('#rows .row.sel .nm').textContent === 'POST /pay' && document.querySelector('#rows .row.sel').getAttribute('aria-level') === '3'`)
		b.noJSErrors(t)
	})

	t.Run("service map", func(t *testing.T) {
		b.must(t, chromedp.Navigate(base+"?view=map&range=1h"))
		b.waitFor(t, "the map is drawn", `document.getElementById('map').dataset.state === 'done'`)
		edges := eval[[]string](t, b, `[...document.querySelectorAll('#map a.edge')].map(e => e.dataset.from + '>' + e.dataset.to).sort()`)
		if strings.Join(edges, ",") != "backend>ledger,frontend>backend" {
			t.Fatalf("edges %q, want backend>ledger and frontend>backend", edges)
		}
		red := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#red tbody tr')].map(r => [r.dataset.service, r.cells[2].textContent]))`)
		if red["backend"] != "50.0%" || red["ledger"] != "0.0%" {
			t.Fatalf("error rates %v, want backend 50.0%%, ledger 0.0%%", red)
		}
		// The services of the map, bulk and frontend among them, differ.
		fills := eval[map[string]string](t, b, `Object.fromEntries([...document.querySelectorAll('#map a.node')].map(a => [a.dataset.service, a.querySelectorAll('rect')[1].getAttribute('fill')]))`)
		distinctHues(t, "the map's services", fills, 4, 80)
		b.screenshot(t, "ui-map.png")
		// Following the edge frontend → backend searches its calls.
		b.must(t, chromedp.Click(chromedp.CSS(`#map a.edge[data-from="frontend"] text`)))
		b.waitFor(t, "the edge's search ends", `!document.getElementById('view-search').hidden && document.querySelector('#results').dataset.state === 'done'`)
		q := eval[string](t, b, `document.getElementById('q').value`)
		if q != `{ resource.service.name = "frontend" } > { resource.service.name = "backend" }` {
			t.Fatalf("the edge opened the search %q", q)
		}
		if ids := rowIDs(t); len(ids) != len(shop) {
			t.Fatalf("the edge's search found %d traces, want %d", len(ids), len(shop))
		}
		// And a service node searches its spans.
		b.must(t, chromedp.NavigateBack())
		b.waitFor(t, "the map is drawn", `!document.getElementById('view-map').hidden && document.getElementById('map').dataset.state === 'done'`)
		b.must(t, chromedp.Click(chromedp.CSS(`#map a.node[data-service="ledger"] rect`)))
		b.waitFor(t, "the node's search ends", `!document.getElementById('view-search').hidden && document.querySelector('#results').dataset.state === 'done'`)
		if q := eval[string](t, b, `document.getElementById('q').value`); q != `{ resource.service.name = "ledger" }` {
			t.Fatalf("the node opened the search %q", q)
		}
		// A custom range from a link: the map is of it, its links keep it,
		// and so does the link to the search page.
		b.must(t, chromedp.Navigate(base+"?view=map&from=now-10m&to=now"))
		b.waitFor(t, "the map of the last 10 minutes", `document.getElementById('map').dataset.state === 'done'`)
		links := eval[[]string](t, b, `[document.querySelector('#map a.node[data-service="ledger"]').getAttribute('href'), document.getElementById('nav-search').getAttribute('href'), document.getElementById('map-range').value, String(document.querySelectorAll('#map a.edge').length)]`)
		if !strings.Contains(links[0], "from=now-10m&to=now") || !strings.Contains(links[1], "from=now-10m&to=now") || links[2] != "custom" || links[3] != "2" {
			t.Fatalf("the map of a custom range: node link %s, search link %s, range %s, %s edges", links[0], links[1], links[2], links[3])
		}
		b.must(t, chromedp.Navigate(base+"?view=map&from=now&to=now-10m"))
		b.waitFor(t, "the bad range is shown", `document.getElementById('map').dataset.state === 'error' && document.querySelector('#error .msg').textContent.includes('before it starts')`)
		b.noJSErrors(t)
	})

	t.Run("bad query", func(t *testing.T) {
		const bad = `{ foo = }`
		resp, err := http.Get(base + "api/search?" + url.Values{"q": {bad}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("the API answered %d to a bad query", resp.StatusCode)
		}
		b.must(t, chromedp.Navigate(searchURL(bad)))
		b.waitFor(t, "the error is shown", `!document.getElementById('error').hidden`)
		msg := eval[string](t, b, `document.querySelector('#error .msg').textContent`)
		if msg != strings.TrimSpace(string(body)) {
			t.Fatalf("the page shows %q, the API said %q", msg, body)
		}
		if code := eval[string](t, b, `document.getElementById('error').dataset.status`); code != "400" {
			t.Fatalf("the error box shows status %s", code)
		}
		// The message floats: the results table is where it always is.
		if top := tableTop(t); searchTop == 0 || top != searchTop {
			t.Fatalf("with the error shown the results table starts at %.1f px, without at %.1f px", top, searchTop)
		}
		// A trace that is not there: v2 answers 200 without spans (as
		// Tempo); the page says so.
		const missing = "00000000000000000000000000000bad"
		b.must(t, chromedp.Navigate(base+"?view=trace&id="+missing))
		b.waitFor(t, "the trace's absence is shown", `document.body.dataset.traceState === 'empty' && !document.getElementById('error').hidden`)
		if msg := eval[string](t, b, `document.querySelector('#error .msg').textContent`); !strings.Contains(msg, "Trace "+missing+" was not found") {
			t.Fatalf("missing trace: the page shows %q", msg)
		}
		// An ID that is not one is refused before asking.
		b.must(t, chromedp.Navigate(base+"?view=trace&id=xyz"))
		b.waitFor(t, "the bad ID is refused", `document.body.dataset.traceState === 'error' && document.querySelector('#error .msg').textContent.includes('is not a trace ID')`)
		b.noJSErrors(t)
	})

	t.Run("time range", func(t *testing.T) {
		searches := func(t *testing.T) []string {
			return eval[[]string](t, b, `performance.getEntriesByType('resource').filter(e => e.name.includes('/api/search?')).map(e => { const u = new URL(e.name); return u.searchParams.get('start') + '-' + u.searchParams.get('end') })`)
		}
		// A custom range in the URL, as typed: searched as such, and the
		// form shows it.
		now := time.Now().Unix()
		b.must(t, chromedp.Navigate(base+"?"+url.Values{"view": {"search"}, "q": {"{ }"}, "from": {"now-2h"}, "to": {"now-90m"}}.Encode()))
		b.waitFor(t, "the search ends", `document.querySelector('#results').dataset.state === 'done'`)
		got := searches(t)
		// (in slices, the newest first: the first ends it, the last starts it)
		var s, e, x int64
		if len(got) == 0 {
			t.Fatal("no search request for the range now-2h to now-90m")
		}
		fmt.Sscanf(got[0], "%d-%d", &x, &e)
		fmt.Sscanf(got[len(got)-1], "%d-%d", &s, &x)
		if abs(s-(now-7200)) > 10 || abs(e-(now-5400)) > 10 || len(rowIDs(t)) != 0 {
			t.Fatalf("the range now-2h to now-90m was searched as %v (now %d), with %d rows", got, now, len(rowIDs(t)))
		}
		form := eval[[]string](t, b, `['range', 'from', 'to'].map(id => document.getElementById(id).value)`)
		if strings.Join(form, ",") != "custom,now-2h,now-90m" {
			t.Fatalf("the form shows the range %q", form)
		}
		// Typed into From and To: the URL keeps them, the traces are found.
		setRange := func(from, to string) {
			eval[bool](t, b, `(() => { document.getElementById('from').value = ''; document.getElementById('to').value = ''; return true })()`)
			b.must(t, chromedp.SendKeys(chromedp.CSS("#from"), from), chromedp.SendKeys(chromedp.CSS("#to"), to))
		}
		setRange("now-10m", "now")
		b.must(t, chromedp.Click(chromedp.CSS("#search-go")))
		b.waitFor(t, "the typed range's search ends", `location.search.includes('from=now-10m') && location.search.includes('to=now') && document.querySelector('#results').dataset.state === 'done'`)
		if n := len(rowIDs(t)); n != len(shop)+1 {
			t.Fatalf("the last 10 minutes list %d traces, want %d", n, len(shop)+1)
		}
		top := tableTop(t)
		// A range that ends before it starts is shown as an error, and not
		// sent: no request, the URL unchanged, the table where it was.
		before, loc := len(searches(t)), eval[string](t, b, `location.search`)
		setRange("now", "now-1h")
		b.must(t, chromedp.Click(chromedp.CSS("#search-go")))
		b.waitFor(t, "the bad range is shown", `!document.getElementById('error').hidden`)
		time.Sleep(200 * time.Millisecond)
		msg := eval[string](t, b, `document.querySelector('#error .msg').textContent`)
		if !strings.Contains(msg, "before it starts") || !strings.Contains(msg, "To must be later than From") {
			t.Fatalf("the bad range shows %q", msg)
		}
		if n := len(searches(t)); n != before || eval[string](t, b, `location.search`) != loc {
			t.Fatalf("the bad range was sent: %d search requests (were %d), URL %s", n, before, eval[string](t, b, `location.search`))
		}
		if inv := eval[string](t, b, `['from', 'to'].map(id => document.getElementById(id).getAttribute('aria-invalid')).join(',')`); inv != "true,true" {
			t.Fatalf("From and To are not marked invalid: %s", inv)
		}
		if now := tableTop(t); now != top || top != searchTop {
			t.Fatalf("the error moved the results table: top %.1f px, was %.1f px (search page: %.1f px)", now, top, searchTop)
		}
		// Escape (outside the boxes of the form) hides the message.
		b.must(t, chromedp.Focus(chromedp.CSS("#search-go")), chromedp.KeyEvent(kb.Escape))
		if !eval[bool](t, b, `document.getElementById('error').hidden`) {
			t.Fatal("Escape did not hide the error")
		}
		// Nor is a bad range from a link.
		b.must(t, chromedp.Navigate(base+"?view=search&q=%7B+%7D&from=now&to=yesterday"))
		b.waitFor(t, "the bad link's range is shown", `!document.getElementById('error').hidden && document.querySelector('#results').dataset.state === 'error'`)
		if msg := eval[string](t, b, `document.querySelector('#error .msg').textContent`); !strings.Contains(msg, `"yesterday" is not a time`) {
			t.Fatalf("the bad link's range shows %q", msg)
		}
		if n := len(searches(t)); n != 0 {
			t.Fatalf("the bad link's range was sent (%d requests)", n)
		}
		// What From and To read: relative, local date and time (as a
		// datetime-local input writes it), unix seconds; and what they refuse.
		parsed := eval[[]string](t, b, `import(new URL('ui/api.js', location.href).href).then(m => {
			const now = 1765100000, out = [];
			for (const s of ['now', 'now-2h', 'now - 30m', 'now-1d', '2026-12-07 14:30', '2026-12-07T14:30:15', '2026-12-07', '1765000000', '2026-13-01', 'yesterday', 'now+1h', '']) {
				try { out.push(s + '=' + (m.parseWhen(s, now) - now)); } catch (e) { out.push(s + '!' + e.message.slice(0, 12)); }
			}
			out.push('local=' + (new Date(2026, 11, 7, 14, 30).getTime() / 1000 - now));
			return out;
		})`)
		local := parsed[len(parsed)-1][len("local="):]
		var l int64
		fmt.Sscanf(local, "%d", &l)
		want := []string{"now=0", "now-2h=-7200", "now - 30m=-1800", "now-1d=-86400",
			"2026-12-07 14:30=" + local, "2026-12-07T14:30:15=" + fmt.Sprint(l+15), "2026-12-07=" + fmt.Sprint(l-14*3600-30*60), "1765000000=-100000",
			`2026-13-01!"2026-13-01"`, `yesterday!"yesterday" `, `now+1h!"now+1h" is `, "!is empty"}
		if strings.Join(parsed[:len(parsed)-1], "|") != strings.Join(want, "|") {
			t.Fatalf("parseWhen:\n got %q\nwant %q", parsed[:len(parsed)-1], want)
		}
		b.noJSErrors(t)
	})

	t.Run("colours", func(t *testing.T) {
		// The palette: at least 12 hues, far apart, each under white text
		// at a contrast of 4.5:1 or more; the first 14 services of a view
		// all get their own.
		got := eval[map[string][]string](t, b, `import(new URL('ui/api.js', location.href).href).then(m => {
			const c = new m.Colours();
			const names = ['bulk', 'frontend', 'backend', 'ledger', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
			return { palette: m.palette, assigned: names.map(n => c.get(n)), again: [c.get('bulk'), c.get('j')] };
		})`)
		pal := got["palette"]
		if len(pal) < 12 {
			t.Fatalf("a palette of %d colours, want at least 12", len(pal))
		}
		m := map[string]string{}
		for i, c := range pal {
			if cr := contrastWithWhite(c); cr < 4.5 {
				t.Errorf("palette colour %s: contrast with white %.2f, want >= 4.5", c, cr)
			}
			m[fmt.Sprint(i)] = c
		}
		distinctHues(t, "the palette", m, len(pal), 18)
		a := map[string]string{}
		for i, c := range got["assigned"] {
			a[fmt.Sprint(i)] = c
		}
		distinctHues(t, "14 services", a, 14, 18)
		if got["again"][0] != got["assigned"][0] || got["again"][1] != got["assigned"][13] {
			t.Fatalf("a service's colour changed: %v then %v", got["assigned"], got["again"])
		}
	})

	t.Run("tenant", func(t *testing.T) {
		mt := startWeft(t, func(c *config.Config) { c.MultitenancyEnabled = true })
		mbase := "http://" + mt.HTTPAddr() + "/"
		mp := newPusher(t, mt, "acme")
		id := mp.shopTrace(0, time.Now().Add(-time.Minute))
		mp.flush()
		mp.shutdown()
		// Without a tenant the API refuses, and the page says what it said.
		resp, err := http.Get(mbase + "api/search?q=%7B%7D")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.must(t, chromedp.Navigate(mbase+"?view=search&q=%7B+%7D&range=1h"))
		b.waitFor(t, "the tenant selector", `!document.getElementById('tenant-box').hidden`)
		b.waitFor(t, "the API's refusal", `!document.getElementById('error').hidden`)
		if msg := eval[string](t, b, `document.querySelector('#error .msg').textContent`); msg != strings.TrimSpace(string(body)) {
			t.Fatalf("without a tenant the page shows %q, the API said %d %q", msg, resp.StatusCode, body)
		}
		// Choosing the tenant sends X-Scope-OrgID: its trace is found.
		b.must(t, chromedp.SendKeys(chromedp.CSS("#tenant"), "acme"), chromedp.KeyEvent(kb.Enter))
		b.must(t, chromedp.Focus(chromedp.CSS("#q"))) // the change event fires on leaving the box
		b.waitFor(t, "the tenant's search ends", `document.querySelector('#results').dataset.state === 'done' && document.getElementById('error').hidden`)
		if ids := rowIDs(t); len(ids) != 1 || strings.Repeat("0", 32-len(ids[0]))+ids[0] != id {
			t.Fatalf("tenant acme: rows %v, want its trace %s", ids, id)
		}
		if loc := eval[string](t, b, `location.search`); !strings.Contains(loc, "tenant=acme") {
			t.Fatalf("the URL %s does not hold the tenant", loc)
		}
		// The trace link keeps the tenant.
		b.must(t, chromedp.Click(chromedp.CSS(`#results tbody tr:first-child a`)))
		b.waitFor(t, "the tenant's trace", `document.body.dataset.traceState === 'ready'`)
		b.noJSErrors(t)
	})

	t.Run("partial answer", func(t *testing.T) {
		// Blocks that cannot be read are hard to come by on purpose: a
		// stand-in API answers a search as weft does then (query/api,
		// partial.go), and the page must show the message as worded.
		const msg = "block 0b6c4bd2 of tenant single-tenant could not be read (damaged): data.parquet: unexpected EOF"
		stub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/search" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Add("Warning", `299 weft "`+msg+`"`)
			fmt.Fprintf(w, `{"traces":[{"traceID":"1","rootServiceName":"svc","rootTraceName":"op","startTimeUnixNano":"%d","durationMs":3,"serviceStats":{"svc":{"spanCount":2}}}],"metrics":{},"status":"PARTIAL","message":%q}`,
				time.Now().UnixNano(), msg)
		})
		h, err := ui.Handler(ui.Options{API: stub})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h)
		defer srv.Close()
		b.must(t, chromedp.Navigate(srv.URL+"/?q=%7B+%7D&range=5m"))
		b.waitFor(t, "the search ends", `document.querySelector('#results').dataset.state === 'done'`)
		shown := eval[[]string](t, b, `document.getElementById('warning').hidden ? [] : [...document.querySelectorAll('#warning .msg')].map(p => p.textContent)`)
		if len(shown) != 1 || shown[0] != msg {
			t.Fatalf("the page shows the warnings %q, want once %q", shown, msg)
		}
		if n := len(rowIDs(t)); n != 1 {
			t.Fatalf("%d rows of the partial answer, want 1", n)
		}
		if top := tableTop(t); searchTop == 0 || top != searchTop {
			t.Fatalf("with the warning shown the results table starts at %.1f px, without at %.1f px", top, searchTop)
		}
		b.noJSErrors(t)
	})

	t.Run("big trace", func(t *testing.T) {
		b.must(t, chromedp.Navigate(base+"?view=trace&id="+big))
		b.waitFor(t, "the big trace is shown", `document.body.dataset.traceState === 'ready'`)
		if n := eval[string](t, b, `document.getElementById('trace-span-count').dataset.count`); n != fmt.Sprint(bigSpans) {
			t.Fatalf("span count %s, want %d", n, bigSpans)
		}
		inDOM := eval[int](t, b, `document.querySelectorAll('#rows .row').length`)
		if inDOM > 200 {
			t.Fatalf("%d rows in the DOM for %d spans: the waterfall is not virtualised", inDOM, bigSpans)
		}
		// Scroll to the bottom: the last span's row must be there on the
		// next frames.
		scrolled := eval[float64](t, b, `new Promise(res => {
			const vp = document.getElementById('rows-viewport');
			vp.scrollTop = vp.scrollHeight;
			requestAnimationFrame(() => requestAnimationFrame(() => res(performance.now())));
		})`)
		last := eval[string](t, b, `(() => { const r = [...document.querySelectorAll('#rows .row')].pop(); return r.querySelector('.nm').textContent })()`)
		if !strings.HasPrefix(last, "record 99.") && last != "tail" {
			t.Fatalf("after scrolling to the bottom the last row is %q", last)
		}
		m := eval[map[string]float64](t, b, `(() => {
			const m = (n) => (performance.getEntriesByName(n)[0] || {startTime: -1}).startTime;
			const fcp = (performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint') || {startTime: -1}).startTime;
			return { fcp, fetched: m('weft-trace-fetched'), rows: m('weft-trace-rows'), painted: m('weft-trace-painted') };
		})()`)
		t.Logf("10,000-span trace, from navigation start: first contentful paint %.0f ms; trace fetched %.0f ms; rows in the DOM %.0f ms; rows painted %.0f ms; scrolled to the last span %.0f ms (%d rows in the DOM)",
			m["fcp"], m["fetched"], m["rows"], m["painted"], scrolled, inDOM)
		if m["painted"] < 0 {
			t.Fatal("the page did not mark weft-trace-painted")
		}
		b.noJSErrors(t)
	})
}

const kbDown = kb.ArrowDown

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// rgbOf reads a CSS colour written #rrggbb or rgb(r, g, b).
func rgbOf(t testing.TB, c string) (r, g, b float64) {
	t.Helper()
	var ri, gi, bi int
	if _, err := fmt.Sscanf(c, "#%02x%02x%02x", &ri, &gi, &bi); err != nil {
		if _, err := fmt.Sscanf(c, "rgb(%d, %d, %d)", &ri, &gi, &bi); err != nil {
			t.Fatalf("cannot read the colour %q", c)
		}
	}
	return float64(ri) / 255, float64(gi) / 255, float64(bi) / 255
}

// hueOf is the colour's hue in degrees (HSL).
func hueOf(t testing.TB, c string) float64 {
	r, g, b := rgbOf(t, c)
	mx, mn := max(r, g, b), min(r, g, b)
	d := mx - mn
	if d == 0 {
		return 0
	}
	var h float64
	switch mx {
	case r:
		h = (g - b) / d
		if h < 0 {
			h += 6
		}
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	return h * 60
}

// contrastWithWhite is WCAG's contrast ratio of white text on c.
func contrastWithWhite(c string) float64 {
	lin := func(x float64) float64 {
		if x <= 0.03928 {
			return x / 12.92
		}
		return math.Pow((x+0.055)/1.055, 2.4)
	}
	var ri, gi, bi int
	fmt.Sscanf(c, "#%02x%02x%02x", &ri, &gi, &bi)
	l := 0.2126*lin(float64(ri)/255) + 0.7152*lin(float64(gi)/255) + 0.0722*lin(float64(bi)/255)
	return 1.05 / (l + 0.05)
}

// distinctHues fails unless the n colours (by name) are at least minDeg
// degrees of hue apart from one another: told apart at a glance.
func distinctHues(t testing.TB, what string, colours map[string]string, n int, minDeg float64) {
	t.Helper()
	if len(colours) != n {
		t.Fatalf("%s: %d colours %v, want %d", what, len(colours), colours, n)
	}
	names := make([]string, 0, n)
	for k := range colours {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, a := range names {
		for _, b := range names[i+1:] {
			d := math.Abs(hueOf(t, colours[a]) - hueOf(t, colours[b]))
			if d > 180 {
				d = 360 - d
			}
			if d < minDeg {
				t.Fatalf("%s: %s (%s) and %s (%s) are %.0f° of hue apart, want at least %.0f°: %v", what, a, colours[a], b, colours[b], d, minDeg, colours)
			}
		}
	}
}

// TestWiring checks how cmd/weft serves the explorer: under
// ui.path_prefix beside the API, and not at all with ui.enabled false.
func TestWiring(t *testing.T) {
	get := func(t *testing.T, a *app.App, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + a.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	t.Run("prefix", func(t *testing.T) {
		a := startWeft(t, func(c *config.Config) { c.UI.PathPrefix = "/explore/" })
		if code, body := get(t, a, "/explore/"); code != 200 || !strings.Contains(body, "<title>weft</title>") {
			t.Fatalf("GET /explore/: %d", code)
		}
		if code, _ := get(t, a, "/explore/ui/app.js"); code != 200 {
			t.Fatalf("GET /explore/ui/app.js: %d", code)
		}
		if code, _ := get(t, a, "/"); code != 404 {
			t.Fatalf("GET / with the UI under /explore/: %d, want the API's 404", code)
		}
		if code, body := get(t, a, "/api/echo"); code != 200 || body != "echo\n" {
			t.Fatalf("GET /api/echo: %d %q", code, body)
		}
		if code, body := get(t, a, "/ready"); code != 200 || !strings.Contains(body, "ready") {
			t.Fatalf("GET /ready: %d %q", code, body)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		a := startWeft(t, func(c *config.Config) { c.UI.Enabled = false })
		for _, p := range []string{"/", "/ui/app.js"} {
			if code, body := get(t, a, p); code != 404 || strings.Contains(body, "<title>weft</title>") {
				t.Fatalf("GET %s with ui.enabled false: %d", p, code)
			}
		}
	})
	t.Run("load", func(t *testing.T) {
		c, _, err := config.Load("weft.yaml", []byte("ui:\n  path_prefix: /explore\n"), false)
		if err != nil || c.UI.PathPrefix != "/explore" || !c.UI.Enabled {
			t.Fatalf("ui block: %+v, %v", c.UI, err)
		}
		_, _, err = config.Load("weft.yaml", []byte("ui:\n  path_prefix: /status/ui\n"), false)
		if err == nil || !strings.Contains(err.Error(), "ui.path_prefix") {
			t.Fatalf("ui.path_prefix /status/ui: %v", err)
		}
	})
	t.Run("validate", func(t *testing.T) {
		c := config.Default()
		c.UI.PathPrefix = "/api/ui"
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "ui.path_prefix: ") || !strings.Contains(err.Error(), "under /api/") {
			t.Fatalf("ui.path_prefix /api/ui: %v, want an error naming the key", err)
		}
	})
}

// BenchmarkTraceView opens a trace of 10,000 spans in headless Chromium, a
// fresh page load each time, and reports from the navigation's start: when
// the trace's JSON was in, when its rows were painted, and when a scroll to
// the bottom showed the last span.
//
//	go test -run XXX -bench TraceView -benchtime 10x ./query/ui/
func BenchmarkTraceView(bm *testing.B) {
	chromiumPath(bm)
	a := startWeft(bm, nil)
	p := newPusher(bm, a, "")
	id := p.bigTrace(10000, time.Now().Add(-time.Minute))
	p.flush()
	p.shutdown()
	b := startBrowser(bm)
	page := "http://" + a.HTTPAddr() + "/?view=trace&id=" + id
	var fetched, painted, scrolled float64
	n := 0
	for bm.Loop() {
		b.must(bm, chromedp.Navigate(page))
		b.waitFor(bm, "the trace is shown", `document.body.dataset.traceState === 'ready' && performance.getEntriesByName('weft-trace-painted').length > 0`)
		m := eval[map[string]float64](bm, b, `({ fetched: performance.getEntriesByName('weft-trace-fetched')[0].startTime, painted: performance.getEntriesByName('weft-trace-painted')[0].startTime })`)
		s := eval[float64](bm, b, `new Promise(res => {
			const vp = document.getElementById('rows-viewport');
			vp.scrollTop = vp.scrollHeight;
			requestAnimationFrame(() => requestAnimationFrame(() => res(performance.now())));
		})`)
		fetched += m["fetched"]
		painted += m["painted"]
		scrolled += s
		n++
	}
	bm.ReportMetric(fetched/float64(n), "ms-fetched/op")
	bm.ReportMetric(painted/float64(n), "ms-painted/op")
	bm.ReportMetric(scrolled/float64(n), "ms-scrolled/op")
}
