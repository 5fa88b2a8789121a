package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftdb/weft/internal/testlong"
)

// TestMicroservicesLong (make test-long) pushes 100k+ spans with the
// OpenTelemetry SDK into the microservices layout (broker, distributor,
// two live-stores, block-builder, querier, query-frontend, each a process),
// kills -9 one live-store and the block-builder in the middle, restarts
// them, and checks that every trace is found by ID and by search, and that
// no span is in two blocks. It logs the ingest rate through Kafka and the
// time from an acknowledged push to the trace being searchable.
func TestMicroservicesLong(t *testing.T) {
	testlong.Skip(t)
	broker := startDevKafka(t)
	data := t.TempDir()
	type comp struct {
		p    *proc
		ps   ports
		cfg  string
		tgt  string
		name string
	}
	var seed string
	start := func(name, target string) *comp {
		ps := newPorts(t)
		ml, mlAddr := memberlistConfig(t, seed)
		if seed == "" {
			seed = mlAddr
		}
		// The test pushes 12,500 traces within seconds: more than the
		// default 10,000 live traces of a tenant.
		cfg := writeFile(t, name+".yaml", kafkaConfig(ps, data, broker)+ml+noLiveTraceLimit)
		c := &comp{p: startWeft(t, nil, "-config.file="+cfg, "-target="+target), ps: ps, cfg: cfg, tgt: target, name: name}
		c.p.waitReady(t, loopback(ps.http))
		return c
	}
	restart := func(c *comp) {
		if err := c.p.cmd.Process.Kill(); err != nil { // kill -9
			t.Fatal(err)
		}
		<-c.p.done
		c.p = startWeft(t, nil, "-config.file="+c.cfg, "-target="+c.tgt)
		c.p.waitReady(t, loopback(c.ps.http))
	}
	start("querier", "querier")
	front := start("query-frontend", "query-frontend")
	dist := start("distributor", "distributor")
	live1 := start("live-1", "live-store")
	live2 := start("live-2", "live-store")
	bb := start("block-builder", "block-builder")

	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(loopback(dist.ps.otlpHTTP)), otlptracehttp.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes("", attribute.String("service.name", "load"))),
		sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(2048), sdktrace.WithMaxQueueSize(1<<16), sdktrace.WithBatchTimeout(100*time.Millisecond)),
	)
	tracer := tp.Tracer("weft.long")
	const traces, spansPer = 12500, 8 // 100,000 spans
	var ids []trace.TraceID
	send := func(i int) {
		ctx, root := tracer.Start(ctx, "root", trace.WithAttributes(attribute.Int("i", i)))
		for j := 1; j < spansPer; j++ {
			_, sp := tracer.Start(ctx, fmt.Sprintf("child-%d", j), trace.WithAttributes(attribute.String("shard", fmt.Sprint(i%7))))
			sp.End()
		}
		root.End()
		ids = append(ids, root.SpanContext().TraceID())
	}
	flushCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// Phase 1, no faults, as fast as the SDK sends: the ingest rate.
	begin := time.Now()
	for i := range traces / 2 {
		send(i)
	}
	if err := tp.ForceFlush(flushCtx); err != nil {
		t.Fatalf("export: %v", err)
	}
	took := time.Since(begin)
	t.Logf("ingest: %d spans acknowledged through Kafka in %s: %.0f spans/s (OTel SDK over OTLP/HTTP, batches of up to 2048 spans; 2 cores shared by the test and 8 processes)",
		traces/2*spansPer, took.Round(time.Millisecond), float64(traces/2*spansPer)/took.Seconds())

	// Phase 2, paced over a few seconds, with kill -9 of a live-store and
	// then of the block-builder in the middle of it.
	for i := traces / 2; i < traces; i++ {
		send(i)
		if i%250 == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		switch i {
		case traces/2 + traces/6:
			restart(live1)
		case traces/2 + traces/3:
			restart(bb)
		}
	}
	if err := tp.Shutdown(flushCtx); err != nil {
		t.Fatalf("export: %v", err)
	}

	api := loopback(front.ps.http)
	allFound := func(phase string) {
		t.Helper()
		waitUntil(t, 2*time.Minute, func() bool {
			for _, id := range ids {
				if n, _ := traceSpans(t, api, [16]byte(id)); n != spansPer {
					return false
				}
			}
			return true
		})
		q := url.QueryEscape(`{ resource.service.name = "load" && name = "root" }`)
		waitUntil(t, time.Minute, func() bool {
			now := time.Now().Unix()
			body := getBody(t, fmt.Sprintf("http://%s/api/search?q=%s&limit=20000&start=%d&end=%d", api, q, now-3600, now+60))
			return strings.Count(body, `"traceID"`) == traces
		})
		t.Logf("%s: all %d traces found by ID and by search", phase, traces)
	}
	allFound("recent")

	// In blocks: exactly once each.
	waitUntil(t, 2*time.Minute, func() bool { return len(blockSpans(t, data+"/blocks")) == traces*spansPer })
	for span, n := range blockSpans(t, data+"/blocks") {
		if n != 1 {
			t.Fatalf("span %s is in %d blocks", span, n)
		}
	}
	// Only in blocks: stop both live-stores.
	for _, c := range []*comp{live1, live2} {
		c.p.stop(t, os.Interrupt)
	}
	allFound("from blocks only, the live-stores stopped")
	live1 = start("live-1b", "live-store")

	// Push to searchable: single traces, each polled until search finds it.
	var lat []time.Duration
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 20 {
		_, body := traceRequest(uint64(70000 + i))
		pushed := time.Now()
		if !pushAcked(client, loopback(dist.ps.otlpHTTP), body) {
			t.Fatal("probe push not acknowledged")
		}
		q := url.QueryEscape(fmt.Sprintf(`{ span.seq = %d }`, 70000+i))
		deadline := time.Now().Add(30 * time.Second)
		for {
			now := time.Now().Unix()
			if strings.Contains(getBody(t, fmt.Sprintf("http://%s/api/search?q=%s&start=%d&end=%d", api, q, now-600, now+60)), `"traceID"`) {
				lat = append(lat, time.Since(pushed))
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("probe trace not searchable within 30s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	t.Logf("push to searchable (20 probes, search polled every 10ms): p50 %s, max %s", lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
}
