package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The -generator-ab mode measures what the metrics-generator costs the
// ingest: it runs monolithic weft 2N times, alternately with the generator
// off and on (off, on, off, on, ...), each run a fresh process pushed the
// same load for -duration, and compares the server CPU seconds per million
// acknowledged spans. "On" is span metrics and service graphs for every
// tenant, remote-written to a real Prometheus that the bench runs on
// loopback; after each "on" run the bench reads back
// sum(traces_spanmetrics_calls_total) of that run to check that the
// series arrived and count every acknowledged span.

const (
	// abCheckTimeout bounds the wait, after an "on" run's ingest, for
	// Prometheus to hold every acknowledged span: a collection
	// (collection_interval, 15s) plus the remote write.
	abCheckTimeout = 45 * time.Second
	// abRunLabel is the external label that tells the runs' series apart
	// in the one Prometheus.
	abRunLabel = "bench_run"
	// abProcessors are the processors of an "on" run.
	abProcessors = "[span-metrics, service-graphs]"
)

// generatorSetup turns the metrics-generator on in a monolithic config:
// remote write to writeURL, every series labelled bench_run=run.
type generatorSetup struct {
	writeURL string
	run      string
}

// config is the metrics_generator block, its queue under dataDir.
func (g *generatorSetup) config(dataDir string) string {
	return fmt.Sprintf(`metrics_generator:
  registry:
    external_labels:
      %s: %q
  storage:
    path: %s/generator
    remote_write:
      - url: %s
        remote_timeout: 10s
`, abRunLabel, g.run, dataDir, g.writeURL)
}

// generatorOverrides continues noIngestionLimits (overrides.defaults):
// every tenant gets the processors.
const generatorOverrides = `    metrics_generator:
      processors: ` + abProcessors + `
`

// abRun is one run of the comparison.
type abRun struct {
	Name               string  `json:"name"` // off-1, on-1, off-2, ...
	Generator          bool    `json:"generator"`
	SpansAcked         int64   `json:"spans_acked"`
	SpansRefused       int64   `json:"spans_refused"`
	SpansPerSecond     float64 `json:"acked_spans_per_second"`
	CPUSeconds         float64 `json:"server_cpu_seconds"`
	CPUPerMillionSpans float64 `json:"server_cpu_seconds_per_million_spans"`
	PeakRSSBytes       int64   `json:"server_peak_rss_bytes"`
	LoadGenCPUSeconds  float64 `json:"load_generator_cpu_seconds"`
	// CallsInPrometheus is sum(traces_spanmetrics_calls_total) of the run,
	// read back from Prometheus after the ingest ("on" runs only).
	CallsInPrometheus float64 `json:"calls_in_prometheus,omitempty"`
	// SeriesInPrometheus is how many series of the run Prometheus holds.
	SeriesInPrometheus float64 `json:"series_in_prometheus,omitempty"`
	// CheckSeconds is how long after the ingest the calls matched.
	CheckSeconds float64 `json:"check_seconds,omitempty"`
	Note         string  `json:"note,omitempty"`
}

// abResult is the comparison: every run, the medians and the overhead.
type abResult struct {
	Pairs           int     `json:"pairs"`
	Processors      string  `json:"processors"`
	Prometheus      string  `json:"prometheus"`
	Runs            []abRun `json:"runs"`
	MedianOff       float64 `json:"median_cpu_seconds_per_million_spans_off"`
	MedianOn        float64 `json:"median_cpu_seconds_per_million_spans_on"`
	OverheadPercent float64 `json:"overhead_percent"`
	// Checked is true when every "on" run's calls in Prometheus equal its
	// acknowledged spans.
	Checked bool `json:"all_spans_counted"`
}

// runGeneratorAB runs the comparison and fills res.GeneratorAB.
func runGeneratorAB(ctx context.Context, f *flags, workDir string, res *results) error {
	bin := filepath.Join(workDir, "weft")
	progress("building ./cmd/weft")
	if err := goBuild(f.repo, "./cmd/weft", bin); err != nil {
		return err
	}
	prom, err := startPrometheus(filepath.Join(workDir, "prometheus"))
	if err != nil {
		return err
	}
	defer func() {
		if err := prom.stop(); err != nil {
			res.Notes = append(res.Notes, "stopping prometheus: "+err.Error())
		}
	}()
	res.Target = "weft monolithic (subprocess), a fresh process per run"
	ab := &abResult{Pairs: f.generatorAB, Processors: abProcessors, Prometheus: prom.version, Checked: true}
	res.GeneratorAB = ab
	for i := range 2 * f.generatorAB {
		if ctx.Err() != nil {
			res.Notes = append(res.Notes, "interrupted: the remaining runs were skipped")
			break
		}
		on := i%2 == 1
		r := abRun{Name: fmt.Sprintf("off-%d", i/2+1), Generator: on}
		var gen *generatorSetup
		if on {
			r.Name = fmt.Sprintf("on-%d", i/2+1)
			gen = &generatorSetup{writeURL: prom.url + "/api/v1/write", run: r.Name}
		}
		progress("run %d/%d: %s", i+1, 2*f.generatorAB, r.Name)
		if err := abOne(ctx, f, bin, filepath.Join(workDir, r.Name), gen, prom, &r); err != nil {
			return fmt.Errorf("cannot do run %s: %w", r.Name, err)
		}
		if on && r.Note != "" {
			ab.Checked = false
		}
		ab.Runs = append(ab.Runs, r)
	}
	var off, on []float64
	for _, r := range ab.Runs {
		if r.Generator {
			on = append(on, r.CPUPerMillionSpans)
		} else {
			off = append(off, r.CPUPerMillionSpans)
		}
	}
	ab.MedianOff, ab.MedianOn = median(off), median(on)
	if ab.MedianOff > 0 {
		ab.OverheadPercent = (ab.MedianOn/ab.MedianOff - 1) * 100
	}
	return nil
}

// abOne is one run: start weft in dir, push the load, measure, check the
// series of an "on" run, stop weft.
func abOne(ctx context.Context, f *flags, bin, dir string, gen *generatorSetup, prom *promServer, r *abRun) (err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	if !f.keep {
		defer os.RemoveAll(dir)
	}
	t, err := runMonolithic(bin, dir, f.blockDuration, gen, monoOptions{})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := t.close(); cerr != nil && err == nil {
			err = fmt.Errorf("cannot stop weft: %w", cerr)
		}
	}()
	profileDone := make(chan error, 1)
	profile := ""
	if f.cpuProfile != "" {
		ext := filepath.Ext(f.cpuProfile)
		profile = strings.TrimSuffix(f.cpuProfile, ext) + "-" + r.Name + ext
		go func() { profileDone <- captureCPUProfile(ctx, t.profileURL, f.ingest.Duration, profile) }()
	} else {
		profileDone <- nil
	}
	before := measure(t.pids())
	selfBefore, _ := procCPU(os.Getpid())
	in, err := runIngest(ctx, t, f.ingest, f.gen)
	if err != nil {
		return err
	}
	after := measure(t.pids())
	selfAfter, _ := procCPU(os.Getpid())
	if err := <-profileDone; err != nil {
		r.Note = "no CPU profile: " + err.Error()
	}
	r.SpansAcked, r.SpansRefused = in.SpansAcked, in.SpansRefused
	r.SpansPerSecond = float64(in.SpansAcked) / in.Elapsed.Seconds()
	r.CPUSeconds = after.cpuSeconds - before.cpuSeconds
	r.PeakRSSBytes = after.peakRSS
	r.LoadGenCPUSeconds = selfAfter - selfBefore
	if in.SpansAcked > 0 {
		r.CPUPerMillionSpans = r.CPUSeconds / (float64(in.SpansAcked) / 1e6)
	}
	progress("%s: %d spans acknowledged (%.0f spans/s), %.1f server CPU s, %.2f CPU s per million spans",
		r.Name, in.SpansAcked, r.SpansPerSecond, r.CPUSeconds, r.CPUPerMillionSpans)
	if gen != nil {
		checkCalls(ctx, prom, gen.run, in.SpansAcked, r)
	}
	return nil
}

// checkCalls waits until Prometheus holds, for the run, a
// sum(traces_spanmetrics_calls_total) equal to the acknowledged spans, and
// records what it read; r.Note says what did not match.
func checkCalls(ctx context.Context, prom *promServer, run string, acked int64, r *abRun) {
	sel := fmt.Sprintf(`%s=%q`, abRunLabel, run)
	calls := `sum(traces_spanmetrics_calls_total{` + sel + `})`
	t0 := time.Now()
	deadline := t0.Add(abCheckTimeout)
	var lastErr error
	for {
		v, err := prom.query(ctx, calls)
		lastErr = err
		if err == nil {
			r.CallsInPrometheus = v
			if v == float64(acked) {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	r.CheckSeconds = time.Since(t0).Seconds()
	if n, err := prom.query(ctx, `count({`+sel+`})`); err == nil {
		r.SeriesInPrometheus = n
	}
	switch {
	case r.CallsInPrometheus == float64(acked):
		progress("%s: Prometheus counts all %d spans in traces_spanmetrics_calls_total (%d series), %.0fs after the ingest",
			run, acked, int64(r.SeriesInPrometheus), r.CheckSeconds)
	case lastErr != nil:
		r.Note = fmt.Sprintf("cannot read %s from Prometheus: %v", calls, lastErr)
	default:
		r.Note = fmt.Sprintf("%s = %.0f after %s, want %d (the acknowledged spans)", calls, r.CallsInPrometheus, abCheckTimeout, acked)
	}
	if r.Note != "" {
		progress("%s: %s", run, r.Note)
	}
}

// median of v; 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// promServer is the Prometheus the bench runs for the "on" runs: the
// `prometheus` binary (WEFT_PROMETHEUS_BIN, else PATH) on a free loopback
// port, its remote-write receiver on, no scrape jobs.
type promServer struct {
	url     string
	version string
	c       *child
	client  *http.Client
}

func startPrometheus(dir string) (*promServer, error) {
	bin := os.Getenv("WEFT_PROMETHEUS_BIN")
	if bin == "" {
		p, err := exec.LookPath("prometheus")
		if err != nil {
			return nil, errors.New("cannot find prometheus (set WEFT_PROMETHEUS_BIN or put it on PATH; `make tools` installs Debian's package): -generator-ab needs it")
		}
		bin = p
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", dir, err)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("# bench: no scrape jobs; samples come by remote write.\nglobal:\n  scrape_interval: 1h\n  evaluation_interval: 1h\n"), 0o600); err != nil {
		return nil, fmt.Errorf("cannot write the prometheus config: %w", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	version := "prometheus"
	if b, err := exec.Command(bin, "--version").CombinedOutput(); err == nil {
		version, _, _ = strings.Cut(strings.TrimSpace(string(b)), " (")
	}
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--web.listen-address="+loopback(ports[0]),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.enable-remote-write-receiver",
		"--log.level=warn",
	)
	c, err := startChild(cmd, filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return nil, err
	}
	p := &promServer{url: "http://" + loopback(ports[0]), version: version, c: c, client: &http.Client{Timeout: 10 * time.Second}}
	if err := waitReady(p.url+"/-/ready", readyTimeout, c.alive); err != nil {
		_ = c.stop(syscall.SIGKILL, 5*time.Second)
		return nil, fmt.Errorf("cannot start prometheus: %w", err)
	}
	progress("prometheus on %s (%s)", p.url, version)
	return p, nil
}

func (p *promServer) stop() error { return p.c.stop(syscall.SIGTERM, 15*time.Second) }

// query runs an instant PromQL query that gives one value (a sum or a
// count); an empty answer is 0.
func (p *promServer) query(ctx context.Context, q string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return 0, fmt.Errorf("cannot build the query: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot query prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("cannot read the answer of prometheus: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("prometheus answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var ans struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return 0, fmt.Errorf("cannot decode the answer of prometheus: %w", err)
	}
	switch len(ans.Data.Result) {
	case 0:
		return 0, nil
	case 1:
		s, _ := ans.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse the value %q of %s: %w", s, q, err)
		}
		return v, nil
	default:
		return 0, fmt.Errorf("%s gave %d series, want one", q, len(ans.Data.Result))
	}
}

// writeGeneratorAB prints the comparison.
func writeGeneratorAB(p func(string, ...any), ab *abResult) {
	p("## Metrics-generator on and off, interleaved")
	p("")
	p("Each run is a fresh weft monolithic process pushed the same load. On: `overrides.defaults.metrics_generator.processors: %s`, "+
		"remote write to %s on loopback every `collection_interval` (15s); off: no processors. "+
		"CPU is the server's utime + stime during the ingest. "+
		"`calls in Prometheus` is `sum(traces_spanmetrics_calls_total)` of the run, read back after the ingest.", ab.Processors, ab.Prometheus)
	p("")
	p("| run | spans acked | spans/s | server CPU s | CPU s per million spans | peak RSS | load generator CPU s | calls in Prometheus | series in Prometheus |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, r := range ab.Runs {
		calls, series := "", ""
		if r.Generator {
			calls = fmt.Sprintf("%.0f", r.CallsInPrometheus)
			if r.CallsInPrometheus == float64(r.SpansAcked) {
				calls += fmt.Sprintf(" (all, after %.0fs)", r.CheckSeconds)
			}
			series = fmt.Sprintf("%.0f", r.SeriesInPrometheus)
		}
		p("| %s | %d | %.0f | %.1f | %.2f | %s | %.1f | %s | %s |", r.Name, r.SpansAcked, r.SpansPerSecond, r.CPUSeconds,
			r.CPUPerMillionSpans, mib(r.PeakRSSBytes), r.LoadGenCPUSeconds, calls, series)
	}
	p("")
	p("| figure | value |")
	p("|---|---|")
	p("| median CPU s per million spans, generator off | %.2f |", ab.MedianOff)
	p("| median CPU s per million spans, generator on | %.2f |", ab.MedianOn)
	p("| overhead of the generator | %+.1f%% |", ab.OverheadPercent)
	p("| every acknowledged span counted in Prometheus | %v |", ab.Checked)
	for _, r := range ab.Runs {
		if r.Note != "" {
			p("")
			p("- %s: %s", r.Name, r.Note)
		}
	}
	p("")
}
