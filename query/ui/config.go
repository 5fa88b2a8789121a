package ui

import "fmt"

// Config is the `ui` block of weft's configuration (weft only: Tempo has no
// web UI).
type Config struct {
	// Enabled serves the trace explorer on the query API's HTTP port
	// (server.http_listen_port). false leaves only the API there.
	Enabled bool `yaml:"enabled"`
	// PathPrefix is the path of the explorer's page, "/" by default; its
	// files are under <path_prefix>ui/. It must start with "/" and must not
	// be under a path of the API (/api/, /status/, /metrics, /ready...).
	PathPrefix string `yaml:"path_prefix"`
}

// DefaultConfig serves the explorer at "/".
func DefaultConfig() Config {
	return Config{Enabled: true, PathPrefix: "/"}
}

// Validate checks the path prefix; the errors name the key below `ui`.
func (c Config) Validate() error {
	if err := CheckPathPrefix(c.PathPrefix); err != nil {
		return fmt.Errorf("path_prefix: %w", err)
	}
	return nil
}
