package membership

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"
)

// settle bounds every wait for gossip to converge.
const settle = 10 * time.Second

// fast shortens memberlist's failure detector so that a dead member is
// noticed in well under a second.
func fast(c *memberlist.Config) {
	c.GossipInterval = 20 * time.Millisecond
	c.ProbeInterval = 100 * time.Millisecond
	c.ProbeTimeout = 50 * time.Millisecond
	c.SuspicionMult = 1
	c.PushPullInterval = time.Second
	c.TCPTimeout = time.Second
}

func testConfig(name string, join ...string) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.BindAddr = AddrList{"127.0.0.1"}
	cfg.BindPort = 0
	cfg.JoinMembers = join
	cfg.MinJoinBackoff = 50 * time.Millisecond
	cfg.MaxJoinBackoff = 200 * time.Millisecond
	return cfg
}

func start(t *testing.T, cfg Config, meta Meta, reg prometheus.Registerer) *Cluster {
	t.Helper()
	c, err := join(cfg, meta, nil, reg, fast)
	if err != nil {
		t.Fatalf("Join(%s): %v", cfg.NodeName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Leave(ctx)
	})
	return c
}

// kill stops c without leaving, as a crash would.
func kill(c *Cluster) {
	c.leaveOnce.Do(func() {
		close(c.stop)
		_ = c.ml.Shutdown()
		c.wg.Wait()
	})
}

func names(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// eventually waits until c.Members(role) has exactly want (by name).
func eventually(t *testing.T, c *Cluster, role string, want ...string) []Member {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		got := c.Members(role)
		if slices.Equal(names(got), want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: Members(%q) = %v after %s, want %v", c.Name(), role, names(got), settle, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var metas = map[string]Meta{
	"a": {Roles: []string{"live-store", "querier"}, GRPCAddr: "127.0.0.1:9095", HTTPAddr: "127.0.0.1:3200"},
	"b": {Roles: []string{"live-store"}, GRPCAddr: "127.0.0.1:9096", HTTPAddr: "127.0.0.1:3201"},
	"c": {Roles: []string{"querier"}, GRPCAddr: "127.0.0.1:9097"},
}

func startThree(t *testing.T, reg prometheus.Registerer) (a, b, c *Cluster) {
	a = start(t, testConfig("a"), metas["a"], reg)
	b = start(t, testConfig("b", a.LocalAddr()), metas["b"], nil)
	c = start(t, testConfig("c", b.LocalAddr()), metas["c"], nil)
	return a, b, c
}

func TestThreeMembersSeeEachOther(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b, c := startThree(t, reg)
	for _, cl := range []*Cluster{a, b, c} {
		got := eventually(t, cl, "", "a", "b", "c")
		for _, m := range got {
			want := metas[m.Name]
			if !slices.Equal(m.Meta.Roles, want.Roles) || m.Meta.GRPCAddr != want.GRPCAddr || m.Meta.HTTPAddr != want.HTTPAddr {
				t.Errorf("%s sees %s with %+v, want %+v", cl.Name(), m.Name, m.Meta, want)
			}
		}
		eventually(t, cl, "live-store", "a", "b")
		eventually(t, cl, "querier", "a", "c")
		eventually(t, cl, "scheduler")
	}
	g := a.gauge
	if n := testutil.ToFloat64(g.WithLabelValues("live-store")); n != 2 {
		t.Errorf("weft_memberlist_members{role=live-store} = %v, want 2", n)
	}
	if n := testutil.ToFloat64(g.WithLabelValues("querier")); n != 2 {
		t.Errorf("weft_memberlist_members{role=querier} = %v, want 2", n)
	}
	if n, err := testutil.GatherAndCount(reg, "weft_memberlist_members"); err != nil || n != 2 {
		t.Errorf("gathered %d series (err %v), want 2", n, err)
	}
}

func TestLeaveRemovesMember(t *testing.T) {
	a, b, c := startThree(t, nil)
	eventually(t, a, "", "a", "b", "c")
	eventually(t, b, "", "a", "b", "c")
	eventually(t, c, "", "a", "b", "c")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	eventually(t, a, "", "a", "b")
	eventually(t, b, "querier", "a")
	if got := c.Members(""); len(got) != 0 {
		t.Errorf("left member still lists %v", names(got))
	}
}

func TestCrashedMemberMarkedDead(t *testing.T) {
	a, b, c := startThree(t, nil)
	eventually(t, a, "", "a", "b", "c")
	eventually(t, b, "", "a", "b", "c")

	kill(c)
	eventually(t, a, "", "a", "b")
	eventually(t, b, "", "a", "b")
}

func TestBackgroundJoinRetries(t *testing.T) {
	port := freePort(t)
	late := start(t, testConfig("late", fmt.Sprintf("127.0.0.1:%d", port)), Meta{Roles: []string{"worker"}}, nil)
	eventually(t, late, "", "late") // alone until the seed comes up

	cfg := testConfig("seed")
	cfg.BindPort = port
	seed := start(t, cfg, Meta{Roles: []string{"scheduler"}}, nil)
	eventually(t, late, "scheduler", "seed")
	eventually(t, seed, "worker", "late")
}

func TestAbortIfClusterJoinFails(t *testing.T) {
	cfg := testConfig("lonely", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	cfg.AbortIfClusterJoinFails = true
	c, err := join(cfg, Meta{}, nil, nil, fast)
	if err == nil {
		_ = c.Leave(context.Background())
		t.Fatal("Join succeeded with no member to join")
	}
	if !strings.Contains(err.Error(), "cannot join memberlist cluster") || !strings.Contains(err.Error(), "abort_if_cluster_join_fails") {
		t.Errorf("error = %v", err)
	}
}

func TestMetaTooLarge(t *testing.T) {
	meta := Meta{Roles: []string{"live-store"}, GRPCAddr: strings.Repeat("x", MaxMetaBytes)}
	_, err := join(testConfig("big"), meta, nil, nil, fast)
	if err == nil {
		t.Fatal("Join accepted metadata over the limit")
	}
	if !strings.Contains(err.Error(), "limit of 512 bytes") {
		t.Errorf("error %q does not name the limit", err)
	}
}

// freePort returns a port that was free for TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func decode(t *testing.T, doc string) (Config, error) {
	t.Helper()
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewBufferString(doc))
	dec.KnownFields(true)
	err := dec.Decode(&cfg)
	return cfg, err
}

func TestConfigYAML(t *testing.T) {
	cfg, err := decode(t, `
node_name: weft-0
bind_addr: 10.0.0.1
bind_port: 7947
advertise_addr: 10.0.0.2
advertise_port: 7948
join_members: [weft-gossip:7946, 10.0.0.3]
abort_if_cluster_join_fails: true
rejoin_interval: 1m
gossip_interval: 500ms
dead_node_reclaim_time: 10s
leave_timeout: 3s
`)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.NodeName = "weft-0"
	want.BindAddr = AddrList{"10.0.0.1"}
	want.BindPort = 7947
	want.AdvertiseAddr = "10.0.0.2"
	want.AdvertisePort = 7948
	want.JoinMembers = []string{"weft-gossip:7946", "10.0.0.3"}
	want.AbortIfClusterJoinFails = true
	want.RejoinInterval = time.Minute
	want.GossipInterval = 500 * time.Millisecond
	want.DeadNodeReclaimTime = 10 * time.Second
	want.LeaveTimeout = 3 * time.Second
	if fmt.Sprintf("%+v", cfg) != fmt.Sprintf("%+v", want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	cfg, err = decode(t, "bind_addr: [127.0.0.1, '::1']\n")
	if err != nil || !slices.Equal(cfg.BindAddr, []string{"127.0.0.1", "::1"}) {
		t.Errorf("bind_addr list: %v, %v", cfg.BindAddr, err)
	}
	cfg, err = decode(t, "{}\n")
	if err != nil || fmt.Sprintf("%+v", cfg) != fmt.Sprintf("%+v", DefaultConfig()) {
		t.Errorf("empty block changed defaults: %+v, %v", cfg, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}

	if _, err := decode(t, "bind_prot: 1\n"); err == nil || !strings.Contains(err.Error(), "bind_prot") {
		t.Errorf("unknown key: err = %v", err)
	}
	if _, err := decode(t, "bind_addr: {a: b}\n"); err == nil {
		t.Error("bind_addr mapping accepted")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.BindAddr = AddrList{"127.0.0.1", "localhost"} }, `bind_addr[1] must be an IP address, got "localhost"`},
		{func(c *Config) { c.BindPort = 70000 }, "bind_port must be between 0 and 65535, got 70000"},
		{func(c *Config) { c.AdvertiseAddr = "host" }, "advertise_addr must be an IP address"},
		{func(c *Config) { c.AdvertisePort = -1 }, "advertise_port must be between 0 and 65535"},
		{func(c *Config) { c.JoinMembers = []string{"a:7946", ""} }, "join_members[1] must not be empty"},
		{func(c *Config) { c.JoinMembers = []string{"a:http"} }, `join_members[0] has an invalid port in "a:http"`},
		{func(c *Config) { c.JoinMembers = []string{":7946"} }, "join_members[0] must name a host"},
		{func(c *Config) { c.MinJoinBackoff = 0 }, "min_join_backoff must be positive"},
		{func(c *Config) { c.MaxJoinBackoff = time.Millisecond }, "max_join_backoff must be at least min_join_backoff"},
		{func(c *Config) { c.RejoinInterval = -time.Second }, "rejoin_interval must not be negative"},
		{func(c *Config) { c.GossipInterval = 0 }, "gossip_interval must be positive"},
		{func(c *Config) { c.GossipNodes = 0 }, "gossip_nodes must be positive"},
		{func(c *Config) { c.PullPushInterval = -1 }, "pull_push_interval must not be negative"},
		{func(c *Config) { c.GossipToDeadNodesTime = -1 }, "gossip_to_dead_nodes_time must not be negative"},
		{func(c *Config) { c.DeadNodeReclaimTime = -1 }, "dead_node_reclaim_time must not be negative"},
		{func(c *Config) { c.LeaveTimeout = 0 }, "leave_timeout must be positive"},
	} {
		cfg := DefaultConfig()
		tc.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
		if _, jerr := Join(cfg, Meta{}, nil, nil); jerr == nil || !strings.Contains(jerr.Error(), tc.want) {
			t.Errorf("Join() = %v, want %q", jerr, tc.want)
		}
	}
	ok := DefaultConfig()
	ok.JoinMembers = []string{"weft", "weft:7946", "10.0.0.1", "[::1]:7946", "::1"}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid join_members refused: %v", err)
	}
}

// The seed restarts (a crash, then a new process on the same address with
// a new name), its only join member being itself, as the query-frontend of
// scripts/run-microservices.sh had: the others notice their seed is gone,
// join it again once it answers, and the cluster is whole again.
func TestRestartedSeedIsJoinedAgain(t *testing.T) {
	reg := prometheus.NewRegistry()
	seedCfg := testConfig("a")
	a := start(t, seedCfg, metas["a"], nil)
	seed := a.LocalAddr()
	b := start(t, testConfig("b", seed), metas["b"], reg)
	c := start(t, testConfig("c", seed), metas["c"], prometheus.NewRegistry())
	for _, cl := range []*Cluster{a, b, c} {
		eventually(t, cl, "", "a", "b", "c")
	}

	kill(a)
	eventually(t, b, "", "b", "c")
	_, port, _ := net.SplitHostPort(seed)
	seedCfg.NodeName = "a2"
	seedCfg.BindPort, _ = strconv.Atoi(port)
	seedCfg.JoinMembers = []string{seed}
	started := time.Now()
	a2 := start(t, seedCfg, metas["a"], nil)
	for _, cl := range []*Cluster{a2, b, c} {
		eventually(t, cl, "", "a2", "b", "c")
	}
	t.Logf("the restarted seed sees the others %s after it started", time.Since(started).Round(time.Millisecond))
	// One of them joined the seed again; the other may have heard of it
	// by gossip first.
	if n := testutil.ToFloat64(b.rejoins.WithLabelValues("ok")) + testutil.ToFloat64(c.rejoins.WithLabelValues("ok")); n < 1 {
		t.Fatalf("weft_memberlist_rejoins_total{result=\"ok\"} = %v on b and c together, want at least 1", n)
	}
}

// A member whose seeds all restarted while it was alone joins them again
// (several seeds, each restarting on its address).
func TestAloneMemberJoinsSeedsAgain(t *testing.T) {
	a := start(t, testConfig("a"), metas["a"], nil)
	b := start(t, testConfig("b", a.LocalAddr()), metas["b"], nil)
	seeds := []string{a.LocalAddr(), b.LocalAddr()}
	c := start(t, testConfig("c", seeds...), metas["c"], nil)
	eventually(t, c, "", "a", "b", "c")

	kill(a)
	kill(b)
	eventually(t, c, "", "c")
	restart := func(name, addr string, join ...string) *Cluster {
		cfg := testConfig(name, join...)
		_, port, _ := net.SplitHostPort(addr)
		cfg.BindPort, _ = strconv.Atoi(port)
		return start(t, cfg, metas[name[:1]], nil)
	}
	a2 := restart("a2", seeds[0])
	b2 := restart("b2", seeds[1], seeds[0])
	for _, cl := range []*Cluster{a2, b2, c} {
		eventually(t, cl, "", "a2", "b2", "c")
	}
}
