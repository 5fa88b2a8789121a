package otlp

import (
	"fmt"

	"github.com/weftdb/weft/pipelines"
)

// Type is the kind of the OTLP source in a pipeline file.
const Type = "otlp"

type factory struct {
	defaults Config
	admit    Admission
}

// NewFactory returns the factory of "otlp" sources, whose DefaultConfig
// starts from defaults. admit, when not nil, is asked before each request
// is read (see Admission).
func NewFactory(defaults Config, admit Admission) pipelines.Factory {
	return &factory{defaults: defaults.clone(), admit: admit}
}

func (f *factory) Type() string               { return Type }
func (f *factory) Role() pipelines.Role       { return pipelines.RoleSource }
func (f *factory) Input() pipelines.DataType  { return "" }
func (f *factory) Output() pipelines.DataType { return pipelines.DataTraces }
func (f *factory) DefaultConfig() any         { c := f.defaults.clone(); return &c }

func (f *factory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	var c *Config
	switch v := cfg.(type) {
	case *Config:
		c = v
	case Config:
		c = &v
	default:
		return nil, fmt.Errorf("cannot create the OTLP source %q: config is %T, want *otlp.Config", set.Name, cfg)
	}
	if c == nil {
		return nil, fmt.Errorf("cannot create the OTLP source %q: nil config", set.Name)
	}
	s, err := newSource(set, *c)
	if err != nil {
		return nil, fmt.Errorf("cannot create the OTLP source %q: %w", set.Name, err)
	}
	s.admit = f.admit
	return s, nil
}
