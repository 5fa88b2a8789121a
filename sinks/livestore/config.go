package livestore

import (
	"errors"
	"fmt"
	"time"
)

// Config of the live-store sink. Its defaults come from the `live_store`
// block of the weft config.
type Config struct {
	// MaxBytes bounds the memory the store holds, all tenants together:
	// the spans not yet moved to disk, the traces' index and the columns
	// kept for searches. When it is reached, the sealed segments move to
	// disk at once (with a Path), then the spans that are in blocks go;
	// past that, pushes wait for room (back-pressure) and are refused with
	// 503 after BackPressureTimeout.
	MaxBytes int64 `yaml:"max_bytes"`
	// Path is the directory where segments of spans older than SpillAfter
	// move, out of memory; empty keeps every span in memory (MaxBytes then
	// bounds the whole window). The files are unlinked as they are
	// created: nothing is left behind, and several stores may share it.
	Path string `yaml:"path"`
	// SpillAfter is how long spans stay in memory after their segment
	// (about 2 s of pushes) was sealed, before they move to Path.
	SpillAfter time.Duration `yaml:"spill_after"`
	// Window is how long spans stay after they arrived (a segment goes
	// once its last push is Window old).
	Window time.Duration `yaml:"window"`
	// BackPressureTimeout is how long a push waits for room when the store
	// is full before it is refused.
	BackPressureTimeout time.Duration `yaml:"back_pressure_timeout"`
	// SweepInterval is how often traces older than Window are let go.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// DefaultConfig is the configuration of a weft started without a config file.
func DefaultConfig() Config {
	return Config{
		MaxBytes:            128 << 20,
		Path:                "./data/live-store",
		SpillAfter:          2 * time.Second,
		Window:              20 * time.Minute,
		BackPressureTimeout: 5 * time.Second,
		SweepInterval:       10 * time.Second,
	}
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("max_bytes must be at least 1 MiB, got %d", c.MaxBytes))
	}
	if c.SpillAfter <= 0 {
		errs = append(errs, fmt.Errorf("spill_after must be positive, got %s", c.SpillAfter))
	}
	if c.Window <= 0 {
		errs = append(errs, fmt.Errorf("window must be positive, got %s", c.Window))
	}
	if c.BackPressureTimeout < 0 {
		errs = append(errs, fmt.Errorf("back_pressure_timeout must not be negative, got %s", c.BackPressureTimeout))
	}
	if c.SweepInterval <= 0 {
		errs = append(errs, fmt.Errorf("sweep_interval must be positive, got %s", c.SweepInterval))
	}
	return errors.Join(errs...)
}
