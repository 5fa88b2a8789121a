package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/weftdb/weft/backend/scheduler"
)

// Config is the backend_worker block, with Tempo's keys and defaults.
type Config struct {
	// BackendSchedulerAddr is the gRPC address (host:port) of the backend
	// scheduler, for a worker in a process without the scheduler.
	BackendSchedulerAddr string `yaml:"backend_scheduler_addr"`
	// Backoff bounds the wait after a failed request for a job.
	Backoff BackoffConfig `yaml:"backoff"`
	// Compaction holds the settings the worker's jobs apply: the
	// retention (block_retention, compacted_block_retention; the tenant's
	// overrides.compaction.block_retention wins).
	Compaction scheduler.CompactionConfig `yaml:"compaction"`
	// FinishOnShutdownTimeout is how long a stopping worker lets its job
	// run before it cancels it and gives it back to the scheduler.
	FinishOnShutdownTimeout time.Duration `yaml:"finish_on_shutdown_timeout"`
}

// BackoffConfig is backend_worker.backoff.
type BackoffConfig struct {
	MinPeriod time.Duration `yaml:"min_period"`
	MaxPeriod time.Duration `yaml:"max_period"`
	// MaxRetries is accepted for Tempo configs; a worker retries until it
	// stops.
	MaxRetries int `yaml:"max_retries"`
}

// DefaultConfig is Tempo's defaults.
func DefaultConfig() Config {
	return Config{
		Backoff:                 BackoffConfig{MinPeriod: 100 * time.Millisecond, MaxPeriod: time.Minute},
		Compaction:              scheduler.DefaultCompactionConfig(),
		FinishOnShutdownTimeout: 30 * time.Second,
	}
}

// Validate checks c; errors name the key.
func (c Config) Validate() error {
	var errs []error
	if c.Backoff.MinPeriod <= 0 || c.Backoff.MaxPeriod < c.Backoff.MinPeriod {
		errs = append(errs, fmt.Errorf("backoff: min_period (%s) must be positive and at most max_period (%s)", c.Backoff.MinPeriod, c.Backoff.MaxPeriod))
	}
	if c.FinishOnShutdownTimeout < 0 {
		errs = append(errs, fmt.Errorf("finish_on_shutdown_timeout must not be negative, got %s", c.FinishOnShutdownTimeout))
	}
	if err := c.Compaction.Validate("compaction."); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Settings are the worker's settings from c.
func (c Config) Settings() Settings {
	return Settings{
		FinishOnShutdownTimeout: c.FinishOnShutdownTimeout, RenewEvery: 10 * time.Second,
		MinBackoff: c.Backoff.MinPeriod, MaxBackoff: c.Backoff.MaxPeriod,
	}
}
