package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftdb/weft/internal/procstat"
)

const (
	buildTimeout = 5 * time.Minute
	readyTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second // weft flushes its blocks on SIGTERM
	clockTicks   = 100              // getconf CLK_TCK on Linux
)

// target is the backend under load: where to push, where to query, and
// which processes to measure.
type target struct {
	kind     string // monolithic, microservices, external
	otlpGRPC string // host:port
	otlpHTTP string // host:port
	queryURL string // http://host:port
	// profileURL serves /debug/pprof/ for the process that ingests (weft
	// monolithic, or the distributor); empty when unknown.
	profileURL       string
	pids             func() []int
	restart          func(ctx context.Context) error // nil: not supported
	close            func() error
	restartSupported string // why (b) is skipped, when restart is nil
	// searchDelay is the target's query_end_cutoff: searches only see
	// traces that ended this long ago, so they wait for it after ingest.
	searchDelay time.Duration
}

// procStat is the CPU time and peak RSS of a set of processes.
type procStat struct {
	cpuSeconds float64
	peakRSS    int64 // bytes, sum of VmHWM
	procs      int
}

// measure reads /proc for pids; processes that are gone are skipped.
func measure(pids []int) procStat {
	var s procStat
	for _, pid := range pids {
		cpu, err := procCPU(pid)
		if err != nil {
			continue
		}
		s.cpuSeconds += cpu
		s.peakRSS += procstat.Bytes(pid, procstat.PeakRSS)
		s.procs++
	}
	return s
}

// procCPU is utime+stime of pid in seconds, from /proc/<pid>/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cannot read the stat of process %d: %w", pid, err)
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cannot parse the stat of process %d", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cannot parse the stat of process %d", pid)
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cannot parse the stat of process %d: %w", pid, err)
	}
	return float64(ut+st) / clockTicks, nil
}

// childrenNamed lists the processes whose parent is ppid and whose command is comm.
func childrenNamed(ppid int, comm string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(b[j+1:]))
		if len(f) < 2 || string(b[i+1:j]) != comm {
			continue
		}
		if p, _ := strconv.Atoi(f[1]); p == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// goBuild builds pkg of the module in repo into out.
func goBuild(repo, pkg, out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// freePorts returns n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	defer func() {
		for _, ln := range lns {
			if ln != nil {
				ln.Close()
			}
		}
	}()
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// waitReady polls readyURL until it answers 200, alive tells whether the
// process is still running.
func waitReady(readyURL string, timeout time.Duration, alive func() error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for time.Now().Before(deadline) {
		if err := alive(); err != nil {
			return err
		}
		resp, err := client.Get(readyURL)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cannot get %s within %s (last: %s)", readyURL, timeout, last)
}

// child is a started subprocess.
type child struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startChild(cmd *exec.Cmd, logPath string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", logPath, err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a Ctrl-C at the terminal reaches the bench
	// only, which then stops the target in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start %s: %w", cmd.Path, err)
	}
	c := &child{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) alive() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited (%v); its log:\n%s", filepath.Base(c.cmd.Path), c.err, tail(c.log, 30))
	default:
		return nil
	}
}

// stop sends sig and waits up to timeout, then kills the process.
func (c *child) stop(sig os.Signal, timeout time.Duration) error {
	if c.alive() != nil {
		return nil
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("cannot send %v to %d: %w", sig, c.cmd.Process.Pid, err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
		return fmt.Errorf("process %d did not exit within %s of %v: killed", c.cmd.Process.Pid, timeout, sig)
	}
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// monolithicConfig is a weft config on loopback ports with fast block cuts,
// no search end cutoff, no ingestion rate limit and no live-trace limit (the
// bench measures what weft can take, not the default 30 MB/s and 10,000
// live traces per tenant). gen, when not nil, turns the metrics-generator
// on for every tenant. mo adds what the flags ask (monoOptions).
func monolithicConfig(ports []int, dataDir string, blockDuration time.Duration, gen *generatorSetup, mo monoOptions) string {
	var serverExtra, frontendExtra string
	if t := mo.metricsQueryTimeout; t > 0 {
		// The answer must not be cut by the HTTP server's write timeout
		// (30s by default).
		serverExtra = fmt.Sprintf("  http_server_write_timeout: %s\n", t+30*time.Second)
		frontendExtra = fmt.Sprintf("  metrics:\n    query_timeout: %s\n", t)
	}
	cfg := fmt.Sprintf(`server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
  graceful_shutdown_timeout: 30s
  log_level: warn
%sdistributor:
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
  max_block_duration: %s
  wal:
    path: %s/wal
live_store:
  path: %s/live-store
query_frontend:
  query_end_cutoff: 0s
%s`, ports[0], ports[1], serverExtra, ports[2], ports[3], dataDir, blockDuration, dataDir, dataDir, frontendExtra)
	if mo.backfill {
		cfg = strings.Replace(cfg, "live_store:\n", "live_store:\n"+backfillLiveStore, 1)
	}
	if mo.dataset {
		cfg += datasetConfig
	}
	if gen == nil {
		if mo.dataset {
			return cfg + noIngestionLimits + datasetOverrides
		}
		return cfg + noIngestionLimits
	}
	return cfg + gen.config(dataDir) + noIngestionLimits + generatorOverrides
}

// noIngestionLimits is the config the bench adds to weft's: it measures
// what weft can take, not the default per-tenant limits.
const noIngestionLimits = `overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 0
      max_traces_per_user: 0
`

// backfillLiveStore is what a -backfill ingest needs (under live_store): the live-store lets a
// trace go a minute after its last span arrived (instead of 20m), so that
// it holds about a minute of a long ingest rather than filling max_bytes
// and making pushes wait for the block-builder. The backfilled
// spans are older than query_frontend.metrics.query_backend_after, so
// metrics queries read them from blocks only.
const backfillLiveStore = `  window: 1m
`

// monoOptions are the bench's additions to the monolithic config, from
// its flags.
type monoOptions struct {
	// backfill adds backfillLiveStore (-backfill).
	backfill bool
	// metricsQueryTimeout, when positive, is
	// query_frontend.metrics.query_timeout, and the HTTP server's write
	// timeout is 30s more (-metrics-query-timeout).
	metricsQueryTimeout time.Duration
	// dataset adds datasetConfig (-dataset).
	dataset bool
}

// datasetConfig and datasetOverrides (which follows noIngestionLimits,
// under overrides.defaults) keep the blocks of a -dataset as they were
// written: no retention, no compaction.
const (
	datasetConfig = `backend_worker:
  compaction:
    block_retention: 0s
`
	datasetOverrides = `    compaction:
      compaction_disabled: true
`
)

// startMonolithic builds weft and runs it as one subprocess on a temp data dir.
func startMonolithic(repo, workDir string, blockDuration time.Duration, mo monoOptions) (*target, error) {
	bin := filepath.Join(workDir, "weft")
	progress("building ./cmd/weft")
	if err := goBuild(repo, "./cmd/weft", bin); err != nil {
		return nil, err
	}
	return runMonolithic(bin, workDir, blockDuration, nil, mo)
}

// runMonolithic runs the weft binary bin as one subprocess, with its
// config, log and data under dir; gen, when not nil, turns the
// metrics-generator on; mo adds what the flags ask.
func runMonolithic(bin, dir string, blockDuration time.Duration, gen *generatorSetup, mo monoOptions) (*target, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "weft.yaml")
	if err := os.WriteFile(cfgPath, []byte(monolithicConfig(ports, dataDir, blockDuration, gen, mo)), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write the weft config: %w", err)
	}
	logPath := filepath.Join(dir, "weft.log")
	queryURL := "http://" + loopback(ports[0])
	var cur *child
	start := func() error {
		cmd := exec.Command(bin, "-config.file="+cfgPath)
		cmd.Dir = dir
		c, err := startChild(cmd, logPath)
		if err != nil {
			return err
		}
		cur = c
		if err := waitReady(queryURL+"/ready", readyTimeout, c.alive); err != nil {
			_ = c.stop(syscall.SIGKILL, 5*time.Second)
			return fmt.Errorf("cannot start weft: %w", err)
		}
		return nil
	}
	progress("starting weft (monolithic) on %s, data in %s", queryURL, dataDir)
	if err := start(); err != nil {
		return nil, err
	}
	return &target{
		kind:       "weft monolithic (subprocess)",
		otlpGRPC:   loopback(ports[2]),
		otlpHTTP:   loopback(ports[3]),
		queryURL:   queryURL,
		profileURL: queryURL,
		pids:       func() []int { return []int{cur.cmd.Process.Pid} },
		restart: func(context.Context) error {
			t0 := time.Now()
			if err := cur.stop(syscall.SIGTERM, stopTimeout); err != nil {
				return fmt.Errorf("cannot stop weft: %w", err)
			}
			progress("weft stopped in %s (blocks flushed); starting it again on the same data dir", time.Since(t0).Round(time.Millisecond))
			return start()
		},
		close: func() error { return cur.stop(syscall.SIGTERM, stopTimeout) },
	}, nil
}

// Ports of scripts/run-microservices.sh.
const (
	msOTLPGRPC    = "127.0.0.1:4317"
	msOTLPHTTP    = "127.0.0.1:4318"
	msQueryURL    = "http://127.0.0.1:3200"
	msDistributor = "http://127.0.0.1:3205"
)

// startMicroservices runs scripts/run-microservices.sh with weft and
// weft-dev-kafka built into workDir and its data in workDir.
func startMicroservices(repo, workDir string) (*target, error) {
	for _, a := range []string{msOTLPGRPC, msOTLPHTTP, "127.0.0.1:3200", "127.0.0.1:9092"} {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return nil, fmt.Errorf("cannot use the microservices profile: %s is taken: %w", a, err)
		}
		ln.Close()
	}
	weft, kafka := filepath.Join(workDir, "weft"), filepath.Join(workDir, "weft-dev-kafka")
	progress("building ./cmd/weft and ./cmd/weft-dev-kafka")
	if err := goBuild(repo, "./cmd/weft", weft); err != nil {
		return nil, err
	}
	if err := goBuild(repo, "./cmd/weft-dev-kafka", kafka); err != nil {
		return nil, err
	}
	// As in the monolithic profile, no per-tenant ingestion limits.
	extra := filepath.Join(workDir, "no-limits.yaml")
	if err := os.WriteFile(extra, []byte(noIngestionLimits), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write %s: %w", extra, err)
	}
	cmd := exec.Command("bash", "scripts/run-microservices.sh")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "WEFT="+weft, "KAFKA="+kafka, "DATA="+filepath.Join(workDir, "data"), "EXTRA_CONFIG="+extra)
	logPath := filepath.Join(workDir, "microservices.log")
	progress("starting scripts/run-microservices.sh (log: %s)", logPath)
	c, err := startChild(cmd, logPath)
	if err != nil {
		return nil, err
	}
	for _, u := range []string{msQueryURL, msDistributor} {
		if err := waitReady(u+"/ready", readyTimeout, c.alive); err != nil {
			_ = c.stop(syscall.SIGINT, stopTimeout)
			return nil, fmt.Errorf("cannot start the microservices: %w", err)
		}
	}
	pids := childrenNamed(cmd.Process.Pid, "weft")
	progress("microservices ready: %d weft processes %v", len(pids), pids)
	return &target{
		kind:             "weft microservices (scripts/run-microservices.sh)",
		otlpGRPC:         msOTLPGRPC,
		otlpHTTP:         msOTLPHTTP,
		queryURL:         msQueryURL,
		profileURL:       msDistributor,
		pids:             func() []int { return pids },
		restartSupported: "not run: only the monolithic subprocess is restarted",
		searchDelay:      30 * time.Second, // the script leaves query_frontend.query_end_cutoff at its default
		close: func() error {
			err := c.stop(syscall.SIGINT, stopTimeout)
			if err != nil {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return err
		},
	}, nil
}

// externalTarget is any OTLP backend with a Tempo-compatible query API.
func externalTarget(endpoint, queryURL string, serverPIDs []int, searchDelay time.Duration) *target {
	t := &target{
		searchDelay:      searchDelay,
		kind:             "external (" + endpoint + ", " + queryURL + ")",
		otlpGRPC:         endpoint,
		otlpHTTP:         endpoint,
		queryURL:         strings.TrimRight(queryURL, "/"),
		profileURL:       strings.TrimRight(queryURL, "/"),
		restartSupported: "not run: the target is not started by the bench",
		close:            func() error { return nil },
	}
	if len(serverPIDs) > 0 {
		t.pids = func() []int { return serverPIDs }
	}
	return t
}
