package pipelines_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/stages/distributor"
	"github.com/weftdb/weft/stages/dropspans"
)

// --- The stage kind: docs/pipelines.md ("Adding your own stage kind")
// shows this part. ---

// SetAttributeConfig is the `config:` block of a set_resource_attribute
// node.
type SetAttributeConfig struct {
	// Key is the resource attribute to set.
	Key string `yaml:"key"`
	// Value is its new value.
	Value string `yaml:"value"`
}

// Validate runs when the pipeline file is checked, before anything starts.
func (c *SetAttributeConfig) Validate() error {
	if c.Key == "" {
		return errors.New("key must be set")
	}
	return nil
}

// setAttributeFactory makes set_resource_attribute stages.
type setAttributeFactory struct{}

func (setAttributeFactory) Type() string               { return "set_resource_attribute" }
func (setAttributeFactory) Role() pipelines.Role       { return pipelines.RoleStage }
func (setAttributeFactory) Input() pipelines.DataType  { return pipelines.DataTraces }
func (setAttributeFactory) Output() pipelines.DataType { return pipelines.DataTraces }
func (setAttributeFactory) DefaultConfig() any         { return &SetAttributeConfig{} }
func (setAttributeFactory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	return &setAttribute{cfg: *cfg.(*SetAttributeConfig)}, nil
}

// setAttribute sets one resource attribute on every span it passes on.
type setAttribute struct{ cfg SetAttributeConfig }

func (*setAttribute) Start(context.Context) error    { return nil }
func (*setAttribute) Shutdown(context.Context) error { return nil }

// Process decodes the OTLP payload, sets the attribute, and publishes one
// message with the same metadata (tenant, partition): the stage must not
// move spans to another trace, tenant or partition.
func (s *setAttribute) Process(msg *message.Message) ([]*message.Message, error) {
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(msg.Payload)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("cannot decode spans: %v", err))
	}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		td.ResourceSpans().At(i).Resource().Attributes().PutStr(s.cfg.Key, s.cfg.Value)
	}
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return nil, status.Error(codes.Internal, fmt.Sprintf("cannot encode spans: %v", err))
	}
	out := message.NewMessage(msg.UUID, payload)
	for k, v := range msg.Metadata {
		out.Metadata.Set(k, v)
	}
	return []*message.Message{out}, nil
}

// --- Scaffolding of this example only: a source to push into the graph
// and a sink that prints what reaches it, standing in for the otlp source
// and the live_store and block_builder sinks. ---

type pushSource struct{ out pipelines.Output }

func (*pushSource) Start(context.Context) error    { return nil }
func (*pushSource) Shutdown(context.Context) error { return nil }

type printSink struct{ mu sync.Mutex }

func (*printSink) Start(context.Context) error    { return nil }
func (*printSink) Shutdown(context.Context) error { return nil }
func (s *printSink) Consume(msg *message.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(msg.Payload)
	if err != nil {
		return err
	}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		fmt.Printf("tenant %s, %d span(s):", msg.Metadata.Get(pipelines.MetaTenant), rs.ScopeSpans().At(0).Spans().Len())
		rs.Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
			fmt.Printf(" %s=%s", k, v.AsString())
			return true
		})
		fmt.Println()
	}
	return nil
}

const exampleStagePipeline = `nodes:
  in:
    kind: push
    target: distributor
  distributor:
    kind: distributor
    target: distributor
    from: [in]
  environment:
    kind: set_resource_attribute
    target: distributor
    from: [distributor]
    config:
      key: deployment.environment
      value: production
  store:
    kind: print
    target: live-store
    from: [environment]
`

// A stage kind of your own: registered next to the built-in kinds, used
// from a pipeline file, and its config checked with the rest of the file.
func Example_customStageKind() {
	src := &pushSource{}
	reg, err := pipelines.NewRegistry(
		distributor.NewFactory(distributor.DefaultConfig(), nil),
		dropspans.NewFactory(),
		setAttributeFactory{}, // the new kind
		testFactory{kind: "push", role: pipelines.RoleSource, make: func(set pipelines.Settings) pipelines.Node {
			src.out = set.Output
			return src
		}},
		testFactory{kind: "print", role: pipelines.RoleSink, make: func(pipelines.Settings) pipelines.Node { return &printSink{} }},
	)
	if err != nil {
		panic(err)
	}

	// A config the kind refuses is reported with the file, line and key.
	bad, err := pipelines.Parse("pipeline.yaml", []byte(
		`nodes:
  in:
    kind: push
    target: distributor
  environment:
    kind: set_resource_attribute
    target: distributor
    from: [in]
    config:
      value: production
  store:
    kind: print
    target: live-store
    from: [environment]
`))
	if err != nil {
		panic(err)
	}
	_, err = pipelines.Compile(bad, reg, pipelines.Options{Targets: []string{"all"}, Metrics: prometheus.NewRegistry()})
	fmt.Println(err)

	spec, err := pipelines.Parse("pipeline.yaml", []byte(exampleStagePipeline))
	if err != nil {
		panic(err)
	}
	p, err := pipelines.Compile(spec, reg, pipelines.Options{Targets: []string{"all"}, Metrics: prometheus.NewRegistry()})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx)

	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetName("GET /cart")
	span.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	span.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		panic(err)
	}
	outcome, err := src.out.Push(ctx, message.NewMessage(watermill.NewUUID(), payload))
	if err != nil {
		panic(err)
	}
	fmt.Println("acknowledged:", outcome.Err() == nil && outcome.Rejected() == 0)

	// Output:
	// pipeline.yaml: nodes.environment.config: key must be set
	// tenant single-tenant, 1 span(s): service.name=checkout deployment.environment=production
	// acknowledged: true
}

// The stage kind above is shown in docs/pipelines.md: the two must match.
func TestExampleStageKindInDocs(t *testing.T) {
	code, err := os.ReadFile("example_stage_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/pipelines.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(code)
	kind := strings.TrimSpace(s[strings.Index(s, "// SetAttributeConfig is"):strings.Index(s, "// --- Scaffolding")])
	if !strings.Contains(string(doc), "```go\n"+kind+"\n```") {
		t.Fatal(`docs/pipelines.md ("Adding your own stage kind") does not show the stage kind of example_stage_test.go as it is: copy it there`)
	}
}
