package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPAddr() != ":3200" || c.Server.GRPCAddr() != ":9095" {
		t.Fatalf("ports: %s %s", c.Server.HTTPAddr(), c.Server.GRPCAddr())
	}
	o := c.OTLPNode()
	if o.Protocols.GRPC == nil || o.Protocols.GRPC.Endpoint != ":4317" || o.Protocols.HTTP == nil || o.Protocols.HTTP.Endpoint != ":4318" {
		t.Fatalf("OTLP endpoints: %+v", o.Protocols)
	}
	if c.Storage.Trace.Store.Local.Path != "./data/blocks" || c.Target != "all" {
		t.Fatalf("storage %q target %q", c.Storage.Trace.Store.Local.Path, c.Target)
	}
}

// A Tempo monolithic config file starts weft: the keys both know are used,
// Tempo's other keys are listed once for a warning.
func TestTempoConfigLoads(t *testing.T) {
	data, err := os.ReadFile("testdata/tempo-monolithic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, ignored, err := Load("tempo.yaml", data, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPListenPort != 3300 || c.Server.GRPCListenPort != 9196 || c.Server.LogLevel != "warn" {
		t.Fatalf("server: %+v", c.Server)
	}
	if !c.MultitenancyEnabled {
		t.Fatal("multitenancy_enabled not read")
	}
	o := c.OTLPNode()
	if o.Protocols.GRPC.Endpoint != "127.0.0.1:14317" || o.Protocols.HTTP.Endpoint != "127.0.0.1:14318" {
		t.Fatalf("receivers: grpc %+v http %+v", o.Protocols.GRPC, o.Protocols.HTTP)
	}
	if c.Storage.Trace.Store.Local.Path != "/var/tempo/blocks" {
		t.Fatalf("storage path %q", c.Storage.Trace.Store.Local.Path)
	}
	if d := c.DistributorNode(); d.MaxAttributeBytes != 512 || !d.MultitenancyEnabled {
		t.Fatalf("distributor node: %+v (the per-tenant default wins over distributor.max_attribute_bytes)", d)
	}
	if got := c.Overrides.Defaults.Ingestion.RateLimitBytes; got != 20_000_000 {
		t.Fatalf("overrides.defaults.ingestion.rate_limit_bytes = %d, want 20000000", got)
	}
	if got := c.Overrides.Defaults.Ingestion.MaxTracesPerUser; got != 20_000 {
		t.Fatalf("overrides.defaults.ingestion.max_traces_per_user = %d, want 20000", got)
	}
	want := []string{
		"server.grpc_server_max_recv_msg_size",
		"distributor.receivers.otlp.protocols.http.cors", "distributor.log_received_spans",
		"live_store.complete_block_timeout", "query_frontend.search.duration_slo", "query_frontend.trace_by_id",
		"overrides.defaults.ingestion.tenant_shard_size",
	}
	for _, w := range want {
		if !slices.Contains(ignored, w) {
			t.Errorf("ignored keys %v lack %q", ignored, w)
		}
	}
	for _, k := range ignored {
		if strings.HasPrefix(k, "storage.trace.wal") {
			t.Errorf("ignored keys %v list %q, which weft uses", ignored, k)
		}
	}
	if got, want := c.BlockBuilder.WAL.Path, filepath.Join("/var/tempo/wal", "block-builder"); got != want {
		t.Errorf("block_builder.wal.path = %q, want %q (from storage.trace.wal.path)", got, want)
	}
}

// Tempo's storage.trace.wal.path places the block-builder's WAL when
// block_builder.wal.path is not set; block_builder.wal.path wins.
func TestStorageTraceWALPath(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
		ignored         []string
	}{
		{"neither", "target: all\n", "./data/wal/block-builder", nil},
		{"storage only", "storage:\n  trace:\n    wal:\n      path: /var/tempo/wal\n", "/var/tempo/wal/block-builder", nil},
		{"both", "storage:\n  trace:\n    wal: {path: /var/tempo/wal}\nblock_builder:\n  wal: {path: /srv/bb}\n", "/srv/bb", nil},
		{"both, block_builder equal to the default", "storage:\n  trace:\n    wal: {path: /var/tempo/wal}\nblock_builder:\n  wal: {path: ./data/wal/block-builder}\n", "./data/wal/block-builder", nil},
		// The anchor sits in a Tempo block weft ignores.
		{"through a merge key", "metrics_generator: {storage: {wal: &bb {wal: {path: /srv/bb}}}}\nstorage: {trace: {wal: {path: /w}}}\nblock_builder: {<<: *bb}\n", "/srv/bb", []string{"metrics_generator.storage.wal"}},
		{"other Tempo wal keys", "storage:\n  trace:\n    wal: {path: /w, ingestion_time_range_slack: 2m, version: vParquet4}\n", "/w/block-builder",
			[]string{"storage.trace.wal.ingestion_time_range_slack", "storage.trace.wal.version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ignored, err := Load("weft.yaml", []byte(tc.src), false)
			if err != nil {
				t.Fatal(err)
			}
			if c.BlockBuilder.WAL.Path != tc.want {
				t.Errorf("block_builder.wal.path = %q, want %q", c.BlockBuilder.WAL.Path, tc.want)
			}
			if !slices.Equal(ignored, tc.ignored) {
				t.Errorf("ignored keys %v, want %v", ignored, tc.ignored)
			}
		})
	}
}

// Load says whether the file sets query_frontend.query_end_cutoff, which a
// monolithic process otherwise applies as 0 (app.EffectiveQueryEndCutoff).
func TestQueryEndCutoffSet(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		set       bool
		want      time.Duration
	}{
		{"no file keys", "target: all\n", false, 30 * time.Second},
		{"other frontend keys", "query_frontend:\n  max_outstanding_per_tenant: 10\n", false, 30 * time.Second},
		{"set to the default", "query_frontend:\n  query_end_cutoff: 30s\n", true, 30 * time.Second},
		{"set to 0", "query_frontend: {query_end_cutoff: 0s}\n", true, 0},
		{"through a merge key", "metrics_generator: {storage: {wal: &qf {query_end_cutoff: 5s}}}\nquery_frontend: {<<: *qf}\n", true, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Load("weft.yaml", []byte(tc.src), false)
			if err != nil {
				t.Fatal(err)
			}
			if c.QueryEndCutoffSet != tc.set || c.QueryFrontend.QueryEndCutoff != tc.want {
				t.Errorf("set %v, query_end_cutoff %s; want %v, %s", c.QueryEndCutoffSet, c.QueryFrontend.QueryEndCutoff, tc.set, tc.want)
			}
		})
	}
	if Default().QueryEndCutoffSet {
		t.Error("Default sets QueryEndCutoffSet")
	}
}

// Keys neither system knows are errors with their line; all are reported.
func TestUnknownKeysAreErrors(t *testing.T) {
	src := `server:
  http_listen_port: 3200
  http_listen_prot: 1
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: "127.0.0.1:4317"
  max_atribute_bytes: 10
bogus: true
`
	_, _, err := Load("weft.yaml", []byte(src), false)
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	for _, w := range []string{
		`weft.yaml:3: server.http_listen_prot: unknown key (did you mean "http_listen_port"?)`,
		`weft.yaml:10: distributor.max_atribute_bytes: unknown key`,
		`weft.yaml:11: bogus: unknown key`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
}

func TestTypeAndValueErrors(t *testing.T) {
	_, _, err := Load("weft.yaml", []byte("server:\n  http_listen_port: abc\n"), false)
	if err == nil || !strings.Contains(err.Error(), "weft.yaml:2:") {
		t.Fatalf("type error: %v", err)
	}
	_, _, err = Load("weft.yaml", []byte("server:\n  log_level: loud\nstorage:\n  trace:\n    backend: s4\n"), false)
	if err == nil || !strings.Contains(err.Error(), "server.log_level") || !strings.Contains(err.Error(), `storage.trace: backend: "s4" is not supported`) {
		t.Fatalf("value errors: %v", err)
	}
	_, _, err = Load("weft.yaml", []byte("live_store:\n  window: -1s\n"), false)
	if err == nil || !strings.Contains(err.Error(), "live_store: window must be positive") {
		t.Fatalf("nested Validate: %v", err)
	}
	_, _, err = Load("weft.yaml", []byte("query_frontend:\n  max_grpc_streaming_packet_size: 0\n"), false)
	if err == nil || !strings.Contains(err.Error(), "max_grpc_streaming_packet_size") || !strings.Contains(err.Error(), "must be positive") {
		t.Fatalf("streaming packet size: %v", err)
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("WEFT_TEST_PORT", "4000")
	src := "server:\n  http_listen_port: ${WEFT_TEST_PORT}\n  grpc_listen_port: ${WEFT_TEST_UNSET:-9999}\n"
	c, _, err := Load("weft.yaml", []byte(src), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.HTTPListenPort != 4000 || c.Server.GRPCListenPort != 9999 {
		t.Fatalf("ports %d %d", c.Server.HTTPListenPort, c.Server.GRPCListenPort)
	}
	if _, _, err := Load("weft.yaml", []byte(src), false); err == nil {
		t.Fatal("without -config.expand-env the reference must stay literal and fail to parse as a port")
	}
}

func TestDurationsDecode(t *testing.T) {
	c, _, err := Load("weft.yaml", []byte("live_store:\n  window: 5m\n  max_bytes: 2097152\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.LiveStore.Window != 5*time.Minute || c.LiveStore.MaxBytes != 2<<20 {
		t.Fatalf("live_store: %+v", c.LiveStore)
	}
}

// Values that become pipeline-node defaults are checked against this file.
func TestNodeDefaultsAreCheckedHere(t *testing.T) {
	_, _, err := Load("weft.yaml", []byte("distributor:\n  partitions: 0\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: nonsense\n"), false)
	if err == nil || !strings.Contains(err.Error(), "distributor: partitions must be between") || !strings.Contains(err.Error(), "distributor.receivers.otlp:") {
		t.Fatalf("err = %v", err)
	}
}

// A trace must not leave the live-store before its block is written.
func TestWindowLongerThanBlockDuration(t *testing.T) {
	_, _, err := Load("weft.yaml", []byte("live_store:\n  window: 1m\nblock_builder:\n  max_block_duration: 2m\n"), false)
	if err == nil || !strings.Contains(err.Error(), "live_store.window (1m0s) must be longer than block_builder.max_block_duration (2m0s)") {
		t.Fatalf("err = %v", err)
	}
}

// The blocks this version added refuse bad values with their key.
func TestLimitKeysAreChecked(t *testing.T) {
	_, _, err := Load("weft.yaml", []byte(`memory_limiter:
  limit_bytes: 1000
overrides:
  per_tenant_override_period: 0s
  defaults:
    ingestion:
      rate_limit_bytes: -1
    global:
      max_bytes_per_trace: -5
`), false)
	for _, want := range []string{"memory_limiter: limit_bytes: must be 0 (off) or at least", "overrides: per_tenant_override_period: must be positive",
		"ingestion.rate_limit_bytes: must not be negative", "global.max_bytes_per_trace: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
	_, _, err = Load("weft.yaml", []byte("server:\n  http_server_read_header_timeout: 0s\n"), false)
	if err == nil || !strings.Contains(err.Error(), "server.http_server_read_header_timeout: must be positive") {
		t.Fatalf("err = %v", err)
	}
	// The keys of the per-trace limits and the slow-client timeouts.
	_, _, err = Load("weft.yaml", []byte(`distributor:
  trace_idle_period: 0s
  receivers:
    otlp:
      protocols:
        grpc: {read_timeout: 0s}
        http: {read_timeout: 1s}
query_frontend:
  max_query_nesting_depth: 0
overrides:
  defaults:
    ingestion:
      max_traces_per_user: -1
`), false)
	for _, want := range []string{"trace_idle_period must be positive", "protocols.grpc.read_timeout must be positive",
		"protocols.http.read_timeout must be at least read_header_timeout (10s)", "max_query_nesting_depth: must be between 1 and 1000",
		"ingestion.max_traces_per_user: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
	// The OTLP protocol blocks decode as strictly as the rest.
	_, _, err = Load("weft.yaml", []byte("distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc: {read_timeot: 1s}\n"), false)
	if err == nil || !strings.Contains(err.Error(), `weft.yaml:5: distributor.receivers.otlp.protocols.grpc.read_timeot: unknown key (did you mean "read_timeout"?)`) {
		t.Fatalf("err = %v", err)
	}
}

// A value of the wrong type is reported with its line and key, saying what
// the key expects, not in yaml.v3's words ("cannot unmarshal !!str").
func TestTypeErrorsSayWhatWasExpected(t *testing.T) {
	src := `server:
  http_listen_port: 3200
query_frontend:
  multi_tenant_queries_enabled: sometimes
  search:
    concurrent_jobs: lots
    query_timeout: soon
memory_limiter:
  refuse_above_ratio: most
memberlist:
  join_members: a:1
  bind_addr: {a: 1}
ingest:
  kafka:
    address: {a: 1}
overrides:
  defaults:
    ingestion: [1]
`
	_, _, err := Load("weft.yaml", []byte(src), false)
	if err == nil {
		t.Fatal("type errors accepted")
	}
	for _, w := range []string{
		`weft.yaml:4: query_frontend.multi_tenant_queries_enabled: "sometimes" is not a boolean (expected true or false)`,
		`weft.yaml:6: query_frontend.search.concurrent_jobs: "lots" is not an integer`,
		`weft.yaml:7: query_frontend.search.query_timeout: "soon" is not a duration (expected e.g. 30s, 5m)`,
		`weft.yaml:9: memory_limiter.refuse_above_ratio: "most" is not a number (expected e.g. 0.5)`,
		`weft.yaml:11: memberlist.join_members: expected a list, found "a:1"`,
		`weft.yaml:12: memberlist.bind_addr: expected a list, found a mapping`,
		`weft.yaml:15: ingest.kafka.address: expected a host:port string or a list of them`,
		`weft.yaml:18: overrides.defaults.ingestion: expected a mapping, found a list`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "cannot unmarshal") || strings.Contains(err.Error(), "!!") {
		t.Errorf("error in yaml.v3's words:\n%v", err)
	}
}

// Tempo's tenant-index keys of storage.trace are used, not ignored: the
// fallback defaults to true, the staleness limit to 0 (three polls), and a
// negative limit is refused naming the key.
func TestTenantIndexKeys(t *testing.T) {
	c := Default()
	if !c.Storage.Trace.BlocklistPollFallback || c.Storage.Trace.BlocklistPollStaleTenantIndex != 0 {
		t.Fatalf("defaults: fallback %v, stale %s", c.Storage.Trace.BlocklistPollFallback, c.Storage.Trace.BlocklistPollStaleTenantIndex)
	}
	src := "storage:\n  trace:\n    blocklist_poll_fallback: false\n    blocklist_poll_stale_tenant_index: 5m\n"
	c, ignored, err := Load("weft.yaml", []byte(src), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ignored) != 0 {
		t.Fatalf("ignored keys %v", ignored)
	}
	if c.Storage.Trace.BlocklistPollFallback || c.Storage.Trace.BlocklistPollStaleTenantIndex != 5*time.Minute {
		t.Fatalf("fallback %v, stale %s", c.Storage.Trace.BlocklistPollFallback, c.Storage.Trace.BlocklistPollStaleTenantIndex)
	}
	_, _, err = Load("weft.yaml", []byte("storage:\n  trace:\n    blocklist_poll_stale_tenant_index: -1s\n"), false)
	if err == nil || !strings.Contains(err.Error(), "storage.trace.blocklist_poll_stale_tenant_index: must not be negative") {
		t.Fatalf("negative limit: %v", err)
	}
}
