// Package servicegraphs is the metrics-generator's service-graph processor:
// it pairs client and server spans (and producer and consumer spans) of one
// call, by trace ID and the client's span ID being the server's parent, and
// counts the call on the edge between the two services, with Tempo's metric
// names, labels and virtual-node rules (traces_service_graph_request_total
// and the rest).
//
// A half waits up to `wait` for its other half, and at most `max_items`
// halves wait at once: past it a new half is dropped and counted. When a half
// expires alone it still makes an edge when Tempo would: a root server span
// is called by "user" (or its peer attribute), a client span with a peer
// attribute calls that peer as a virtual node; else it is counted as
// unpaired. A database client span (one of database_name_attributes) makes
// its edge at once, to the database named by peer.service, server.address,
// network.peer.address[:port] or the database name, in that order.
package servicegraphs

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/spanmetrics"
	"github.com/weftdb/weft/sinks/generator/spanview"
)

// Metric names (Tempo's).
const (
	MetricRequestTotal                  = "traces_service_graph_request_total"
	MetricRequestFailedTotal            = "traces_service_graph_request_failed_total"
	MetricRequestServerSeconds          = "traces_service_graph_request_server_seconds"
	MetricRequestClientSeconds          = "traces_service_graph_request_client_seconds"
	MetricRequestMessagingSystemSeconds = "traces_service_graph_request_messaging_system_seconds"
	MetricUnpairedSpansTotal            = "traces_service_graph_unpaired_spans_total"
	MetricDroppedSpansTotal             = "traces_service_graph_dropped_spans_total"
)

// Connection types (the connection_type label).
const (
	ConnectionUnknown         = ""
	ConnectionMessagingSystem = "messaging_system"
	ConnectionDatabase        = "database"
	ConnectionVirtualNode     = "virtual_node"
)

const virtualNodeLabel = "virtual_node"

// Config of the processor: `metrics_generator.processor.service_graphs`,
// with Tempo's keys and defaults.
type Config struct {
	// Wait is how long a half of an edge waits for its other half.
	Wait time.Duration `yaml:"wait"`
	// MaxItems bounds the halves waiting at once; past it new ones are
	// dropped and counted.
	MaxItems int `yaml:"max_items"`
	// Workers is accepted for Tempo compatibility; expiry runs on one timer.
	Workers int `yaml:"workers"`
	// HistogramBuckets are the latency histograms' upper bounds in seconds.
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// Dimensions are attributes (resource first, then span) added as labels.
	Dimensions []string `yaml:"dimensions"`
	// EnableClientServerPrefix makes two labels per dimension, client_<d>
	// and server_<d>, from the client and the server span.
	EnableClientServerPrefix bool `yaml:"enable_client_server_prefix"`
	// EnableMessagingSystemLatencyHistogram adds
	// traces_service_graph_request_messaging_system_seconds (producer end to
	// consumer start).
	EnableMessagingSystemLatencyHistogram bool `yaml:"enable_messaging_system_latency_histogram"`
	// PeerAttributes name a virtual node for a half that expires alone,
	// the first present wins.
	PeerAttributes []string `yaml:"peer_attributes"`
	// SpanMultiplierKey names a double attribute (span, then resource)
	// holding the sampling ratio; an edge counts 1/ratio.
	SpanMultiplierKey string `yaml:"span_multiplier_key"`
	// EnableVirtualNodeLabel adds the virtual_node label (client or server:
	// the uninstrumented side).
	EnableVirtualNodeLabel bool `yaml:"enable_virtual_node_label"`
	// DatabaseNameAttributes make a client span a database call and name the
	// database when nothing better does; the first present wins.
	DatabaseNameAttributes []string `yaml:"database_name_attributes"`
	// FilterPolicies select the spans the processor pairs.
	FilterPolicies []spanview.FilterPolicy `yaml:"filter_policies"`
}

// DefaultConfig is Tempo's defaults.
func DefaultConfig() Config {
	return Config{
		Wait:                   10 * time.Second,
		MaxItems:               10000,
		Workers:                10,
		HistogramBuckets:       []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8},
		PeerAttributes:         []string{"peer.service", "db.name", "db.system"},
		DatabaseNameAttributes: []string{"db.namespace", "db.name", "db.system"},
	}
}

const keyPrefix = "metrics_generator.processor.service_graphs."

// Validate checks the config; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	if c.Wait <= 0 {
		errs = append(errs, fmt.Errorf(keyPrefix+"wait must be positive, got %s", c.Wait))
	}
	if c.MaxItems <= 0 {
		errs = append(errs, fmt.Errorf(keyPrefix+"max_items must be positive, got %d", c.MaxItems))
	}
	if len(c.HistogramBuckets) == 0 || !slices.IsSorted(c.HistogramBuckets) || len(slices.Compact(slices.Clone(c.HistogramBuckets))) != len(c.HistogramBuckets) {
		errs = append(errs, fmt.Errorf(keyPrefix+"histogram_buckets must be strictly increasing and not empty, got %v", c.HistogramBuckets))
	}
	seen := map[string]bool{"client": true, "server": true, "connection_type": true}
	if c.EnableVirtualNodeLabel {
		seen[virtualNodeLabel] = true
	}
	for i, d := range c.Dimensions {
		for _, l := range dimensionLabels(d, c.EnableClientServerPrefix) {
			if d == "" || seen[l] {
				errs = append(errs, fmt.Errorf(keyPrefix+"dimensions[%d]: %q makes label %q, which is empty or taken", i, d, l))
			}
			seen[l] = true
		}
	}
	if _, err := spanview.NewFilter(keyPrefix+"filter_policies", c.FilterPolicies); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func dimensionLabels(d string, prefix bool) []string {
	if prefix {
		return []string{registry.SanitizeLabelName("client_" + d), registry.SanitizeLabelName("server_" + d)}
	}
	return []string{registry.SanitizeLabelName(d)}
}

type edgeKey struct {
	trace [16]byte
	span  [8]byte // the client's span ID; zero for a root server span
	root  bool
}

type edge struct {
	key              edgeKey
	traceLen         uint8
	client, server   string
	connType         string
	failed           bool
	clientSec        float64
	serverSec        float64
	clientEnd        uint64
	serverStart      uint64
	multiplier       float64
	peer             string
	dims             []string // per label after client, server, connection_type
	expires          int64    // unix nanoseconds
	prev, next       *edge
	clientSeen, root bool
}

// Processor builds service-graph metrics into a tenant's registry. PushSpans
// may be called from several goroutines. Shutdown stops its expiry timer.
type Processor struct {
	cfg    Config
	filter *spanview.Filter
	now    func() time.Time

	total, failed                 *registry.Counter
	serverSec, clientSec, msgSec  *registry.Histogram
	unpaired, dropped             *registry.Counter
	dimStart                      int // index in label values of the first dimension
	labelCount                    int
	expired, droppedW, filteredSp prometheus.Counter

	reg   *registry.Registry
	names []string

	mu         sync.Mutex
	edges      map[edgeKey]*edge
	head, tail *edge // pending halves, oldest first
	free       []*edge
	values     []string
	buf        []byte
	strings    map[string]string

	stop     chan struct{}
	done     chan struct{}
	shutdown sync.Once
}

// New returns a processor writing into reg and starts its expiry timer;
// cfg must be valid. Its own counters go to prom:
// weft_metrics_generator_service_graphs_expired_edges_total and
// _dropped_spans_total{tenant}.
func New(cfg Config, reg *registry.Registry, tenant string, prom prometheus.Registerer) *Processor {
	filter, err := spanview.NewFilter(keyPrefix+"filter_policies", cfg.FilterPolicies)
	if err != nil {
		filter = nil
	}
	names := []string{"client", "server", "connection_type"}
	for _, d := range cfg.Dimensions {
		names = append(names, dimensionLabels(d, cfg.EnableClientServerPrefix)...)
	}
	if cfg.EnableVirtualNodeLabel {
		names = append(names, virtualNodeLabel)
	}
	p := &Processor{
		cfg:        cfg,
		filter:     filter,
		now:        time.Now,
		dimStart:   3,
		labelCount: len(names),
		edges:      map[edgeKey]*edge{},
		strings:    map[string]string{},
		values:     make([]string, len(names)),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	p.reg, p.names = reg, names
	p.total = reg.NewCounter(MetricRequestTotal, names)
	p.failed = reg.NewCounter(MetricRequestFailedTotal, names)
	p.serverSec = reg.NewHistogram(MetricRequestServerSeconds, names, cfg.HistogramBuckets)
	p.clientSec = reg.NewHistogram(MetricRequestClientSeconds, names, cfg.HistogramBuckets)
	if cfg.EnableMessagingSystemLatencyHistogram {
		p.msgSec = reg.NewHistogram(MetricRequestMessagingSystemSeconds, names, cfg.HistogramBuckets)
	}
	p.unpaired = reg.NewCounter(MetricUnpairedSpansTotal, names[:3])
	p.dropped = reg.NewCounter(MetricDroppedSpansTotal, names[:3])
	expired := metrics.Register(prom, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_metrics_generator_service_graphs_expired_edges_total",
		Help: "Service-graph halves whose other half did not come within wait; those that made no virtual-node edge are also in traces_service_graph_unpaired_spans_total.",
	}, []string{"tenant"}))
	dropped := metrics.Register(prom, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_metrics_generator_service_graphs_dropped_spans_total",
		Help: "Service-graph spans dropped because max_items halves were already waiting.",
	}, []string{"tenant"}))
	p.expired = expired.WithLabelValues(tenant)
	p.droppedW = dropped.WithLabelValues(tenant)
	p.filteredSp = spanmetrics.FilteredSpans(prom).WithLabelValues(tenant, "service-graphs")
	go p.expireLoop()
	return p
}

func (p *Processor) expireLoop() {
	defer close(p.done)
	period := p.cfg.Wait / 4
	if period > 2*time.Second {
		period = 2 * time.Second
	}
	if period < 10*time.Millisecond {
		period = 10 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.expire(p.now().UnixNano())
			p.mu.Unlock()
		}
	}
}

// Shutdown stops the expiry timer and treats every waiting half as expired
// (a virtual-node edge or an unpaired span), so that nothing waits in a
// processor that is being replaced.
// It may be called more than once.
func (p *Processor) Shutdown() {
	p.shutdown.Do(func() {
		close(p.stop)
		<-p.done
		p.mu.Lock()
		p.expire(1<<63 - 1)
		p.mu.Unlock()
	})
}

// Pending is the number of halves waiting for their other half.
func (p *Processor) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.edges)
}

// PushSpans pairs the batch's client/server and producer/consumer spans.
func (p *Processor) PushSpans(b *spanview.Batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now().UnixNano()
	p.expire(now)
	for i := range b.Spans {
		s := &b.Spans[i]
		var client bool
		conn := ConnectionUnknown
		switch s.Kind {
		case spanview.KindProducer:
			conn = ConnectionMessagingSystem
			client = true
		case spanview.KindClient:
			client = true
		case spanview.KindConsumer:
			conn = ConnectionMessagingSystem
		case spanview.KindServer:
		default:
			continue
		}
		if !s.Resource.HasServiceName {
			continue // Tempo skips resources without service.name
		}
		var keep bool
		if keep, p.buf = p.filter.Keep(s, p.buf); !keep {
			p.filteredSp.Inc()
			continue
		}
		var k edgeKey
		copy(k.trace[:], s.TraceID)
		if client {
			copy(k.span[:], s.SpanID)
		} else {
			k.root = isRoot(s.ParentSpanID)
			copy(k.span[:], s.ParentSpanID)
		}
		e, found := p.edges[k]
		if !found {
			e = p.newEdge(k, now)
		}
		e.traceLen = uint8(min(len(s.TraceID), 16))
		e.connType = conn
		e.failed = e.failed || s.StatusCode == spanview.StatusError
		e.multiplier = p.multiplier(s)
		if client {
			p.updateClient(e, s)
		} else {
			p.updateServer(e, s)
		}
		if e.client != "" && e.server != "" {
			p.complete(e)
			if found {
				p.unlink(e)
			}
			p.release(e)
			continue
		}
		if found {
			continue
		}
		if len(p.edges) >= p.cfg.MaxItems {
			p.expire(now) // make room from expired halves first
		}
		if len(p.edges) >= p.cfg.MaxItems {
			p.countDropped(e)
			p.release(e)
			continue
		}
		p.edges[k] = e
		p.link(e)
	}
}

func isRoot(parent []byte) bool {
	for _, c := range parent {
		if c != 0 {
			return false
		}
	}
	return true
}

func (p *Processor) newEdge(k edgeKey, now int64) *edge {
	var e *edge
	if n := len(p.free); n > 0 {
		e, p.free = p.free[n-1], p.free[:n-1]
		dims := e.dims
		*e = edge{dims: dims}
		clear(e.dims)
	} else {
		e = &edge{dims: make([]string, p.labelCount-p.dimStart)}
	}
	e.key, e.expires, e.multiplier, e.root = k, now+int64(p.cfg.Wait), 1, k.root
	return e
}

func (p *Processor) release(e *edge) {
	if len(p.free) < 1024 {
		p.free = append(p.free, e)
	}
}

func (p *Processor) link(e *edge) {
	e.prev, e.next = p.tail, nil
	if p.tail != nil {
		p.tail.next = e
	} else {
		p.head = e
	}
	p.tail = e
}

func (p *Processor) unlink(e *edge) {
	delete(p.edges, e.key)
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		p.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		p.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (p *Processor) multiplier(s *spanview.Span) float64 {
	if p.cfg.SpanMultiplierKey == "" {
		return 1
	}
	return s.Multiplier(p.cfg.SpanMultiplierKey)
}

// attr is an attribute's label value, resource first then span; ok when
// present.
func (p *Processor) attr(s *spanview.Span, key string, resourceToo bool) (string, bool) {
	var raw []byte
	ok := false
	if resourceToo {
		raw, ok = s.Resource.Lookup(key)
	}
	if !ok {
		raw, ok = s.Lookup(key)
	}
	if !ok {
		return "", false
	}
	p.buf = spanview.AppendLabel(p.buf[:0], raw)
	return p.intern(p.buf), true
}

// intern returns b as a string, reusing the string of an earlier equal
// value: edges keep peer, database and dimension values, which repeat.
func (p *Processor) intern(b []byte) string {
	if s, ok := p.strings[string(b)]; ok {
		return s
	}
	if len(p.strings) >= maxInterned {
		clear(p.strings) // bounded: high-cardinality values only cost allocations
	}
	s := string(b)
	p.strings[s] = s
	return s
}

const maxInterned = 10000

func (p *Processor) updateDims(e *edge, s *spanview.Span, clientSide bool) {
	for i, d := range p.cfg.Dimensions {
		v, ok := p.attr(s, d, true)
		if !ok {
			continue
		}
		slot := i
		if p.cfg.EnableClientServerPrefix {
			slot = 2 * i
			if !clientSide {
				slot++
			}
		}
		e.dims[slot] = v
	}
}

func (p *Processor) updatePeer(e *edge, s *spanview.Span) {
	for _, k := range p.cfg.PeerAttributes {
		if v, ok := p.attr(s, k, false); ok {
			e.peer = v
			return
		}
	}
}

func (p *Processor) updateClient(e *edge, s *spanview.Span) {
	e.clientSeen = true
	e.client = s.Resource.ServiceName
	e.clientSec = s.DurationSeconds()
	e.clientEnd = s.End
	copy(e.key.trace[:], s.TraceID)
	p.updateDims(e, s, true)
	p.updatePeer(e, s)
	// A database call: no server span will come; name the database.
	dbName, isDB := "", false
	for _, k := range p.cfg.DatabaseNameAttributes {
		if v, ok := p.attr(s, k, true); ok {
			dbName, isDB = v, true
			break
		}
	}
	if !isDB {
		return
	}
	e.connType = ConnectionDatabase
	e.serverSec = s.DurationSeconds()
	if v, ok := p.attr(s, "peer.service", true); ok {
		e.server = v
	} else if v, ok := p.attr(s, "server.address", true); ok {
		e.server = v
	} else if host, ok := p.attr(s, "network.peer.address", true); ok {
		if port, ok := p.attr(s, "network.peer.port", true); ok {
			host += ":" + port
		}
		e.server = host
	} else if dbName != "" {
		e.server = dbName
	}
}

func (p *Processor) updateServer(e *edge, s *spanview.Span) {
	e.server = s.Resource.ServiceName
	e.serverSec = s.DurationSeconds()
	e.serverStart = s.Start
	p.updateDims(e, s, false)
	if e.root {
		p.updatePeer(e, s) // only a root server span names its caller
	}
}

// expire handles the halves whose wait ended at or before now.
func (p *Processor) expire(now int64) {
	for e := p.head; e != nil && e.expires <= now; e = p.head {
		p.unlink(e)
		p.onExpire(e)
		p.release(e)
	}
}

func (p *Processor) onExpire(e *edge) {
	p.expired.Inc()
	conn := e.connType
	e.connType = ConnectionVirtualNode
	switch {
	case e.client == "" && e.root:
		e.client = "user"
		if e.peer != "" {
			e.client = e.peer
		}
		p.setVirtualNode(e, "client")
		p.complete(e)
	case e.server == "" && e.peer != "" && e.clientSeen:
		e.server = e.peer
		p.setVirtualNode(e, "server")
		p.complete(e)
	default:
		p.values[0], p.values[1], p.values[2] = e.client, e.server, conn
		p.unpaired.Inc(p.values[:3], e.multiplier)
	}
}

func (p *Processor) setVirtualNode(e *edge, side string) {
	if p.cfg.EnableVirtualNodeLabel {
		e.dims[len(e.dims)-1] = side
	}
}

func (p *Processor) countDropped(e *edge) {
	p.droppedW.Inc()
	p.values[0], p.values[1], p.values[2] = e.client, e.server, e.connType
	p.dropped.Inc(p.values[:3], e.multiplier)
}

// complete counts the call on its edge.
func (p *Processor) complete(e *edge) {
	v := p.values
	v[0], v[1], v[2] = e.client, e.server, e.connType
	copy(v[p.dimStart:], e.dims)
	now := time.Now().UnixMilli()
	ls := p.reg.LabelSet(p.names, v)
	p.total.Add(ls, e.multiplier, now)
	if e.failed {
		p.failed.Add(ls, e.multiplier, now)
	}
	trace := e.key.trace[:e.traceLen]
	p.serverSec.Record(ls, e.serverSec, trace, e.multiplier, now)
	p.clientSec.Record(ls, e.clientSec, trace, e.multiplier, now)
	if p.msgSec != nil && e.connType == ConnectionMessagingSystem && e.serverStart > e.clientEnd {
		p.msgSec.Record(ls, float64(e.serverStart-e.clientEnd)/1e9, trace, e.multiplier, now)
	}
}
