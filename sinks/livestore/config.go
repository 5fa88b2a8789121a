package livestore

import (
	"errors"
	"fmt"
	"time"
)

// Config of the live-store sink. Its defaults come from the `live_store`
// block of the weft config.
type Config struct {
	// MaxBytes bounds the trace data held in memory, all tenants together.
	// When it is reached, pushes wait for room (back-pressure) and are
	// refused with 503 after BackPressureTimeout.
	MaxBytes int64 `yaml:"max_bytes"`
	// Window is how long a trace stays after its last span arrived.
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
		MaxBytes:            512 << 20,
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
