package membership

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultBindPort is the gossip port, TCP and UDP, as in Tempo.
const DefaultBindPort = 7946

// Config is the top-level `memberlist` block. Key names are Tempo's (dskit's)
// where Tempo has the setting; defaults are Tempo's where it sets one and
// memberlist's DefaultLANConfig otherwise.
type Config struct {
	// NodeName is this process's name in the cluster; it must be unique.
	// Empty (the default) uses the hostname followed by a random suffix, so
	// that a restarted process never collides with its own previous
	// incarnation while that one is still suspected.
	NodeName string `yaml:"node_name"`
	// BindAddr lists the IP addresses to listen on for gossip, as a list or
	// a single string. Empty (the default) listens on all IPv4 interfaces.
	BindAddr AddrList `yaml:"bind_addr"`
	// BindPort is the TCP and UDP gossip port; 0 picks a free port.
	BindPort int `yaml:"bind_port"`
	// AdvertiseAddr is the IP address other members use to reach this one.
	// Empty uses the bind address, or a private IP of this host when bound
	// to all interfaces.
	AdvertiseAddr string `yaml:"advertise_addr"`
	// AdvertisePort is the port other members use to reach this one; 0 (the
	// default) uses the port actually bound.
	AdvertisePort int `yaml:"advertise_port"`
	// JoinMembers are the host:port addresses of members to join at start;
	// a missing port means bind_port. Empty starts a cluster of one that
	// others may join.
	JoinMembers []string `yaml:"join_members"`
	// AbortIfClusterJoinFails makes start fail when none of join_members
	// answers. When false, joining is retried in the background, with a
	// delay doubling from min_join_backoff to max_join_backoff, until one
	// answers.
	AbortIfClusterJoinFails bool `yaml:"abort_if_cluster_join_fails"`
	// MinJoinBackoff is the first delay between background join attempts.
	MinJoinBackoff time.Duration `yaml:"min_join_backoff"`
	// MaxJoinBackoff caps the delay between background join attempts.
	MaxJoinBackoff time.Duration `yaml:"max_join_backoff"`
	// RejoinInterval, when positive, joins join_members again at this
	// interval after the first successful join, to heal a split cluster;
	// 0 (the default) never rejoins.
	RejoinInterval time.Duration `yaml:"rejoin_interval"`
	// GossipInterval is how often this member gossips to gossip_nodes
	// random members.
	GossipInterval time.Duration `yaml:"gossip_interval"`
	// GossipNodes is how many members each gossip round is sent to.
	GossipNodes int `yaml:"gossip_nodes"`
	// PullPushInterval is how often this member exchanges its whole state
	// with a random member; 0 disables full syncs.
	PullPushInterval time.Duration `yaml:"pull_push_interval"`
	// GossipToDeadNodesTime is how long a dead member still receives
	// gossip, so that it learns it was declared dead.
	GossipToDeadNodesTime time.Duration `yaml:"gossip_to_dead_nodes_time"`
	// DeadNodeReclaimTime is after how long a dead member's name may be
	// taken by a member at another address; 0 never allows it.
	DeadNodeReclaimTime time.Duration `yaml:"dead_node_reclaim_time"`
	// CompressionEnabled compresses gossip messages.
	CompressionEnabled bool `yaml:"compression_enabled"`
	// LeaveTimeout bounds the graceful leave: how long Leave waits for the
	// leave message to reach another member before shutting down anyway.
	LeaveTimeout time.Duration `yaml:"leave_timeout"`
}

// DefaultConfig returns the defaults of the `memberlist` block.
func DefaultConfig() Config {
	return Config{
		BindPort:              DefaultBindPort,
		MinJoinBackoff:        time.Second,
		MaxJoinBackoff:        10 * time.Second,
		GossipInterval:        time.Second,
		GossipNodes:           2,
		PullPushInterval:      30 * time.Second,
		GossipToDeadNodesTime: 30 * time.Second,
		LeaveTimeout:          5 * time.Second,
	}
}

// Validate reports every invalid value, naming its key relative to the
// `memberlist` block.
func (c *Config) Validate() error {
	var errs []error
	for i, a := range c.BindAddr {
		if net.ParseIP(a) == nil {
			errs = append(errs, fmt.Errorf("bind_addr[%d] must be an IP address, got %q", i, a))
		}
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		errs = append(errs, fmt.Errorf("bind_port must be between 0 and 65535, got %d", c.BindPort))
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs = append(errs, fmt.Errorf("advertise_addr must be an IP address, got %q", c.AdvertiseAddr))
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, fmt.Errorf("advertise_port must be between 0 and 65535, got %d", c.AdvertisePort))
	}
	for i, m := range c.JoinMembers {
		if err := checkHostPort(m); err != nil {
			errs = append(errs, fmt.Errorf("join_members[%d] %w", i, err))
		}
	}
	if c.MinJoinBackoff <= 0 {
		errs = append(errs, fmt.Errorf("min_join_backoff must be positive, got %s", c.MinJoinBackoff))
	}
	if c.MaxJoinBackoff < c.MinJoinBackoff {
		errs = append(errs, fmt.Errorf("max_join_backoff must be at least min_join_backoff (%s), got %s", c.MinJoinBackoff, c.MaxJoinBackoff))
	}
	if c.RejoinInterval < 0 {
		errs = append(errs, fmt.Errorf("rejoin_interval must not be negative, got %s", c.RejoinInterval))
	}
	if c.GossipInterval <= 0 {
		errs = append(errs, fmt.Errorf("gossip_interval must be positive, got %s", c.GossipInterval))
	}
	if c.GossipNodes <= 0 {
		errs = append(errs, fmt.Errorf("gossip_nodes must be positive, got %d", c.GossipNodes))
	}
	if c.PullPushInterval < 0 {
		errs = append(errs, fmt.Errorf("pull_push_interval must not be negative, got %s", c.PullPushInterval))
	}
	if c.GossipToDeadNodesTime < 0 {
		errs = append(errs, fmt.Errorf("gossip_to_dead_nodes_time must not be negative, got %s", c.GossipToDeadNodesTime))
	}
	if c.DeadNodeReclaimTime < 0 {
		errs = append(errs, fmt.Errorf("dead_node_reclaim_time must not be negative, got %s", c.DeadNodeReclaimTime))
	}
	if c.LeaveTimeout <= 0 {
		errs = append(errs, fmt.Errorf("leave_timeout must be positive, got %s", c.LeaveTimeout))
	}
	return errors.Join(errs...)
}

// checkHostPort accepts "host", "host:port" and "[ipv6]:port"; the error
// completes the sentence "join_members[i] ...".
func checkHostPort(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port (or a bare IPv6 address): memberlist adds bind_port.
		if net.ParseIP(s) != nil || !strings.Contains(s, ":") {
			return nil
		}
		return fmt.Errorf("must be host or host:port, got %q", s)
	}
	if host == "" {
		return fmt.Errorf("must name a host, got %q", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("has an invalid port in %q", s)
	}
	return nil
}

// AddrList is a list of addresses that YAML may also give as one string.
type AddrList []string

// UnmarshalYAML accepts a string or a list of strings.
func (l *AddrList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*l = AddrList{s}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*l = list
	return nil
}
