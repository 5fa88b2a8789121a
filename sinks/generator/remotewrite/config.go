package remotewrite

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the `metrics_generator.storage` block: where the queues live
// and where their requests go. Its keys are Tempo's, plus max_queue_age and
// max_queue_bytes, which bound the queue.
type Config struct {
	// Path is the directory of the queues, one subdirectory per tenant.
	// Required when RemoteWrite is set.
	Path string `yaml:"path"`
	// RemoteWrite lists the endpoints every request is sent to. Empty
	// means that nothing is sent and nothing is queued.
	RemoteWrite []Endpoint `yaml:"remote_write"`
	// AddOrgIDHeader sends the tenant as X-Scope-OrgID with every request.
	AddOrgIDHeader bool `yaml:"remote_write_add_org_id_header"`
	// FlushDeadline bounds how long a shutdown keeps sending the queued
	// requests (the deadline of the ctx the caller gives Close); what is
	// left is sent after the next start.
	FlushDeadline time.Duration `yaml:"remote_write_flush_deadline"`
	// MaxQueueAge drops queued requests enqueued longer ago than this
	// (reason max_queue_age), so that an endpoint down for long does not
	// keep the queue growing. 0 keeps them until MaxQueueBytes drops them.
	MaxQueueAge time.Duration `yaml:"max_queue_age"`
	// MaxQueueBytes bounds each tenant's queue on disk; past it the oldest
	// requests are dropped (reason max_queue_bytes).
	MaxQueueBytes int64 `yaml:"max_queue_bytes"`
}

// Endpoint is one remote-write destination (an item of remote_write).
type Endpoint struct {
	// URL of the remote-write receiver, such as
	// http://prometheus:9090/api/v1/write.
	URL string `yaml:"url"`
	// Name identifies the endpoint in logs; defaults to its position
	// ("0", "1", ...). Names must be unique.
	Name string `yaml:"name"`
	// Headers are added to every request. X-Scope-OrgID set here wins over
	// remote_write_add_org_id_header.
	Headers map[string]string `yaml:"headers"`
	// SendExemplars sends the exemplars of the series; without it they
	// are left out.
	SendExemplars bool `yaml:"send_exemplars"`
	// RemoteTimeout bounds one HTTP request.
	RemoteTimeout time.Duration `yaml:"remote_timeout"`
	// BasicAuth, when set, authenticates every request.
	BasicAuth *BasicAuth `yaml:"basic_auth"`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	// Username sent with every request.
	Username string `yaml:"username"`
	// Password sent with every request.
	Password string `yaml:"password"`
}

// DefaultRemoteTimeout is remote_timeout when an endpoint leaves it out.
const DefaultRemoteTimeout = 30 * time.Second

// DefaultConfig is the storage block of a config that leaves it out: no
// endpoint, the X-Scope-OrgID header on, a minute to flush at shutdown, a
// queue bounded to an hour and 512 MiB per tenant.
func DefaultConfig() Config {
	return Config{
		AddOrgIDHeader: true,
		FlushDeadline:  time.Minute,
		MaxQueueAge:    time.Hour,
		MaxQueueBytes:  512 << 20,
	}
}

// DefaultEndpoint is an endpoint's values before its own keys apply.
func DefaultEndpoint() Endpoint {
	return Endpoint{RemoteTimeout: DefaultRemoteTimeout}
}

// UnmarshalYAML decodes a remote_write item over DefaultEndpoint, so that
// the keys it leaves out keep their defaults.
func (e *Endpoint) UnmarshalYAML(n *yaml.Node) error {
	type plain Endpoint // without this method
	p := plain(DefaultEndpoint())
	if err := n.Decode(&p); err != nil {
		return err
	}
	*e = Endpoint(p)
	return nil
}

// Validate checks the config; errors name the key, relative to the
// storage block.
func (c *Config) Validate() error {
	var errs []error
	if len(c.RemoteWrite) > 0 && c.Path == "" {
		errs = append(errs, errors.New("path is required when remote_write is set"))
	}
	if c.FlushDeadline < 0 {
		errs = append(errs, fmt.Errorf("remote_write_flush_deadline must not be negative, got %s", c.FlushDeadline))
	}
	if c.MaxQueueAge < 0 {
		errs = append(errs, fmt.Errorf("max_queue_age must not be negative, got %s", c.MaxQueueAge))
	}
	if c.MaxQueueBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("max_queue_bytes must be at least 1 MiB (1048576), got %d", c.MaxQueueBytes))
	}
	names := map[string]int{}
	for i := range c.RemoteWrite {
		e := &c.RemoteWrite[i]
		key := fmt.Sprintf("remote_write[%d]", i)
		if e.URL == "" {
			errs = append(errs, fmt.Errorf("%s.url is required", key))
		} else if u, err := url.Parse(e.URL); err != nil {
			errs = append(errs, fmt.Errorf("%s.url: %w", key, err))
		} else if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.url must be an http:// or https:// URL with a host, got %q", key, e.URL))
		}
		if e.RemoteTimeout <= 0 {
			errs = append(errs, fmt.Errorf("%s.remote_timeout must be positive, got %s", key, e.RemoteTimeout))
		}
		name := e.endpointName(i)
		if j, ok := names[name]; ok {
			errs = append(errs, fmt.Errorf("%s.name %q is also the name of remote_write[%d]", key, name, j))
		}
		names[name] = i
		for h := range e.Headers {
			if err := checkHeaderName(h); err != nil {
				errs = append(errs, fmt.Errorf("%s.headers: %w", key, err))
			}
		}
		if e.BasicAuth != nil && e.BasicAuth.Username == "" {
			errs = append(errs, fmt.Errorf("%s.basic_auth.username is required when basic_auth is set", key))
		}
	}
	return errors.Join(errs...)
}

func (e *Endpoint) endpointName(i int) string {
	if e.Name != "" {
		return e.Name
	}
	return fmt.Sprint(i)
}

// checkHeaderName refuses names that are not header names, and the
// headers of the remote-write protocol itself.
func checkHeaderName(h string) error {
	if h == "" || strings.ContainsAny(h, " \t\r\n:") {
		return fmt.Errorf("invalid header name %q", h)
	}
	switch http.CanonicalHeaderKey(h) {
	case "Content-Encoding", "Content-Type", "X-Prometheus-Remote-Write-Version", "Content-Length":
		return fmt.Errorf("%s is set by the remote-write protocol and cannot be overridden", h)
	}
	return nil
}
