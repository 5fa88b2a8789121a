package main

// These tests build the real weft binary once and run it as a subprocess,
// on loopback addresses and free ports only. Every wait is bounded.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// weftBin is the binary built by TestMain.
var weftBin string

const (
	buildTimeout    = 3 * time.Minute
	shortRunTimeout = 20 * time.Second // a run that must exit by itself
	readyTimeout    = 15 * time.Second
	exitTimeout     = 15 * time.Second // after SIGTERM or SIGINT
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "weft-main-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot create a temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	weftBin = filepath.Join(dir, "weft")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", weftBin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot build weft: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// lockedBuffer is an io.Writer safe to read while the process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is how a finished run of weft ended.
type result struct {
	code           int
	stdout, stderr string
}

// runWeft runs weft to completion (it must exit by itself within
// shortRunTimeout) and returns its exit code and output.
func runWeft(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shortRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir() // relative defaults such as ./data stay per test
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("weft %v did not exit within %s; stderr:\n%s", args, shortRunTimeout, stderr.String())
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("cannot run weft: %v", err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// proc is a weft process running in the background.
type proc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before done is closed
}

// startWeft starts weft; the process is killed at the end of the test if
// it is still running.
func startWeft(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(weftBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir() // relative defaults such as ./data stay per test
	p := &proc{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout = io.Discard
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start weft: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				t.Errorf("weft (pid %d) did not die after SIGKILL", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("weft stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitReady polls /ready until it answers 200 "ready", failing the test if
// the process exits first or readyTimeout passes.
func (p *proc) waitReady(t *testing.T, httpAddr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	url := "http://" + httpAddr + "/ready"
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		if p.exited() {
			t.Fatalf("weft exited before it was ready (%v); stderr:\n%s", p.err, p.stderr.String())
		}
		resp, err := client.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ready" {
				return
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready within %s (last: %s); stderr:\n%s", url, readyTimeout, last, p.stderr.String())
}

// stop sends sig and waits for the process to exit, returning its exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("cannot send %v: %v", sig, err)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		t.Fatalf("weft did not exit within %s of %v; stderr:\n%s", exitTimeout, sig, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// freePorts returns n distinct free loopback ports. The listeners are held
// until all ports are chosen so that the n ports differ.
// freePorts returns n distinct ports that are free on 127.0.0.1 for both
// TCP and UDP (memberlist binds both). They are picked at random below the
// kernel's ephemeral range (32768-60999 by default): a port the kernel gave
// out and took back could be handed to an outgoing connection of another
// test before the weft process binds it, a port outside the range cannot.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	const lo, hi = 20000, 32000
	ports := make([]int, 0, n)
	for attempt := 0; len(ports) < n; attempt++ {
		if attempt == 1000 {
			t.Fatalf("cannot find %d free ports in %d-%d", n, lo, hi)
		}
		p := lo + mathrand.IntN(hi-lo)
		if slices.Contains(ports, p) {
			continue
		}
		addr := loopback(p)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		ports = append(ports, p)
	}
	return ports
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// ports are the four listeners of a weft process.
type ports struct{ http, grpc, otlpGRPC, otlpHTTP int }

func newPorts(t *testing.T) ports {
	p := freePorts(t, 4)
	return ports{http: p[0], grpc: p[1], otlpGRPC: p[2], otlpHTTP: p[3]}
}

// loopbackConfig is a weft config listening on ps, on 127.0.0.1 only.
// noLiveTraceLimit is config to append for tests that push more traces
// within distributor.trace_idle_period than the default
// max_traces_per_user (10,000), which would refuse some of them.
// noCompaction keeps the backend from compacting the blocks written.
const noCompaction = `overrides:
  defaults:
    compaction:
      compaction_disabled: true
`

const noLiveTraceLimit = `overrides:
  defaults:
    ingestion:
      max_traces_per_user: 0
`

func loopbackConfig(ps ports, dataDir string) string {
	return fmt.Sprintf(`server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
  graceful_shutdown_timeout: 10s
  log_level: info
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: "127.0.0.1:%d"
        http:
          endpoint: "127.0.0.1:%d"
storage:
  trace:
    backend: local
    local:
      path: %s/blocks
block_builder:
  wal:
    path: %s/wal
`, ps.http, ps.grpc, ps.otlpGRPC, ps.otlpHTTP, dataDir, dataDir)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func requireContains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s lacks %q:\n%s", what, sub, s)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runWeft(t, nil, "-version")
	if r.code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "weft, version ") {
		t.Fatalf("stdout does not start with %q:\n%s", "weft, version ", r.stdout)
	}
	requireContains(t, "version output", r.stdout, "go version: "+runtime.Version())
}

func TestUnknownTarget(t *testing.T) {
	t.Parallel()
	r := runWeft(t, nil, "-target=nope")
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr", r.stderr, `unknown target "nope"`)
	for _, target := range []string{"all", "distributor", "live-store", "block-builder", "metrics-generator", "query-frontend", "querier", "backend-scheduler", "backend-worker"} {
		// Each target appears as a whole item of the list.
		if !strings.Contains(r.stderr, " "+target+",") && !strings.Contains(r.stderr, " "+target+"\n") {
			t.Errorf("stderr does not list target %q:\n%s", target, r.stderr)
		}
	}
}

func TestUnexpectedArguments(t *testing.T) {
	t.Parallel()
	r := runWeft(t, nil, "-target=all", "serve", "now")
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr", r.stderr, "unexpected arguments: [serve now]")
}

// -h prints the usage and is not a failure.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"-h", "-help"} {
		r := runWeft(t, nil, flag)
		if r.code != 0 {
			t.Errorf("%s: exit code %d; stderr:\n%s", flag, r.code, r.stderr)
		}
		requireContains(t, flag+" stderr", r.stderr, "usage: weft [flags]", "weft blocks list|show", "weft redact", "-config.file", "-config.expand-env", "-target", "-version")
		// -target lists the components that run, each with what it does.
		for _, target := range []string{"all", "distributor", "live-store", "block-builder", "metrics-generator", "query-frontend", "querier", "backend-scheduler", "backend-worker"} {
			if !regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(target) + `\s+\S.{20,}$`).MatchString(r.stderr) {
				t.Errorf("%s: no line on target %q:\n%s", flag, target, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "help requested") {
			t.Errorf("%s is reported as an error:\n%s", flag, r.stderr)
		}
	}
}

// An unknown flag fails with the usage, its error printed once.
func TestUnknownFlag(t *testing.T) {
	t.Parallel()
	r := runWeft(t, nil, "-bogus")
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr", r.stderr, "usage: weft [flags]")
	if n := strings.Count(r.stderr, "flag provided but not defined: -bogus"); n != 1 {
		t.Errorf("the error is printed %d times:\n%s", n, r.stderr)
	}
}

// An empty config file (or one with only comments) is the default config.
// -target=nope makes the run stop right after the config is loaded.
func TestEmptyConfigFile(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"", "# nothing set yet\n"} {
		path := writeFile(t, "empty.yaml", content)
		r := runWeft(t, nil, "-config.file", path, "-target=nope")
		if r.code == 0 || strings.Contains(r.stderr, "invalid configuration") || !strings.Contains(r.stderr, `unknown target "nope"`) {
			t.Errorf("config %q: exit code %d, stderr:\n%s", content, r.code, r.stderr)
		}
	}
}

func TestUnknownConfigKey(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "weft.yaml", `server:
  http_listen_port: 3200
  http_listen_prot: 3201
distributor:
  bogus_key: 1
`)
	r := runWeft(t, nil, "-config.file", path)
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr", r.stderr,
		"invalid configuration",
		path+`:3: server.http_listen_prot: unknown key (did you mean "http_listen_port"?)`,
		path+":5: distributor.bogus_key: unknown key",
	)
}

func TestMissingConfigFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "absent.yaml")
	r := runWeft(t, nil, "-config.file", path)
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr", r.stderr, "cannot read the config file", path)
}

// A Grafana Tempo monolithic config starts weft; the Tempo keys weft does
// not use are named in one warning.
func TestTempoMonolithicConfig(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("config/testdata/tempo-monolithic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps := newPorts(t)
	dir := t.TempDir()
	cfg := string(data)
	for _, r := range []struct {
		old, new string
		count    int
	}{
		{"http_listen_port: 3300", fmt.Sprintf("http_listen_address: 127.0.0.1\n  http_listen_port: %d", ps.http), 1},
		{"grpc_listen_port: 9196", fmt.Sprintf("grpc_listen_address: 127.0.0.1\n  grpc_listen_port: %d", ps.grpc), 1},
		{"127.0.0.1:14317", loopback(ps.otlpGRPC), 1},
		{"127.0.0.1:14318", loopback(ps.otlpHTTP), 1},
		{"/var/tempo", dir, 3},
	} {
		if n := strings.Count(cfg, r.old); n != r.count {
			t.Fatalf("testdata has %q %d times, want %d: the rewrite needs updating", r.old, n, r.count)
		}
		cfg = strings.ReplaceAll(cfg, r.old, r.new)
	}
	if !strings.Contains(cfg, "multitenancy_enabled: true") {
		t.Fatal("testdata no longer enables multitenancy")
	}
	path := writeFile(t, "tempo.yaml", cfg)

	p := startWeft(t, nil, "-config.file", path)
	httpAddr := loopback(ps.http)
	p.waitReady(t, httpAddr)

	var warnings []string
	for line := range strings.Lines(p.stderr.String()) {
		if strings.Contains(line, "level=WARN") {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("got %d warning lines, want 1:\n%s", len(warnings), p.stderr.String())
	}
	requireContains(t, "warning", warnings[0],
		"config keys that Grafana Tempo knows and weft does not use yet are ignored",
		"query_frontend", "distributor.receivers.otlp.protocols.http.cors",
		"overrides.defaults.ingestion.tenant_shard_size")
	if strings.Contains(warnings[0], "storage.trace.wal") {
		t.Errorf("warning lists storage.trace.wal, which weft uses: %s", warnings[0])
	}
	// storage.trace.wal.path places the block-builder's WAL.
	if _, err := os.Stat(filepath.Join(dir, "wal", "block-builder")); err != nil {
		t.Errorf("block-builder WAL not under storage.trace.wal.path: %v", err)
	}

	// multitenancy_enabled: true is honoured: a query without an org ID is
	// refused, and a trace is found for its tenant only.
	id := pushTrace(t, loopback(ps.otlpHTTP), "tenant-a", "tempo-config-span")
	if code, body := getTrace(t, httpAddr, id, ""); code != http.StatusUnauthorized {
		t.Errorf("GET without X-Scope-OrgID: %d %s, want 401", code, body)
	}
	if code, body := getTrace(t, httpAddr, id, "tenant-b"); code != http.StatusNotFound {
		t.Errorf("GET as another tenant: %d %s, want 404", code, body)
	}
	waitTrace(t, httpAddr, id, "tenant-a", "tempo-config-span")

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
}

// -config.expand-env replaces ${VAR} and ${VAR:-default} with the
// subprocess's environment.
func TestConfigExpandEnv(t *testing.T) {
	t.Parallel()
	ps := newPorts(t)
	cfg := `server:
  http_listen_address: ${WEFT_TEST_UNSET_ADDRESS:-127.0.0.1}
  http_listen_port: ${WEFT_TEST_HTTP_PORT}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: ${WEFT_TEST_GRPC_PORT}
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: "127.0.0.1:${WEFT_TEST_OTLP_GRPC_PORT}"
        http:
          endpoint: "127.0.0.1:${WEFT_TEST_OTLP_HTTP_PORT}"
storage:
  trace:
    local:
      path: ${WEFT_TEST_DATA_DIR}
`
	path := writeFile(t, "env.yaml", cfg)
	env := []string{
		"WEFT_TEST_HTTP_PORT=" + strconv.Itoa(ps.http),
		"WEFT_TEST_GRPC_PORT=" + strconv.Itoa(ps.grpc),
		"WEFT_TEST_OTLP_GRPC_PORT=" + strconv.Itoa(ps.otlpGRPC),
		"WEFT_TEST_OTLP_HTTP_PORT=" + strconv.Itoa(ps.otlpHTTP),
		"WEFT_TEST_DATA_DIR=" + t.TempDir(),
	}

	// Without the flag the references are not expanded and the port is not
	// a number.
	r := runWeft(t, env, "-config.file", path)
	if r.code == 0 {
		t.Fatalf("without -config.expand-env: exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr without -config.expand-env", r.stderr, path+`:3: server.http_listen_port: "${WEFT_TEST_HTTP_PORT}" is not an integer`, path+":5:")

	p := startWeft(t, env, "-config.file", path, "-config.expand-env")
	p.waitReady(t, loopback(ps.http))
	requireContains(t, "stderr", p.stderr.String(), "http="+loopback(ps.http), "grpc="+loopback(ps.grpc))
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
}

// A trace pushed over OTLP/HTTP is found by ID; SIGTERM then drains and
// stops weft with exit code 0.
func TestPushQueryAndSIGTERM(t *testing.T) {
	t.Parallel()
	ps := newPorts(t)
	path := writeFile(t, "weft.yaml", loopbackConfig(ps, t.TempDir()))
	p := startWeft(t, nil, "-config.file", path)
	httpAddr := loopback(ps.http)
	p.waitReady(t, httpAddr)

	id := pushTrace(t, loopback(ps.otlpHTTP), "", "sigterm-test-span")
	waitTrace(t, httpAddr, id, "", "sigterm-test-span")

	start := time.Now()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	stderr := p.stderr.String()
	requireContains(t, "stderr", stderr,
		`msg="weft is ready"`,
		`msg="shutting down: stopping intake and draining the pipeline"`,
		"msg=stopped")
	if i, j := strings.Index(stderr, "shutting down"), strings.Index(stderr, "msg=stopped"); i < 0 || j < i {
		t.Errorf("the shutdown lines are out of order:\n%s", stderr)
	}
	if strings.Contains(stderr, "level=ERROR") {
		t.Errorf("errors logged:\n%s", stderr)
	}
}

func TestSIGINT(t *testing.T) {
	t.Parallel()
	ps := newPorts(t)
	path := writeFile(t, "weft.yaml", loopbackConfig(ps, t.TempDir()))
	p := startWeft(t, nil, "-config.file", path)
	p.waitReady(t, loopback(ps.http))
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit code %d after SIGINT; stderr:\n%s", code, p.stderr.String())
	}
	requireContains(t, "stderr", p.stderr.String(), "shutting down", "msg=stopped")
}

// An HTTP port already taken makes weft exit non-zero with a message that
// names the address and the config key.
func TestHTTPPortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ps := newPorts(t)
	ps.http = ln.Addr().(*net.TCPAddr).Port
	path := writeFile(t, "weft.yaml", loopbackConfig(ps, t.TempDir()))
	r := runWeft(t, nil, "-config.file", path)
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	requireContains(t, "stderr", r.stderr, loopback(ps.http), "server.http_listen_port")
}

// pushTrace sends one span over OTLP/HTTP protobuf and returns its trace
// ID in hex; orgID is sent as X-Scope-OrgID when not empty.
func pushTrace(t *testing.T, otlpHTTPAddr, orgID, spanName string) string {
	t.Helper()
	traceID := make([]byte, 16)
	spanID := make([]byte, 8)
	_, _ = rand.Read(traceID)
	_, _ = rand.Read(spanID)
	now := time.Now()
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{
			Key:   "service.name",
			Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "weft-main-test"}},
		}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId:           traceID,
			SpanId:            spanID,
			Name:              spanName,
			Kind:              tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: uint64(now.Add(-time.Second).UnixNano()),
			EndTimeUnixNano:   uint64(now.UnixNano()),
		}}}},
	}}}
	body, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, err := http.NewRequest(http.MethodPost, "http://"+otlpHTTPAddr+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	if orgID != "" {
		hr.Header.Set("X-Scope-OrgID", orgID)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(hr)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push: %d %q", resp.StatusCode, rb)
	}
	return hex.EncodeToString(traceID)
}

// getTrace fetches /api/traces/<id> once.
func getTrace(t *testing.T, httpAddr, id, orgID string) (int, string) {
	t.Helper()
	return doAs(t, http.MethodGet, "http://"+httpAddr+"/api/traces/"+id, orgID, nil)
}

// waitTrace polls /api/traces/<id> until it answers 200 with the span,
// within a bounded time.
func waitTrace(t *testing.T, httpAddr, id, orgID, spanName string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := getTrace(t, httpAddr, id, orgID)
		if code == http.StatusOK {
			if !strings.Contains(body, spanName) || !strings.Contains(body, "weft-main-test") {
				t.Fatalf("trace %s lacks the span or its service:\n%s", id, body)
			}
			return
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("GET /api/traces/%s: %d %s", id, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
