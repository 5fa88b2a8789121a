// Package membership tells a weft process which other weft processes exist
// and what they serve: each process gossips its roles and addresses with
// hashicorp/memberlist (the `memberlist` config block, Tempo's keys and port
// 7946), and asks the cluster for the live members having a role, such as
// queriers looking for live-stores or workers looking for the scheduler.
//
// Membership is discovery only; no data goes through it.
package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
)

// MaxMetaBytes is memberlist's limit on a member's metadata, which is the
// JSON encoding of Meta.
const MaxMetaBytes = memberlist.MetaMaxSize

// Meta is what a member serves, gossiped as its memberlist node metadata
// (JSON, at most MaxMetaBytes bytes).
type Meta struct {
	// Roles are the components this process runs, such as "live-store".
	Roles []string `json:"roles,omitempty"`
	// GRPCAddr is the host:port of the process's internal gRPC server.
	GRPCAddr string `json:"grpc_addr,omitempty"`
	// HTTPAddr is the host:port of the process's HTTP server.
	HTTPAddr string `json:"http_addr,omitempty"`
}

// HasRole reports whether m lists role.
func (m Meta) HasRole(role string) bool { return slices.Contains(m.Roles, role) }

// encodeMeta returns m as node metadata, refusing what memberlist would not
// carry.
func encodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("cannot encode node metadata: %w", err)
	}
	if len(b) > MaxMetaBytes {
		return nil, fmt.Errorf("cannot encode node metadata: %d bytes of JSON exceed memberlist's limit of %d bytes (memberlist.MetaMaxSize)", len(b), MaxMetaBytes)
	}
	return b, nil
}

// Member is one live process of the cluster.
type Member struct {
	// Name is the member's node_name, unique in the cluster.
	Name string
	// Meta is what the member serves.
	Meta Meta
}

// Cluster is this process's membership in a memberlist cluster.
type Cluster struct {
	cfg    Config
	logger *slog.Logger
	ml     *memberlist.Memberlist
	meta   []byte
	gauge  *prometheus.GaugeVec
	// rejoins counts the joins of missing seeds, by result.
	rejoins *prometheus.CounterVec

	mu      sync.Mutex
	members map[string]Member // alive members by name, self included
	counted map[string]bool   // roles the gauge has a value for

	stop      chan struct{}
	wg        sync.WaitGroup
	leaveOnce sync.Once
	leaveErr  error
}

// Join starts gossiping as a member with metadata self, joins
// cfg.JoinMembers, and returns the Cluster. When none of JoinMembers
// answers, Join fails if cfg.AbortIfClusterJoinFails and otherwise returns
// and keeps trying in the background. reg, when not nil, gets the gauge
// weft_memberlist_members{role}. Call Leave to stop.
func Join(cfg Config, self Meta, logger *slog.Logger, reg prometheus.Registerer) (*Cluster, error) {
	return join(cfg, self, logger, reg, nil)
}

// join is Join with a hook that adjusts the memberlist config last (tests
// shorten the failure detector with it).
func join(cfg Config, self Meta, logger *slog.Logger, reg prometheus.Registerer, tune func(*memberlist.Config)) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot start memberlist: invalid config: %w", err)
	}
	meta, err := encodeMeta(self)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		cfg:     cfg,
		logger:  logger,
		meta:    meta,
		members: map[string]Member{},
		counted: map[string]bool{},
		stop:    make(chan struct{}),
		gauge: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_memberlist_members",
			Help: "Alive members of the memberlist cluster, this process included, by role.",
		}, []string{"role"})),
		rejoins: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_memberlist_rejoins_total",
			Help: "Joins of join_members missing from the cluster (a seed restarted, or this member alone), by result (ok, failed).",
		}, []string{"result"})),
	}

	name := cfg.NodeName
	if name == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "weft"
		}
		name = fmt.Sprintf("%s-%08x", host, rand.Uint32())
	}
	mlLogger := log.New(logWriter{logger.With("component", "memberlist")}, "", 0)

	transport, port, err := newTransport(cfg, mlLogger)
	if err != nil {
		return nil, err
	}

	mlc := memberlist.DefaultLANConfig()
	mlc.Name = name
	mlc.Transport = transport
	mlc.BindPort = port
	mlc.AdvertiseAddr = cfg.AdvertiseAddr
	mlc.AdvertisePort = cfg.AdvertisePort
	if mlc.AdvertisePort == 0 {
		mlc.AdvertisePort = port
	}
	mlc.GossipInterval = cfg.GossipInterval
	mlc.GossipNodes = cfg.GossipNodes
	mlc.PushPullInterval = cfg.PullPushInterval
	mlc.GossipToTheDeadTime = cfg.GossipToDeadNodesTime
	mlc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	mlc.EnableCompression = cfg.CompressionEnabled
	mlc.Delegate = delegate{c}
	mlc.Events = events{c}
	mlc.Logger = mlLogger
	if tune != nil {
		tune(mlc)
	}

	c.ml, err = memberlist.Create(mlc)
	if err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("cannot start memberlist: %w", err)
	}
	logger.Info("memberlist started", "node_name", name, "addr", c.LocalAddr())

	joined := true
	if len(cfg.JoinMembers) > 0 {
		n, err := c.ml.Join(cfg.JoinMembers)
		joined = n > 0
		switch {
		case joined:
			logger.Info("joined memberlist cluster", "contacted", n)
		case cfg.AbortIfClusterJoinFails:
			_ = c.ml.Shutdown()
			return nil, fmt.Errorf("cannot join memberlist cluster through join_members %v (abort_if_cluster_join_fails is set): %w", cfg.JoinMembers, err)
		default:
			logger.Warn("cannot join memberlist cluster, retrying in the background", "join_members", cfg.JoinMembers, "err", err)
		}
	}
	if len(cfg.JoinMembers) > 0 {
		c.wg.Add(1)
		go c.joinLoop(joined)
	}
	return c, nil
}

// newTransport binds the gossip sockets on every bind_addr; with port 0 it
// retries a few times, as memberlist does, because the kernel's free port
// for TCP may be taken for UDP.
func newTransport(cfg Config, logger *log.Logger) (*memberlist.NetTransport, int, error) {
	addrs := []string(cfg.BindAddr)
	if len(addrs) == 0 {
		addrs = []string{"0.0.0.0"}
	}
	tries := 1
	if cfg.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: addrs,
			BindPort:  cfg.BindPort,
			Logger:    logger,
		})
		if err == nil {
			return nt, nt.GetAutoBindPort(), nil
		}
	}
	return nil, 0, fmt.Errorf("cannot bind memberlist to %v port %d: %w", addrs, cfg.BindPort, err)
}

// joinLoop retries the first join until a member answers. Then it heals
// the cluster: every min_join_backoff it looks for join_members that no
// alive member answers at (a seed that restarted and is alone in a
// cluster of its own, or this member left alone), and joins them, with a
// delay doubling up to max_join_backoff while that fails. It also rejoins
// every rejoin_interval if set.
func (c *Cluster) joinLoop(joined bool) {
	defer c.wg.Done()
	backoff := c.cfg.MinJoinBackoff
	for !joined {
		t := time.NewTimer(backoff)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		n, err := c.ml.Join(c.cfg.JoinMembers)
		if n > 0 {
			c.logger.Info("joined memberlist cluster", "contacted", n)
			joined = true
			break
		}
		backoff = min(2*backoff, c.cfg.MaxJoinBackoff)
		c.logger.Warn("cannot join memberlist cluster", "join_members", c.cfg.JoinMembers, "err", err, "retry_in", backoff)
	}
	var rejoin <-chan time.Time
	if c.cfg.RejoinInterval > 0 {
		t := time.NewTicker(c.cfg.RejoinInterval)
		defer t.Stop()
		rejoin = t.C
	}
	check := time.NewTicker(c.cfg.MinJoinBackoff)
	defer check.Stop()
	backoff, next, healing := c.cfg.MinJoinBackoff, time.Time{}, false
	for {
		select {
		case <-c.stop:
			return
		case <-rejoin:
			if n, err := c.ml.Join(c.cfg.JoinMembers); n == 0 {
				c.logger.Warn("cannot rejoin memberlist cluster", "join_members", c.cfg.JoinMembers, "err", err)
			}
			continue
		case <-check.C:
		}
		missing := c.missingSeeds()
		if len(missing) == 0 {
			if healing {
				c.logger.Info("every memberlist seed is in the cluster again", "members", c.ml.NumMembers())
			}
			backoff, next, healing = c.cfg.MinJoinBackoff, time.Time{}, false
			continue
		}
		if time.Now().Before(next) {
			continue
		}
		n, err := c.ml.Join(missing)
		if n > 0 {
			c.rejoins.WithLabelValues("ok").Inc()
			c.logger.Info("rejoined memberlist seeds that were not in the cluster", "seeds", missing, "contacted", n, "members", c.ml.NumMembers())
			backoff, next = c.cfg.MinJoinBackoff, time.Time{}
		} else {
			c.rejoins.WithLabelValues("failed").Inc()
			if !healing { // once per outage; the metric counts every try
				c.logger.Warn("memberlist seeds are not in the cluster and do not answer; retrying", "seeds", missing, "members", c.ml.NumMembers(), "err", err)
			}
			next = time.Now().Add(backoff)
			backoff = min(2*backoff, c.cfg.MaxJoinBackoff)
		}
		healing = true
	}
}

// missingSeeds returns the join_members at which no alive member is
// known, this one included. A name that does not resolve counts as
// missing, so that joining it is retried.
func (c *Cluster) missingSeeds() []string {
	alive := map[string]bool{}
	for _, n := range c.ml.Members() {
		alive[n.Address()] = true
	}
	var missing []string
	for _, seed := range c.cfg.JoinMembers {
		host, port, err := net.SplitHostPort(seed)
		if err != nil { // no port: memberlist adds bind_port
			host, port = strings.Trim(seed, "[]"), strconv.Itoa(c.cfg.BindPort)
		}
		ips := []string{host}
		if net.ParseIP(host) == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			ips, err = net.DefaultResolver.LookupHost(ctx, host)
			cancel()
			if err != nil {
				missing = append(missing, seed)
				continue
			}
		}
		if !slices.ContainsFunc(ips, func(ip string) bool { return alive[net.JoinHostPort(ip, port)] }) {
			missing = append(missing, seed)
		}
	}
	return missing
}

// Members returns the alive members having role (every alive member when
// role is empty), this process included, sorted by name.
func (c *Cluster) Members(role string) []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		if role == "" || m.Meta.HasRole(role) {
			m.Meta.Roles = slices.Clone(m.Meta.Roles)
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Name returns this member's node name.
func (c *Cluster) Name() string { return c.ml.LocalNode().Name }

// LocalAddr returns the host:port other members reach this one at (the
// bound gossip address when bound to one IP), for join_members.
func (c *Cluster) LocalAddr() string { return c.ml.LocalNode().Address() }

// Leave tells the cluster this member is leaving, waiting at most
// leave_timeout (or until ctx's deadline, if sooner) for the message to go
// out, then stops gossiping. Calling it again returns the first result.
func (c *Cluster) Leave(ctx context.Context) error {
	c.leaveOnce.Do(func() { c.leaveErr = c.leave(ctx) })
	return c.leaveErr
}

func (c *Cluster) leave(ctx context.Context) error {
	close(c.stop)
	timeout := c.cfg.LeaveTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(0, min(timeout, time.Until(d)))
	}
	var err error
	if lerr := c.ml.Leave(timeout); lerr != nil {
		err = fmt.Errorf("cannot leave memberlist cluster: %w", lerr)
	}
	if serr := c.ml.Shutdown(); serr != nil && err == nil {
		err = fmt.Errorf("cannot shut down memberlist: %w", serr)
	}
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	c.mu.Lock()
	clear(c.members)
	c.updateGaugeLocked()
	c.mu.Unlock()
	if err == nil {
		c.logger.Info("left memberlist cluster")
	}
	return err
}

// updateGaugeLocked sets the gauge from members; c.mu is held.
func (c *Cluster) updateGaugeLocked() {
	counts := map[string]int{}
	for _, m := range c.members {
		for _, r := range m.Meta.Roles {
			counts[r]++
		}
	}
	for r := range c.counted {
		if counts[r] == 0 {
			c.gauge.WithLabelValues(r).Set(0)
		}
	}
	for r, n := range counts {
		c.gauge.WithLabelValues(r).Set(float64(n))
		c.counted[r] = true
	}
}

// events keeps Cluster.members current. memberlist calls it with its own
// locks held, so it must not call back into memberlist.
type events struct{ c *Cluster }

func (e events) NotifyJoin(n *memberlist.Node)   { e.c.upsert(n) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.c.upsert(n) }
func (e events) NotifyLeave(n *memberlist.Node) {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	delete(e.c.members, n.Name)
	e.c.updateGaugeLocked()
}

func (c *Cluster) upsert(n *memberlist.Node) {
	var m Meta
	if err := json.Unmarshal(n.Meta, &m); err != nil {
		// Not a weft process (or a newer, incompatible one): not listed.
		c.logger.Warn("ignoring memberlist member with unreadable metadata", "member", n.Name, "addr", n.Address(), "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[n.Name] = Member{Name: n.Name, Meta: m}
	c.updateGaugeLocked()
}

// delegate hands memberlist this member's metadata; weft gossips nothing
// else through memberlist.
type delegate struct{ c *Cluster }

func (d delegate) NodeMeta(limit int) []byte {
	if len(d.c.meta) > limit { // checked in Join; never panic memberlist
		return nil
	}
	return d.c.meta
}
func (delegate) NotifyMsg([]byte)                       {}
func (delegate) GetBroadcasts(int, int) [][]byte        { return nil }
func (delegate) LocalState(bool) []byte                 { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool) {}

// logWriter routes memberlist's log lines ("[LEVEL] memberlist: msg") to
// slog at debug level, keeping memberlist's level as an attribute.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := ""
	if strings.HasPrefix(msg, "[") {
		if i := strings.IndexByte(msg, ']'); i > 0 {
			level, msg = msg[1:i], strings.TrimSpace(msg[i+1:])
		}
	}
	msg = strings.TrimPrefix(msg, "memberlist: ")
	w.l.Debug(msg, "memberlist_level", level)
	return len(p), nil
}
