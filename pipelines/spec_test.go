package pipelines_test

import (
	"strings"
	"testing"

	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/weftdb/weft/pipelines"
	"github.com/weftdb/weft/sinks/blockbuilder"
	"github.com/weftdb/weft/sinks/generator"
	"github.com/weftdb/weft/sinks/livestore"
	"github.com/weftdb/weft/sources/jaegerzipkin"
	"github.com/weftdb/weft/sources/otlp"
	"github.com/weftdb/weft/stages/distributor"
	"github.com/weftdb/weft/stages/dropspans"
)

func registry(t testing.TB) pipelines.Registry {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := pipelines.NewRegistry(
		otlp.NewFactory(otlp.DefaultConfig(), nil),
		jaegerzipkin.NewJaegerFactory(jaegerzipkin.DefaultJaegerConfig(), nil),
		jaegerzipkin.NewZipkinFactory(jaegerzipkin.ZipkinConfig{}, nil),
		distributor.NewFactory(distributor.DefaultConfig(), nil),
		dropspans.NewFactory(),
		livestore.NewFactory(livestore.DefaultConfig(), nil),
		blockbuilder.NewFactory(blockbuilder.DefaultConfig(), bkt, blockbuilder.Hooks{}),
		generator.NewFactory(generator.DefaultConfig(), nil),
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func compileErr(t *testing.T, src string) string {
	t.Helper()
	spec, err := pipelines.Parse("p.yaml", []byte(src))
	if err != nil {
		return err.Error()
	}
	_, err = pipelines.Compile(spec, registry(t), pipelines.Options{Targets: []string{"all"}})
	if err == nil {
		t.Fatalf("pipeline compiled, want an error:\n%s", src)
	}
	return err.Error()
}

// Each case names the line and the YAML path the error must point at.
func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // substrings, each must appear
	}{
		{"unknown kind", `nodes:
  otlp:
    kind: otlp
    target: distributor
  x:
    kind: nope
    target: distributor
    from: [otlp]
`, []string{"p.yaml:6: nodes.x.kind: unknown kind \"nope\" (known kinds: block_builder, distributor, drop_spans, jaeger, live_store, metrics_generator, otlp, zipkin)"}},
		{"unknown config field", `nodes:
  otlp:
    kind: otlp
    target: distributor
  d:
    kind: distributor
    target: distributor
    from: [otlp]
    config:
      max_attribute_byte: 10
`, []string{"p.yaml:10: nodes.d.config.max_attribute_byte: unknown key (did you mean \"max_attribute_bytes\"?)"}},
		{"config type error", `nodes:
  otlp:
    kind: otlp
    target: distributor
  d:
    kind: distributor
    target: distributor
    from: [otlp]
    config:
      partitions: many
`, []string{`p.yaml:10: nodes.d.config.partitions: "many" is not an integer`}},
		{"config validate error", `nodes:
  otlp:
    kind: otlp
    target: distributor
  d:
    kind: distributor
    target: distributor
    from: [otlp]
    config:
      partitions: 0
`, []string{"nodes.d.config: partitions must be between 1 and 100000, got 0"}},
		{"unknown node field", `nodes:
  otlp:
    kind: otlp
    target: distributor
    form: [x]
`, []string{"p.yaml:5: nodes.otlp.form: unknown field"}},
		{"dangling from", `nodes:
  otlp:
    kind: otlp
    target: distributor
  d:
    kind: distributor
    target: distributor
    from:
      - otlp
      - missing
`, []string{"p.yaml:10: nodes.d.from[1]: unknown node \"missing\""}},
		{"cycle", `nodes:
  otlp:
    kind: otlp
    target: distributor
  a:
    kind: drop_spans
    target: distributor
    from: [b]
    config: {names: [x]}
  b:
    kind: drop_spans
    target: distributor
    from: [a]
    config: {names: [x]}
`, []string{"p.yaml:5: nodes.a.from: cycle: ", "a -> b -> a"}},
		{"self loop", `nodes:
  a:
    kind: drop_spans
    target: distributor
    from: [a]
    config: {names: [x]}
`, []string{"p.yaml:2: nodes.a.from: cycle: a -> a"}},
		{"duplicate name", `nodes:
  otlp:
    kind: otlp
    target: distributor
  otlp:
    kind: otlp
    target: distributor
`, []string{"p.yaml:5: nodes.otlp: duplicate node name (first defined at line 2)"}},
		{"unknown target", `nodes:
  otlp:
    kind: otlp
    target: ingester
`, []string{"p.yaml:4: nodes.otlp.target: unknown target \"ingester\""}},
		{"source with from", `nodes:
  otlp:
    kind: otlp
    target: distributor
  o2:
    kind: otlp
    target: distributor
    from: [otlp]
`, []string{"p.yaml:8: nodes.o2.from: a source node (kind \"otlp\") takes no input"}},
		{"stage without from", `nodes:
  d:
    kind: distributor
    target: distributor
`, []string{"p.yaml:2: nodes.d.from: missing: a stage node"}},
		{"reading from a sink", `nodes:
  otlp:
    kind: otlp
    target: distributor
  ls:
    kind: live_store
    target: live-store
    from: [otlp]
  d:
    kind: distributor
    target: distributor
    from: [ls]
`, []string{"p.yaml:12: nodes.d.from[0]: node \"ls\" is a sink"}},
		{"output nobody reads", `nodes:
  otlp:
    kind: otlp
    target: distributor
  d:
    kind: distributor
    target: distributor
    from: [otlp]
`, []string{"p.yaml:5: nodes.d: nothing reads the output of this stage node"}},
		{"missing kind", `nodes:
  otlp:
    target: distributor
`, []string{"p.yaml:2: nodes.otlp.kind: missing"}},
		{"yaml syntax", "nodes:\n  a: [\n", []string{"p.yaml: cannot parse YAML", "line"}},
		{"top-level key", "nodez: {}\n", []string{"p.yaml:1: nodez: unknown key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := compileErr(t, tc.src)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("error does not contain %q:\n%s", w, got)
				}
			}
		})
	}
}

// One run reports every problem, not the first.
func TestCompileReportsAllErrorsAtOnce(t *testing.T) {
	got := compileErr(t, `nodes:
  otlp:
    kind: otlp
    target: distributor
  d:
    kind: distributer
    target: distributor
    from: [otlp]
  ls:
    kind: live_store
    target: live-store
    from: [dd]
    config:
      max_bytez: 1
`)
	for _, w := range []string{"p.yaml:6: nodes.d.kind: unknown kind", "p.yaml:12: nodes.ls.from[0]: unknown node \"dd\"", "p.yaml:14: nodes.ls.config.max_bytez: unknown key"} {
		if !strings.Contains(got, w) {
			t.Errorf("error does not contain %q:\n%s", w, got)
		}
	}
}

func TestDefaultPipelineCompiles(t *testing.T) {
	spec, err := pipelines.Parse(pipelines.DefaultFile, pipelines.Default)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pipelines.Compile(spec, registry(t), pipelines.Options{Targets: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	// Cut at the distributor without a Kafka transport: a clear error.
	_, err = pipelines.Compile(spec, registry(t), pipelines.Options{Targets: []string{"distributor"}})
	if err == nil || !strings.Contains(err.Error(), "crosses processes") {
		t.Fatalf("err = %v, want a crossing-edge error", err)
	}
}

func TestRegistryRefusesDuplicateKinds(t *testing.T) {
	_, err := pipelines.NewRegistry(dropspans.NewFactory(), dropspans.NewFactory())
	if err == nil || !strings.Contains(err.Error(), "drop_spans") {
		t.Fatalf("err = %v", err)
	}
}
