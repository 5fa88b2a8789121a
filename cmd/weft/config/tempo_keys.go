package config

import "strings"

// tempoKeys are configuration keys Grafana Tempo 3 knows and weft does not
// use (yet). A key listed here, or any key below it, is accepted with a
// warning, so that a Tempo config file starts weft. Keys weft uses are not
// listed: they are the fields of Config.
var tempoKeys = []string{
	// top level
	"http_api_prefix", "shutdown_delay",
	"enable_go_runtime_metrics", "memory", "internal_server", "live_store_client",
	"usage_report",
	// metrics-generator (the keys weft reads are Config.MetricsGenerator's)
	"metrics_generator.ring", "metrics_generator.processor.local_blocks", "metrics_generator.registry.max_cardinality_per_label",
	"metrics_generator.storage.wal",
	"metrics_generator.traces_storage", "metrics_generator.traces_query_storage", "metrics_generator.query_timeout",
	"metrics_generator.override_ring_key", "metrics_generator.codec", "metrics_generator.disable_grpc",
	"metrics_generator.assigned_partitions", "metrics_generator.instance_id", "metrics_generator.ingest_concurrency",
	"metrics_generator.leave_consumer_group_on_shutdown", "metrics_generator.consumer_group",
	"memberlist.randomize_node_name", "memberlist.max_join_retries", "memberlist.cluster_label",
	"memberlist.cluster_label_verification_disabled", "memberlist.stream_timeout", "memberlist.retransmit_factor",
	"memberlist.packet_dial_timeout", "memberlist.packet_write_timeout", "memberlist.tls_enabled",
	"memberlist.message_history_buffer_bytes", "memberlist.left_ingesters_timeout",
	"ingest.enabled", "ingest.kafka.producer_max_buffered_bytes", "ingest.kafka.consumer_group_offset_commit_interval",
	"ingest.kafka.last_produced_offset_retry_timeout", "ingest.kafka.target_consumer_lag_at_startup",
	"ingest.kafka.max_consumer_lag_at_startup", "ingest.kafka.disable_kafka_telemetry",
	"cache", "backend_scheduler_client", "backend_scheduler.local_work_path",
	"backend_worker.ring", "backend_worker.compaction.max_bytes_per_trace", "backend_worker.compaction.v2_in_buffer_bytes",
	"backend_worker.compaction.v2_out_buffer_bytes", "backend_worker.compaction.v2_prefetch_traces_count",
	// query_frontend and querier
	"query_frontend.trace_by_id", "query_frontend.api_timeout", "query_frontend.mcp_server", "query_frontend.search.metadata_slo",
	"query_frontend.metrics.interval", "query_frontend.metrics.streaming_shards", "query_frontend.metrics.duration_slo",
	"query_frontend.metrics.throughput_bytes_slo", "query_frontend.metrics.max_batch_size",
	"query_frontend.search.query_ingesters_until",
	"query_frontend.search.duration_slo", "query_frontend.search.throughput_bytes_slo",
	"query_frontend.max_batch_size", "query_frontend.max_retries", "query_frontend.search.ingester_shards",
	"query_frontend.search.most_recent_shards",
	"querier.query_relevant_ingesters",
	// server (dskit)
	"server.http_listen_network", "server.http_listen_conn_limit", "server.grpc_listen_network",
	"server.grpc_listen_conn_limit", "server.tls_cipher_suites", "server.tls_min_version",
	"server.http_tls_config", "server.grpc_tls_config", "server.register_instrumentation",
	"server.report_grpc_codes_in_instrumentation_label_enabled", "server.server_graceful_shutdown_timeout",
	"server.grpc_server_max_recv_msg_size", "server.grpc_server_max_send_msg_size",
	"server.grpc_server_max_concurrent_streams", "server.grpc_server_max_connection_idle",
	"server.grpc_server_max_connection_age", "server.grpc_server_max_connection_age_grace",
	"server.grpc_server_keepalive_time", "server.grpc_server_keepalive_timeout",
	"server.grpc_server_min_time_between_pings", "server.grpc_server_ping_without_stream_allowed",
	"server.grpc_server_num_workers", "server.log_source_ips_enabled", "server.log_source_ips_header",
	"server.log_source_ips_regex", "server.log_request_headers", "server.log_request_at_info_level_enabled",
	"server.log_request_exclude_headers_list", "server.http_path_prefix", "server.http_server_idle_timeout_disabled",
	"server.log_level_overrides", "server.http_middleware_disabled",
	// distributor
	"distributor.ring",
	"distributor.receivers.jaeger.protocols.grpc.tls", "distributor.receivers.jaeger.protocols.grpc.keepalive",
	"distributor.receivers.jaeger.protocols.grpc.include_metadata", "distributor.receivers.jaeger.protocols.grpc.auth",
	"distributor.receivers.jaeger.protocols.thrift_http.tls", "distributor.receivers.jaeger.protocols.thrift_http.cors",
	"distributor.receivers.jaeger.protocols.thrift_http.include_metadata", "distributor.receivers.jaeger.protocols.thrift_http.auth",
	"distributor.receivers.jaeger.protocols.thrift_compact.socket_buffer_size", "distributor.receivers.jaeger.protocols.thrift_binary.socket_buffer_size",
	"distributor.receivers.jaeger.remote_sampling",
	"distributor.receivers.zipkin.tls", "distributor.receivers.zipkin.cors", "distributor.receivers.zipkin.include_metadata",
	"distributor.receivers.zipkin.auth",
	"distributor.receivers.kafka", "distributor.receivers.opencensus", "distributor.receivers.otlp.protocols.grpc.tls",
	"distributor.receivers.otlp.protocols.grpc.keepalive", "distributor.receivers.otlp.protocols.grpc.include_metadata",
	"distributor.receivers.otlp.protocols.grpc.max_concurrent_streams", "distributor.receivers.otlp.protocols.grpc.read_buffer_size",
	"distributor.receivers.otlp.protocols.grpc.write_buffer_size", "distributor.receivers.otlp.protocols.grpc.auth",
	"distributor.receivers.otlp.protocols.http.tls", "distributor.receivers.otlp.protocols.http.cors",
	"distributor.receivers.otlp.protocols.http.include_metadata", "distributor.receivers.otlp.protocols.http.auth",
	"distributor.receivers.otlp.protocols.http.traces_url_path", "distributor.receivers.otlp.protocols.http.logs_url_path",
	"distributor.receivers.otlp.protocols.http.metrics_url_path", "distributor.receivers.otlp.protocols.http.response_headers",
	"distributor.log_received_spans", "distributor.log_discarded_spans", "distributor.metric_received_spans",
	"distributor.forwarders", "distributor.extend_writes", "distributor.usage", "distributor.ingester_write_path_enabled",
	"distributor.kafka_write_path_enabled", "distributor.override_ring_key", "distributor.artificial_delay",
	// live-store
	"live_store.ring", "live_store.partition_ring", "live_store.wal", "live_store.complete_block_timeout",
	"live_store.complete_block_concurrency", "live_store.max_trace_idle", "live_store.max_trace_live",
	"live_store.max_block_duration", "live_store.max_block_bytes", "live_store.max_live_traces_bytes",
	"live_store.flush_check_period", "live_store.commit_interval", "live_store.fail_on_high_lag",
	"live_store.readiness_target_lag", "live_store.readiness_max_wait", "live_store.block_config",
	"live_store.query_block_concurrency", "live_store.remove_owner_on_shutdown", "live_store.shutdown_marker_dir",
	"live_store.instance_id", "live_store.block_reclaim_grace", "live_store.consume_from_kafka",
	// block-builder
	"block_builder.consume_cycle_duration", "block_builder.max_consuming_bytes", "block_builder.block",
	"block_builder.assigned_partitions", "block_builder.partitions_per_instance", "block_builder.instance_id",
	"block_builder.global_block_config", "block_builder.lookback_on_no_commit", "block_builder.wal.version",
	// storage
	"storage.trace.wal.v2_encoding", "storage.trace.wal.search_encoding", "storage.trace.wal.ingestion_time_range_slack",
	"storage.trace.wal.version", "storage.trace.wal.completedfilepath", "storage.trace.wal.blocksfilepath", "storage.trace.block", "storage.trace.search",
	"storage.trace.blocklist_poll_concurrency",
	"storage.trace.blocklist_poll_tenant_index_builders",
	"storage.trace.blocklist_poll_jitter_ms", "storage.trace.blocklist_poll_tolerate_consecutive_errors",
	"storage.trace.blocklist_poll_tenant_concurrency", "storage.trace.empty_tenant_deletion_enabled",
	"storage.trace.empty_tenant_deletion_age", "storage.trace.pool", "storage.trace.cache",
	"storage.trace.background_cache", "storage.trace.memcached", "storage.trace.redis",
	"storage.trace.s3.storage_class", "storage.trace.s3.hedge_requests_at", "storage.trace.s3.hedge_requests_up_to",
	"storage.trace.s3.signature_v2", "storage.trace.s3.tags", "storage.trace.s3.sse", "storage.trace.s3.part_size",
	"storage.trace.s3.bucket_lookup_type", "storage.trace.s3.native_aws_auth_enabled", "storage.trace.s3.list_blocks_concurrency",
	"storage.trace.s3.session_token", "storage.trace.s3.insecure_skip_verify", "storage.trace.s3.tls_cipher_suites",
	"storage.trace.s3.tls_min_version", "storage.trace.s3.http_config", "storage.trace.s3.max_retries",
	"storage.trace.gcs", "storage.trace.azure",
	// overrides
	"overrides.defaults.ingestion.retry_info_enabled",
	"overrides.defaults.ingestion.max_global_traces_per_user", "overrides.defaults.ingestion.tenant_shard_size",
	"overrides.defaults.read.max_blocks_per_tag_values_query", "overrides.defaults.read.max_condition_groups_per_tag_query",
	"overrides.defaults.read.max_search_duration",
	"overrides.defaults.read.max_bytes_per_trace", "overrides.defaults.read.unsafe_query_hints",
	"overrides.defaults.read.left_pad_trace_ids", "overrides.defaults.compaction.compaction_window",
	"overrides.defaults.metrics_generator.ring_size", "overrides.defaults.metrics_generator.ingestion_time_range_slack",
	"overrides.defaults.metrics_generator.collection_interval", "overrides.defaults.metrics_generator.forwarder",
	"overrides.defaults.metrics_generator.generate_native_histograms", "overrides.defaults.metrics_generator.native_histogram_bucket_factor",
	"overrides.defaults.metrics_generator.native_histogram_max_bucket_number", "overrides.defaults.metrics_generator.native_histogram_min_reset_duration",
	"overrides.defaults.metrics_generator.trace_id_label_name", "overrides.defaults.metrics_generator.max_active_entities",
	"overrides.defaults.metrics_generator.max_cardinality_per_label",
	"overrides.defaults.metrics_generator.processor.local_blocks", "overrides.defaults.metrics_generator.processor.host_info",
	"overrides.defaults.metrics_generator.processor.span_metrics.filter_policies", "overrides.defaults.metrics_generator.processor.span_metrics.dimension_mappings",
	"overrides.defaults.metrics_generator.processor.span_metrics.target_info_excluded_dimensions", "overrides.defaults.metrics_generator.processor.span_metrics.enable_instance_label",
	"overrides.defaults.metrics_generator.processor.service_graphs.span_multiplier_key",
	"overrides.defaults.forwarders", "overrides.defaults.storage", "overrides.defaults.cost_attribution",
	"overrides.user_configurable_overrides", "overrides.enable_legacy_overrides",
}

// isTempoKey reports whether path, or a key above it, is a Tempo key.
func isTempoKey(path string) bool {
	for _, k := range tempoKeys {
		if path == k || strings.HasPrefix(path, k+".") || strings.HasPrefix(path, k+"[") {
			return true
		}
	}
	return false
}

// IsTempoOverridesKey tells whether key, a path inside one tenant's block of
// overrides (such as "ingestion.tenant_shard_size"), is a Tempo key weft
// does not use: the runtime overrides file tolerates those with a warning.
func IsTempoOverridesKey(key string) bool { return isTempoKey("overrides.defaults." + key) }
