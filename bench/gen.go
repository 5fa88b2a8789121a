package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// genOptions shape the generated traces.
type genOptions struct {
	Seed          uint64  `json:"seed"`
	Services      int     `json:"services"`        // distinct service.name values
	SpansPerTrace int     `json:"spans_per_trace"` // spans in every trace
	Depth         int     `json:"depth"`           // maximum depth of a trace's span tree (the root is depth 1)
	Attrs         int     `json:"attrs"`           // extra span attributes per span, app.attr.<i>
	AttrBytes     int     `json:"attr_bytes"`      // length of each extra attribute's value
	Events        int     `json:"events"`          // events per span (errors add an exception event)
	ErrorRate     float64 `json:"error_rate"`      // fraction of spans with status error
	Batch         int     `json:"batch"`           // spans per request (whole traces, so rounded up)
	// RequestIDs gives every server span an app.request.id of 16 random
	// hex digits: a high-cardinality attribute whose every value is rare
	// (the -dataset mode; off in an ingest run, whose traces it would
	// change).
	RequestIDs bool `json:"request_ids,omitempty"`
}

// serviceNames are the first service names; more services get a numeric suffix.
var serviceNames = []string{"frontend", "checkout", "cart", "product-catalog", "payment",
	"shipping", "currency", "recommendation", "ad", "email", "quote", "accounting",
	"fraud-detection", "inventory", "auth", "user", "search", "notification"}

// serviceRoutes are the HTTP routes each service serves.
var serviceRoutes = []string{"/api/cart", "/api/cart/{id}/items", "/api/checkout", "/api/products",
	"/api/products/{id}", "/api/users/{id}", "/api/orders", "/api/orders/{id}", "/api/payments",
	"/api/shipping/quote", "/api/currency/convert", "/api/recommendations", "/healthz"}

// dbStatements are the queries database spans run, with their span name.
var dbStatements = []struct{ op, table, stmt string }{
	{"SELECT", "products", "SELECT id, name, price, currency FROM products WHERE id = $1"},
	{"SELECT", "carts", "SELECT item_id, quantity FROM cart_items WHERE cart_id = $1"},
	{"INSERT", "orders", "INSERT INTO orders (id, user_id, total, currency) VALUES ($1, $2, $3, $4)"},
	{"UPDATE", "inventory", "UPDATE inventory SET stock = stock - $1 WHERE product_id = $2"},
	{"SELECT", "users", "SELECT id, email, name FROM users WHERE id = $1"},
	{"DELETE", "carts", "DELETE FROM cart_items WHERE cart_id = $1"},
}

// service is one generated service and its resource.
type service struct {
	name     string
	resource *resourcepb.Resource
	routes   []string
	hasDB    bool
}

// generator builds OTLP requests of realistic traces. It is deterministic
// for a seed, except for the time stamps, which follow the clock. It is not
// safe for concurrent use: each worker has its own.
type generator struct {
	o        genOptions
	rng      *rand.Rand
	services []service
	values   []string // pool of extra attribute values
	scope    *commonpb.InstrumentationScope
	// clock is when the traces of the next request end: time.Now, or a
	// backfill clock (backfillClock).
	clock func() time.Time
}

func newGenerator(o genOptions, worker int) *generator {
	o.Services = max(o.Services, 1)
	o.SpansPerTrace = max(o.SpansPerTrace, 1)
	o.Depth = max(o.Depth, 2)
	o.Batch = max(o.Batch, 1)
	seed := o.Seed + uint64(worker)*0x9e3779b97f4a7c15
	g := &generator{o: o, rng: rand.New(rand.NewPCG(seed, seed^0xdeadbeefcafef00d)), clock: time.Now}
	g.scope = &commonpb.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.60.0"}
	for i := range o.Services {
		name := serviceNames[i%len(serviceNames)]
		if i >= len(serviceNames) {
			name = fmt.Sprintf("%s-%d", name, i/len(serviceNames))
		}
		routes := make([]string, 0, 4)
		for range 4 {
			routes = append(routes, serviceRoutes[g.rng.IntN(len(serviceRoutes))])
		}
		pod := fmt.Sprintf("%s-%x-%05d", name, g.rng.Uint32()&0xfffff, worker)
		g.services = append(g.services, service{
			name:   name,
			routes: routes,
			hasDB:  i%3 != 0,
			resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
				strKV("service.name", name),
				strKV("service.namespace", "shop"),
				strKV("service.version", fmt.Sprintf("1.%d.%d", i%7, g.rng.IntN(20))),
				strKV("service.instance.id", pod),
				strKV("deployment.environment.name", "production"),
				strKV("k8s.cluster.name", "prod-eu-1"),
				strKV("k8s.namespace.name", "shop"),
				strKV("k8s.deployment.name", name),
				strKV("k8s.pod.name", pod),
				strKV("k8s.node.name", fmt.Sprintf("node-%d", (i+worker)%8)),
				strKV("host.name", fmt.Sprintf("node-%d", (i+worker)%8)),
				strKV("telemetry.sdk.language", "go"),
				strKV("telemetry.sdk.name", "opentelemetry"),
				strKV("telemetry.sdk.version", "1.38.0"),
			}},
		})
	}
	if o.Attrs > 0 {
		g.values = make([]string, 4096)
		for i := range g.values {
			g.values[i] = g.randString(o.AttrBytes)
		}
	}
	return g
}

const letters = "abcdefghijklmnopqrstuvwxyz0123456789"

func (g *generator) randString(n int) string {
	var b strings.Builder
	b.Grow(n)
	for range n {
		b.WriteByte(letters[g.rng.IntN(len(letters))])
	}
	return b.String()
}

// span is a span being built, with what its children need.
type genSpan struct {
	sp    *tracepb.Span
	svc   int
	depth int
	start time.Time
	dur   time.Duration
}

// next returns one request of whole traces holding at least Batch spans,
// its protobuf size is computed by the caller; ids are the trace IDs.
func (g *generator) next() (*coltracepb.ExportTraceServiceRequest, [][16]byte, int) {
	perService := make([][]*tracepb.Span, len(g.services))
	var ids [][16]byte
	spans := 0
	now := g.clock()
	for spans < g.o.Batch {
		id, trace := g.trace(now)
		ids = append(ids, id)
		for _, s := range trace {
			perService[s.svc] = append(perService[s.svc], s.sp)
		}
		spans += len(trace)
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	for i, sps := range perService {
		if len(sps) == 0 {
			continue
		}
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
			Resource:   g.services[i].resource,
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: g.scope, Spans: sps}},
			SchemaUrl:  "https://opentelemetry.io/schemas/1.26.0",
		})
	}
	return req, ids, spans
}

// backfillLag is how old the newest backfilled trace is at the end of the
// ingest: more than the metrics query_backend_after (15m), so that TraceQL
// metrics read every backfilled span from blocks.
const backfillLag = 20 * time.Minute

// backfillTime is when a trace generated at now ends, when the ingest that
// began at start for duration backfills span: the traces' end times are
// spread over [start+duration−span, start+duration−backfillLag] and advance
// linearly with the ingest's progress f = (now−start)/duration (clamped to
// [0, 1]): end = start+duration − span + f·(span − backfillLag). So blocks
// are cut in time order, as in a real ingest, and, when duration ≤ span −
// backfillLag, every trace is at least backfillLag old when it is sent.
func backfillTime(start time.Time, duration, span time.Duration, now time.Time) time.Time {
	f := 0.0
	if duration > 0 {
		f = min(max(float64(now.Sub(start))/float64(duration), 0), 1)
	}
	return start.Add(duration - span + time.Duration(f*float64(span-backfillLag)))
}

// backfillClock is a generator clock for backfillTime.
func backfillClock(start time.Time, duration, span time.Duration) func() time.Time {
	return func() time.Time { return backfillTime(start, duration, span, time.Now()) }
}

// trace builds one trace that ended at now.
func (g *generator) trace(now time.Time) ([16]byte, []*genSpan) {
	var tid [16]byte
	binary.BigEndian.PutUint64(tid[:8], g.rng.Uint64())
	binary.BigEndian.PutUint64(tid[8:], g.rng.Uint64()|1)
	// Root duration: log-normal around 40ms, between 1ms and 10s.
	dur := time.Duration(math.Exp(g.rng.NormFloat64()*1.1 + math.Log(40e6)))
	dur = min(max(dur, time.Millisecond), 10*time.Second)
	root := &genSpan{svc: 0, depth: 1, start: now.Add(-dur), dur: dur}
	route := g.services[0].routes[g.rng.IntN(len(g.services[0].routes))]
	root.sp = g.newSpan(tid, nil, root, "GET "+route, tracepb.Span_SPAN_KIND_SERVER)
	g.httpServerAttrs(root, "GET", route)
	trace := []*genSpan{root}
	var parents []*genSpan // server and internal spans that may have children
	if g.o.Depth > 1 {
		parents = append(parents, root)
	}
	for len(trace) < g.o.SpansPerTrace {
		p := root
		if len(parents) > 0 {
			p = parents[g.rng.IntN(len(parents))]
		}
		remaining := g.o.SpansPerTrace - len(trace)
		r := g.rng.Float64()
		switch {
		case r < 0.5 && remaining >= 2 && p.depth+2 <= g.o.Depth && len(g.services) > 1:
			// An HTTP call to another service: a client span and the
			// server span under it.
			callee := 1 + g.rng.IntN(len(g.services)-1)
			cr := g.services[callee].routes[g.rng.IntN(len(g.services[callee].routes))]
			method := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}[g.rng.IntN(6)]
			c := g.child(p, p.svc)
			c.sp = g.newSpan(tid, p, c, method, tracepb.Span_SPAN_KIND_CLIENT)
			g.httpClientAttrs(c, method, callee, cr)
			s := g.child(c, callee)
			s.start, s.dur = c.start.Add(c.dur/20), c.dur*9/10
			s.sp = g.newSpan(tid, c, s, method+" "+cr, tracepb.Span_SPAN_KIND_SERVER)
			g.httpServerAttrs(s, method, cr)
			if s.sp.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
				setInt(c.sp, "http.response.status_code", statusOf(s.sp))
				c.sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
			}
			trace = append(trace, c, s)
			if s.depth < g.o.Depth {
				parents = append(parents, s)
			}
		case r < 0.8 && g.services[p.svc].hasDB:
			d := dbStatements[g.rng.IntN(len(dbStatements))]
			c := g.child(p, p.svc)
			c.sp = g.newSpan(tid, p, c, d.op+" shop."+d.table, tracepb.Span_SPAN_KIND_CLIENT)
			c.sp.Attributes = append(c.sp.Attributes,
				strKV("db.system", "postgresql"), strKV("db.namespace", "shop"),
				strKV("db.operation.name", d.op), strKV("db.collection.name", d.table),
				strKV("db.statement", d.stmt), strKV("server.address", "postgres.shop.svc"),
				intKV("server.port", 5432))
			g.maybeError(c)
			trace = append(trace, c)
		default:
			c := g.child(p, p.svc)
			c.sp = g.newSpan(tid, p, c, []string{"render", "validate", "serialize", "cache.lookup", "compute-price"}[g.rng.IntN(5)], tracepb.Span_SPAN_KIND_INTERNAL)
			g.maybeError(c)
			trace = append(trace, c)
			if c.depth < g.o.Depth {
				parents = append(parents, c)
			}
		}
	}
	return tid, trace
}

// child places a span inside its parent's time range.
func (g *generator) child(p *genSpan, svc int) *genSpan {
	off := time.Duration(g.rng.Float64() * 0.3 * float64(p.dur))
	dur := time.Duration((0.1 + 0.5*g.rng.Float64()) * float64(p.dur))
	return &genSpan{svc: svc, depth: p.depth + 1, start: p.start.Add(off), dur: max(dur, time.Microsecond)}
}

// newSpan creates the span proto with IDs, times, extra attributes and events.
func (g *generator) newSpan(tid [16]byte, parent, s *genSpan, name string, kind tracepb.Span_SpanKind) *tracepb.Span {
	sid := make([]byte, 8)
	binary.BigEndian.PutUint64(sid, g.rng.Uint64()|1)
	sp := &tracepb.Span{
		TraceId:           tid[:],
		SpanId:            sid,
		Name:              name,
		Kind:              kind,
		StartTimeUnixNano: uint64(s.start.UnixNano()),
		EndTimeUnixNano:   uint64(s.start.Add(s.dur).UnixNano()),
		Status:            &tracepb.Status{},
	}
	if parent != nil {
		sp.ParentSpanId = parent.sp.SpanId
	}
	for i := range g.o.Attrs {
		sp.Attributes = append(sp.Attributes, strKV(fmt.Sprintf("app.attr.%d", i), g.values[g.rng.IntN(len(g.values))]))
	}
	for i := range g.o.Events {
		sp.Events = append(sp.Events, &tracepb.Span_Event{
			TimeUnixNano: uint64(s.start.Add(s.dur * time.Duration(i+1) / time.Duration(g.o.Events+1)).UnixNano()),
			Name:         "log",
			Attributes: []*commonpb.KeyValue{
				strKV("log.severity", "INFO"),
				strKV("log.message", fmt.Sprintf("step %d of %s done", i+1, name)),
			},
		})
	}
	return sp
}

func (g *generator) httpServerAttrs(s *genSpan, method, route string) {
	path := strings.ReplaceAll(route, "{id}", fmt.Sprint(g.rng.IntN(100000)))
	s.sp.Attributes = append(s.sp.Attributes,
		strKV("http.request.method", method), strKV("http.route", route), strKV("url.path", path),
		strKV("url.scheme", "http"), strKV("server.address", g.services[s.svc].name+".shop.svc"),
		intKV("server.port", 8080), strKV("network.protocol.version", "1.1"),
		strKV("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"))
	code := int64(200)
	if method == "POST" {
		code = 201
	}
	if g.maybeError(s) {
		code = []int64{500, 502, 503}[g.rng.IntN(3)]
	}
	s.sp.Attributes = append(s.sp.Attributes, intKV("http.response.status_code", code))
	if g.o.RequestIDs {
		s.sp.Attributes = append(s.sp.Attributes, strKV(requestIDAttr, fmt.Sprintf("%016x", g.rng.Uint64())))
	}
}

// requestIDAttr is the high-cardinality span attribute of genOptions.RequestIDs.
const requestIDAttr = "app.request.id"

func (g *generator) httpClientAttrs(c *genSpan, method string, callee int, route string) {
	host := g.services[callee].name + ".shop.svc"
	path := strings.ReplaceAll(route, "{id}", fmt.Sprint(g.rng.IntN(100000)))
	c.sp.Attributes = append(c.sp.Attributes,
		strKV("http.request.method", method), strKV("url.full", "http://"+host+":8080"+path),
		strKV("server.address", host), intKV("server.port", 8080),
		intKV("http.response.status_code", 200))
}

// maybeError sets status error with ErrorRate and adds an exception event.
func (g *generator) maybeError(s *genSpan) bool {
	if g.rng.Float64() >= g.o.ErrorRate {
		return false
	}
	s.sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "upstream request failed"}
	s.sp.Events = append(s.sp.Events, &tracepb.Span_Event{
		TimeUnixNano: uint64(s.start.Add(s.dur).UnixNano()),
		Name:         "exception",
		Attributes: []*commonpb.KeyValue{
			strKV("exception.type", "*net.OpError"),
			strKV("exception.message", "read tcp 10.0.3.7:43122->10.0.5.2:8080: read: connection reset by peer"),
		},
	})
	return true
}

func statusOf(sp *tracepb.Span) int64 {
	for _, kv := range sp.Attributes {
		if kv.Key == "http.response.status_code" {
			return kv.Value.GetIntValue()
		}
	}
	return 500
}

func setInt(sp *tracepb.Span, key string, v int64) {
	for _, kv := range sp.Attributes {
		if kv.Key == key {
			kv.Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}
			return
		}
	}
	sp.Attributes = append(sp.Attributes, intKV(key, v))
}

func strKV(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intKV(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}
