package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The regression guard: a run's headline figures are compared with a
// baseline file (bench/baseline.json for `make bench`), and a figure that
// is worse than the baseline's by more than its noise threshold is called
// out. See docs/bench.md, "Regression guard".

// Which way a figure is better.
const (
	lowerIsBetter  = "lower"
	higherIsBetter = "higher"
)

const (
	// defaultThresholdPct is the noise threshold of a figure new to the
	// baseline, until -make-baseline derives one from repeated runs.
	defaultThresholdPct = 10
	// minThresholdPct is the smallest threshold derived from runs: three
	// runs that happen to agree do not make a figure that precise.
	minThresholdPct = 5
	// spreadFactor multiplies the spread of the runs into a threshold (see
	// thresholdFromRuns).
	spreadFactor = 2
)

// figure is one headline figure of a run.
type figure struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit"`
	Better string  `json:"better"` // lowerIsBetter or higherIsBetter
	Value  float64 `json:"value"`
}

// baselineFigure is a figure of the baseline with its noise threshold.
type baselineFigure struct {
	figure
	// ThresholdPct is how much worse than Value, in percent of Value, a run
	// may be before it is called out. With Value 0, any change for the
	// worse is.
	ThresholdPct float64 `json:"threshold_pct"`
	// Runs are the figure's values in the runs the threshold came from.
	Runs []float64 `json:"runs,omitempty"`
}

// baseline is the file -baseline reads and -update-baseline and
// -make-baseline write.
type baseline struct {
	// Command, Revision, Machine and StartedAt are those of the run the
	// values come from.
	Command   string        `json:"command"`
	Revision  string        `json:"revision"`
	Machine   machine       `json:"machine"`
	StartedAt time.Time     `json:"started_at"`
	Target    string        `json:"target"`
	Generator genOptions    `json:"generator"`
	Options   ingestOptions `json:"ingest_options"`
	// ThresholdRule says how the thresholds were derived.
	ThresholdRule string `json:"threshold_rule"`
	// ThresholdRuns are the commands and revisions of the runs the
	// thresholds came from.
	ThresholdRuns []string         `json:"threshold_runs,omitempty"`
	Figures       []baselineFigure `json:"figures"`
}

// Verdicts of a comparison.
const (
	verdictOK      = "ok"
	verdictWorse   = "WORSE"
	verdictBetter  = "better"
	verdictMissing = "MISSING"
	verdictNew     = "new"
)

// comparison is one figure against the baseline; -json writes the list as
// "baseline_comparison".
type comparison struct {
	Name   string `json:"name"`
	Unit   string `json:"unit"`
	Better string `json:"better"`
	// Base and Now are NaN (null in JSON) for a figure new in this run or
	// missing from it.
	Base float64 `json:"-"`
	Now  float64 `json:"-"`
	// ChangePct is (now − baseline) / baseline in percent; NaN (null in
	// JSON, "n/a" in the report) when the baseline is 0 or a side is missing.
	ChangePct    float64 `json:"-"`
	ThresholdPct float64 `json:"threshold_pct"`
	Verdict      string  `json:"verdict"`
}

// MarshalJSON writes Base, Now and ChangePct as baseline, now and
// change_pct, null when NaN.
func (c comparison) MarshalJSON() ([]byte, error) {
	type plain comparison
	orNull := func(v float64) *float64 {
		if math.IsNaN(v) {
			return nil
		}
		return &v
	}
	return json.Marshal(struct {
		plain
		Base      *float64 `json:"baseline"`
		Now       *float64 `json:"now"`
		ChangePct *float64 `json:"change_pct"`
	}{plain(c), orNull(c.Base), orNull(c.Now), orNull(c.ChangePct)})
}

// baselineReport is the comparison of a run with a baseline.
type baselineReport struct {
	Path        string       `json:"path"`
	Revision    string       `json:"baseline_revision"`
	StartedAt   time.Time    `json:"baseline_started_at"`
	Command     string       `json:"baseline_command"`
	Comparable  bool         `json:"comparable"` // same target, generator and ingest options
	Figures     []comparison `json:"figures"`
	Worse       []string     `json:"worse,omitempty"` // names of the WORSE figures
	Note        string       `json:"note,omitempty"`
	Updated     bool         `json:"updated,omitempty"` // -update-baseline rewrote the file
	UpdateError string       `json:"update_error,omitempty"`
}

// traceIDInName is a trace ID in hex, in a query's name.
var traceIDInName = regexp.MustCompile(`\b[0-9a-f]{32}\b`)

// runFigures are the figures of r that the baseline keeps.
func runFigures(r *results) []figure {
	var fs []figure
	add := func(name, unit, better string, v float64) {
		fs = append(fs, figure{Name: name, Unit: unit, Better: better, Value: v})
	}
	msF := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if in := r.Ingest; in != nil {
		add("ingest: acknowledged spans/s", "spans/s", higherIsBetter, r.Derived.SpansPerSecond)
		add("ingest: refused spans", "spans", lowerIsBetter, float64(in.SpansRefused))
		add("ingest: push latency p50", "ms", lowerIsBetter, msF(in.LatencyP50))
		add("ingest: push latency p99", "ms", lowerIsBetter, msF(in.LatencyP99))
		if r.Server.Measured {
			add("ingest: server CPU-s per million spans", "CPU-s", lowerIsBetter, r.Server.CPUPerMillionSpans)
			add("ingest: server peak RSS", "MiB", lowerIsBetter, float64(r.Server.PeakRSSBytes)/(1<<20))
			add("ingest: server peak RSS per 10k spans/s", "MiB", lowerIsBetter, r.Server.PeakRSSPer10k)
		}
	}
	if d := r.DecodeFloor; d != nil && d.Error == "" {
		add("decode floor: CPU-s per million spans", "CPU-s", lowerIsBetter, d.CPUPerMillionSpans)
		if d.IngestMultiple > 0 {
			add("ingest ÷ decode floor", "×", lowerIsBetter, d.IngestMultiple)
		}
	}
	for _, l := range r.Lookups {
		if l.Note != "" {
			continue
		}
		add("trace by ID, "+l.Phase+": p50", "ms", lowerIsBetter, msF(l.P50))
		add("trace by ID, "+l.Phase+": not complete", "traces", lowerIsBetter, float64(l.Requests-l.Complete))
	}
	for _, q := range r.Queries {
		// The trace ID searched for differs from run to run; the figure
		// is the same.
		q.Name = traceIDInName.ReplaceAllString(q.Name, "<a pushed trace>")
		add(q.Phase+": "+q.Name+": p50", "ms", lowerIsBetter, msF(q.P50))
		add(q.Phase+": "+q.Name+": failures", "runs", lowerIsBetter, float64(q.Failures))
	}
	return fs
}

// compareFigures compares now with the baseline's figures, in the
// baseline's order, then the figures new in now.
func compareFigures(base []baselineFigure, now []figure) []comparison {
	byName := make(map[string]figure, len(now))
	for _, f := range now {
		byName[f.Name] = f
	}
	var out []comparison
	seen := make(map[string]bool, len(base))
	for _, b := range base {
		seen[b.Name] = true
		c := comparison{Name: b.Name, Unit: b.Unit, Better: b.Better, Base: b.Value, ThresholdPct: b.ThresholdPct, ChangePct: math.NaN()}
		n, ok := byName[b.Name]
		if !ok {
			c.Now = math.NaN()
			c.Verdict = verdictMissing
			out = append(out, c)
			continue
		}
		c.Now = n.Value
		c.Verdict = verdictOK
		// worse is how much worse now is than the baseline, in the
		// figure's direction: positive is worse.
		worse := n.Value - b.Value
		if b.Better == higherIsBetter {
			worse = -worse
		}
		if b.Value != 0 {
			c.ChangePct = (n.Value - b.Value) / math.Abs(b.Value) * 100
			worsePct := worse / math.Abs(b.Value) * 100
			switch {
			case worsePct > b.ThresholdPct:
				c.Verdict = verdictWorse
			case -worsePct > b.ThresholdPct:
				c.Verdict = verdictBetter
			}
		} else if worse > 0 {
			c.Verdict = verdictWorse
		} else if worse < 0 {
			c.Verdict = verdictBetter
		}
		out = append(out, c)
	}
	for _, n := range now {
		if !seen[n.Name] {
			out = append(out, comparison{Name: n.Name, Unit: n.Unit, Better: n.Better, Base: math.NaN(), Now: n.Value, ChangePct: math.NaN(), Verdict: verdictNew})
		}
	}
	return out
}

// thresholdFromRuns is the noise threshold of a figure measured in
// repeated runs with the same flags: spreadFactor × (max − min) / median,
// in percent, rounded up to a whole percent, at least minThresholdPct. Three
// runs' range understates the spread of many runs, hence the factor. A
// figure whose median is 0 (a count of failures) gets threshold 0: any
// increase is called out.
func thresholdFromRuns(values []float64) float64 {
	if len(values) == 0 {
		return defaultThresholdPct
	}
	s := slices.Clone(values)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	if med == 0 {
		return 0
	}
	pct := spreadFactor * (s[len(s)-1] - s[0]) / math.Abs(med) * 100
	return math.Max(minThresholdPct, math.Ceil(pct))
}

const thresholdRule = "threshold = max(5%, 2 × (max − min) / median) over the runs listed in threshold_runs (same flags, same machine); a figure whose median is 0 (failures, refusals) has threshold 0; a figure not in those runs has 10%"

// newBaseline makes a baseline of r's figures, with thresholds from the
// same figures in runs (when there are runs), else from old (the figure's
// threshold in the previous baseline), else defaultThresholdPct.
func newBaseline(r *results, runs []*results, old *baseline) *baseline {
	b := &baseline{Command: r.Command, Revision: r.Machine.Revision, Machine: r.Machine, StartedAt: r.StartedAt,
		Target: r.Target, Generator: r.Generator, Options: r.Options, ThresholdRule: thresholdRule}
	values := map[string][]float64{}
	for _, run := range runs {
		b.ThresholdRuns = append(b.ThresholdRuns, fmt.Sprintf("%s (revision %s, %s)", run.Command, run.Machine.Revision, run.StartedAt.UTC().Format(time.RFC3339)))
		for _, f := range runFigures(run) {
			values[f.Name] = append(values[f.Name], f.Value)
		}
	}
	oldT := map[string]baselineFigure{}
	if old != nil {
		for _, f := range old.Figures {
			oldT[f.Name] = f
		}
		if len(runs) == 0 {
			b.ThresholdRuns = old.ThresholdRuns
		}
	}
	for _, f := range runFigures(r) {
		bf := baselineFigure{figure: f, ThresholdPct: defaultThresholdPct}
		if v, ok := values[f.Name]; ok && len(v) == len(runs) {
			bf.ThresholdPct, bf.Runs = thresholdFromRuns(v), v
		} else if o, ok := oldT[f.Name]; ok && len(runs) == 0 {
			bf.ThresholdPct, bf.Runs = o.ThresholdPct, o.Runs
		}
		b.Figures = append(b.Figures, bf)
	}
	return b
}

// compareWithBaseline compares r with the baseline b read from path.
func compareWithBaseline(path string, b *baseline, r *results) *baselineReport {
	rep := &baselineReport{Path: path, Revision: b.Revision, StartedAt: b.StartedAt, Command: b.Command,
		Figures: compareFigures(b.Figures, runFigures(r))}
	rep.Comparable = b.Target == r.Target && reflect.DeepEqual(b.Generator, r.Generator) && reflect.DeepEqual(b.Options, r.Options)
	if !rep.Comparable {
		rep.Note = "the baseline was measured with another target, generator or ingest options than this run: its figures are not comparable"
	}
	for _, c := range rep.Figures {
		if c.Verdict == verdictWorse {
			rep.Worse = append(rep.Worse, c.Name)
		}
	}
	return rep
}

func readBaseline(path string) (*baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the baseline: %w", err)
	}
	var b baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("cannot parse the baseline %s: %w", path, err)
	}
	for _, f := range b.Figures {
		if f.Better != lowerIsBetter && f.Better != higherIsBetter {
			return nil, fmt.Errorf("cannot use the baseline %s: figure %q has better %q, want %q or %q", path, f.Name, f.Better, lowerIsBetter, higherIsBetter)
		}
	}
	return &b, nil
}

func writeBaseline(path string, b *baseline) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the baseline: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write the baseline: %w", err)
	}
	return nil
}

// readResults reads a -json report of an earlier run.
func readResults(path string) (*results, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read a run's report: %w", err)
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("cannot parse the run's report %s: %w", path, err)
	}
	return &r, nil
}

// makeBaseline writes the baseline at path from the -json reports of runs
// made with the same flags: the values are the last run's, the thresholds
// come from the spread of all of them.
func makeBaseline(path string, reports []string) error {
	if len(reports) < 2 {
		return errors.New("-make-baseline needs the -json reports of at least two runs, comma-separated")
	}
	var runs []*results
	for _, p := range reports {
		r, err := readResults(p)
		if err != nil {
			return err
		}
		if len(runs) > 0 && (r.Target != runs[0].Target || !reflect.DeepEqual(r.Generator, runs[0].Generator) || !reflect.DeepEqual(r.Options, runs[0].Options)) {
			return fmt.Errorf("cannot make a baseline: %s was run with another target, generator or ingest options than %s", p, reports[0])
		}
		runs = append(runs, r)
	}
	return writeBaseline(path, newBaseline(runs[len(runs)-1], runs, nil))
}

// writeBaselineReport prints the comparison.
func writeBaselineReport(p func(string, ...any), rep *baselineReport) {
	p("## Against the baseline (%s)", rep.Path)
	p("")
	if len(rep.Figures) == 0 && rep.Revision == "" {
		p("%s.", firstOf(rep.Note, "no figures to compare"))
		if rep.Updated {
			p("")
			p("The baseline was written with this run's figures (-update-baseline).")
		}
		if rep.UpdateError != "" {
			p("")
			p("The baseline could not be written: %s", rep.UpdateError)
		}
		p("")
		return
	}
	p("Baseline: revision %s, %s, `%s`. A figure is WORSE when it moved the wrong way by more than its noise threshold (see docs/bench.md).",
		firstOf(rep.Revision, "unknown"), rep.StartedAt.UTC().Format(time.RFC3339), rep.Command)
	p("")
	if rep.Note != "" {
		p("**%s.**", rep.Note)
		p("")
	}
	p("| figure | baseline → now | change | threshold | verdict |")
	p("|---|---|---|---|---|")
	for _, c := range rep.Figures {
		change := "n/a"
		if !math.IsNaN(c.ChangePct) {
			change = fmt.Sprintf("%+.1f%%", c.ChangePct)
		}
		v := c.Verdict
		if v == verdictWorse || v == verdictMissing {
			v = "**" + v + "**"
		}
		thr := fmt.Sprintf("%.0f%%", c.ThresholdPct)
		if c.Verdict == verdictNew {
			thr = ""
		}
		p("| %s (%s, %s is better) | %s → %s | %s | %s | %s |", cell(c.Name), c.Unit, c.Better, num(c.Base), num(c.Now), change, thr, v)
	}
	p("")
	if len(rep.Worse) == 0 {
		p("No figure is worse than the baseline by more than its threshold.")
	} else {
		p("**WORSE than the baseline beyond the noise: %s.**", cell(strings.Join(rep.Worse, "; ")))
	}
	if rep.Updated {
		p("")
		p("The baseline was rewritten with this run's figures (-update-baseline).")
	}
	if rep.UpdateError != "" {
		p("")
		p("The baseline could not be rewritten: %s", rep.UpdateError)
	}
	p("")
}

// num formats a figure's value; "–" for a missing one.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
