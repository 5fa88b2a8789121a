package pipelines_test

import (
	"strings"
	"testing"

	"github.com/weftdb/weft/pipelines"
)

// FuzzCompile feeds arbitrary pipeline files to Parse and Compile with the
// real node kinds: neither may panic, every error must name the file, and a
// graph that compiles must have passed every check (so Compile is never
// reached with a spec Parse refused).
func FuzzCompile(f *testing.F) {
	f.Add(string(pipelines.Default))
	f.Add(testGraph)
	f.Add("nodes:\n  otlp:\n    kind: otlp\n    target: distributor\n    config:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:0\n")
	f.Add("nodes:\n  a:\n    kind: distributor\n    target: distributor\n    from: [b]\n  b:\n    kind: distributor\n    target: distributor\n    from: [a]\n")
	f.Add("nodes:\n  d:\n    kind: drop_spans\n    target: distributor\n    from: [nowhere]\n    config: {span_names: [x], unknown: 1}\n")
	f.Add("nodes: [1, 2]\n")
	f.Add("&a [*a]")
	reg := registry(f)
	f.Fuzz(func(t *testing.T, src string) {
		spec, err := pipelines.Parse("p.yaml", []byte(src))
		if err != nil {
			if !strings.Contains(err.Error(), "p.yaml") {
				t.Fatalf("Parse error does not name the file: %v", err)
			}
			return
		}
		if _, err := pipelines.Compile(spec, reg, pipelines.Options{Targets: []string{"all"}}); err != nil {
			if !strings.Contains(err.Error(), "p.yaml") && !strings.Contains(err.Error(), "cannot") {
				t.Fatalf("Compile error names neither the file nor the action: %v", err)
			}
		}
	})
}
