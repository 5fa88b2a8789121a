package overrides

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/periodic"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/internal/yamlx"
)

// Wildcard is the tenant key of the runtime file whose limits apply to every
// tenant the file does not list, as in Tempo.
const Wildcard = "*"

// Config is the `overrides` block of the weft config.
type Config struct {
	// Defaults are the limits of every tenant the runtime file does not list.
	Defaults Limits `yaml:"defaults"`
	// PerTenantOverrideConfig is the runtime file of per-tenant limits:
	// `overrides: {"<tenant>": {<the shape of defaults>}}`; each tenant's
	// block is read on top of the defaults. Empty: no runtime file.
	PerTenantOverrideConfig string `yaml:"per_tenant_override_config"`
	// PerTenantOverridePeriod is how often the runtime file is read again.
	PerTenantOverridePeriod time.Duration `yaml:"per_tenant_override_period"`
}

// DefaultConfig is Tempo's: DefaultLimits, no runtime file, reread every 10s.
func DefaultConfig() Config {
	return Config{Defaults: DefaultLimits(), PerTenantOverridePeriod: 10 * time.Second}
}

// Validate checks the values that Limits.Validate does not.
func (c *Config) Validate() error {
	if c.PerTenantOverridePeriod <= 0 {
		return fmt.Errorf("per_tenant_override_period: must be positive, got %s", c.PerTenantOverridePeriod)
	}
	return nil
}

// KnownElsewhere tells whether a key of a tenant's block that weft does not
// use (such as "ingestion.tenant_shard_size") is one another system (Grafana
// Tempo) knows; such keys are ignored with a warning instead of failing the
// runtime file.
type KnownElsewhere func(key string) bool

// Overrides answers the limits of each tenant. Its methods are safe for
// concurrent use; For never blocks on a reload.
type Overrides struct {
	cfg         Config
	logger      *slog.Logger
	tolerate    KnownElsewhere
	lastIgnored string // the ignored keys last warned about
	lastLegacy  string // the flat-form keys last warned about

	current atomic.Pointer[map[string]*Limits] // tenant (or Wildcard) → limits
	mu      sync.Mutex                         // serializes reloads

	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	lastOK      prometheus.Gauge
	tenants     prometheus.Gauge

	loop *periodic.Loop // the reloads, once started
}

// New returns the overrides of cfg and reads its runtime file once: a
// runtime file that is missing or invalid at start is an error, so that a
// typo is seen before the process serves anything. tolerate may be nil.
func New(cfg Config, tolerate KnownElsewhere, logger *slog.Logger, reg prometheus.Registerer) (*Overrides, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &Overrides{
		cfg:      cfg,
		logger:   logger,
		tolerate: tolerate,
		reloads: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_overrides_reloads_total",
			Help: "Reads of the per-tenant runtime overrides file (overrides.per_tenant_override_config), by result (success, failure). After a failure the last good file stays in force.",
		}, []string{"result"})),
		lastSuccess: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_overrides_last_reload_success_timestamp_seconds",
			Help: "When the runtime overrides file was last read successfully (unix seconds).",
		})),
		lastOK: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_overrides_last_reload_successful",
			Help: "1 when the last read of the runtime overrides file succeeded (or there is no such file), 0 after a failed one.",
		})),
		tenants: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_overrides_tenants",
			Help: "Tenants with limits of their own in the runtime overrides file.",
		})),
	}
	empty := map[string]*Limits{}
	o.current.Store(&empty)
	o.lastOK.Set(1)
	if cfg.PerTenantOverrideConfig != "" {
		if err := o.Reload(); err != nil {
			return nil, fmt.Errorf("cannot load overrides.per_tenant_override_config: %w", err)
		}
	}
	return o, nil
}

// For returns the limits of tenant: its own from the runtime file, else the
// file's "*" entry, else the defaults. The result must not be modified.
func (o *Overrides) For(ten string) *Limits {
	m := *o.current.Load()
	if l, ok := m[ten]; ok {
		return l
	}
	if l, ok := m[Wildcard]; ok {
		return l
	}
	return &o.cfg.Defaults
}

// Reload reads the runtime file and puts it in force. On error the limits
// in force stay, the failure is counted and logged, and the error is
// returned.
func (o *Overrides) Reload() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	m, r, err := o.read()
	if err != nil {
		o.reloads.WithLabelValues("failure").Inc()
		o.lastOK.Set(0)
		o.logger.Warn("cannot reload the runtime overrides; the last good ones stay in force",
			"file", o.cfg.PerTenantOverrideConfig, "err", err)
		return err
	}
	o.current.Store(&m)
	// Each warning once, until the file changes what it says.
	if s := strings.Join(r.Ignored, ","); s != o.lastIgnored {
		o.lastIgnored = s
		if s != "" {
			o.logger.Warn("runtime overrides keys that Grafana Tempo knows and weft does not use yet are ignored",
				"file", o.cfg.PerTenantOverrideConfig, "keys", s)
		}
	}
	var legacy []string
	for _, k := range r.Legacy {
		legacy = append(legacy, k.Key+": "+k.Note)
	}
	if s := strings.Join(legacy, "; "); s != o.lastLegacy {
		o.lastLegacy = s
		if s != "" {
			o.logger.Warn("the runtime overrides file has keys of Grafana Tempo 2's flat form: each is read at its place in the scoped form, as noted",
				"file", o.cfg.PerTenantOverrideConfig, "keys", s)
		}
	}
	o.reloads.WithLabelValues("success").Inc()
	o.lastSuccess.SetToCurrentTime()
	o.lastOK.Set(1)
	o.tenants.Set(float64(len(m)))
	return nil
}

func (o *Overrides) read() (map[string]*Limits, Report, error) {
	file := o.cfg.PerTenantOverrideConfig
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, Report{}, fmt.Errorf("cannot read the runtime overrides file: %w", err)
	}
	m, r, err := ParseReport(file, data, o.cfg.Defaults, o.tolerate)
	return m, r, err
}

// Parse reads a runtime overrides file, `overrides: {"<tenant>": {...}}`:
// each tenant's block is decoded on top of defaults, strictly, and
// validated. Keys that tolerate accepts are dropped and returned as
// ignored. Every problem is returned at once, with its line and YAML path.
func Parse(file string, data []byte, defaults Limits, tolerate KnownElsewhere) (map[string]*Limits, []string, error) {
	m, r, err := ParseReport(file, data, defaults, tolerate)
	return m, r.Ignored, err
}

// Report is what ParseReport found in a runtime file besides the limits.
type Report struct {
	// Ignored are the paths of the keys tolerate accepted, sorted.
	Ignored []string
	// Legacy are the keys of Tempo 2's flat form, with their tenant in
	// the key ("overrides.<tenant>.<key>"), in the order of the file.
	Legacy []LegacyKey
}

// ParseReport is Parse, and also reads each tenant's block in Tempo 2's
// flat (legacy) form: its keys are mapped to the scoped form (MapLegacy)
// and listed in the report, so that a Tempo 2 runtime file works unchanged.
func ParseReport(file string, data []byte, defaults Limits, tolerate KnownElsewhere) (map[string]*Limits, Report, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Report{}, &yamlx.Error{File: file, Msg: fmt.Sprintf("cannot parse YAML: %v", err)}
	}
	out := map[string]*Limits{}
	if len(doc.Content) == 0 {
		return out, Report{}, nil // an empty file: no tenant of its own
	}
	yamlx.InlineMerges(&doc) // flat keys brought by a merge key are mapped too
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, Report{}, &yamlx.Error{File: file, Line: root.Line, Msg: "expected a mapping with the key overrides"}
	}
	var legacy []LegacyKey
	var errs []error
	var ignored []string
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "overrides" {
			errs = append(errs, &yamlx.Error{File: file, Line: k.Line, Path: k.Value, Msg: "unknown key (the runtime file has only overrides)"})
			continue
		}
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue
		}
		if v.Kind != yaml.MappingNode {
			errs = append(errs, &yamlx.Error{File: file, Line: v.Line, Path: "overrides", Msg: "expected a mapping of tenant IDs to limits"})
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			tk, tv := v.Content[j], v.Content[j+1]
			ten, path := tk.Value, yamlx.Join("overrides", tk.Value)
			if ten != Wildcard {
				if err := tenant.Validate(ten); err != nil {
					errs = append(errs, &yamlx.Error{File: file, Line: tk.Line, Path: path, Msg: err.Error()})
					continue
				}
			}
			if _, dup := out[ten]; dup {
				errs = append(errs, &yamlx.Error{File: file, Line: tk.Line, Path: path, Msg: "duplicate tenant"})
				continue
			}
			for _, k := range MapLegacy(tv, tv, "", tolerate) {
				legacy = append(legacy, LegacyKey{Key: yamlx.Join(path, k.Key), Note: k.Note})
			}
			l := defaults
			opts := yamlx.Options{File: file, Path: path}
			if tolerate != nil {
				opts.Unknown = func(p string, _ *yaml.Node) bool {
					key := strings.TrimPrefix(p, path+".")
					if tolerate(key) {
						ignored = append(ignored, p)
						return true
					}
					return false
				}
			}
			if err := yamlx.Decode(tv, &l, opts); err != nil {
				errs = append(errs, err)
				continue
			}
			out[ten] = &l
		}
	}
	if len(errs) > 0 {
		return nil, Report{}, errors.Join(errs...)
	}
	slices.Sort(ignored)
	return out, Report{Ignored: ignored, Legacy: legacy}, nil
}

// Start rereads the runtime file every per_tenant_override_period until
// Shutdown; without a runtime file it does nothing.
func (o *Overrides) Start(context.Context) error {
	if o.cfg.PerTenantOverrideConfig == "" || o.loop != nil {
		return nil
	}
	o.loop = periodic.Start(o.cfg.PerTenantOverridePeriod, func() {
		_ = o.Reload() // counted and logged by Reload
	})
	return nil
}

// Shutdown stops the reloads started by Start. It may be called more than
// once.
func (o *Overrides) Shutdown(ctx context.Context) error { return o.loop.Stop(ctx) }
