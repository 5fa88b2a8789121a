package blockbuilder

import (
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/pipelines"
)

type factory struct {
	defaults Config
	bkt      objstore.Bucket
	hooks    Hooks
}

// NewFactory returns the factory of block-builder sinks writing to bkt.
func NewFactory(defaults Config, bkt objstore.Bucket, hooks Hooks) pipelines.Factory {
	return factory{defaults: defaults, bkt: bkt, hooks: hooks}
}

func (factory) Type() string               { return Type }
func (factory) Role() pipelines.Role       { return pipelines.RoleSink }
func (factory) Input() pipelines.DataType  { return pipelines.DataTraces }
func (factory) Output() pipelines.DataType { return "" }
func (f factory) DefaultConfig() any       { c := f.defaults; return &c }
func (f factory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	return New(set, *cfg.(*Config), f.bkt, f.hooks), nil
}
