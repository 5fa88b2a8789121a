package generator

import "github.com/weftdb/weft/pipelines"

type factory struct {
	defaults Config
	limits   Limits
}

// NewFactory returns the factory of metrics_generator sinks, with the
// `metrics_generator` block of the weft config as defaults and the
// tenants' overrides.
func NewFactory(defaults Config, limits Limits) pipelines.Factory {
	return factory{defaults: defaults, limits: limits}
}

func (factory) Type() string               { return Type }
func (factory) Role() pipelines.Role       { return pipelines.RoleSink }
func (factory) Input() pipelines.DataType  { return pipelines.DataTraces }
func (factory) Output() pipelines.DataType { return "" }
func (f factory) DefaultConfig() any       { c := f.defaults; return &c }
func (f factory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	return New(set, *cfg.(*Config), f.limits), nil
}
