// Package dropspans is a stage that drops spans by name, for example health
// checks, before they reach the stores. It reads the distributor's output
// and keeps the tenant and partition of each message.
package dropspans

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/metrics"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/pipelines"
)

// Type is the node kind.
const Type = "drop_spans"

// Config of the drop_spans stage. A span is dropped when its name is in
// Names or matches NameRegex.
type Config struct {
	// Names are exact span names to drop.
	Names []string `yaml:"names"`
	// NameRegex drops spans whose whole name matches this RE2 expression.
	NameRegex string `yaml:"name_regex"`
}

// Validate checks the config.
func (c *Config) Validate() error {
	if len(c.Names) == 0 && c.NameRegex == "" {
		return errors.New("set names or name_regex, or the stage drops nothing")
	}
	if c.NameRegex != "" {
		if _, err := regexp.Compile("^(?:" + c.NameRegex + ")$"); err != nil {
			return fmt.Errorf("name_regex: %w", err)
		}
	}
	return nil
}

type factory struct{}

// NewFactory returns the factory of drop_spans stages.
func NewFactory() pipelines.Factory { return factory{} }

func (factory) Type() string               { return Type }
func (factory) Role() pipelines.Role       { return pipelines.RoleStage }
func (factory) Input() pipelines.DataType  { return pipelines.DataTraces }
func (factory) Output() pipelines.DataType { return pipelines.DataTraces }
func (factory) DefaultConfig() any         { return &Config{} }
func (factory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	c := cfg.(*Config)
	s := &Stage{names: map[string]bool{}, discarded: metrics.DiscardedSpans(set.Metrics)}
	for _, n := range c.Names {
		s.names[n] = true
	}
	if c.NameRegex != "" {
		s.re = regexp.MustCompile("^(?:" + c.NameRegex + ")$") // checked by Validate
	}
	return s, nil
}

// Stage drops spans by name.
type Stage struct {
	names     map[string]bool
	re        *regexp.Regexp
	discarded *prometheus.CounterVec
}

// Start does nothing.
func (s *Stage) Start(context.Context) error { return nil }

// Shutdown does nothing.
func (s *Stage) Shutdown(context.Context) error { return nil }

// Process returns the message without the dropped spans, the message itself
// when nothing is dropped, or nothing when every span is dropped.
func (s *Stage) Process(msg *message.Message) ([]*message.Message, error) {
	var batch otlpwire.Batch
	if err := batch.Scan(msg.Payload); err != nil { // checked by the distributor
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var b otlpwire.Builder
	dropped := 0
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			for _, sp := range sc.Spans {
				name := otlpwire.SpanName(sp.Raw)
				if s.names[name] || (s.re != nil && s.re.MatchString(name)) {
					dropped++
					continue
				}
				b.Add(res, sc, sp.Raw)
			}
		}
	}
	if dropped == 0 {
		return []*message.Message{msg}, nil
	}
	s.discarded.WithLabelValues(msg.Metadata.Get(pipelines.MetaTenant), metrics.ReasonFilteredOut).Add(float64(dropped))
	if b.SpanCount() == 0 {
		return nil, nil
	}
	out := message.NewMessage(msg.UUID, b.AppendTo(nil))
	for k, v := range msg.Metadata {
		out.Metadata.Set(k, v)
	}
	return []*message.Message{out}, nil
}
