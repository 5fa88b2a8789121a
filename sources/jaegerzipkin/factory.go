package jaegerzipkin

import (
	"fmt"

	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sources/otlp"
)

// Kinds of the sources in a pipeline file.
const (
	JaegerType = "jaeger"
	ZipkinType = "zipkin"
)

type jaegerFactory struct {
	defaults JaegerConfig
	admit    otlp.Admission
}

// NewJaegerFactory returns the factory of "jaeger" sources, whose
// DefaultConfig is defaults (weft's distributor.receivers.jaeger; with no
// protocol, a node opens nothing). admit, when not nil, is asked before
// each decoded request is pushed (protocol "jaeger_<protocol>"), as the
// OTLP source asks it; a refusal is the client's answer.
func NewJaegerFactory(defaults JaegerConfig, admit otlp.Admission) pipelines.Factory {
	return &jaegerFactory{defaults: defaults.clone(), admit: admit}
}

func (f *jaegerFactory) Type() string               { return JaegerType }
func (f *jaegerFactory) Role() pipelines.Role       { return pipelines.RoleSource }
func (f *jaegerFactory) Input() pipelines.DataType  { return "" }
func (f *jaegerFactory) Output() pipelines.DataType { return pipelines.DataTraces }
func (f *jaegerFactory) DefaultConfig() any         { c := f.defaults.clone(); return &c }

func (f *jaegerFactory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	c, ok := cfg.(*JaegerConfig)
	if !ok || c == nil {
		return nil, fmt.Errorf("cannot create the Jaeger source %q: config is %T, want *jaegerzipkin.JaegerConfig", set.Name, cfg)
	}
	s, err := newJaeger(set, c.clone())
	if err != nil {
		return nil, fmt.Errorf("cannot create the Jaeger source %q: %w", set.Name, err)
	}
	s.admit = f.admit
	return s, nil
}

type zipkinFactory struct {
	defaults ZipkinConfig
	admit    otlp.Admission
}

// NewZipkinFactory returns the factory of "zipkin" sources, whose
// DefaultConfig is defaults (weft's distributor.receivers.zipkin); an empty
// endpoint makes nodes that open nothing. admit is as NewJaegerFactory's
// (protocol "zipkin_http").
func NewZipkinFactory(defaults ZipkinConfig, admit otlp.Admission) pipelines.Factory {
	return &zipkinFactory{defaults: defaults, admit: admit}
}

func (f *zipkinFactory) Type() string               { return ZipkinType }
func (f *zipkinFactory) Role() pipelines.Role       { return pipelines.RoleSource }
func (f *zipkinFactory) Input() pipelines.DataType  { return "" }
func (f *zipkinFactory) Output() pipelines.DataType { return pipelines.DataTraces }
func (f *zipkinFactory) DefaultConfig() any         { c := f.defaults; return &c }

func (f *zipkinFactory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	c, ok := cfg.(*ZipkinConfig)
	if !ok || c == nil {
		return nil, fmt.Errorf("cannot create the Zipkin source %q: config is %T, want *jaegerzipkin.ZipkinConfig", set.Name, cfg)
	}
	s, err := newZipkin(set, *c)
	if err != nil {
		return nil, fmt.Errorf("cannot create the Zipkin source %q: %w", set.Name, err)
	}
	s.admit = f.admit
	return s, nil
}
