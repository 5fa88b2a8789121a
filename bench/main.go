// Command bench load-tests weft end to end, as a user sees it: it pushes
// generated traces over OTLP (gRPC or HTTP) to a running backend, measures
// what the backend acknowledges, its CPU and memory, then reads traces back
// by ID and runs TraceQL searches and tag queries through the
// Tempo-compatible HTTP API.
//
// By default it builds ./cmd/weft and runs it as a monolithic subprocess on
// loopback ports and a temp data dir, so that the server's CPU and memory
// are measured apart from the load generator's:
//
//	go run ./bench -duration 30s -workers 4
//	go run ./bench -protocol http -rate 20000 -json run.json
//	go run ./bench -profile microservices -duration 15s
//	go run ./bench -endpoint 127.0.0.1:4317 -query-url http://127.0.0.1:3200   # any OTLP + Tempo API backend
//	go run ./bench -generator-ab 3 -duration 20s   # the metrics-generator's cost: off, on, off, on...
//	go run ./bench -dataset /tmp/weft-ds -dataset-spans 10000000   # block search over 10M spans in blocks
//
// The report is Markdown on stdout; progress goes to stderr. See docs/bench.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// flags are the command line.
type flags struct {
	gen           genOptions
	ingest        ingestOptions
	profile       string
	endpoint      string
	queryURL      string
	serverPIDs    string
	repo          string
	queries       int
	queryTime     time.Duration
	searchDelay   time.Duration
	jsonPath      string
	keep          bool
	blockDuration time.Duration
	cpuProfile    string
	generatorAB   int
	metrics       bool
	// metricsTimeout is -metrics-query-timeout.
	metricsTimeout time.Duration
	// settle is -settle.
	settle time.Duration
	// metricsQueryTime is -metrics-query-time.
	metricsQueryTime time.Duration
	// baselinePath is -baseline.
	baselinePath string
	// updateBaseline is -update-baseline.
	updateBaseline bool
	// makeBaseline is -make-baseline, split at commas.
	makeBaseline []string
	// dataset is -dataset and its options.
	dataset datasetOptions
}

func parseFlags() (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Uint64Var(&f.gen.Seed, "seed", 1, "generator seed: the same seed gives the same traces (but for time stamps)")
	fs.IntVar(&f.gen.Services, "services", 10, "distinct services")
	fs.IntVar(&f.gen.SpansPerTrace, "spans-per-trace", 10, "spans in every trace")
	fs.IntVar(&f.gen.Depth, "depth", 6, "maximum depth of a trace's span tree")
	fs.IntVar(&f.gen.Attrs, "attrs", 5, "extra span attributes per span (besides the HTTP and DB ones)")
	fs.IntVar(&f.gen.AttrBytes, "attr-bytes", 32, "length of each extra attribute's value")
	fs.IntVar(&f.gen.Events, "events", 1, "events per span")
	fs.Float64Var(&f.gen.ErrorRate, "error-rate", 0.02, "fraction of spans with status error")
	fs.IntVar(&f.gen.Batch, "batch", 200, "spans per request (whole traces, so rounded up to a multiple of -spans-per-trace)")
	fs.StringVar(&f.ingest.Protocol, "protocol", "grpc", "OTLP protocol: grpc or http")
	fs.IntVar(&f.ingest.Workers, "workers", 4, "concurrent pushing workers")
	fs.DurationVar(&f.ingest.Duration, "duration", 30*time.Second, "length of the ingest phase")
	fs.Float64Var(&f.ingest.Rate, "rate", 0, "cap on spans per second over all workers; 0 is no cap")
	fs.IntVar(&f.ingest.Samples, "trace-samples", 200, "pushed trace IDs looked up in the query phase")
	fs.IntVar(&f.queries, "queries", 20, "runs of each search and tag query")
	fs.DurationVar(&f.queryTime, "query-time", 3*time.Second, "stop repeating a query once its runs took this long (it runs at least once); 0 is no limit")
	fs.StringVar(&f.profile, "profile", "monolithic", "target started by the bench: monolithic or microservices (ignored with -endpoint)")
	fs.StringVar(&f.endpoint, "endpoint", "", "host:port of an OTLP receiver already running (gRPC or HTTP, per -protocol) instead of starting weft")
	fs.StringVar(&f.queryURL, "query-url", "", "with -endpoint: base URL of its Tempo-compatible query API, such as http://127.0.0.1:3200")
	fs.StringVar(&f.serverPIDs, "server-pid", "", "with -endpoint: comma-separated PIDs whose CPU and peak RSS to measure")
	fs.DurationVar(&f.searchDelay, "search-delay", 30*time.Second, "with -endpoint: the target's query_end_cutoff; searches wait until the last pushed trace is this old")
	fs.StringVar(&f.repo, "repo", ".", "root of the weft repository (to build ./cmd/weft and find scripts/)")
	fs.StringVar(&f.jsonPath, "json", "", "also write every result to this JSON file")
	fs.BoolVar(&f.keep, "keep", false, "keep the temp dir (binaries, config, data, logs)")
	fs.DurationVar(&f.blockDuration, "block-duration", 5*time.Second, "monolithic: block_builder.max_block_duration")
	fs.StringVar(&f.cpuProfile, "server-cpu-profile", "", "write a CPU profile of the ingesting server (weft monolithic, the distributor), taken over /debug/pprof/profile during the ingest, to this file")
	fs.DurationVar(&f.ingest.Backfill, "backfill", 0, "spread the traces' time stamps over [end−D, end−20m] (end: the ingest's planned end), advancing with the ingest, so that they reach blocks in time order and are older than the metrics query_backend_after; a monolithic weft gets live_store.window 1m. 0: traces end when they are sent")
	fs.BoolVar(&f.metrics, "metrics", false, "after the restart (on blocks), measure TraceQL metrics: a query with a series per span, once (status, series, the server's peak RSS), then three metrics queries and a search over 1h and 24h (latency, server CPU per query); use with -backfill")
	fs.DurationVar(&f.metricsQueryTime, "metrics-query-time", 0, "with -metrics: -query-time for the metrics phase (its 24h queries can take many seconds each); 0: -query-time")
	fs.DurationVar(&f.settle, "settle", 15*time.Minute, "with -metrics: before the phase, wait up to this long for the server's compaction to settle (tempodb_compaction_outstanding_blocks 0 and weft_blocklist_blocks steady for 35s); 0: do not wait")
	fs.DurationVar(&f.metricsTimeout, "metrics-query-timeout", 0, "monolithic: query_frontend.metrics.query_timeout (weft's default is 25s, past which a metrics query answers 504), and the HTTP server's write timeout 30s more; 0 keeps weft's defaults")
	fs.IntVar(&f.generatorAB, "generator-ab", 0, "instead of one run: 2N runs of weft monolithic, the metrics-generator off and on in turn (off, on, off, on...), each with the same ingest and no query phase; reports the server CPU per million spans of each, the medians and the generator's overhead")
	fs.StringVar(&f.baselinePath, "baseline", "", "compare the run's figures with this baseline file (make bench: bench/baseline.json) and call out those worse by more than their noise threshold")
	fs.BoolVar(&f.updateBaseline, "update-baseline", false, "with -baseline: after the comparison, rewrite the file with this run's figures, keeping its thresholds (the file may not exist yet)")
	fs.StringVar(&f.dataset.Dir, "dataset", "", "instead of an ingest: measure block search over a dataset of blocks in this directory, written once directly with the block writer (same generator, plus a unique app.request.id on server spans) and reused by later runs with the same flags; starts weft monolithic on it (compaction and retention off) and runs trace by ID and a fixed set of searches")
	fs.Int64Var(&f.dataset.Spans, "dataset-spans", 10_000_000, "with -dataset: spans in the dataset")
	fs.IntVar(&f.dataset.BlockSpans, "dataset-block-spans", 21_000, "with -dataset: spans per block (the issue's dataset: 10.5M spans in 496 blocks)")
	fs.IntVar(&f.dataset.PageBytes, "dataset-page-bytes", 0, "with -dataset: the block writer's target data page size (block.WriteOptions.PageBytes; 0: its default)")
	fs.BoolVar(&f.dataset.BuildOnly, "dataset-build-only", false, "with -dataset: write the dataset (unless it is there) and stop, without starting weft")
	fs.BoolVar(&f.dataset.Rebuild, "dataset-rebuild", false, "with -dataset: write the blocks again even if the directory holds a dataset of the same flags")
	makeBaseline := fs.String("make-baseline", "", "instead of a run: write -baseline from the -json reports of two or more runs with the same flags (comma-separated): the last run's figures, thresholds from the spread of all")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	for p := range strings.SplitSeq(*makeBaseline, ",") {
		if p = strings.TrimSpace(p); p != "" {
			f.makeBaseline = append(f.makeBaseline, p)
		}
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case f.ingest.Workers < 1:
		return nil, errors.New("-workers must be at least 1")
	case f.ingest.Duration <= 0:
		return nil, errors.New("-duration must be positive")
	case f.gen.ErrorRate < 0 || f.gen.ErrorRate > 1:
		return nil, errors.New("-error-rate must be between 0 and 1")
	case f.gen.Attrs > 0 && f.gen.AttrBytes < 1:
		return nil, errors.New("-attr-bytes must be at least 1")
	case f.endpoint != "" && f.queryURL == "":
		return nil, errors.New("-endpoint needs -query-url")
	case f.endpoint == "" && f.profile != "monolithic" && f.profile != "microservices":
		return nil, fmt.Errorf("unknown -profile %q: use monolithic or microservices", f.profile)
	case f.generatorAB < 0:
		return nil, errors.New("-generator-ab must not be negative")
	case f.generatorAB > 0 && (f.endpoint != "" || f.profile != "monolithic"):
		return nil, errors.New("-generator-ab starts weft monolithic itself: it cannot be used with -endpoint or -profile microservices")
	case f.metricsQueryTime < 0:
		return nil, errors.New("-metrics-query-time must not be negative")
	case f.settle < 0:
		return nil, errors.New("-settle must not be negative")
	case f.metricsTimeout < 0:
		return nil, errors.New("-metrics-query-timeout must not be negative")
	case f.metricsTimeout >= metricsQueryTimeout:
		return nil, fmt.Errorf("-metrics-query-timeout must be under %s, the bench's own bound on a request", metricsQueryTimeout)
	case f.metricsTimeout > 0 && (f.endpoint != "" || f.profile != "monolithic" || f.generatorAB > 0):
		return nil, errors.New("-metrics-query-timeout sets the config of the weft monolithic the bench starts: it cannot be used with -endpoint, -profile microservices or -generator-ab")
	case f.ingest.Backfill < 0:
		return nil, errors.New("-backfill must not be negative")
	case f.ingest.Backfill > 0 && f.ingest.Backfill < f.ingest.Duration+backfillLag:
		return nil, fmt.Errorf("-backfill %s is too short for -duration %s: it must be at least -duration + %s, so that every trace is %s old when sent", f.ingest.Backfill, f.ingest.Duration, backfillLag, backfillLag)
	case f.generatorAB > 0 && (f.ingest.Backfill > 0 || f.metrics):
		return nil, errors.New("-generator-ab has no query phase and counts current spans: it cannot be used with -backfill or -metrics")
	case f.ingest.Backfill > 0 && f.endpoint == "" && f.profile == "microservices":
		return nil, errors.New("-backfill needs a short live_store.window, which the bench sets for weft monolithic only: it cannot be used with -profile microservices")
	case (f.updateBaseline || len(f.makeBaseline) > 0) && f.baselinePath == "":
		return nil, errors.New("-update-baseline and -make-baseline need -baseline, the file to write")
	case f.updateBaseline && len(f.makeBaseline) > 0:
		return nil, errors.New("-update-baseline and -make-baseline cannot be used together")
	case f.baselinePath != "" && f.generatorAB > 0:
		return nil, errors.New("-baseline compares a usual run: it cannot be used with -generator-ab")
	case f.dataset.Dir != "" && (f.dataset.Spans < 1 || f.dataset.BlockSpans < 1 || f.dataset.PageBytes < 0):
		return nil, errors.New("-dataset-spans and -dataset-block-spans must be positive, -dataset-page-bytes not negative")
	case f.dataset.Dir != "" && (f.endpoint != "" || f.profile != "monolithic" || f.generatorAB > 0 || f.baselinePath != "" || f.metrics):
		return nil, errors.New("-dataset starts weft monolithic on its blocks: it cannot be used with -endpoint, -profile microservices, -generator-ab, -baseline or -metrics")
	case f.ingest.Protocol != "grpc" && f.ingest.Protocol != "http":
		return nil, fmt.Errorf("unknown -protocol %q: use grpc or http", f.ingest.Protocol)
	}
	f.gen.Depth = max(f.gen.Depth, 2)
	return f, nil
}

func run() error {
	f, err := parseFlags()
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(f.makeBaseline) > 0 {
		if err := makeBaseline(f.baselinePath, f.makeBaseline); err != nil {
			return err
		}
		progress("baseline written to %s from %d runs", f.baselinePath, len(f.makeBaseline))
		return nil
	}
	var base *baseline
	if f.baselinePath != "" {
		base, err = readBaseline(f.baselinePath)
		if errors.Is(err, os.ErrNotExist) && f.updateBaseline {
			base, err = nil, nil
		}
		if err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.dataset.Dir != "" {
		return runDataset(ctx, f)
	}

	res := &results{
		Command:   "go run ./bench " + strings.Join(os.Args[1:], " "),
		StartedAt: time.Now(),
		Machine:   machineFacts(f.repo),
		Generator: f.gen,
		Options:   f.ingest,
	}
	workDir, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return fmt.Errorf("cannot create a temp dir: %w", err)
	}
	if f.keep {
		progress("keeping %s", workDir)
	} else {
		defer os.RemoveAll(workDir)
	}

	if f.generatorAB > 0 {
		if err := runGeneratorAB(ctx, f, workDir, res); err != nil {
			return err
		}
		return report(f, res)
	}

	var t *target
	switch {
	case f.endpoint != "":
		var pids []int
		for s := range strings.SplitSeq(f.serverPIDs, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			pid, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("cannot parse -server-pid %q: %w", s, err)
			}
			pids = append(pids, pid)
		}
		t = externalTarget(f.endpoint, f.queryURL, pids, f.searchDelay)
	case f.profile == "microservices":
		t, err = startMicroservices(f.repo, workDir)
	default:
		t, err = startMonolithic(f.repo, workDir, f.blockDuration, monoOptions{backfill: f.ingest.Backfill > 0, metricsQueryTimeout: f.metricsTimeout})
	}
	if err != nil {
		return err
	}
	res.Target = t.kind
	closed := false
	closeTarget := func() {
		if closed {
			return
		}
		closed = true
		progress("stopping the target")
		if err := t.close(); err != nil {
			res.Notes = append(res.Notes, "stopping the target: "+err.Error())
		}
	}
	defer closeTarget()

	if err := measurePhases(ctx, f, t, res); err != nil {
		return err
	}
	closeTarget()
	if ctx.Err() == nil {
		decodeFloorPhase(res)
	}
	guard(f, base, res)
	return report(f, res)
}

// guard compares res with the baseline (when -baseline) and rewrites the
// baseline (when -update-baseline).
func guard(f *flags, base *baseline, res *results) {
	if f.baselinePath == "" {
		return
	}
	if base != nil {
		res.Baseline = compareWithBaseline(f.baselinePath, base, res)
		for _, c := range res.Baseline.Figures {
			if c.Verdict == verdictWorse {
				progress("WORSE than the baseline: %s: %s → %s %s (threshold %.0f%%)", c.Name, num(c.Base), num(c.Now), c.Unit, c.ThresholdPct)
			}
		}
	}
	if !f.updateBaseline {
		return
	}
	err := writeBaseline(f.baselinePath, newBaseline(res, nil, base))
	if res.Baseline == nil {
		res.Baseline = &baselineReport{Path: f.baselinePath, Note: "there was no baseline: this run's figures are the new one"}
	}
	if err != nil {
		res.Baseline.UpdateError = err.Error()
		return
	}
	res.Baseline.Updated = true
	progress("baseline %s rewritten with this run's figures", f.baselinePath)
}

// report prints res and writes it to -json.
func report(f *flags, res *results) error {
	writeMarkdown(os.Stdout, res)
	if f.jsonPath != "" {
		if err := writeJSON(f.jsonPath, res); err != nil {
			return err
		}
		progress("results written to %s", f.jsonPath)
	}
	return nil
}

// measurePhases runs the ingest and query phases, filling res.
func measurePhases(ctx context.Context, f *flags, t *target, res *results) error {
	var before procStat
	if t.pids != nil {
		before = measure(t.pids())
	}
	selfBefore, _ := procCPU(os.Getpid())
	profileDone := make(chan error, 1)
	if f.cpuProfile != "" {
		go func() { profileDone <- captureCPUProfile(ctx, t.profileURL, f.ingest.Duration, f.cpuProfile) }()
	} else {
		profileDone <- nil
	}
	progress("ingest: %d workers over OTLP/%s for %s", f.ingest.Workers, f.ingest.Protocol, f.ingest.Duration)
	in, err := runIngest(ctx, t, f.ingest, f.gen)
	if err != nil {
		return err
	}
	res.Ingest = in
	selfAfter, _ := procCPU(os.Getpid())
	res.LoadGen = selfAfter - selfBefore
	secs := in.Elapsed.Seconds()
	res.Derived = derived{SpansPerSecond: float64(in.SpansAcked) / secs, MBPerSecond: float64(in.BytesAcked) / 1e6 / secs}
	if t.pids != nil {
		after := measure(t.pids())
		res.Server = serverResult{Measured: after.procs > 0, Processes: after.procs,
			CPUSeconds: after.cpuSeconds - before.cpuSeconds, PeakRSSBytes: after.peakRSS}
		if in.SpansAcked > 0 {
			res.Server.CPUPerMillionSpans = res.Server.CPUSeconds / (float64(in.SpansAcked) / 1e6)
			res.Server.PeakRSSPer10k = float64(res.Server.PeakRSSBytes) / (1 << 20) / (res.Derived.SpansPerSecond / 1e4)
		}
	} else {
		res.Notes = append(res.Notes, "server CPU and RSS are n/a: give -server-pid to measure an external target")
	}
	progress("ingest done: %d spans acknowledged (%.0f spans/s), %d refused", in.SpansAcked, res.Derived.SpansPerSecond, in.SpansRefused)
	if err := <-profileDone; err != nil {
		res.Notes = append(res.Notes, "no server CPU profile: "+err.Error())
	} else if f.cpuProfile != "" {
		res.Notes = append(res.Notes, "server CPU profile of the ingest written to "+f.cpuProfile+" (go tool pprof -top "+f.cpuProfile+")")
	}
	if ctx.Err() != nil {
		res.Notes = append(res.Notes, "interrupted: the query phase was skipped")
		return nil
	}
	if len(in.TraceIDs) == 0 {
		res.Notes = append(res.Notes, "no trace was fully acknowledged: the query phase was skipped")
		return nil
	}

	service := serviceNames[0]
	if f.gen.Services > 1 {
		service = serviceNames[1]
	}
	// The searches' range starts a minute before the oldest span: the
	// ingest's start, or with -backfill the oldest backfilled trace's
	// start (roots last at most 10s).
	oldest, oldestWhat := in.Start, "ingest start"
	if f.ingest.Backfill > 0 {
		oldest, oldestWhat = backfillTime(in.Start, f.ingest.Duration, f.ingest.Backfill, in.Start).Add(-10*time.Second), "oldest backfilled span"
	}
	start := oldest.Add(-time.Minute)
	searches := func(phase string) {
		if wait := time.Until(in.End.Add(t.searchDelay)); wait > 0 {
			progress("waiting %s for the target's query_end_cutoff (%s) to pass over the last pushed trace", wait.Round(time.Second), t.searchDelay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		end := time.Now().Add(time.Minute)
		for _, spec := range searchSpecs(service, in.TraceIDs[len(in.TraceIDs)/2], start, end) {
			if ctx.Err() != nil {
				return
			}
			progress("%s: query %s", phase, spec.Name)
			q := runQuery(t.queryURL, spec, f.queries, f.queryTime)
			q.Phase = phase
			res.Queries = append(res.Queries, q)
		}
	}
	res.QueryNote = fmt.Sprintf("Range from %s (%s − 1m) to the query's time + 1m, as unix seconds; up to %d runs each (fewer once a query's runs took %s), one at a time. "+
		"Results are the traces (search, limit 20), tag names or values of the last run; inspectedBytes is the answer's metrics.inspectedBytes.",
		start.UTC().Format(time.DateTime), oldestWhat, f.queries, f.queryTime)
	if f.metrics && in.SpansAcked < issueSpans {
		res.Notes = append(res.Notes, fmt.Sprintf("-metrics over %d acknowledged spans, fewer than the %d the figures of TraceQL metrics are asked over: give a longer -duration", in.SpansAcked, issueSpans))
	}
	if f.metrics && f.ingest.Backfill == 0 {
		res.Notes = append(res.Notes, "-metrics without -backfill: the spans are newer than query_frontend.metrics.query_backend_after, so metrics would read them from the live-store, which a restart empties; the metrics phase counts little or nothing")
	}
	metricsPhase := func(restarted bool) {
		if !f.metrics || ctx.Err() != nil {
			return
		}
		budget := f.queryTime
		if f.metricsQueryTime > 0 {
			budget = f.metricsQueryTime
		}
		res.Metrics = runMetricsPhase(ctx, t, service, f.queries, budget, f.settle, restarted)
		if !restarted {
			res.Metrics.Note = firstOf(res.Metrics.Note, "the target was not restarted: reads may come from its live-store or ingesters as well as its blocks")
		}
	}

	if t.searchDelay > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("searches started once the last pushed trace was %s old: the target's query_end_cutoff hides newer traces from /api/search", t.searchDelay))
	}
	progress("trace by ID: %d traces, recent", len(in.TraceIDs))
	res.Lookups = append(res.Lookups, lookupTraces(t.queryURL, "recent", in.TraceIDs, in.SpansPerTrace))
	searches("recent")
	if ctx.Err() != nil {
		res.Notes = append(res.Notes, "interrupted: the rest of the query phase was skipped")
		return nil
	}
	if t.restart == nil {
		res.Lookups = append(res.Lookups, lookupResult{Phase: "on blocks", Note: t.restartSupported})
		metricsPhase(false)
		return nil
	}
	if err := t.restart(ctx); err != nil {
		return fmt.Errorf("cannot restart the target: %w", err)
	}
	if n, ok := liveStoreTraces(t.queryURL); ok {
		res.Notes = append(res.Notes, fmt.Sprintf("after the restart weft_live_store_traces = %.0f: the on-blocks reads come from blocks", n))
	}
	// First on the fresh process, so that its peak RSS is the metrics'.
	metricsPhase(true)
	if ctx.Err() != nil {
		res.Notes = append(res.Notes, "interrupted: the rest of the query phase was skipped")
		return nil
	}
	progress("trace by ID: %d traces, on blocks after a restart", len(in.TraceIDs))
	res.Lookups = append(res.Lookups, lookupTraces(t.queryURL, "on blocks (after a restart)", in.TraceIDs, in.SpansPerTrace))
	searches("on blocks")
	return nil
}
