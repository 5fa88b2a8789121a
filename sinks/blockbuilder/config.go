package blockbuilder

import (
	"errors"
	"fmt"
	"time"
)

// Config of the block-builder sink. Its defaults come from the
// `block_builder` block of the weft config.
type Config struct {
	// MaxBlockBytes cuts a tenant's block once its buffered spans hold this
	// many bytes of memory.
	MaxBlockBytes int64 `yaml:"max_block_bytes"`
	// MaxBlockDuration cuts a tenant's block this long after its first span
	// arrived, however small it is.
	MaxBlockDuration time.Duration `yaml:"max_block_duration"`
	// MaxBufferedBytes bounds the memory of spans waiting to be uploaded, all
	// tenants together; past it pushes wait, then are refused with 503.
	MaxBufferedBytes int64 `yaml:"max_buffered_bytes"`
	// BackPressureTimeout is how long a push waits for room before it is refused.
	BackPressureTimeout time.Duration `yaml:"back_pressure_timeout"`
	// RowGroupBytes is the target size of a Parquet row group; 0 uses the
	// block format's default.
	RowGroupBytes int64 `yaml:"row_group_bytes"`
	// WAL is the local write-ahead log of accepted, not yet uploaded spans.
	WAL WALConfig `yaml:"wal"`
}

// WALConfig is `block_builder.wal`.
type WALConfig struct {
	// Path is the directory of the write-ahead log.
	Path string `yaml:"path"`
	// SegmentBytes is the size of one WAL segment file.
	SegmentBytes int64 `yaml:"segment_bytes"`
}

// DefaultConfig is the configuration of a weft started without a config file.
func DefaultConfig() Config {
	return Config{
		MaxBlockBytes:       32 << 20,
		MaxBlockDuration:    time.Minute,
		MaxBufferedBytes:    256 << 20,
		BackPressureTimeout: 5 * time.Second,
		WAL:                 WALConfig{Path: "./data/wal/block-builder", SegmentBytes: 64 << 20},
	}
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBlockBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("max_block_bytes must be at least 1 KiB, got %d", c.MaxBlockBytes))
	}
	if c.MaxBlockDuration <= 0 {
		errs = append(errs, fmt.Errorf("max_block_duration must be positive, got %s", c.MaxBlockDuration))
	}
	if c.MaxBufferedBytes < c.MaxBlockBytes {
		errs = append(errs, fmt.Errorf("max_buffered_bytes (%d) must be at least max_block_bytes (%d)", c.MaxBufferedBytes, c.MaxBlockBytes))
	}
	if c.BackPressureTimeout < 0 {
		errs = append(errs, fmt.Errorf("back_pressure_timeout must not be negative, got %s", c.BackPressureTimeout))
	}
	if c.RowGroupBytes < 0 {
		errs = append(errs, fmt.Errorf("row_group_bytes must not be negative, got %d", c.RowGroupBytes))
	}
	if c.WAL.Path == "" {
		errs = append(errs, errors.New("wal.path is required"))
	}
	if c.WAL.SegmentBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("wal.segment_bytes must be at least 1 KiB, got %d", c.WAL.SegmentBytes))
	}
	return errors.Join(errs...)
}
