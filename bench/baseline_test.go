package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCompareFigures(t *testing.T) {
	base := []baselineFigure{
		{figure: figure{Name: "cpu", Better: lowerIsBetter, Value: 10}, ThresholdPct: 10},
		{figure: figure{Name: "spans/s", Better: higherIsBetter, Value: 1000}, ThresholdPct: 10},
		{figure: figure{Name: "failures", Better: lowerIsBetter, Value: 0}, ThresholdPct: 0},
		{figure: figure{Name: "gone", Better: lowerIsBetter, Value: 5}, ThresholdPct: 10},
	}
	cases := []struct {
		name string
		now  map[string]float64
		want map[string]string
	}{
		{"within the threshold", map[string]float64{"cpu": 10.9, "spans/s": 920, "failures": 0},
			map[string]string{"cpu": verdictOK, "spans/s": verdictOK, "failures": verdictOK}},
		{"worse beyond the threshold", map[string]float64{"cpu": 11.5, "spans/s": 850, "failures": 1},
			map[string]string{"cpu": verdictWorse, "spans/s": verdictWorse, "failures": verdictWorse}},
		// A higher-is-better figure that went up, a lower-is-better one
		// that went down: better, not worse.
		{"better beyond the threshold", map[string]float64{"cpu": 8, "spans/s": 1200, "failures": 0},
			map[string]string{"cpu": verdictBetter, "spans/s": verdictBetter, "failures": verdictOK}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var now []figure
			for _, name := range []string{"cpu", "spans/s", "failures", "new one"} {
				v, ok := tc.now[name]
				if name == "new one" {
					v, ok = 3, true
				}
				if ok {
					now = append(now, figure{Name: name, Better: lowerIsBetter, Value: v})
				}
			}
			got := map[string]comparison{}
			for _, c := range compareFigures(base, now) {
				got[c.Name] = c
			}
			for name, want := range tc.want {
				if got[name].Verdict != want {
					t.Errorf("%s: verdict %q, want %q (%+v)", name, got[name].Verdict, want, got[name])
				}
			}
			if got["gone"].Verdict != verdictMissing || !math.IsNaN(got["gone"].Now) {
				t.Errorf("a figure of the baseline missing from the run: %+v, want %s", got["gone"], verdictMissing)
			}
			if got["new one"].Verdict != verdictNew {
				t.Errorf("a figure new in the run: %+v, want %s", got["new one"], verdictNew)
			}
		})
	}
	c := compareFigures(base[:1], []figure{{Name: "cpu", Value: 12}})[0]
	if math.Abs(c.ChangePct-20) > 1e-9 {
		t.Errorf("change of 10 → 12: %v%%, want +20%%", c.ChangePct)
	}
}

func TestThresholdFromRuns(t *testing.T) {
	for _, tc := range []struct {
		runs []float64
		want float64
	}{
		{[]float64{100, 104, 98}, 12},                  // 2 × 6 / 100
		{[]float64{20.1, 20.3, 20.2}, 5},               // 2 × 0.2/20.2 = 2% → the minimum
		{[]float64{1000, 700, 800}, 75},                // 2 × 300/800
		{[]float64{0, 0, 0}, 0},                        // failures: any increase is called out
		{[]float64{0, 2, 0}, 0},                        // median 0
		{[]float64{10, 20}, math.Ceil(200. / 15 * 10)}, // even count: the mean of the middle two
	} {
		if got := thresholdFromRuns(tc.runs); got != tc.want {
			t.Errorf("thresholdFromRuns(%v) = %v, want %v", tc.runs, got, tc.want)
		}
	}
}

// testRun is a results value with the figures the baseline keeps.
func testRun(cpu, spansPerSec float64, searchP50 time.Duration) *results {
	return &results{
		Command: "go run ./bench -duration 30s", Target: "weft monolithic", StartedAt: time.Unix(1_800_000_000, 0),
		Machine:   machine{Revision: "abc123"},
		Generator: genOptions{Seed: 1, Batch: 200}, Options: ingestOptions{Protocol: "grpc", Workers: 4, Duration: 30 * time.Second},
		Ingest:      &ingestResult{SpansAcked: 1000, LatencyP50: 3 * time.Millisecond, LatencyP99: 9 * time.Millisecond},
		Derived:     derived{SpansPerSecond: spansPerSec},
		Server:      serverResult{Measured: true, Processes: 1, CPUPerMillionSpans: cpu, PeakRSSBytes: 500 << 20},
		DecodeFloor: &decodeFloorResult{CPUPerMillionSpans: 3, IngestMultiple: cpu / 3},
		Lookups:     []lookupResult{{Phase: "recent", Requests: 200, Complete: 200, P50: 2 * time.Millisecond}, {Phase: "on blocks", Note: "not supported"}},
		Queries: []queryResult{{Phase: "recent", Name: "search `{ }`", Runs: 20, P50: searchP50},
			{Phase: "recent", Name: fmt.Sprintf("search `{ trace:id = \"%032x\" }`", rand.Uint64()), Runs: 20, P50: time.Millisecond}},
	}
}

func TestMakeBaselineAndCompare(t *testing.T) {
	dir := t.TempDir()
	var reports []string
	for i, r := range []*results{testRun(20, 15000, 10*time.Millisecond), testRun(22, 14000, 12*time.Millisecond), testRun(21, 14500, 11*time.Millisecond)} {
		p := filepath.Join(dir, "run"+string(rune('1'+i))+".json")
		if err := writeJSON(p, r); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, p)
	}
	path := filepath.Join(dir, "baseline.json")
	if err := makeBaseline(path, reports); err != nil {
		t.Fatal(err)
	}
	b, err := readBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	th := map[string]baselineFigure{}
	for _, f := range b.Figures {
		th[f.Name] = f
	}
	// cpu 20, 22, 21: 2 × 2/21 → 20%; spans/s 15000, 14000, 14500: 2 × 1000/14500 → 14%.
	if f := th["ingest: server CPU-s per million spans"]; f.ThresholdPct != 20 || f.Value != 21 || len(f.Runs) != 3 {
		t.Errorf("cpu in the baseline: %+v, want value 21 (the last run), threshold 20%%, 3 runs", f)
	}
	if f := th["ingest: acknowledged spans/s"]; f.ThresholdPct != 14 || f.Better != higherIsBetter {
		t.Errorf("spans/s in the baseline: %+v, want threshold 14%%, higher is better", f)
	}
	if _, ok := th["trace by ID, on blocks: p50"]; ok {
		t.Error("a lookup phase with a note (not measured) is in the baseline")
	}
	for _, name := range []string{"decode floor: CPU-s per million spans", "ingest ÷ decode floor", "recent: search `{ }`: p50", "trace by ID, recent: p50",
		"recent: search `{ trace:id = \"<a pushed trace>\" }`: p50"} {
		if _, ok := th[name]; !ok {
			t.Errorf("figure %q is not in the baseline", name)
		}
	}

	// The same run is within every threshold; a run 30% worse in CPU is called out.
	if rep := compareWithBaseline(path, b, testRun(21, 14500, 11*time.Millisecond)); len(rep.Worse) != 0 || !rep.Comparable {
		t.Errorf("the baseline's own run: worse %v, comparable %v", rep.Worse, rep.Comparable)
	}
	now := testRun(27.3, 14500, 11*time.Millisecond)
	rep := compareWithBaseline(path, b, now)
	want := []string{"ingest: server CPU-s per million spans", "ingest ÷ decode floor"}
	if strings.Join(rep.Worse, ";") != strings.Join(want, ";") {
		t.Errorf("worse: %v, want %v", rep.Worse, want)
	}
	now.Options.Workers = 8
	if rep := compareWithBaseline(path, b, now); rep.Comparable || rep.Note == "" {
		t.Errorf("a run with other flags: comparable %v, note %q", rep.Comparable, rep.Note)
	}

	// The report calls the figure out, and the JSON of a comparison with
	// missing and new figures (NaN) encodes.
	now.Queries = nil
	now.Lookups = append(now.Lookups, lookupResult{Phase: "later", Requests: 1, Complete: 1})
	now.Baseline = compareWithBaseline(path, b, now)
	var md bytes.Buffer
	writeMarkdown(&md, now)
	for _, s := range []string{"| **WORSE** |", "| **MISSING** |", "| new |", "21.00 → 27.30 | +30.0% | 20% |", "WORSE than the baseline beyond the noise: ingest: server CPU-s per million spans; ingest ÷ decode floor"} {
		if !strings.Contains(md.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, md.String())
		}
	}
	out := filepath.Join(dir, "now.json")
	if err := writeJSON(out, now); err != nil {
		t.Fatalf("cannot write a comparison with missing figures as JSON: %v", err)
	}
	data, _ := os.ReadFile(out)
	var back struct {
		Baseline struct {
			Figures []map[string]any `json:"figures"`
		} `json:"baseline_comparison"`
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, f := range back.Baseline.Figures {
		if f["verdict"] == verdictMissing && f["now"] != nil {
			t.Errorf("a missing figure's now is %v, want null", f["now"])
		}
	}
}

func TestMakeBaselineRefusesOtherFlags(t *testing.T) {
	dir := t.TempDir()
	a, b := testRun(20, 15000, time.Millisecond), testRun(20, 15000, time.Millisecond)
	b.Options.Duration = time.Minute
	pa, pb := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	if err := writeJSON(pa, a); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(pb, b); err != nil {
		t.Fatal(err)
	}
	if err := makeBaseline(filepath.Join(dir, "base.json"), []string{pa, pb}); err == nil || !strings.Contains(err.Error(), "another target, generator or ingest options") {
		t.Errorf("runs with different flags: %v, want an error", err)
	}
	if err := makeBaseline(filepath.Join(dir, "base.json"), []string{pa}); err == nil {
		t.Error("one run: no error")
	}
}

func TestUpdateBaseline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baseline.json")
	f := &flags{baselinePath: path, updateBaseline: true}
	first := testRun(20, 15000, 10*time.Millisecond)
	guard(f, nil, first) // no file yet: it is written
	if first.Baseline == nil || !first.Baseline.Updated || first.Baseline.UpdateError != "" {
		t.Fatalf("first run: %+v", first.Baseline)
	}
	b, err := readBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Figures {
		b.Figures[i].ThresholdPct = 33
	}
	if err := writeBaseline(path, b); err != nil {
		t.Fatal(err)
	}
	b, _ = readBaseline(path)
	second := testRun(30, 15000, 10*time.Millisecond)
	guard(f, b, second) // compared with the first, then rewritten with the thresholds kept
	if got := strings.Join(second.Baseline.Worse, ";"); got != "ingest: server CPU-s per million spans;ingest ÷ decode floor" {
		t.Errorf("worse: %q", got)
	}
	b, _ = readBaseline(path)
	for _, fg := range b.Figures {
		if fg.Name == "ingest: server CPU-s per million spans" && (fg.Value != 30 || fg.ThresholdPct != 33) {
			t.Errorf("after -update-baseline: %+v, want value 30, threshold kept at 33%%", fg)
		}
	}
}
