package overrides

import (
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/yamlx"
)

// legacyKeys maps the keys of Tempo 2's flat (legacy) form of a tenant's
// limits to their path in the scoped form (weft's and Tempo 3's).
var legacyKeys = map[string]string{
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

// LegacyKey is a key of Tempo 2's flat form found in a block of limits, and
// what became of it.
type LegacyKey struct {
	// Key is the flat key, such as "max_traces_per_user".
	Key string
	// Note says where it went: "mapped to <path>", or why it was not used.
	Note string
}

// MapLegacy moves the keys of Tempo 2's flat (legacy) form of limits found
// in the mapping src to their path in the scoped form, below dst at prefix
// (a dotted path; empty for dst itself), before the block is decoded. src
// and dst are the same node for one tenant's block of a runtime file; for a
// config file, src is the overrides block and dst its root with the prefix
// "overrides.defaults". A scoped key set in the file wins over the flat one
// mapped to it; the flat key is removed either way. notUsed, if not nil,
// tells which scoped keys (relative to prefix) weft knows but does not use
// yet, for the note. The keys are returned in the order of the file.
func MapLegacy(src, dst *yaml.Node, prefix string, notUsed func(key string) bool) []LegacyKey {
	if src == nil || src.Kind != yaml.MappingNode {
		return nil
	}
	// Take the flat keys out first: when src is dst, a key put back at its
	// own path (forwarders) or a mapping created must not be seen again.
	type flat struct {
		key   *yaml.Node
		value *yaml.Node
		to    string
	}
	var found []flat
	kept := src.Content[:0]
	for i := 0; i+1 < len(src.Content); i += 2 {
		k, v := src.Content[i], src.Content[i+1]
		if to, ok := legacyKeys[k.Value]; ok {
			found = append(found, flat{k, v, to})
			continue
		}
		kept = append(kept, k, v)
	}
	src.Content = kept
	var out []LegacyKey
	for _, f := range found {
		full := f.to
		if prefix != "" {
			full = prefix + "." + f.to
		}
		note := "mapped to " + full
		switch {
		case yamlx.GetPath(dst, full) != nil:
			note = "not used: " + full + " is set and wins"
		case !yamlx.SetPath(dst, full, f.value):
			// A node on the way is not a mapping: put the key back for
			// decoding to report it.
			src.Content = append(src.Content, f.key, f.value)
			continue
		case notUsed != nil && notUsed(f.to):
			note += " (which weft does not use yet)"
		}
		out = append(out, LegacyKey{Key: f.key.Value, Note: note})
	}
	return out
}
