package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/overrides"
)

// tempo2Example reads one of Tempo's 2.x example configs of testdata/tempo2.
func tempo2Example(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "tempo2", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tempo2Keys returns the keys of r.Tempo2.
func tempo2Keys(r Report) []string {
	var keys []string
	for _, k := range r.Tempo2 {
		keys = append(keys, k.Key)
	}
	return keys
}

// Each Tempo 2.x example config of Tempo's repository loads into a valid
// weft config, with retention and multitenancy mapped, and every Tempo 2.x
// block listed once with a note.
func TestTempo2ExampleConfigsLoad(t *testing.T) {
	cases := []struct {
		file         string
		multitenancy bool
		retention    time.Duration
		backend      string
		processors   []string
		tempo2       []string // keys that must be in Report.Tempo2
	}{
		{"local.yaml", false, 720 * time.Hour, "local", []string{"service-graphs", "span-metrics"},
			[]string{"ingester", "compactor", "compactor.compaction.block_retention", "overrides.defaults.metrics_generator.processors[local-blocks]"}},
		{"s3-minio.yaml", false, time.Hour, "s3", []string{"service-graphs", "span-metrics"},
			[]string{"ingester", "compactor", "compactor.compaction.block_retention", "overrides.metrics_generator_processors"}},
		{"distributed.yaml", false, time.Hour, "s3", []string{"service-graphs", "span-metrics"},
			[]string{"ingester", "compactor", "compactor.compaction.block_retention", "querier.frontend_worker"}},
		{"multitenant.yaml", true, time.Hour, "local", nil,
			[]string{"ingester", "compactor", "compactor.compaction.block_retention"}},
		{"migrate-to-3-v2.yaml", false, time.Hour, "s3", []string{"span-metrics", "service-graphs"},
			[]string{"ingester", "compactor", "compactor.compaction.block_retention", "querier.frontend_worker"}},
	}
	files, _ := filepath.Glob("testdata/tempo2/*.yaml")
	if len(files) != len(cases) {
		t.Fatalf("testdata/tempo2 has %d configs, the test checks %d", len(files), len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			c, r, err := LoadReport(tc.file, tempo2Example(t, tc.file), false)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if c.MultitenancyEnabled != tc.multitenancy {
				t.Errorf("multitenancy_enabled = %v, want %v", c.MultitenancyEnabled, tc.multitenancy)
			}
			if got := c.BackendWorker.Compaction.BlockRetention; got != tc.retention {
				t.Errorf("backend_worker.compaction.block_retention = %s, want %s (compactor.compaction.block_retention)", got, tc.retention)
			}
			if got := c.Storage.Trace.Store.Backend; string(got) != tc.backend {
				t.Errorf("storage.trace.backend = %q, want %q", got, tc.backend)
			}
			if got := c.Overrides.Defaults.MetricsGenerator.Processors; !slices.Equal(got, tc.processors) {
				t.Errorf("overrides.defaults.metrics_generator.processors = %v, want %v", got, tc.processors)
			}
			if !strings.HasSuffix(c.BlockBuilder.WAL.Path, "/wal/"+BlockBuilderWALDir) {
				t.Errorf("block_builder.wal.path = %q, want it under storage.trace.wal.path", c.BlockBuilder.WAL.Path)
			}
			keys := tempo2Keys(r)
			for _, w := range tc.tempo2 {
				if !slices.Contains(keys, w) {
					t.Errorf("Tempo 2.x keys %v lack %q", keys, w)
				}
			}
			for _, k := range r.Tempo2 {
				if k.Note == "" {
					t.Errorf("%s has no note", k.Key)
				}
				if slices.Contains(r.Ignored, k.Key) {
					t.Errorf("%s is both a Tempo 2.x key and an ignored one", k.Key)
				}
			}
			if n := len(r.Tempo2Args()); n != 2*len(r.Tempo2) {
				t.Errorf("Tempo2Args has %d values for %d keys", n, len(r.Tempo2))
			}
		})
	}
}

// auth_enabled is Tempo 2's name of multitenancy_enabled: it turns
// multitenancy on, unless multitenancy_enabled is set, which wins. None of
// Tempo's 2.x examples sets auth_enabled, so the multitenant example is
// used with its multitenancy_enabled line renamed.
func TestTempo2AuthEnabled(t *testing.T) {
	mt := string(tempo2Example(t, "multitenant.yaml"))
	if !strings.Contains(mt, "\nmultitenancy_enabled: true\n") {
		t.Fatal("multitenant.yaml has no multitenancy_enabled: true line")
	}
	cases := []struct {
		name, src, note string
		want            bool
	}{
		{"auth_enabled true", strings.Replace(mt, "\nmultitenancy_enabled: true\n", "\nauth_enabled: true\n", 1), "mapped to multitenancy_enabled", true},
		{"auth_enabled false", strings.Replace(mt, "\nmultitenancy_enabled: true\n", "\nauth_enabled: false\n", 1), "mapped to multitenancy_enabled", false},
		{"multitenancy_enabled wins", strings.Replace(mt, "\nmultitenancy_enabled: true\n", "\nmultitenancy_enabled: false\nauth_enabled: true\n", 1), "not used: multitenancy_enabled is set and wins", false},
		{"auth_enabled on top of a Tempo 2 local config", "auth_enabled: true\n" + string(tempo2Example(t, "local.yaml")), "mapped to multitenancy_enabled", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, r, err := LoadReport("tempo.yaml", []byte(tc.src), false)
			if err != nil {
				t.Fatal(err)
			}
			if c.MultitenancyEnabled != tc.want {
				t.Errorf("multitenancy_enabled = %v, want %v", c.MultitenancyEnabled, tc.want)
			}
			if d := c.DistributorNode(); d.MultitenancyEnabled != tc.want {
				t.Errorf("distributor node multitenancy = %v, want %v", d.MultitenancyEnabled, tc.want)
			}
			i := slices.IndexFunc(r.Tempo2, func(k Tempo2Key) bool { return k.Key == "auth_enabled" })
			if i < 0 || r.Tempo2[i].Note != tc.note {
				t.Errorf("Tempo 2.x keys %+v: want auth_enabled with note %q", r.Tempo2, tc.note)
			}
			if slices.Contains(r.Ignored, "auth_enabled") {
				t.Errorf("auth_enabled listed as ignored: %v", r.Ignored)
			}
		})
	}
	// A value that is not a boolean is an error with its line, named by
	// the key it sets.
	_, _, err := LoadReport("tempo.yaml", []byte("server:\n  http_listen_port: 3200\nauth_enabled: maybe\n"), false)
	if err == nil || !strings.Contains(err.Error(), "tempo.yaml:3:") || !strings.Contains(err.Error(), "multitenancy_enabled") {
		t.Errorf("auth_enabled: maybe: got %v, want an error at line 3 naming multitenancy_enabled", err)
	}
}

// A weft key set in the file wins over the Tempo 2.x key mapped to it, and
// the flat form of overrides is read as overrides.defaults.
func TestTempo2ExplicitWeftKeysWin(t *testing.T) {
	src := `compactor:
  compaction:
    block_retention: 1h
    compacted_block_retention: 5m
    compaction_window: 2h
backend_worker:
  compaction:
    block_retention: 48h
overrides:
  max_traces_per_user: 300
  ingestion_rate_limit_bytes: 1000
  block_retention: 2h
  defaults:
    ingestion:
      rate_limit_bytes: 2000
`
	c, r, err := LoadReport("tempo.yaml", []byte(src), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BackendWorker.Compaction.BlockRetention; got != 48*time.Hour {
		t.Errorf("block_retention = %s, want the explicit backend_worker one, 48h", got)
	}
	if got := c.BackendWorker.Compaction.CompactedBlockRetention; got != 5*time.Minute {
		t.Errorf("compacted_block_retention = %s, want 5m from compactor.compaction", got)
	}
	if got := c.BackendScheduler.Provider.Compaction.Compaction.CompactionWindow; got != 2*time.Hour {
		t.Errorf("scheduler compaction_window = %s, want 2h from compactor.compaction", got)
	}
	d := c.Overrides.Defaults
	if d.Ingestion.MaxTracesPerUser != 300 || d.Ingestion.RateLimitBytes != 2000 || d.Compaction.BlockRetention != 2*time.Hour {
		t.Errorf("overrides.defaults: max_traces_per_user %d (want 300), rate_limit_bytes %d (want the scoped 2000), block_retention %s (want 2h)",
			d.Ingestion.MaxTracesPerUser, d.Ingestion.RateLimitBytes, d.Compaction.BlockRetention)
	}
	notes := map[string]string{}
	for _, k := range r.Tempo2 {
		notes[k.Key] = k.Note
	}
	for k, want := range map[string]string{
		"compactor.compaction.block_retention":           "not used: backend_worker.compaction.block_retention is set and wins",
		"compactor.compaction.compacted_block_retention": "mapped to backend_worker.compaction.compacted_block_retention",
		"overrides.max_traces_per_user":                  "mapped to overrides.defaults.ingestion.max_traces_per_user",
		"overrides.ingestion_rate_limit_bytes":           "not used: overrides.defaults.ingestion.rate_limit_bytes is set and wins",
	} {
		if notes[k] != want {
			t.Errorf("note of %s = %q, want %q", k, notes[k], want)
		}
	}
}

// ingester is a Tempo 2.x block, not a misspelling of ingest; a key that
// neither knows is still an error.
func TestTempo2NoIngestHint(t *testing.T) {
	_, r, err := LoadReport("tempo.yaml", []byte("ingester:\n  max_block_duration: 5m\n"), false)
	if err != nil {
		t.Fatalf("ingester refused: %v", err)
	}
	if !slices.Contains(tempo2Keys(r), "ingester") {
		t.Errorf("Tempo 2.x keys %v lack ingester", tempo2Keys(r))
	}
	_, _, err = LoadReport("tempo.yaml", []byte("ingester:\n  max_block_duration: 5m\ncompactr: {}\n"), false)
	if err == nil || !strings.Contains(err.Error(), "tempo.yaml:3: compactr: unknown key") {
		t.Errorf("compactr: got %v, want an unknown key error at line 3", err)
	}
	if err != nil && strings.Contains(err.Error(), "ingester") {
		t.Errorf("error names ingester: %v", err)
	}
}

// An anchor in compactor.compaction that a weft block aliases stays whole.
func TestTempo2CompactorAnchor(t *testing.T) {
	src := "compactor:\n  compaction: &c {block_retention: 3h}\nbackend_worker:\n  compaction: *c\n"
	c, _, err := LoadReport("tempo.yaml", []byte(src), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BackendWorker.Compaction.BlockRetention; got != 3*time.Hour {
		t.Errorf("block_retention = %s, want 3h through the alias", got)
	}
}

// A runtime overrides file in Tempo 2's flat (legacy) form, as Tempo's
// repository has it, is read: each flat key lands at its place in the
// scoped form, listed with a note; keys weft does not use are noted so.
// A scoped key set beside a flat one wins.
func TestTempo2RuntimeOverridesFlatForm(t *testing.T) {
	file := filepath.Join("testdata", "tempo2", "runtime", "overrides-legacy.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, r, err := overrides.ParseReport(file, data, overrides.DefaultLimits(), IsTempoOverridesKey)
	if err != nil {
		t.Fatal(err)
	}
	foo := m["foo"]
	if foo == nil {
		t.Fatalf("no limits for tenant foo: %v", m)
	}
	in, mg := foo.Ingestion, foo.MetricsGenerator
	if in.RateStrategy != "local" || in.RateLimitBytes != 12345 || in.BurstSizeBytes != 67890 || in.MaxTracesPerUser != 1 {
		t.Errorf("ingestion: %+v", in)
	}
	if !slices.Equal(mg.Processors, []string{"span-metrics"}) || mg.MaxActiveSeries != 4 || mg.DisableCollection {
		t.Errorf("metrics_generator: %+v", mg)
	}
	sg, sm := mg.Processor.ServiceGraphs, mg.Processor.SpanMetrics
	if !slices.Equal(sg.HistogramBuckets, []float64{1, 2}) || !slices.Equal(sg.Dimensions, []string{"foo"}) ||
		!slices.Equal(sg.PeerAttributes, []string{"foo"}) || sg.EnableClientServerPrefix == nil || *sg.EnableClientServerPrefix {
		t.Errorf("service graphs: %+v", sg)
	}
	if !slices.Equal(sm.HistogramBuckets, []float64{3, 4}) || !slices.Equal(sm.Dimensions, []string{"foo"}) {
		t.Errorf("span metrics: %+v", sm)
	}
	notes := map[string]string{}
	for _, k := range r.Legacy {
		notes[k.Key] = k.Note
	}
	if len(r.Legacy) != 19 {
		t.Errorf("%d flat keys reported, the file has 19: %v", len(r.Legacy), r.Legacy)
	}
	if n := notes["overrides.foo.max_traces_per_user"]; n != "mapped to ingestion.max_traces_per_user" {
		t.Errorf("max_traces_per_user: %q", n)
	}
	if n := notes["overrides.foo.metrics_generator_ring_size"]; !strings.HasSuffix(n, "(which weft does not use yet)") {
		t.Errorf("metrics_generator_ring_size: %q", n)
	}

	// Flat and scoped keys in one block: the scoped one wins.
	mixed := "overrides:\n  bar:\n    max_traces_per_user: 5\n    ingestion:\n      max_traces_per_user: 9\n    block_retention: 48h\n"
	m, r, err = overrides.ParseReport("rt.yaml", []byte(mixed), overrides.DefaultLimits(), IsTempoOverridesKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := m["bar"]; got.Ingestion.MaxTracesPerUser != 9 || got.Compaction.BlockRetention != 48*time.Hour {
		t.Errorf("bar: ingestion %+v compaction %+v; want the scoped 9 and the mapped 48h", got.Ingestion, got.Compaction)
	}
	if len(r.Legacy) != 2 || r.Legacy[0].Note != "not used: ingestion.max_traces_per_user is set and wins" {
		t.Errorf("notes: %+v", r.Legacy)
	}
	// A key that is neither flat nor scoped is still an error, with its line.
	if _, _, err := overrides.ParseReport("rt.yaml", []byte("overrides:\n  bar:\n    max_trace_per_user: 5\n"), overrides.DefaultLimits(), IsTempoOverridesKey); err == nil ||
		!strings.Contains(err.Error(), "rt.yaml:3: overrides.bar.max_trace_per_user: unknown key") {
		t.Errorf("a misspelt key: %v", err)
	}
}

// Keys brought by YAML merge keys are mapped as the others are.
func TestTempo2MergeKeys(t *testing.T) {
	cfg := "auth_enabled: true\n" +
		"compactor:\n  compaction:\n    <<: {block_retention: 48h}\n" +
		"overrides:\n  <<: {max_traces_per_user: 7}\n" +
		"server:\n  <<: &srv {http_listen_port: 3300}\n"
	c, r, err := LoadReport("tempo.yaml", []byte(cfg), false)
	if err != nil {
		t.Fatal(err)
	}
	if !c.MultitenancyEnabled || c.BackendWorker.Compaction.BlockRetention != 48*time.Hour ||
		c.Overrides.Defaults.Ingestion.MaxTracesPerUser != 7 || c.Server.HTTPListenPort != 3300 {
		t.Errorf("multitenancy %v, retention %s, max_traces_per_user %d, port %d", c.MultitenancyEnabled,
			c.BackendWorker.Compaction.BlockRetention, c.Overrides.Defaults.Ingestion.MaxTracesPerUser, c.Server.HTTPListenPort)
	}
	if keys := tempo2Keys(r); !slices.Contains(keys, "overrides.max_traces_per_user") || !slices.Contains(keys, "compactor.compaction.block_retention") {
		t.Errorf("notes: %v", keys)
	}
	m, rr, err := overrides.ParseReport("rt.yaml", []byte("overrides:\n  a:\n    <<: {max_traces_per_user: 3}\n"), overrides.DefaultLimits(), IsTempoOverridesKey)
	if err != nil || m["a"].Ingestion.MaxTracesPerUser != 3 || len(rr.Legacy) != 1 {
		t.Errorf("runtime file: %v %+v %+v", err, m["a"], rr)
	}
}
