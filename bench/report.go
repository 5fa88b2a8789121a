package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results is everything a run measured; -json writes it.
type results struct {
	Command   string         `json:"command"`
	StartedAt time.Time      `json:"started_at"`
	Machine   machine        `json:"machine"`
	Target    string         `json:"target"`
	Generator genOptions     `json:"generator"`
	Options   ingestOptions  `json:"ingest_options"`
	Ingest    *ingestResult  `json:"ingest"`
	Derived   derived        `json:"derived"`
	Server    serverResult   `json:"server"`
	LoadGen   float64        `json:"load_generator_cpu_seconds"`
	Lookups   []lookupResult `json:"trace_by_id"`
	Queries   []queryResult  `json:"queries"`
	QueryNote string         `json:"query_note,omitempty"`
	Notes     []string       `json:"notes,omitempty"`
	// Metrics is the -metrics phase.
	Metrics *metricsPhase `json:"metrics,omitempty"`
	// DecodeFloor is the CPU of decoding the sent requests once.
	DecodeFloor *decodeFloorResult `json:"decode_floor,omitempty"`
	// Baseline is the comparison with -baseline.
	Baseline *baselineReport `json:"baseline_comparison,omitempty"`
	// GeneratorAB is the -generator-ab comparison.
	GeneratorAB *abResult `json:"generator_ab,omitempty"`
}

// derived are the headline ingest figures.
type derived struct {
	SpansPerSecond float64 `json:"acked_spans_per_second"`
	MBPerSecond    float64 `json:"acked_mb_per_second"` // 10^6 bytes of OTLP protobuf
}

// serverResult is the CPU and memory of the measured processes during ingest.
type serverResult struct {
	Measured           bool    `json:"measured"`
	Processes          int     `json:"processes"`
	CPUSeconds         float64 `json:"cpu_seconds"`
	CPUPerMillionSpans float64 `json:"cpu_seconds_per_million_spans"`
	PeakRSSBytes       int64   `json:"peak_rss_bytes"`
	// PeakRSSPer10k is the peak RSS in MiB per 10,000 acknowledged spans/s
	// of load: comparable between runs at different rates.
	PeakRSSPer10k float64 `json:"peak_rss_mib_per_10k_spans_per_second"`
}

// machine are the facts printed at the top of the report.
type machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Revision  string `json:"revision"`
}

func machineFacts(repo string) machine {
	m := machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), CPU: "unknown", MemTotal: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(rest)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = runtime.GOOS + "/" + runtime.GOARCH + " " + strings.TrimSpace(string(b))
	}
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = repo
	if b, err := cmd.Output(); err == nil {
		m.Revision = strings.TrimSpace(string(b))
	}
	return m
}

// percentile is the q quantile of d (nearest rank); 0 for no values.
func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// progress writes a timestamped line on stderr.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// writeMarkdown prints the report.
func writeMarkdown(w io.Writer, r *results) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("# weft bench")
	p("")
	p("```")
	p("%s", r.Command)
	p("```")
	p("")
	p("- started: %s", r.StartedAt.UTC().Format(time.RFC3339))
	p("- machine: %s, %d cores, %s memory, %s", r.Machine.CPU, r.Machine.Cores, r.Machine.MemTotal, r.Machine.Kernel)
	p("- %s, revision %s", r.Machine.GoVersion, firstOf(r.Machine.Revision, "unknown"))
	p("- target: %s", r.Target)
	g := r.Generator
	p("- load: %d workers over OTLP/%s for %s, rate cap %s; %d spans/request (whole traces), %d spans/trace, %d services, depth ≤ %d, %d attrs × %d B, %d events/span, error rate %.3g, seed %d",
		r.Options.Workers, r.Options.Protocol, r.Options.Duration, rateStr(r.Options.Rate), g.Batch, g.SpansPerTrace, g.Services, g.Depth, g.Attrs, g.AttrBytes, g.Events, g.ErrorRate, g.Seed)
	p("")
	if in := r.Ingest; in != nil {
		p("## Ingest")
		p("")
		p("| figure | value |")
		p("|---|---|")
		p("| acknowledged spans/s | %.0f |", r.Derived.SpansPerSecond)
		p("| acknowledged MB/s (OTLP protobuf) | %.2f |", r.Derived.MBPerSecond)
		p("| spans sent / acknowledged / refused | %d / %d / %d |", in.SpansSent, in.SpansAcked, in.SpansRefused)
		p("| requests | %d in %.1f s |", in.Requests, in.Elapsed.Seconds())
		p("| push latency p50 / p99 | %s / %s |", ms(in.LatencyP50), ms(in.LatencyP99))
		if r.Server.Measured {
			p("| server CPU seconds per million spans | %.1f (%.1f s over %d process(es)) |", r.Server.CPUPerMillionSpans, r.Server.CPUSeconds, r.Server.Processes)
			p("| server peak RSS (VmHWM) | %s |", mib(r.Server.PeakRSSBytes))
			p("| server peak RSS per 10k spans/s of load | %.0f MiB |", r.Server.PeakRSSPer10k)
		} else {
			p("| server CPU seconds per million spans | n/a |")
			p("| server peak RSS | n/a |")
		}
		p("| load generator CPU seconds | %.1f |", r.LoadGen)
		if len(in.Errors) > 0 {
			keys := make([]string, 0, len(in.Errors))
			for k := range in.Errors {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s: %d", k, in.Errors[k]))
			}
			p("| refused requests by reason | %s |", strings.Join(parts, ", "))
		}
		p("")
	}
	if d := r.DecodeFloor; d != nil {
		writeDecodeFloor(p, d, r.Server)
	}
	if r.GeneratorAB != nil {
		writeGeneratorAB(p, r.GeneratorAB)
	}
	if len(r.Lookups) > 0 {
		p("## Trace by ID (`/api/traces/<id>`, protobuf)")
		p("")
		p("| phase | requests | found | complete | not found | errors | p50 | p99 |")
		p("|---|---|---|---|---|---|---|---|")
		for _, l := range r.Lookups {
			if l.Note != "" {
				p("| %s | %s | | | | | | |", l.Phase, l.Note)
				continue
			}
			p("| %s | %d | %d | %d | %d | %d | %s | %s |", l.Phase, l.Requests, l.Found, l.Complete, l.NotFound, l.Errors, ms(l.P50), ms(l.P99))
		}
		p("")
	}
	if len(r.Queries) > 0 {
		p("## Searches and tags")
		p("")
		if r.QueryNote != "" {
			p("%s", r.QueryNote)
			p("")
		}
		p("| phase | query | runs | failures | results | inspectedBytes | p50 | p99 |")
		p("|---|---|---|---|---|---|---|---|")
		for _, q := range r.Queries {
			p("| %s | %s | %d | %d | %d | %d | %s | %s |", q.Phase, strings.ReplaceAll(q.Name, "|", `\|`), q.Runs, q.Failures, q.Results, q.InspectedBytes, ms(q.P50), ms(q.P99))
		}
		for _, q := range r.Queries {
			if q.FirstError != "" {
				p("")
				p("- %s, %s: first error: %s", q.Phase, q.Name, strings.ReplaceAll(q.FirstError, "\n", " "))
			}
		}
		p("")
	}
	if r.Metrics != nil {
		writeMetricsPhase(p, r.Metrics)
	}
	if r.Baseline != nil {
		writeBaselineReport(p, r.Baseline)
	}
	if len(r.Notes) > 0 {
		p("## Notes")
		p("")
		for _, n := range r.Notes {
			p("- %s", n)
		}
		p("")
	}
}

func rateStr(r float64) string {
	if r <= 0 {
		return "none"
	}
	return fmt.Sprintf("%.0f spans/s", r)
}

func writeJSON(path string, r *results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// writeMetricsPhase prints the -metrics phase.
func writeMetricsPhase(p func(string, ...any), m *metricsPhase) {
	where := "on blocks, after a restart"
	if !m.Restarted {
		where = "without a restart"
	}
	p("## TraceQL metrics (%s)", where)
	p("")
	p("Ranges at %s: 1h is [now − 1h20m, now − 20m], 24h is [now − 24h, now], as unix seconds; step is the backend's default. "+
		"Each request runs up to -queries times one after another (fewer once its runs took -query-time, at least once). "+
		"Server CPU is utime + stime over the runs ÷ requests; inspectedBytes, totalJobs, status and series (metrics) or traces (search) are of the last answer.",
		m.Now.UTC().Format(time.DateTime))
	p("")
	if s := m.Settle; s != nil {
		if s.Settled {
			p("Compaction settled %s after the restart, before the phase: %.0f blocks, none outstanding.", s.Waited.Round(time.Second), s.Blocks)
		} else {
			p("Compaction did **not** settle within %s (-settle): %.0f blocks, %s outstanding; it ran during the phase, and its CPU is in the figures.", s.Waited.Round(time.Second), s.Blocks, outstandingStr(s.Outstanding))
		}
		p("")
	}
	if b := m.MillionSeries; b != nil {
		p("**A series per span** (%s over %s, once):", b.Name, b.Range)
		p("")
		p("| figure | value |")
		p("|---|---|")
		if b.Failures > 0 {
			p("| answer | failed: %s |", cell(b.FirstError))
		} else {
			p("| status | %s |", firstOf(b.Status, "(none)"))
			p("| message | %s |", cell(b.Message))
			p("| series | %d |", b.Series)
		}
		p("| latency | %s |", msOK(b, b.P50))
		p("| inspectedBytes / totalJobs | %d / %d |", b.InspectedBytes, b.TotalJobs)
		p("| server CPU seconds | %s |", cpuCell(b))
		switch {
		case m.PeakRSSAfter > 0 && m.PeakReset:
			p("| server RSS just before (VmRSS) / peak during it (VmHWM, reset just before) | %s / %s |", mib(m.RSSBefore), mib(m.PeakRSSAfter))
			p("| server peak RSS since the restart, before it (VmHWM) | %s |", mib(m.PeakRSSBefore))
		case m.PeakRSSAfter > 0:
			p("| server peak RSS (VmHWM since the restart) before / right after | %s / %s |", mib(m.PeakRSSBefore), mib(m.PeakRSSAfter))
		default:
			p("| server peak RSS | n/a |")
		}
		p("")
	}
	if len(m.Queries) > 0 {
		p("| range | query | runs | failures | status | series / traces | inspectedBytes | totalJobs | p50 | p95 | server CPU s/query |")
		p("|---|---|---|---|---|---|---|---|---|---|---|")
		for _, q := range m.Queries {
			n := fmt.Sprintf("%d traces", q.Traces)
			if q.Metrics {
				n = fmt.Sprintf("%d series", q.Series)
			}
			p("| %s | %s | %d | %d | %s | %s | %d | %d | %s | %s | %s |", q.Range, cell(q.Name), q.Requests, q.Failures, firstOf(q.Status, "–"), n, q.InspectedBytes, q.TotalJobs, msOK(&q, q.P50), msOK(&q, q.P95), cpuCell(&q))
		}
		for _, q := range m.Queries {
			if q.FirstError != "" {
				p("")
				p("- %s, %s: first error: %s", q.Range, q.Name, cell(q.FirstError))
			}
			if q.Partial > 0 {
				p("")
				p("- %s, %s: %d of %d answers PARTIAL; the first said: %s", q.Range, q.Name, q.Partial, q.Requests-q.Failures, cell(q.PartialMessage))
			}
		}
		p("")
	}
	if m.Note != "" {
		p("- %s", m.Note)
		p("")
	}
}

// cell makes s fit a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", `\|`)
}

func outstandingStr(v float64) string {
	if v < 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.0f", v)
}

// msOK is d in ms, or "–" when no run of q was answered (d is then 0).
func msOK(q *metricsResult, d time.Duration) string {
	if q.Failures >= q.Requests {
		return "–"
	}
	return ms(d)
}

func cpuCell(q *metricsResult) string {
	if !q.CPUMeasured {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", q.ServerCPUPerQuery)
}
