// Package registry holds a tenant's metrics-generator series: counters,
// classic histograms and gauges keyed by label values, with Tempo's series
// semantics. Processors update series as spans come in, on any number of
// goroutines; Collect reads every active series' cumulative value as
// Prometheus remote-write time series.
//
// The registry is bounded: past max_active_series a new series is refused
// and its updates go to one overflow series per metric, labelled only
// metric_overflow="true"; a refused series costs no memory. Series not
// updated for stale_duration are dropped at Collect, after one stale marker.
//
// Memory, measured by BenchmarkSeriesMemory (heap held per series, label
// value strings included): a counter or gauge series with five label
// values, each series with two distinct values of ~20 bytes, holds about
// 280 bytes; a histogram series with the default 14 buckets (17 Prometheus
// series) about 490 bytes. Remote-write labels are built only at Collect.
// A refused series (past max_active_series) holds nothing.
//
// Series are keyed by a 64-bit hash of their label pairs, as in Tempo; two
// label sets of one metric colliding would share a series (for n series the
// chance is about n²/2^65: 3·10^-10 for 100,000).
package registry

import (
	"encoding/hex"
	"hash/maphash"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/weftdb/weft/internal/metrics"
)

// OverflowLabel is the label, with value "true", of the series that takes
// the updates of series refused by max_active_series (Tempo's).
const OverflowLabel = "metric_overflow"

// ExemplarLabel is the exemplar label carrying the trace ID (Tempo's).
const ExemplarLabel = "traceID"

// Registry is one tenant's series. It is safe for concurrent use.
type Registry struct {
	cfg    Config
	tenant string
	seed   maphash.Seed

	// extra are the external labels and the tenant label, sorted by name.
	extra []prompb.Label

	maxActive atomic.Int64 // 0: no limit
	active    atomic.Int64

	mu      sync.Mutex
	metrics map[string]*metric
	retired []*metric // replaced metrics whose series get a stale marker at the next Collect

	limited       prometheus.Counter
	removed       prometheus.Counter
	invalid       prometheus.Counter
	activeGauge   prometheus.Gauge
	maxGauge      prometheus.Gauge
	unregisterFns []func()
}

// CollectOptions change what Collect returns.
type CollectOptions struct {
	// Exemplars adds to histogram buckets the last exemplar observed in
	// them since the previous Collect (remote write's send_exemplars).
	Exemplars bool
}

// New returns an empty registry for tenant. reg receives weft's own metrics
// about the registry (nil: none); cfg must be valid. Keep one registry per
// tenant and rebuild the processors on it when the tenant's overrides
// change: NewCounter, NewHistogram and NewGauge return the existing metric
// when its label names and buckets are unchanged, so its series go on.
func New(cfg Config, tenant string, reg prometheus.Registerer) *Registry {
	r := &Registry{
		cfg:     cfg,
		tenant:  tenant,
		seed:    maphash.MakeSeed(),
		metrics: map[string]*metric{},
	}
	for name, v := range cfg.ExternalLabels {
		r.extra = append(r.extra, prompb.Label{Name: name, Value: v})
	}
	if cfg.InjectTenantIDAs != "" {
		r.extra = slices.DeleteFunc(r.extra, func(l prompb.Label) bool { return l.Name == cfg.InjectTenantIDAs })
		r.extra = append(r.extra, prompb.Label{Name: cfg.InjectTenantIDAs, Value: tenant})
	}
	sortLabels(r.extra)

	limited := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_metrics_generator_registry_series_limited_total",
		Help: "Updates of new series refused because the tenant reached max_active_series; they went to the metric's overflow series.",
	}, []string{"tenant"}))
	removed := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_metrics_generator_registry_series_removed_total",
		Help: "Series dropped because they were not updated for stale_duration.",
	}, []string{"tenant"}))
	invalid := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_metrics_generator_registry_invalid_utf8_total",
		Help: "Updates dropped because a label value of their new series is not valid UTF-8, which is no valid Prometheus label value.",
	}, []string{"tenant"}))
	active := metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_metrics_generator_registry_active_series",
		Help: "Active series of the tenant's metrics-generator registry (a histogram counts its buckets, _sum and _count).",
	}, []string{"tenant"}))
	maxActive := metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_metrics_generator_registry_max_active_series",
		Help: "The tenant's max_active_series (0: no limit).",
	}, []string{"tenant"}))
	r.limited = limited.WithLabelValues(tenant)
	r.removed = removed.WithLabelValues(tenant)
	r.invalid = invalid.WithLabelValues(tenant)
	r.activeGauge = active.WithLabelValues(tenant)
	r.maxGauge = maxActive.WithLabelValues(tenant)
	r.unregisterFns = []func(){
		func() { limited.DeleteLabelValues(tenant) },
		func() { removed.DeleteLabelValues(tenant) },
		func() { invalid.DeleteLabelValues(tenant) },
		func() { active.DeleteLabelValues(tenant) },
		func() { maxActive.DeleteLabelValues(tenant) },
	}
	return r
}

// Close removes the registry's tenant from weft's registry metrics. The
// registry must not be used afterwards; close it before making another
// registry for the same tenant on the same Prometheus registerer.
func (r *Registry) Close() {
	for _, f := range r.unregisterFns {
		f()
	}
}

// SetMaxActiveSeries sets the tenant's max_active_series (0: no limit). It
// may change at any time; lowering it below the active count removes no
// series, it only refuses new ones.
func (r *Registry) SetMaxActiveSeries(n int) {
	if n < 0 {
		n = 0
	}
	r.maxActive.Store(int64(n))
	r.maxGauge.Set(float64(n))
}

// ActiveSeries is the number of active Prometheus series: a counter or gauge
// series counts one, a histogram series its buckets (with +Inf), _sum and
// _count.
func (r *Registry) ActiveSeries() int { return int(r.active.Load()) }

// reserve takes cost from the series budget; false when the limit refuses.
func (r *Registry) reserve(cost int64) bool {
	for {
		max := r.maxActive.Load()
		cur := r.active.Load()
		if max > 0 && cur+cost > max {
			return false
		}
		if r.active.CompareAndSwap(cur, cur+cost) {
			r.activeGauge.Set(float64(cur + cost))
			return true
		}
	}
}

func (r *Registry) release(cost int64) {
	r.activeGauge.Set(float64(r.active.Add(-cost)))
}

type kind uint8

const (
	kindCounter kind = iota
	kindGauge
	kindHistogram
)

// metric is one metric name and its series.
type metric struct {
	r          *Registry
	kind       kind
	name       string
	labelNames []string  // sanitised and truncated; nil for gauges with per-call names
	buckets    []float64 // upper bounds, +Inf excluded
	les        []string  // le label values, +Inf included
	bucketName string
	sumName    string
	countName  string
	cost       int64 // Prometheus series per series

	mu       sync.Mutex
	series   map[uint64]*series
	overflow *series
}

// series is one label set of a metric. It is kept small: labels are
// built into remote-write form only at Collect.
type series struct {
	names  []string // label names; nil: the metric's
	values []string // label values, "" for an absent label

	value      float64 // counter or gauge value; histogram sum
	lastUpdate int64   // unix ms
	h          *histogramState
	fresh      bool // not collected yet
	stale      bool // to be sent as a stale marker and dropped
}

// histogramState is what a histogram series has beyond a counter's.
type histogramState struct {
	count   float64
	buckets []float64 // per bucket (not cumulative), +Inf included

	// the last exemplar since the previous Collect
	exValue  float64
	exTime   int64
	exBucket int32
	exLen    uint8 // 0: no exemplar
	exTrace  [16]byte
}

func (r *Registry) newMetric(k kind, name string, labelNames []string, buckets []float64) *metric {
	m := &metric{r: r, kind: k, name: name, series: map[uint64]*series{}, cost: 1}
	if labelNames != nil {
		m.labelNames = make([]string, len(labelNames))
		for i, n := range labelNames {
			m.labelNames[i] = r.labelName(n)
		}
	}
	if k == kindHistogram {
		m.buckets = slices.Clone(buckets)
		for _, b := range m.buckets {
			m.les = append(m.les, strconv.FormatFloat(b, 'f', -1, 64))
		}
		m.les = append(m.les, "+Inf")
		m.cost = int64(len(m.les) + 2)
		m.bucketName, m.sumName, m.countName = name+"_bucket", name+"_sum", name+"_count"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.metrics[name]; ok {
		if old.kind == k && slices.Equal(old.labelNames, m.labelNames) && slices.Equal(old.buckets, m.buckets) {
			return old
		}
		// A processor rebuilt with other dimensions or buckets: the old
		// series end with a stale marker at the next Collect.
		r.retired = append(r.retired, old)
	}
	r.metrics[name] = m
	return m
}

// labelName sanitises and truncates a label name.
func (r *Registry) labelName(n string) string {
	n = SanitizeLabelName(n)
	if len(n) > r.cfg.MaxLabelNameLength {
		n = n[:r.cfg.MaxLabelNameLength]
	}
	return n
}

// labelValue truncates a label value to max_label_value_length bytes,
// without cutting a UTF-8 sequence.
func (r *Registry) labelValue(v string) string {
	max := r.cfg.MaxLabelValueLength
	if len(v) <= max {
		return v
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut]
}

// SanitizeLabelName replaces every character other than ASCII letters,
// digits and '_' with '_', as Tempo (Prometheus' strutil) does: "http.method"
// becomes "http_method".
func SanitizeLabelName(name string) string {
	ok := true
	for i := 0; i < len(name); i++ {
		if !labelByte(name[i]) {
			ok = false
			break
		}
	}
	if ok {
		return name
	}
	var b strings.Builder
	b.Grow(len(name))
	for _, c := range name {
		if c < utf8.RuneSelf && labelByte(byte(c)) {
			b.WriteByte(byte(c))
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func labelByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// hash of the label pairs with non-empty values (an empty value is no label
// in Prometheus).
func (m *metric) hash(names, values []string) uint64 { return m.r.hash(names, values) }

func (r *Registry) hash(names, values []string) uint64 {
	var h maphash.Hash
	h.SetSeed(r.seed)
	for i, v := range values {
		if v == "" {
			continue
		}
		v = r.labelValue(v)
		h.WriteString(names[i])
		h.WriteByte(0xff)
		h.WriteString(v)
		h.WriteByte(0xfe)
	}
	return h.Sum64()
}

// get returns the series of the label set, creating it when the limit
// allows, else the metric's overflow series. Called with m.mu held.
// values may point into memory the caller reuses: the series copies them.
func (m *metric) get(names, values []string, now int64) *series {
	return m.getHashed(m.hash(names, values), names, values)
}

func (m *metric) getHashed(h uint64, names, values []string) *series {
	if s, ok := m.series[h]; ok {
		return s
	}
	for _, v := range values {
		if !utf8.ValidString(m.r.labelValue(v)) {
			// Not a valid Prometheus label value (model.LabelValue):
			// receivers that check refuse the whole write. The update is
			// dropped, as in Tempo, and counted.
			m.r.invalid.Inc()
			return nil
		}
	}
	if !m.r.reserve(m.cost) {
		m.r.limited.Inc()
		if m.overflow == nil {
			m.r.active.Add(m.cost) // the overflow series is active too, past the limit
			m.r.activeGauge.Set(float64(m.r.active.Load()))
			m.overflow = m.newSeries(overflowNames, overflowValues)
		}
		return m.overflow
	}
	vals := make([]string, len(values))
	for i, v := range values {
		if v != "" {
			vals[i] = strings.Clone(m.r.labelValue(v))
		}
	}
	var ns []string
	if m.labelNames == nil { // per-call label names: not checked yet
		ns = make([]string, len(names))
		for i, n := range names {
			if values[i] != "" {
				ns[i] = strings.Clone(m.r.labelName(n))
			}
		}
	}
	s := m.newSeries(ns, vals)
	m.series[h] = s
	return s
}

var (
	overflowNames  = []string{OverflowLabel}
	overflowValues = []string{"true"}
)

func (m *metric) newSeries(names, values []string) *series {
	s := &series{names: names, values: values, fresh: true}
	if m.kind == kindHistogram {
		s.h = &histogramState{buckets: make([]float64, len(m.les))}
	}
	return s
}

// labels appends s's labels, with the registry's extra labels (a series
// label wins over an extra label of the same name), sorted by name, without
// __name__ and le.
func (m *metric) labels(dst []prompb.Label, s *series) []prompb.Label {
	names := s.names
	if names == nil {
		names = m.labelNames
	}
	start := len(dst)
	for i, v := range s.values {
		if v != "" {
			dst = append(dst, prompb.Label{Name: names[i], Value: v})
		}
	}
	own := dst[start:]
	for _, e := range m.r.extra {
		if !slices.ContainsFunc(own, func(l prompb.Label) bool { return l.Name == e.Name }) {
			dst = append(dst, e)
		}
	}
	slices.SortFunc(dst[start:], func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
	return dst
}

func sortLabels(l []prompb.Label) {
	sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
}

func nowMs() int64 { return time.Now().UnixMilli() }

// LabelSet is a label set prepared once for several metrics with the same
// label names (a processor's calls, latency and size): its values and their
// hash. It is valid for the registry that made it and as long as its values
// are.
type LabelSet struct {
	hash   uint64
	values []string
}

// LabelSet prepares values for metrics whose label names are names (as
// given to NewCounter, NewHistogram or NewGauge).
func (r *Registry) LabelSet(names, values []string) LabelSet {
	return LabelSet{hash: r.hash(r.labelNames(names), values), values: values}
}

// labelNames are names sanitised and truncated, allocating only when one
// changes.
func (r *Registry) labelNames(names []string) []string {
	for _, n := range names {
		if r.labelName(n) != n {
			out := make([]string, len(names))
			for j, n := range names {
				out[j] = r.labelName(n)
			}
			return out
		}
	}
	return names
}

// Counter is a monotonic counter metric.
type Counter struct{ m *metric }

// NewCounter returns the counter called name with the given label names
// (sanitised); calling it again with the same name and label names returns
// the same counter, with other label names it replaces it.
func (r *Registry) NewCounter(name string, labelNames []string) *Counter {
	return &Counter{r.newMetric(kindCounter, name, labelNames, nil)}
}

// Inc adds delta to the series with the given label values (one per label
// name; an empty value leaves the label out).
func (c *Counter) Inc(values []string, delta float64) {
	m := c.m
	now := nowMs()
	m.mu.Lock()
	if s := m.get(m.labelNames, values, now); s != nil {
		s.value += delta
		s.lastUpdate = now
	}
	m.mu.Unlock()
}

// Add adds delta to the series of ls at time nowMs (unix ms), for callers
// that update several metrics per span with one clock reading.
func (c *Counter) Add(ls LabelSet, delta float64, nowMs int64) {
	m := c.m
	m.mu.Lock()
	if s := m.getHashed(ls.hash, m.labelNames, ls.values); s != nil {
		s.value += delta
		s.lastUpdate = nowMs
	}
	m.mu.Unlock()
}

// Gauge is a gauge metric.
type Gauge struct{ m *metric }

// NewGauge returns the gauge called name with the given label names; nil
// label names make a gauge whose label names come with each Set (SetLabels).
func (r *Registry) NewGauge(name string, labelNames []string) *Gauge {
	return &Gauge{r.newMetric(kindGauge, name, labelNames, nil)}
}

// Set sets the series with the given label values.
func (g *Gauge) Set(values []string, v float64) { g.SetLabels(g.m.labelNames, values, v) }

// SetLabels sets the series with the given label names and values, for
// gauges whose label names vary (target info). Names must be sanitised
// label names, unique within one call.
func (g *Gauge) SetLabels(names, values []string, v float64) {
	m := g.m
	now := nowMs()
	m.mu.Lock()
	if s := m.get(names, values, now); s != nil {
		s.value = v
		s.lastUpdate = now
	}
	m.mu.Unlock()
}

// Histogram is a classic histogram metric: _bucket{le}, _sum and _count.
type Histogram struct{ m *metric }

// NewHistogram returns the histogram called name with the given label names
// and bucket upper bounds (ascending; +Inf is added).
func (r *Registry) NewHistogram(name string, labelNames []string, buckets []float64) *Histogram {
	return &Histogram{r.newMetric(kindHistogram, name, labelNames, buckets)}
}

// Observe adds an observation of v, weighted by multiplier (1 for one
// span), to the series with the given label values. traceID (raw bytes, up
// to 16), when not empty, is kept as the series' exemplar, on v's bucket,
// until the next Collect.
func (h *Histogram) Observe(values []string, v float64, traceID []byte, multiplier float64) {
	h.Record(h.m.r.LabelSet(h.m.labelNames, values), v, traceID, multiplier, nowMs())
}

// Record is Observe for a prepared label set, at time now (unix ms).
func (h *Histogram) Record(ls LabelSet, v float64, traceID []byte, multiplier float64, now int64) {
	m := h.m
	b := sort.SearchFloat64s(m.buckets, v) // first bucket with bound >= v; len: +Inf
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.getHashed(ls.hash, m.labelNames, ls.values)
	if s == nil {
		return
	}
	hs := s.h
	hs.count += multiplier
	s.value += v * multiplier
	hs.buckets[b] += multiplier
	s.lastUpdate = now
	if len(traceID) > 0 {
		hs.exBucket, hs.exValue, hs.exTime = int32(b), v, now
		hs.exLen = uint8(copy(hs.exTrace[:], traceID))
	}
}

// Collect returns every active series' cumulative value at now, labels
// sorted by name. A series collected for the first time also carries a 0
// sample 1 ms earlier, so that Prometheus counts its first increment. Series
// not updated for stale_duration are returned once more with a stale marker
// (value.StaleNaN) and dropped.
func (r *Registry) Collect(now time.Time, opts CollectOptions) []prompb.TimeSeries {
	ts := now.UnixMilli()
	staleBefore := ts - r.cfg.StaleDuration.Milliseconds()

	r.mu.Lock()
	ms := make([]*metric, 0, len(r.metrics))
	for _, m := range r.metrics {
		ms = append(ms, m)
	}
	retired := r.retired
	r.retired = nil
	r.mu.Unlock()
	sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })

	// Size the output and its arenas once: growing them by doubling would
	// allocate about twice what is returned.
	var nts, nlabels int
	for _, m := range append(retired, ms...) {
		m.mu.Lock()
		n := len(m.series) + 1
		m.mu.Unlock()
		per := 1
		if m.kind == kindHistogram {
			per = len(m.les) + 2
		}
		width := len(m.labelNames) + len(r.extra) + 2
		if m.labelNames == nil {
			width = 8 + len(r.extra)
		}
		nts += n * per
		nlabels += n * per * width
	}
	c := collector{ts: ts, exemplars: opts.Exemplars,
		out:     make([]prompb.TimeSeries, 0, nts),
		labels:  make([]prompb.Label, 0, nlabels),
		samples: make([]prompb.Sample, 0, nts+nts/8),
	}
	for _, m := range retired {
		m.collect(&c, math.MaxInt64)
	}
	for _, m := range ms {
		m.collect(&c, staleBefore)
	}
	return c.out
}

type collector struct {
	ts        int64
	exemplars bool
	out       []prompb.TimeSeries
	labels    []prompb.Label // arena
	scratch   []prompb.Label
	samples   []prompb.Sample // arena
}

// add appends one time series: labels are name, base and (when le != "")
// le, sorted.
func (c *collector) add(name string, base []prompb.Label, le string, v float64, fresh bool, ex *prompb.Exemplar) {
	start := len(c.labels)
	nameDone, leDone := false, le == ""
	for _, l := range base {
		if !nameDone && "__name__" < l.Name {
			c.labels = append(c.labels, prompb.Label{Name: "__name__", Value: name})
			nameDone = true
		}
		if !leDone && "le" < l.Name {
			c.labels = append(c.labels, prompb.Label{Name: "le", Value: le})
			leDone = true
		}
		c.labels = append(c.labels, l)
	}
	if !nameDone {
		c.labels = append(c.labels, prompb.Label{Name: "__name__", Value: name})
	}
	if !leDone {
		c.labels = append(c.labels, prompb.Label{Name: "le", Value: le})
	}
	lbls := c.labels[start:len(c.labels):len(c.labels)]
	sstart := len(c.samples)
	if fresh {
		c.samples = append(c.samples, prompb.Sample{Value: 0, Timestamp: c.ts - 1})
	}
	c.samples = append(c.samples, prompb.Sample{Value: v, Timestamp: c.ts})
	t := prompb.TimeSeries{Labels: lbls, Samples: c.samples[sstart:len(c.samples):len(c.samples)]}
	if ex != nil {
		t.Exemplars = []prompb.Exemplar{*ex}
	}
	c.out = append(c.out, t)
}

// collect appends m's series; series last updated before staleBefore get a
// stale marker and are dropped.
func (m *metric) collect(c *collector, staleBefore int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	staleNaN := math.Float64frombits(value.StaleNaN)
	emit := func(s *series) {
		v := func(x float64) float64 {
			if s.stale {
				return staleNaN
			}
			return x
		}
		fresh := s.fresh && !s.stale
		c.scratch = m.labels(c.scratch[:0], s)
		lbls := c.scratch
		switch m.kind {
		case kindCounter, kindGauge:
			c.add(m.name, lbls, "", v(s.value), fresh, nil)
		case kindHistogram:
			hs := s.h
			cum := 0.0
			for i, le := range m.les {
				cum += hs.buckets[i]
				var ex *prompb.Exemplar
				if c.exemplars && !s.stale && hs.exLen > 0 && int(hs.exBucket) == i {
					ex = &prompb.Exemplar{
						Labels:    []prompb.Label{{Name: ExemplarLabel, Value: hex.EncodeToString(hs.exTrace[:hs.exLen])}},
						Value:     hs.exValue,
						Timestamp: hs.exTime,
					}
				}
				c.add(m.bucketName, lbls, le, v(cum), fresh, ex)
			}
			c.add(m.sumName, lbls, "", v(s.value), fresh, nil)
			c.add(m.countName, lbls, "", v(hs.count), fresh, nil)
			hs.exLen = 0
		}
		s.fresh = false
	}
	drop := func(s *series) {
		s.stale = true
		emit(s)
		m.r.release(m.cost)
		m.r.removed.Inc()
	}
	for h, s := range m.series {
		if s.lastUpdate < staleBefore {
			drop(s)
			delete(m.series, h)
			continue
		}
		emit(s)
	}
	if s := m.overflow; s != nil {
		if s.lastUpdate < staleBefore {
			drop(s)
			m.overflow = nil
		} else {
			emit(s)
		}
	}
}
