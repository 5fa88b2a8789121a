package pipelines

import (
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/yamlx"
)

// DefaultFile is the name under which the embedded default pipeline is
// reported in errors.
const DefaultFile = "pipelines/default.yaml"

// Default is the embedded default pipeline: OTLP, Jaeger and Zipkin in, the
// distributor, then the live-store, block-builder and metrics-generator.
//
//go:embed default.yaml
var Default []byte

// Spec is a parsed pipeline file: the nodes with where each was written.
type Spec struct {
	File  string
	Nodes []NodeSpec
}

// NodeSpec is one node as written in the file.
type NodeSpec struct {
	// Name is the node's key under `nodes`; it is also the topic of its output.
	Name string
	// Kind names the factory that builds the node.
	Kind string
	// Target is the component (as in -target) whose processes run the node.
	Target string
	// From lists the nodes whose output this node reads.
	From []string
	// Config is the node's `config:` block, decoded by its factory.
	Config *yaml.Node

	line, kindLine, targetLine int
	fromLines                  []int
}

// Path is the YAML path of the node, for errors.
func (n *NodeSpec) Path() string { return "nodes." + n.Name }

// Parse reads a pipeline file. It reports every problem of form it finds at
// once (YAML syntax, unknown or missing fields, duplicate names); the graph
// itself is checked by Compile.
//
// The format:
//
//	nodes:
//	  <name>:
//	    kind: <registered kind>
//	    target: <component>
//	    from: [<node>, ...]      # not for sources
//	    config: {...}            # optional, the kind's own settings
func Parse(file string, data []byte) (*Spec, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &yamlx.Error{File: file, Msg: fmt.Sprintf("cannot parse YAML: %v", err)}
	}
	spec := &Spec{File: file}
	if len(doc.Content) == 0 {
		return nil, &yamlx.Error{File: file, Msg: "empty pipeline file: expected a `nodes` mapping"}
	}
	root := doc.Content[0]
	var errs []error
	bad := func(line int, path, format string, args ...any) {
		errs = append(errs, &yamlx.Error{File: file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if root.Kind != yaml.MappingNode {
		bad(root.Line, "", "expected a mapping with a `nodes` key")
		return nil, errors.Join(errs...)
	}
	var nodes *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "nodes" {
			bad(k.Line, k.Value, "unknown key (a pipeline file has only `nodes`)")
			continue
		}
		nodes = v
	}
	if nodes == nil {
		bad(root.Line, "nodes", "missing")
		return nil, errors.Join(errs...)
	}
	if nodes.Kind != yaml.MappingNode {
		bad(nodes.Line, "nodes", "expected a mapping from node name to node")
		return nil, errors.Join(errs...)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(nodes.Content); i += 2 {
		k, v := nodes.Content[i], nodes.Content[i+1]
		n := NodeSpec{Name: k.Value, line: k.Line}
		path := n.Path()
		if first, dup := seen[n.Name]; dup {
			bad(k.Line, path, "duplicate node name (first defined at line %d)", first)
			continue
		}
		seen[n.Name] = k.Line
		if !validName(n.Name) {
			bad(k.Line, path, "invalid node name: use letters, digits, '-' and '_'")
		}
		if v.Kind != yaml.MappingNode {
			bad(v.Line, path, "expected a mapping with kind, target, from and config")
			continue
		}
		for j := 0; j+1 < len(v.Content); j += 2 {
			fk, fv := v.Content[j], v.Content[j+1]
			fpath := path + "." + fk.Value
			switch fk.Value {
			case "kind":
				n.Kind, n.kindLine = scalar(fv, fpath, file, &errs), fk.Line
			case "target":
				n.Target, n.targetLine = scalar(fv, fpath, file, &errs), fk.Line
			case "from":
				switch fv.Kind {
				case yaml.SequenceNode:
					for _, e := range fv.Content {
						n.From = append(n.From, scalar(e, fpath, file, &errs))
						n.fromLines = append(n.fromLines, e.Line)
					}
				case yaml.ScalarNode:
					n.From = []string{fv.Value}
					n.fromLines = []int{fv.Line}
				default:
					bad(fv.Line, fpath, "expected a list of node names")
				}
			case "config":
				n.Config = fv
			default:
				bad(fk.Line, fpath, "unknown field (a node has kind, target, from and config)")
			}
		}
		if n.Kind == "" {
			bad(k.Line, path+".kind", "missing")
		}
		if n.Target == "" {
			bad(k.Line, path+".target", "missing")
		}
		spec.Nodes = append(spec.Nodes, n)
	}
	if len(spec.Nodes) == 0 && len(errs) == 0 {
		bad(nodes.Line, "nodes", "no nodes")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return spec, nil
}

func scalar(n *yaml.Node, path, file string, errs *[]error) string {
	if n.Kind != yaml.ScalarNode {
		*errs = append(*errs, &yamlx.Error{File: file, Line: n.Line, Path: path, Msg: "expected a single value"})
		return ""
	}
	return n.Value
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Registry is the set of node factories a pipeline may use, by kind.
type Registry map[string]Factory

// NewRegistry builds a registry from an explicit list of factories. It
// refuses two factories of one kind.
func NewRegistry(factories ...Factory) (Registry, error) {
	r := Registry{}
	for _, f := range factories {
		if _, dup := r[f.Type()]; dup {
			return nil, fmt.Errorf("cannot register node kind %q twice", f.Type())
		}
		r[f.Type()] = f
	}
	return r, nil
}

// Kinds lists the registered kinds, sorted.
func (r Registry) Kinds() []string {
	out := make([]string, 0, len(r))
	for k := range r {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Components are the components a node may name as its target; they are
// the values of -target besides "all".
var Components = []string{
	"distributor", "live-store", "block-builder", "metrics-generator",
	"query-frontend", "querier", "backend-scheduler", "backend-worker",
}

// checked is a node that passed Check, with its factory and decoded config.
type checked struct {
	spec    *NodeSpec
	factory Factory
	config  any
}

// Check checks the whole graph against the registry and returns every
// problem at once, each with its file, line and YAML path: unknown kinds,
// unknown targets, config errors, dangling or misplaced `from`, type
// mismatches and cycles. The nodes come back in dependency order (every
// node after the nodes it reads from).
func (s *Spec) check(reg Registry) ([]checked, error) {
	var errs []error
	bad := func(line int, path, format string, args ...any) {
		errs = append(errs, &yamlx.Error{File: s.File, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	byName := map[string]int{}
	for i := range s.Nodes {
		byName[s.Nodes[i].Name] = i
	}
	nodes := make([]checked, len(s.Nodes))
	for i := range s.Nodes {
		n := &s.Nodes[i]
		nodes[i].spec = n
		f, ok := reg[n.Kind]
		if !ok {
			bad(n.kindLine, n.Path()+".kind", "unknown kind %q (known kinds: %s)", n.Kind, strings.Join(reg.Kinds(), ", "))
		}
		if !contains(Components, n.Target) {
			bad(n.targetLine, n.Path()+".target", "unknown target %q (known targets: %s)", n.Target, strings.Join(Components, ", "))
		}
		if !ok {
			continue
		}
		nodes[i].factory = f
		cfg := f.DefaultConfig()
		if err := yamlx.Decode(n.Config, cfg, yamlx.Options{File: s.File, Path: n.Path() + ".config"}); err != nil {
			errs = append(errs, err)
		}
		nodes[i].config = cfg
		if f.Role() == RoleSource && len(n.From) > 0 {
			bad(n.fromLines[0], n.Path()+".from", "a %s node (kind %q) takes no input", f.Role(), n.Kind)
		}
		if f.Role() != RoleSource && len(n.From) == 0 {
			bad(n.line, n.Path()+".from", "missing: a %s node (kind %q) needs at least one input", f.Role(), n.Kind)
		}
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		seen := map[string]bool{}
		for j, from := range n.From {
			path := fmt.Sprintf("%s.from[%d]", n.Path(), j)
			src, ok := byName[from]
			switch {
			case !ok:
				bad(n.fromLines[j], path, "unknown node %q", from)
				continue
			case seen[from]:
				bad(n.fromLines[j], path, "node %q listed twice", from)
				continue
			}
			seen[from] = true
			sf, df := nodes[src].factory, nodes[i].factory
			if sf == nil || df == nil {
				continue
			}
			if sf.Role() == RoleSink {
				bad(n.fromLines[j], path, "node %q is a sink (kind %q) and has no output to read", from, sf.Type())
				continue
			}
			if df.Role() != RoleSource && sf.Output() != df.Input() {
				bad(n.fromLines[j], path, "node %q outputs %s but kind %q reads %s", from, sf.Output(), df.Type(), df.Input())
			}
		}
	}
	// A source or stage whose output nothing reads would drop data while
	// acknowledging it.
	read := map[string]bool{}
	for i := range s.Nodes {
		for _, from := range s.Nodes[i].From {
			read[from] = true
		}
	}
	for i := range nodes {
		n := nodes[i]
		if n.factory != nil && n.factory.Role() != RoleSink && !read[n.spec.Name] {
			bad(n.spec.line, n.spec.Path(), "nothing reads the output of this %s node (kind %q): its data would be lost; add a node with `from: [%s]` or remove it", n.factory.Role(), n.spec.Kind, n.spec.Name)
		}
	}
	order, cycle := topoSort(s.Nodes, byName)
	if cycle != nil {
		first := &s.Nodes[byName[cycle[0]]]
		bad(first.line, first.Path()+".from", "cycle: %s", strings.Join(cycle, " -> "))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := make([]checked, 0, len(order))
	for _, i := range order {
		out = append(out, nodes[i])
	}
	return out, nil
}

// topoSort orders nodes so each comes after its inputs; it returns a cycle
// (names, first repeated at the end) when there is one. Unknown inputs are
// ignored here.
func topoSort(nodes []NodeSpec, byName map[string]int) ([]int, []string) {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(nodes))
	var order []int
	var stack []int
	var cycle []string
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		stack = append(stack, i)
		for _, from := range nodes[i].From {
			j, ok := byName[from]
			if !ok {
				continue
			}
			switch color[j] {
			case grey:
				// The cycle is the stack from j to i, then back to j,
				// written in the direction data flows.
				k := len(stack) - 1
				for stack[k] != j {
					k--
				}
				for m := len(stack) - 1; m >= k; m-- {
					cycle = append(cycle, nodes[stack[m]].Name)
				}
				// data flows from inputs to readers: reverse
				for a, b := 0, len(cycle)-1; a < b; a, b = a+1, b-1 {
					cycle[a], cycle[b] = cycle[b], cycle[a]
				}
				cycle = append(cycle, cycle[0])
				return false
			case white:
				if !visit(j) {
					return false
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		order = append(order, i)
		return true
	}
	for i := range nodes {
		if color[i] == white && !visit(i) {
			return nil, cycle
		}
	}
	return order, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
