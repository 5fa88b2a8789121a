package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// Tempo2Key is a key of a Grafana Tempo 2.x config that weft maps to one of
// its own keys, or does not need, and what it does with it.
type Tempo2Key struct {
	// Key is the dotted path of the key in the config file.
	Key string
	// Note says how the key maps to weft, or why it is not needed.
	Note string
}

// Tempo2WarningMsg is the message of the one warning that lists the Tempo
// 2.x keys of a config file, each with its Tempo2Key.Note.
const Tempo2WarningMsg = "config has Grafana Tempo 2.x keys: each is mapped to weft's key or not needed, as noted"

// Report is what Load found in a config file besides weft's own keys.
type Report struct {
	// Ignored are the Tempo keys weft does not use (yet), the highest of
	// each ignored subtree.
	Ignored []string
	// Tempo2 are the Tempo 2.x keys, each with what weft does with it: the
	// mapped ones first, then the others in the order of the file.
	Tempo2 []Tempo2Key
}

// Tempo2Args returns the Tempo 2.x keys as key/note pairs, for
// slog.Logger.Warn(Tempo2WarningMsg, r.Tempo2Args()...).
func (r Report) Tempo2Args() []any {
	args := make([]any, 0, 2*len(r.Tempo2))
	for _, k := range r.Tempo2 {
		args = append(args, k.Key, k.Note)
	}
	return args
}

// tempo2Blocks are the Tempo 2.x keys weft does not need, with why. A key
// listed here, or any key below it, is accepted; the whole subtree gets the
// one note.
var tempo2Blocks = []Tempo2Key{
	{"ingester", "not needed: weft's live_store (recent traces) and block_builder (blocks in object storage) do the ingester's work; its settings are not carried over"},
	{"ingester_client", "not needed: weft has no ingester"},
	{"compactor", "not needed: the backend-scheduler and backend-worker do the compactor's work (backend_scheduler, backend_worker blocks); of compactor.compaction, the retention and compaction keys they share are mapped (listed apart)"},
	{"metrics_generator_client", "not needed: spans reach the metrics-generator through the pipeline (Kafka between processes)"},
	{"querier.frontend_worker", "not needed: the query-frontend finds the queriers through memberlist"},
	{"search_enabled", "not needed: search is always on"},
	{"distributor.metrics_generator_enabled", "not needed: the pipeline feeds the metrics-generator; which processors run is overrides.defaults.metrics_generator.processors"},
	{"storage.trace.wal.encoding", "not needed: of storage.trace.wal weft uses only the path"},
	{"query_frontend.multi_tenant_queries_enabled", "not needed: weft has no cross-tenant queries; a query names one tenant"},
}

// tempo2Note returns the note of path when it is a Tempo 2.x key of
// tempo2Blocks, or a key below one.
func tempo2Note(path string) (Tempo2Key, bool) {
	for _, k := range tempo2Blocks {
		if path == k.Key || strings.HasPrefix(path, k.Key+".") || strings.HasPrefix(path, k.Key+"[") {
			return k, true
		}
	}
	return Tempo2Key{}, false
}

// compactorMap is where the keys of Tempo 2's compactor.compaction go.
var compactorMap = []struct{ from, to string }{
	{"block_retention", "backend_worker.compaction.block_retention"},
	{"compacted_block_retention", "backend_worker.compaction.compacted_block_retention"},
	{"compaction_window", "backend_scheduler.provider.compaction.compaction.compaction_window"},
	{"max_compaction_objects", "backend_scheduler.provider.compaction.compaction.max_compaction_objects"},
	{"max_block_bytes", "backend_scheduler.provider.compaction.compaction.max_block_bytes"},
	{"compaction_cycle", "backend_scheduler.provider.compaction.compaction.compaction_cycle"},
}

// legacyOverrides maps the keys of Tempo 2's flat (legacy) form of the
// overrides block to the path under overrides.defaults of the scoped form.
// Those weft does not use then count as ignored Tempo keys.
var legacyOverrides = map[string]string{
	"ingestion_rate_strategy":                                                  "ingestion.rate_strategy",
	"ingestion_rate_limit_bytes":                                               "ingestion.rate_limit_bytes",
	"ingestion_burst_size_bytes":                                               "ingestion.burst_size_bytes",
	"max_traces_per_user":                                                      "ingestion.max_traces_per_user",
	"max_global_traces_per_user":                                               "ingestion.max_global_traces_per_user",
	"forwarders":                                                               "forwarders",
	"metrics_generator_ring_size":                                              "metrics_generator.ring_size",
	"metrics_generator_processors":                                             "metrics_generator.processors",
	"metrics_generator_max_active_series":                                      "metrics_generator.max_active_series",
	"metrics_generator_collection_interval":                                    "metrics_generator.collection_interval",
	"metrics_generator_disable_collection":                                     "metrics_generator.disable_collection",
	"metrics_generator_trace_id_label_name":                                    "metrics_generator.trace_id_label_name",
	"metrics_generator_remote_write_headers":                                   "metrics_generator.remote_write_headers",
	"metrics_generator_forwarder_queue_size":                                   "metrics_generator.forwarder.queue_size",
	"metrics_generator_forwarder_workers":                                      "metrics_generator.forwarder.workers",
	"metrics_generator_ingestion_time_range_slack":                             "metrics_generator.ingestion_time_range_slack",
	"metrics_generator_processor_service_graphs_histogram_buckets":             "metrics_generator.processor.service_graphs.histogram_buckets",
	"metrics_generator_processor_service_graphs_dimensions":                    "metrics_generator.processor.service_graphs.dimensions",
	"metrics_generator_processor_service_graphs_peer_attributes":               "metrics_generator.processor.service_graphs.peer_attributes",
	"metrics_generator_processor_service_graphs_enable_client_server_prefix":   "metrics_generator.processor.service_graphs.enable_client_server_prefix",
	"metrics_generator_processor_span_metrics_histogram_buckets":               "metrics_generator.processor.span_metrics.histogram_buckets",
	"metrics_generator_processor_span_metrics_dimensions":                      "metrics_generator.processor.span_metrics.dimensions",
	"metrics_generator_processor_span_metrics_intrinsic_dimensions":            "metrics_generator.processor.span_metrics.intrinsic_dimensions",
	"metrics_generator_processor_span_metrics_filter_policies":                 "metrics_generator.processor.span_metrics.filter_policies",
	"metrics_generator_processor_span_metrics_dimension_mappings":              "metrics_generator.processor.span_metrics.dimension_mappings",
	"metrics_generator_processor_span_metrics_enable_target_info":              "metrics_generator.processor.span_metrics.enable_target_info",
	"metrics_generator_processor_span_metrics_target_info_excluded_dimensions": "metrics_generator.processor.span_metrics.target_info_excluded_dimensions",
	"metrics_generator_processor_local_blocks_max_live_traces":                 "metrics_generator.processor.local_blocks.max_live_traces",
	"metrics_generator_processor_local_blocks_max_block_duration":              "metrics_generator.processor.local_blocks.max_block_duration",
	"metrics_generator_processor_local_blocks_max_block_bytes":                 "metrics_generator.processor.local_blocks.max_block_bytes",
	"metrics_generator_processor_local_blocks_flush_check_period":              "metrics_generator.processor.local_blocks.flush_check_period",
	"metrics_generator_processor_local_blocks_trace_idle_period":               "metrics_generator.processor.local_blocks.trace_idle_period",
	"metrics_generator_processor_local_blocks_complete_block_timeout":          "metrics_generator.processor.local_blocks.complete_block_timeout",
	"block_retention":                 "compaction.block_retention",
	"compaction_window":               "compaction.compaction_window",
	"max_bytes_per_tag_values_query":  "read.max_bytes_per_tag_values_query",
	"max_blocks_per_tag_values_query": "read.max_blocks_per_tag_values_query",
	"max_search_duration":             "read.max_search_duration",
	"max_bytes_per_trace":             "global.max_bytes_per_trace",
	"parquet_dedicated_columns":       "storage.dedicated_columns",
}

// mapTempo2 rewrites the Tempo 2.x keys of doc that have a meaning in weft
// into weft's keys, before doc is decoded, and returns a note for each.
// A weft key set in the file wins over the Tempo 2.x key mapped to it. The
// value nodes are shared, not copied, so that an error in one still names
// its line. compactor is left in place (the Unknown hook of Load drops it
// whole, with a note), so that an anchor in it stays whole; the keys of the
// flat form of overrides are removed, as weft's overrides block has no
// place for them.
func mapTempo2(doc *yaml.Node) []Tempo2Key {
	root := docMapping(doc)
	if root == nil {
		return nil
	}
	var notes []Tempo2Key

	// auth_enabled: Tempo 2's name of multitenancy_enabled.
	if v := mapGet(root, "auth_enabled"); v != nil {
		note := "mapped to multitenancy_enabled"
		if mapGet(root, "multitenancy_enabled") != nil {
			note = "not used: multitenancy_enabled is set and wins"
		} else {
			mapSet(root, "multitenancy_enabled", v)
		}
		mapDelete(root, "auth_enabled")
		notes = append(notes, Tempo2Key{"auth_enabled", note})
	}

	// compactor.compaction: retention and compaction settings.
	if c := mapGet(mapGet(root, "compactor"), "compaction"); c != nil && c.Kind == yaml.MappingNode {
		for _, m := range compactorMap {
			v := mapGet(c, m.from)
			if v == nil {
				continue
			}
			if pathGet(root, m.to) != nil {
				notes = append(notes, Tempo2Key{"compactor.compaction." + m.from, "not used: " + m.to + " is set and wins"})
				continue
			}
			if pathSet(root, m.to, v) {
				notes = append(notes, Tempo2Key{"compactor.compaction." + m.from, "mapped to " + m.to})
			}
		}
	}

	// The flat (legacy) form of overrides.
	if o := mapGet(root, "overrides"); o != nil && o.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(o.Content); {
			k := o.Content[i].Value
			to, ok := legacyOverrides[k]
			if !ok {
				i += 2
				continue
			}
			full := "overrides.defaults." + to
			note := "mapped to " + full
			if pathGet(root, full) != nil {
				note = "not used: " + full + " is set and wins"
			} else if !pathSet(root, full, o.Content[i+1]) {
				i += 2 // overrides.defaults is not a mapping: decoding reports it
				continue
			}
			if !weftUsesOverride(full) {
				note += " (which weft does not use yet)"
			}
			notes = append(notes, Tempo2Key{"overrides." + k, note})
			o.Content = append(o.Content[:i], o.Content[i+2:]...)
		}
	}
	// The local-blocks processor of Tempo 2's metrics-generator, which
	// served TraceQL metrics: weft answers those from its live-stores and
	// blocks.
	if p := pathGet(root, "overrides.defaults.metrics_generator.processors"); p != nil && p.Kind == yaml.SequenceNode {
		kept := p.Content[:0]
		for _, it := range p.Content {
			if it.Kind == yaml.ScalarNode && it.Value == localBlocksProcessor {
				notes = append(notes, Tempo2Key{"overrides.defaults.metrics_generator.processors[" + localBlocksProcessor + "]",
					"not needed: weft runs TraceQL metrics queries on its live-stores and blocks; the processor is dropped from the list"})
				continue
			}
			kept = append(kept, it)
		}
		p.Content = kept
	}
	return notes
}

// localBlocksProcessor is the name of Tempo 2's local-blocks processor.
const localBlocksProcessor = "local-blocks"

// weftUsesOverride reports whether path, under overrides.defaults, is a key
// weft reads rather than a tolerated Tempo key.
func weftUsesOverride(path string) bool { return !isTempoKey(path) }

// docMapping returns the mapping at the root of doc, or nil.
func docMapping(doc *yaml.Node) *yaml.Node {
	n := doc
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

// mapGet returns the value of key in mapping m (an alias resolved), or nil.
func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m != nil && m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				return v.Alias
			}
			return v
		}
	}
	return nil
}

// mapSet adds key: v to mapping m (which does not have key).
func mapSet(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: v.Line, Column: v.Column}, v)
}

// mapDelete removes key from mapping m.
func mapDelete(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// pathGet returns the value at the dotted path below root, or nil. A key
// whose value is null counts as absent.
func pathGet(root *yaml.Node, path string) *yaml.Node {
	n := root
	for _, k := range strings.Split(path, ".") {
		n = mapGet(n, k)
		if n == nil {
			return nil
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	return n
}

// pathSet sets the value at the dotted path below root to v, creating the
// mappings on the way, or replacing a null one. It returns false, changing
// nothing, when a node on the way is not a mapping.
func pathSet(root *yaml.Node, path string, v *yaml.Node) bool {
	keys := strings.Split(path, ".")
	n := root
	for i, k := range keys[:len(keys)-1] {
		next := mapGet(n, k)
		if next != nil && next.Kind == yaml.ScalarNode && next.Tag == "!!null" {
			mapDelete(n, k)
			next = nil
		}
		if next == nil {
			// Create the rest of the path in one go.
			leaf := v
			for j := len(keys) - 1; j > i; j-- {
				m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: v.Line, Column: v.Column}
				mapSet(m, keys[j], leaf)
				leaf = m
			}
			mapSet(n, k, leaf)
			return true
		}
		if next.Kind != yaml.MappingNode {
			return false
		}
		n = next
	}
	last := keys[len(keys)-1]
	mapDelete(n, last)
	mapSet(n, last, v)
	return true
}
