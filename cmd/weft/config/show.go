package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// What GET /status/config shows: the configuration as YAML, as Tempo's
// /status/config does, with every secret replaced by Redacted.

// Redacted replaces a secret's value in a shown configuration.
const Redacted = "********"

// Modes of Show, as Tempo's ?mode= of /status/config.
const (
	ShowAll      = ""         // the whole effective configuration
	ShowDefaults = "defaults" // the defaults
	ShowDiff     = "diff"     // only what differs from the defaults
)

// secretKeys are the keys whose values are secrets wherever they appear:
// the S3 secret and session keys, Kafka's SASL password, remote write's
// basic_auth password, and the token keys a Tempo file may carry.
var secretKeys = map[string]bool{
	"secret_key": true, "session_token": true, "password": true,
	"bearer_token": true, "token": true, "access_token": true,
}

// headerKeys are the keys holding HTTP headers (remote write's headers,
// the overrides' remote_write_headers): values of a header whose name
// says it carries credentials are secrets.
var headerKeys = map[string]bool{"headers": true, "remote_write_headers": true, "http_headers": true}

// secretHeader reports whether a header named name carries credentials.
func secretHeader(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"auth", "token", "key", "secret", "password", "cookie"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// Show returns c as YAML with its secrets redacted: the whole of it
// (ShowAll), the defaults (ShowDefaults), or only the keys whose values
// differ from the defaults (ShowDiff). Another mode is an error naming
// the valid ones.
func (c Config) Show(mode string) ([]byte, error) {
	var v any
	switch mode {
	case ShowAll:
		n, err := redactedTree(c)
		if err != nil {
			return nil, err
		}
		v = n
	case ShowDefaults:
		n, err := redactedTree(Default())
		if err != nil {
			return nil, err
		}
		v = n
	case ShowDiff:
		cur, err := redactedTree(c)
		if err != nil {
			return nil, err
		}
		def, err := redactedTree(Default())
		if err != nil {
			return nil, err
		}
		d, _ := diff(cur, def)
		if d == nil {
			d = map[string]any{}
		}
		v = d
	default:
		return nil, fmt.Errorf("invalid mode %q: must be empty, %q or %q", mode, ShowDefaults, ShowDiff)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the configuration: %w", err)
	}
	return out, nil
}

// redactedTree is c as generic YAML values (maps, lists, scalars) with
// the secrets redacted.
func redactedTree(c Config) (any, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the configuration: %w", err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("cannot decode the configuration: %w", err)
	}
	redact(v)
	return v, nil
}

// redact replaces the secrets under v in place.
func redact(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			switch {
			case secretKeys[k]:
				if s, ok := val.(string); !ok || s != "" {
					t[k] = Redacted
				}
			case headerKeys[k]:
				if hs, ok := val.(map[string]any); ok {
					for name, hv := range hs {
						if secretHeader(name) && hv != "" {
							hs[name] = Redacted
						}
					}
				}
			default:
				redact(val)
			}
		}
	case []any:
		for _, e := range t {
			redact(e)
		}
	}
}

// diff returns what of cur differs from def (nil, false when nothing does):
// for maps the keys whose values differ, else cur whole.
func diff(cur, def any) (any, bool) {
	cm, ok1 := cur.(map[string]any)
	dm, ok2 := def.(map[string]any)
	if !ok1 || !ok2 {
		if reflect.DeepEqual(cur, def) {
			return nil, false
		}
		return cur, true
	}
	out := map[string]any{}
	for k, cv := range cm {
		if d, changed := diff(cv, dm[k]); changed {
			out[k] = d
		}
	}
	if len(out) == 0 {
		return nil, false
	}
	return out, true
}
