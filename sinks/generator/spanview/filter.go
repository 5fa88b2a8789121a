package spanview

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unsafe"
)

// FilterPolicy is one of a processor's `filter_policies` (Tempo's format): a
// span is kept when it matches Include (if set) and does not match Exclude
// (if set). A span must pass every policy of the list.
type FilterPolicy struct {
	// Include, when set, keeps only the spans it matches.
	Include *PolicyMatch `yaml:"include"`
	// Exclude, when set, drops the spans it matches.
	Exclude *PolicyMatch `yaml:"exclude"`
}

// PolicyMatch matches a span when all its attributes match.
type PolicyMatch struct {
	// MatchType is "strict" (values equal) or "regex" (the value is a
	// regular expression that must match somewhere in the span's value).
	MatchType string `yaml:"match_type"`
	// Attributes to match: Key is an intrinsic (name, kind, status,
	// status_message) or an attribute scoped with "span." or "resource.".
	Attributes []MatchAttribute `yaml:"attributes"`
}

// MatchAttribute is one key and the value it must match. Value is a string,
// number or bool; kind and status take SPAN_KIND_* and STATUS_CODE_* names.
type MatchAttribute struct {
	// Key of the intrinsic or scoped attribute.
	Key string `yaml:"key"`
	// Value the span's value must equal (strict) or match (regex).
	Value any `yaml:"value"`
}

// Filter applies a list of filter policies. The zero Filter keeps every
// span. It is safe for concurrent use.
type Filter struct {
	policies []compiledPolicy
}

type compiledPolicy struct{ include, exclude *compiledMatch }

type compiledMatch struct{ conds []cond }

type scope uint8

const (
	scopeName scope = iota
	scopeKind
	scopeStatus
	scopeStatusMessage
	scopeSpan
	scopeResource
)

type cond struct {
	scope scope
	attr  string
	want  string
	re    *regexp.Regexp
}

// NewFilter checks and compiles policies; key names the config key for
// errors (e.g. "metrics_generator.processor.span_metrics.filter_policies").
func NewFilter(key string, policies []FilterPolicy) (*Filter, error) {
	f := &Filter{}
	var errs []error
	for i, p := range policies {
		var cp compiledPolicy
		var err error
		if p.Include == nil && p.Exclude == nil {
			errs = append(errs, fmt.Errorf("%s[%d]: neither include nor exclude is set", key, i))
		}
		if p.Include != nil {
			if cp.include, err = compileMatch(p.Include); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d].include: %w", key, i, err))
			}
		}
		if p.Exclude != nil {
			if cp.exclude, err = compileMatch(p.Exclude); err != nil {
				errs = append(errs, fmt.Errorf("%s[%d].exclude: %w", key, i, err))
			}
		}
		f.policies = append(f.policies, cp)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

func compileMatch(m *PolicyMatch) (*compiledMatch, error) {
	regex := false
	switch m.MatchType {
	case "strict":
	case "regex":
		regex = true
	default:
		return nil, fmt.Errorf("match_type must be strict or regex, got %q", m.MatchType)
	}
	if len(m.Attributes) == 0 {
		return nil, errors.New("attributes is empty")
	}
	cm := &compiledMatch{}
	for i, a := range m.Attributes {
		var c cond
		switch {
		case a.Key == "name":
			c.scope = scopeName
		case a.Key == "kind":
			c.scope = scopeKind
		case a.Key == "status":
			c.scope = scopeStatus
		case a.Key == "status_message":
			c.scope = scopeStatusMessage
		case strings.HasPrefix(a.Key, "span.") && len(a.Key) > len("span."):
			c.scope, c.attr = scopeSpan, a.Key[len("span."):]
		case strings.HasPrefix(a.Key, "resource.") && len(a.Key) > len("resource."):
			c.scope, c.attr = scopeResource, a.Key[len("resource."):]
		default:
			return nil, fmt.Errorf("attributes[%d]: key %q is neither an intrinsic (name, kind, status, status_message) nor scoped with span. or resource.", i, a.Key)
		}
		switch v := a.Value.(type) {
		case string:
			c.want = v
		case bool:
			c.want = strconv.FormatBool(v)
		case int:
			c.want = strconv.Itoa(v)
		case int64:
			c.want = strconv.FormatInt(v, 10)
		case float64:
			c.want = strconv.FormatFloat(v, 'f', -1, 64)
		default:
			return nil, fmt.Errorf("attributes[%d]: value of %q must be a string, number or bool, got %T", i, a.Key, a.Value)
		}
		if regex {
			re, err := regexp.Compile(c.want)
			if err != nil {
				return nil, fmt.Errorf("attributes[%d]: %w", i, err)
			}
			c.re = re
		}
		cm.conds = append(cm.conds, c)
	}
	return cm, nil
}

// Keep tells whether s passes every policy. buf is scratch memory for value
// formatting; the grown buffer is returned for reuse.
func (f *Filter) Keep(s *Span, buf []byte) (bool, []byte) {
	if f == nil {
		return true, buf
	}
	for _, p := range f.policies {
		var ok bool
		if p.include != nil {
			if ok, buf = p.include.match(s, buf); !ok {
				return false, buf
			}
		}
		if p.exclude != nil {
			if ok, buf = p.exclude.match(s, buf); ok {
				return false, buf
			}
		}
	}
	return true, buf
}

func (m *compiledMatch) match(s *Span, buf []byte) (bool, []byte) {
	for i := range m.conds {
		c := &m.conds[i]
		var got string
		switch c.scope {
		case scopeName:
			got = unsafeString(s.Name)
		case scopeKind:
			got = SpanKindName(s.Kind)
		case scopeStatus:
			got = StatusCodeName(s.StatusCode)
		case scopeStatusMessage:
			got = unsafeString(s.StatusMessage)
		case scopeSpan, scopeResource:
			var raw []byte
			var found bool
			if c.scope == scopeSpan {
				raw, found = s.Lookup(c.attr)
			} else {
				raw, found = s.Resource.Lookup(c.attr)
			}
			if !found {
				return false, buf
			}
			buf = AppendLabel(buf[:0], raw)
			got = unsafeString(buf)
		}
		if c.re != nil {
			if !c.re.MatchString(got) {
				return false, buf
			}
		} else if got != c.want {
			return false, buf
		}
	}
	return true, buf
}

// unsafeString views b as a string without copying; the string must not
// outlive b's contents.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// UnsafeString views b as a string without copying, for label values handed
// to the registry (which copies what it keeps).
func UnsafeString(b []byte) string { return unsafeString(b) }
