package frontend

import (
	"errors"
	"fmt"
	"time"

	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// DefaultMaxGRPCStreamingPacketSize is Tempo's default
// query_frontend.max_grpc_streaming_packet_size: 1 MiB.
const DefaultMaxGRPCStreamingPacketSize = 1 << 20

// Config is the `query_frontend` block, with Tempo's key names.
type Config struct {
	// MaxOutstandingPerTenant caps a tenant's search jobs queued or
	// running at once, all searches together. A search starts with one
	// job and widens (up to search.concurrent_jobs) while the tenant's
	// jobs are under 3/4 of the limit; a search starting when the tenant
	// is at the limit waits for a slot, and gets 429 only when the tenant
	// runs that many searches.
	MaxOutstandingPerTenant int `yaml:"max_outstanding_per_tenant"`
	// QueryEndCutoff clamps the end of a search to now minus this, as
	// the newest spans may not all have arrived; 0 disables the clamp.
	// The app passes the effective value: 0 in monolithic mode unless the
	// config file sets the key (see app.EffectiveQueryEndCutoff).
	QueryEndCutoff time.Duration `yaml:"query_end_cutoff"`
	// MaxQueryExpressionSizeBytes caps the length of a TraceQL query.
	MaxQueryExpressionSizeBytes int `yaml:"max_query_expression_size_bytes"`
	// MaxQueryNestingDepth caps how deep a TraceQL query nests (spanset
	// filter bodies, parentheses, function arguments, unary operators):
	// weft only, at most 1000.
	MaxQueryNestingDepth int `yaml:"max_query_nesting_depth"`
	// MaxQueryPipelineStages caps the stages of a TraceQL query's
	// pipelines (one more than its "|"), as each stage walks the spansets
	// of every trace read: weft only; above it a search gets 400.
	MaxQueryPipelineStages int `yaml:"max_query_pipeline_stages"`
	// MaxQueryRegexSize caps the instructions a regular expression of a
	// TraceQL query compiles to (estimated before compiling), as memory
	// and time grow with it: weft only; above it a search gets 400.
	MaxQueryRegexSize int `yaml:"max_query_regex_size"`
	// MultiTenantQueriesEnabled lets a query name several tenants in
	// X-Scope-OrgID ("a|b|c", multi-tenancy on): it runs for each and the
	// answers merge. When false such a header is refused with 400.
	MultiTenantQueriesEnabled bool `yaml:"multi_tenant_queries_enabled"`
	// MaxGRPCStreamingPacketSize caps the bytes of one message of the
	// streaming query API (tempopb.StreamingQuerier): a larger answer is
	// cut into several, each carrying the metrics.
	MaxGRPCStreamingPacketSize int `yaml:"max_grpc_streaming_packet_size"`
	// Search configures /api/search.
	Search SearchConfig `yaml:"search"`
	// Metrics configures /api/metrics/query_range and /api/metrics/query.
	Metrics MetricsConfig `yaml:"metrics"`
}

// SearchConfig is the `query_frontend.search` block.
type SearchConfig struct {
	// ConcurrentJobs caps the jobs of one search running at once.
	ConcurrentJobs int `yaml:"concurrent_jobs"`
	// TargetBytesPerJob is the size of block jobs (bytes of data.parquet).
	TargetBytesPerJob int64 `yaml:"target_bytes_per_job"`
	// DefaultResultLimit is the limit of a search that gives none.
	DefaultResultLimit int `yaml:"default_result_limit"`
	// MaxResultLimit caps limit; above it a search gets 400.
	MaxResultLimit int `yaml:"max_result_limit"`
	// MaxDuration caps end − start; above it a search gets 400.
	MaxDuration time.Duration `yaml:"max_duration"`
	// QueryBackendAfter is the window a search without start and end
	// covers: [now − QueryBackendAfter, now − QueryEndCutoff].
	QueryBackendAfter time.Duration `yaml:"query_backend_after"`
	// DefaultSpansPerSpanSet is the spss of a search that gives none.
	DefaultSpansPerSpanSet int `yaml:"default_spans_per_span_set"`
	// MaxSpansPerSpanSet caps spss; above it a search gets 400.
	MaxSpansPerSpanSet int `yaml:"max_spans_per_span_set"`
	// QueryTimeout bounds a whole search; past it the search fails with
	// 504 naming this key. 0 disables it. The default is under
	// server.http_server_write_timeout (30s), so that the 504 reaches the
	// client.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// MaxResultBytes bounds the memory one search's results hold (the
	// traces and spansets its jobs and the merge keep, as accounted):
	// weft only. Past it the search gets 400 naming this key. 0 is no
	// bound.
	MaxResultBytes int64 `yaml:"max_result_bytes"`
	// MaxTagReadBytes bounds the trace data a tag request reading whole
	// traces (a v2 filter q, rootName and rootServiceName values) holds:
	// weft only. Past it the blocks left are not read and the answer
	// (partial) names this key in a Warning header. 0 is no bound.
	MaxTagReadBytes int64 `yaml:"max_tag_read_bytes"`
}

// DefaultConfig is Tempo's defaults.
func DefaultConfig() Config {
	return Config{
		MaxOutstandingPerTenant:     2000,
		QueryEndCutoff:              30 * time.Second,
		MaxQueryExpressionSizeBytes: traceql.DefaultMaxBytes,
		MaxQueryNestingDepth:        traceql.DefaultMaxDepth,
		MaxQueryPipelineStages:      traceql.DefaultMaxStages,
		MaxQueryRegexSize:           traceql.DefaultMaxRegexSize,
		MultiTenantQueriesEnabled:   true,
		MaxGRPCStreamingPacketSize:  DefaultMaxGRPCStreamingPacketSize,
		Search: SearchConfig{
			ConcurrentJobs:         1000,
			TargetBytesPerJob:      search.DefaultTargetBytesPerJob,
			DefaultResultLimit:     search.DefaultLimit,
			MaxResultLimit:         search.MaxLimit,
			MaxDuration:            168 * time.Hour,
			QueryBackendAfter:      15 * time.Minute,
			DefaultSpansPerSpanSet: search.DefaultSpansPerSpanSet,
			MaxSpansPerSpanSet:     search.MaxSpansPerSpanSet,
			QueryTimeout:           25 * time.Second,
			MaxResultBytes:         search.DefaultMaxResultBytes,
			MaxTagReadBytes:        search.DefaultMaxTagReadBytes,
		},
		Metrics: DefaultMetricsConfig(),
	}
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, key string, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
		}
	}
	s := &c.Search
	check(c.MaxOutstandingPerTenant > 0, "max_outstanding_per_tenant", "must be positive")
	check(c.QueryEndCutoff >= 0, "query_end_cutoff", "must not be negative")
	check(c.MaxQueryExpressionSizeBytes > 0, "max_query_expression_size_bytes", "must be positive")
	check(c.MaxQueryNestingDepth > 0 && c.MaxQueryNestingDepth <= traceql.HardMaxDepth, "max_query_nesting_depth", "must be between 1 and %d", traceql.HardMaxDepth)
	check(c.MaxQueryPipelineStages > 0, "max_query_pipeline_stages", "must be positive")
	check(c.MaxQueryRegexSize > 0, "max_query_regex_size", "must be positive")
	check(c.MaxGRPCStreamingPacketSize > 0, "max_grpc_streaming_packet_size", "must be positive")
	check(s.ConcurrentJobs > 0, "search.concurrent_jobs", "must be positive")
	check(s.TargetBytesPerJob > 0, "search.target_bytes_per_job", "must be positive")
	check(s.MaxResultLimit > 0 && s.MaxResultLimit <= search.MaxLimit, "search.max_result_limit", "must be between 1 and %d", search.MaxLimit)
	check(s.DefaultResultLimit > 0 && s.DefaultResultLimit <= s.MaxResultLimit, "search.default_result_limit", "must be between 1 and search.max_result_limit")
	check(s.MaxSpansPerSpanSet > 0 && s.MaxSpansPerSpanSet <= search.MaxSpansPerSpanSet, "search.max_spans_per_span_set", "must be between 1 and %d", search.MaxSpansPerSpanSet)
	check(s.DefaultSpansPerSpanSet > 0 && s.DefaultSpansPerSpanSet <= s.MaxSpansPerSpanSet, "search.default_spans_per_span_set", "must be between 1 and search.max_spans_per_span_set")
	check(s.MaxDuration > 0, "search.max_duration", "must be positive")
	check(s.QueryBackendAfter > 0, "search.query_backend_after", "must be positive")
	check(s.QueryTimeout >= 0, "search.query_timeout", "must not be negative")
	check(s.MaxResultBytes >= 0, "search.max_result_bytes", "must not be negative")
	check(s.MaxTagReadBytes >= 0, "search.max_tag_read_bytes", "must not be negative")
	c.Metrics.validate(check)
	return errors.Join(errs...)
}
