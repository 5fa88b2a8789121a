package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/weftdb/weft/backend/compaction"
)

// Config is the backend_scheduler block, with Tempo's keys and defaults.
type Config struct {
	// Work tunes the job state kept in work.json.
	Work WorkConfig `yaml:"work"`
	// MaintenanceInterval is how often the scheduler checks the leases of
	// running jobs and prunes finished ones.
	MaintenanceInterval time.Duration `yaml:"maintenance_interval"`
	// BackendFlushInterval is accepted for Tempo configs; weft saves
	// work.json on every change of a job, so that a restart never hands
	// out a job twice.
	BackendFlushInterval time.Duration `yaml:"backend_flush_interval"`
	// Provider says which jobs are planned and when.
	Provider ProviderConfig `yaml:"provider"`
	// JobTimeout is how long a worker's request for a job waits for one.
	JobTimeout time.Duration `yaml:"job_timeout"`
	// JobLease (weft) is how long a running job stays its worker's
	// without word from it; past it the job is handed to another worker.
	// Workers renew it every third of it.
	JobLease time.Duration `yaml:"job_lease"`
}

// WorkConfig is backend_scheduler.work.
type WorkConfig struct {
	// PruneAge is how long finished jobs stay in work.json (and on the
	// status page).
	PruneAge time.Duration `yaml:"prune_age"`
	// DeadJobTimeout is accepted for Tempo configs; weft hands out again
	// a job whose worker is gone once its lease (job_lease) runs out.
	DeadJobTimeout time.Duration `yaml:"dead_job_timeout"`
}

// ProviderConfig is backend_scheduler.provider.
type ProviderConfig struct {
	Retention  RetentionProviderConfig  `yaml:"retention"`
	Compaction CompactionProviderConfig `yaml:"compaction"`
	Redaction  RedactionProviderConfig  `yaml:"redaction"`
}

// RedactionProviderConfig is backend_scheduler.provider.redaction.
type RedactionProviderConfig struct {
	// PollInterval is how often unfinished redaction requests are moved
	// on (besides each job report and each compaction cycle).
	PollInterval time.Duration `yaml:"poll_interval"`
	// RescanDelay is how long a request whose jobs are done waits before
	// it reads the block list again for blocks none of its jobs read
	// (outputs of a compaction that raced, blocks let go meanwhile).
	RescanDelay time.Duration `yaml:"rescan_delay"`
	// MaxRescanGenerations bounds those rereads; a request that still
	// finds unread blocks then fails, naming them.
	MaxRescanGenerations int `yaml:"max_rescan_generations"`
}

// RetentionProviderConfig is backend_scheduler.provider.retention.
type RetentionProviderConfig struct {
	// Interval is how often each tenant gets a retention job.
	Interval time.Duration `yaml:"interval"`
}

// CompactionProviderConfig is backend_scheduler.provider.compaction.
type CompactionProviderConfig struct {
	// MeasureInterval is accepted for Tempo configs (weft measures the
	// outstanding blocks at each compaction cycle).
	MeasureInterval time.Duration `yaml:"measure_interval"`
	// Compaction holds the window, the size limits and the retention.
	Compaction CompactionConfig `yaml:"compaction"`
	// MaxJobsPerTenant bounds the pending and running jobs of a tenant.
	MaxJobsPerTenant int `yaml:"max_jobs_per_tenant"`
	// MinInputBlocks and MaxInputBlocks bound the blocks one job merges.
	MinInputBlocks int `yaml:"min_input_blocks"`
	MaxInputBlocks int `yaml:"max_input_blocks"`
	// MaxCompactionLevel: blocks at this level are not compacted again;
	// 0 is no cap.
	MaxCompactionLevel int `yaml:"max_compaction_level"`
	// MinCycleInterval is the shortest time between two compaction
	// cycles.
	MinCycleInterval time.Duration `yaml:"min_cycle_interval"`
}

// CompactionConfig is the compaction block shared by
// backend_scheduler.provider.compaction and backend_worker.
type CompactionConfig struct {
	// CompactionWindow is the width of the windows blocks are grouped by
	// (by end time).
	CompactionWindow time.Duration `yaml:"compaction_window"`
	// MaxCompactionObjects bounds the traces one job merges.
	MaxCompactionObjects int64 `yaml:"max_compaction_objects"`
	// MaxBlockBytes bounds the bytes one job merges.
	MaxBlockBytes int64 `yaml:"max_block_bytes"`
	// BlockRetention is how long blocks are kept (by their end time); 0
	// keeps them. The tenant's overrides.compaction.block_retention wins.
	BlockRetention time.Duration `yaml:"block_retention"`
	// CompactedBlockRetention is how long a block let go (compacted into
	// another, or past retention) keeps its objects, for the queries
	// still reading it.
	CompactedBlockRetention time.Duration `yaml:"compacted_block_retention"`
	// RetentionConcurrency is accepted for Tempo configs.
	RetentionConcurrency int `yaml:"retention_concurrency"`
	// MaxTimePerTenant is accepted for Tempo configs.
	MaxTimePerTenant time.Duration `yaml:"max_time_per_tenant"`
	// CompactionCycle is how often compaction jobs are planned.
	CompactionCycle time.Duration `yaml:"compaction_cycle"`
}

// DefaultCompactionConfig is Tempo's defaults.
func DefaultCompactionConfig() CompactionConfig {
	return CompactionConfig{
		CompactionWindow: time.Hour, MaxCompactionObjects: 6_000_000, MaxBlockBytes: 100 << 30,
		BlockRetention: 336 * time.Hour, CompactedBlockRetention: time.Hour, RetentionConcurrency: 10,
		MaxTimePerTenant: 5 * time.Minute, CompactionCycle: 30 * time.Second,
	}
}

// Validate checks c; errors name the key under prefix.
func (c CompactionConfig) Validate(prefix string) error {
	var errs []error
	if c.CompactionWindow <= 0 {
		errs = append(errs, fmt.Errorf("%scompaction_window must be positive, got %s", prefix, c.CompactionWindow))
	}
	if c.MaxCompactionObjects <= 0 {
		errs = append(errs, fmt.Errorf("%smax_compaction_objects must be positive, got %d", prefix, c.MaxCompactionObjects))
	}
	if c.MaxBlockBytes <= 0 {
		errs = append(errs, fmt.Errorf("%smax_block_bytes must be positive, got %d", prefix, c.MaxBlockBytes))
	}
	if c.BlockRetention < 0 {
		errs = append(errs, fmt.Errorf("%sblock_retention must not be negative, got %s", prefix, c.BlockRetention))
	}
	if c.CompactedBlockRetention < 0 {
		errs = append(errs, fmt.Errorf("%scompacted_block_retention must not be negative, got %s", prefix, c.CompactedBlockRetention))
	}
	if c.CompactionCycle <= 0 {
		errs = append(errs, fmt.Errorf("%scompaction_cycle must be positive, got %s", prefix, c.CompactionCycle))
	}
	return errors.Join(errs...)
}

// DefaultConfig is Tempo's defaults, and weft's job_lease.
func DefaultConfig() Config {
	return Config{
		Work:                 WorkConfig{PruneAge: time.Hour, DeadJobTimeout: 24 * time.Hour},
		MaintenanceInterval:  time.Minute,
		BackendFlushInterval: time.Minute,
		Provider: ProviderConfig{
			Retention: RetentionProviderConfig{Interval: time.Hour},
			Compaction: CompactionProviderConfig{
				MeasureInterval: time.Minute, Compaction: DefaultCompactionConfig(), MaxJobsPerTenant: 1000,
				MinInputBlocks: 2, MaxInputBlocks: 4, MinCycleInterval: 30 * time.Second,
			},
			Redaction: RedactionProviderConfig{PollInterval: 2 * time.Second, RescanDelay: 5 * time.Minute, MaxRescanGenerations: 5},
		},
		JobTimeout: 15 * time.Second,
		JobLease:   time.Minute,
	}
}

// Validate checks c; errors name the key.
func (c Config) Validate() error {
	var errs []error
	pc := c.Provider.Compaction
	if err := pc.Compaction.Validate("provider.compaction.compaction."); err != nil {
		errs = append(errs, err)
	}
	if err := c.Planner().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("provider.compaction: %w", err))
	}
	if pc.MaxJobsPerTenant <= 0 {
		errs = append(errs, fmt.Errorf("provider.compaction.max_jobs_per_tenant must be positive, got %d", pc.MaxJobsPerTenant))
	}
	if c.Provider.Retention.Interval <= 0 {
		errs = append(errs, fmt.Errorf("provider.retention.interval must be positive, got %s", c.Provider.Retention.Interval))
	}
	if r := c.Provider.Redaction; r.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("provider.redaction.poll_interval must be positive, got %s", r.PollInterval))
	}
	if r := c.Provider.Redaction; r.RescanDelay < 0 {
		errs = append(errs, fmt.Errorf("provider.redaction.rescan_delay must not be negative, got %s", r.RescanDelay))
	}
	if r := c.Provider.Redaction; r.MaxRescanGenerations < 1 {
		errs = append(errs, fmt.Errorf("provider.redaction.max_rescan_generations must be at least 1, got %d", r.MaxRescanGenerations))
	}
	if c.JobTimeout <= 0 {
		errs = append(errs, fmt.Errorf("job_timeout must be positive, got %s", c.JobTimeout))
	}
	if c.JobLease < 3*time.Second {
		errs = append(errs, fmt.Errorf("job_lease must be at least 3s, got %s", c.JobLease))
	}
	if c.MaintenanceInterval <= 0 {
		errs = append(errs, fmt.Errorf("maintenance_interval must be positive, got %s", c.MaintenanceInterval))
	}
	if c.Work.PruneAge <= 0 {
		errs = append(errs, fmt.Errorf("work.prune_age must be positive, got %s", c.Work.PruneAge))
	}
	return errors.Join(errs...)
}

// Planner is the compaction planner's part of c.
func (c Config) Planner() compaction.Config {
	pc := c.Provider.Compaction
	return compaction.Config{
		Window: pc.Compaction.CompactionWindow, MinInputBlocks: pc.MinInputBlocks, MaxInputBlocks: pc.MaxInputBlocks,
		MaxCompactionObjects: pc.Compaction.MaxCompactionObjects, MaxBlockBytes: pc.Compaction.MaxBlockBytes,
		MaxCompactionLevel: pc.MaxCompactionLevel,
	}
}

// Settings are the scheduler's settings from c.
func (c Config) Settings() Settings {
	pc := c.Provider.Compaction
	return Settings{
		Compaction: c.Planner(), CompactionCycle: max(pc.Compaction.CompactionCycle, pc.MinCycleInterval),
		MaxJobsPerTenant: pc.MaxJobsPerTenant, RetentionInterval: c.Provider.Retention.Interval,
		JobTimeout: c.JobTimeout, Lease: c.JobLease, PruneAge: c.Work.PruneAge,
		RedactionRescanDelay: c.Provider.Redaction.RescanDelay, RedactionMaxGenerations: c.Provider.Redaction.MaxRescanGenerations,
		RedactionPollInterval: c.Provider.Redaction.PollInterval,
	}
}
