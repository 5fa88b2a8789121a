package yamlx

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Helpers that read and rewrite a yaml.Node tree before it is decoded, for
// loaders that map keys of another system's format (Tempo 2's) to their
// own. Value nodes are moved, not copied, so that an error in one still
// names its line.

// Root returns the mapping at the root of doc (a document node or the
// mapping itself), or nil.
func Root(doc *yaml.Node) *yaml.Node {
	n := doc
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	return n
}

// Get returns the value of key in mapping m (aliases resolved), or nil.
func Get(m *yaml.Node, key string) *yaml.Node {
	if m != nil && m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			v := m.Content[i+1]
			if v.Kind == yaml.AliasNode && v.Alias != nil {
				return v.Alias
			}
			return v
		}
	}
	return nil
}

// Set adds key: v to mapping m, which does not have key.
func Set(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: v.Line, Column: v.Column}, v)
}

// Delete removes key from mapping m.
func Delete(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// GetPath returns the value at the dotted path below root, or nil. A key
// whose value is null counts as absent.
func GetPath(root *yaml.Node, path string) *yaml.Node {
	n := root
	for _, k := range strings.Split(path, ".") {
		n = Get(n, k)
		if n == nil {
			return nil
		}
	}
	if isNull(n) {
		return nil
	}
	return n
}

// SetPath sets the value at the dotted path below root to v, creating the
// mappings on the way, or replacing a null one. It returns false, changing
// nothing, when a node on the way is not a mapping.
func SetPath(root *yaml.Node, path string, v *yaml.Node) bool {
	keys := strings.Split(path, ".")
	n := root
	for i, k := range keys[:len(keys)-1] {
		next := Get(n, k)
		if next != nil && isNull(next) {
			Delete(n, k)
			next = nil
		}
		if next == nil {
			// Create the rest of the path in one go.
			leaf := v
			for j := len(keys) - 1; j > i; j-- {
				m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: v.Line, Column: v.Column}
				Set(m, keys[j], leaf)
				leaf = m
			}
			Set(n, k, leaf)
			return true
		}
		if next.Kind != yaml.MappingNode {
			return false
		}
		n = next
	}
	last := keys[len(keys)-1]
	if old := Get(n, last); old != nil {
		Delete(n, last)
	}
	Set(n, last, v)
	return true
}

// InlineMerges replaces, in every mapping below n, the merge keys
// ("<<: *anchor", "<<: [*a, *b]") by the pairs they bring, as YAML defines
// them: the mapping's own keys win, then the sources in order. Value nodes
// are shared with the anchored mapping, which itself is left as it is but
// for its own merge keys. Use it before Get and friends on a document that
// may have merge keys; decoding the result gives what decoding the
// original would.
func InlineMerges(n *yaml.Node) {
	inlineMerges(n, map[*yaml.Node]bool{})
}

func inlineMerges(n *yaml.Node, done map[*yaml.Node]bool) {
	if n == nil || n.Kind == yaml.AliasNode || done[n] {
		return
	}
	done[n] = true
	for _, c := range n.Content {
		inlineMerges(c, done)
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	var own, sources []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if isMerge(n.Content[i]) {
			sources = append(sources, mergeSources(n.Content[i+1])...)
			continue
		}
		own = append(own, n.Content[i], n.Content[i+1])
	}
	if len(sources) == 0 {
		return
	}
	seen := map[string]bool{}
	for i := 0; i < len(own); i += 2 {
		seen[own[i].Value] = true
	}
	for _, src := range sources {
		inlineMerges(src, done) // its own merges first
		for i := 0; i+1 < len(src.Content); i += 2 {
			if k := src.Content[i]; !seen[k.Value] {
				seen[k.Value] = true
				own = append(own, k, src.Content[i+1])
			}
		}
	}
	n.Content = own
}

// DecodeSection decodes node onto out, strictly, unless it is null (a key
// written with no value, such as `grpc:`, keeps out as it is): for a custom
// UnmarshalYAML, which does not inherit the strictness of Decode. name is
// the section's key below "protocols", used in the errors.
func DecodeSection(node *yaml.Node, out any, name string) error {
	if isNull(node) {
		return nil
	}
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("cannot decode protocols.%s at line %d: want a mapping or nothing", name, node.Line)
	}
	if err := Decode(node, out, Options{Path: "protocols." + name}); err != nil {
		return fmt.Errorf("cannot decode protocols.%s: %w", name, err)
	}
	return nil
}
