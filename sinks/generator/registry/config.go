package registry

import (
	"errors"
	"fmt"
	"time"
)

// Config of a tenant's series registry: `metrics_generator.registry` in the
// weft config, with Tempo's keys and defaults.
type Config struct {
	// CollectionInterval is how often the series are collected and
	// remote-written (the caller runs Collect on this period).
	CollectionInterval time.Duration `yaml:"collection_interval"`
	// StaleDuration is how long a series may go without an update before
	// Collect drops it (after sending one stale marker for it).
	StaleDuration time.Duration `yaml:"stale_duration"`
	// MaxLabelNameLength truncates longer label names.
	MaxLabelNameLength int `yaml:"max_label_name_length"`
	// MaxLabelValueLength truncates longer label values.
	MaxLabelValueLength int `yaml:"max_label_value_length"`
	// ExternalLabels are added to every series; a series' own label of the
	// same name wins.
	ExternalLabels map[string]string `yaml:"external_labels"`
	// InjectTenantIDAs, when set, is the name of a label carrying the tenant
	// ID on every series.
	InjectTenantIDAs string `yaml:"inject_tenant_id_as"`
}

// DefaultConfig is Tempo's registry defaults.
func DefaultConfig() Config {
	return Config{
		CollectionInterval:  15 * time.Second,
		StaleDuration:       15 * time.Minute,
		MaxLabelNameLength:  1024,
		MaxLabelValueLength: 2048,
	}
}

// Validate checks the config; errors name the key under
// metrics_generator.registry.
func (c *Config) Validate() error {
	var errs []error
	if c.CollectionInterval <= 0 {
		errs = append(errs, fmt.Errorf("metrics_generator.registry.collection_interval must be positive, got %s", c.CollectionInterval))
	}
	if c.StaleDuration <= 0 {
		errs = append(errs, fmt.Errorf("metrics_generator.registry.stale_duration must be positive, got %s", c.StaleDuration))
	}
	if c.MaxLabelNameLength <= 0 {
		errs = append(errs, fmt.Errorf("metrics_generator.registry.max_label_name_length must be positive, got %d", c.MaxLabelNameLength))
	}
	if c.MaxLabelValueLength <= 0 {
		errs = append(errs, fmt.Errorf("metrics_generator.registry.max_label_value_length must be positive, got %d", c.MaxLabelValueLength))
	}
	for name := range c.ExternalLabels {
		if name == "" || SanitizeLabelName(name) != name {
			errs = append(errs, fmt.Errorf("metrics_generator.registry.external_labels: %q is not a valid label name", name))
		}
	}
	if c.InjectTenantIDAs != "" && SanitizeLabelName(c.InjectTenantIDAs) != c.InjectTenantIDAs {
		errs = append(errs, fmt.Errorf("metrics_generator.registry.inject_tenant_id_as: %q is not a valid label name", c.InjectTenantIDAs))
	}
	return errors.Join(errs...)
}
