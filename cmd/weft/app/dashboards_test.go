package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/kafka"
)

// operationsDir holds the dashboards and the rules file weft ships.
const operationsDir = "../../../operations"

// promQL parses the shipped expressions with the parser's defaults.
var promQL = parser.NewParser(parser.Options{})

// targetLabels are added by Prometheus when it scrapes, not exposed by weft.
var targetLabels = map[string]bool{"job": true, "instance": true}

// grafanaVar matches a Grafana variable in an expression: $name, ${name},
// ${name:format}.
var grafanaVar = regexp.MustCompile(`\$\{?(\w+)(?::\w+)?\}?`)

// substituteGrafana replaces Grafana's variables by values PromQL parses:
// durations for the interval and range ones, "x" for the others (they are
// used as label values: job=~"$job").
func substituteGrafana(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := grafanaVar.FindStringSubmatch(m)[1]
		switch name {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		case "__interval_ms", "__range_ms", "__range_s":
			return "300000"
		}
		return "x"
	})
}

// promExpr is one PromQL expression of the shipped files and where it is.
type promExpr struct {
	where string
	expr  string
}

// shippedExpressions reads every dashboard under operations/dashboards and
// operations/weft-rules.yaml and returns their PromQL expressions, with the
// label_values() template queries turned into a selector of their metric
// and a by() of their label.
func shippedExpressions(t *testing.T) (exprs []promExpr, rulesFile string) {
	t.Helper()
	dashboards, err := filepath.Glob(filepath.Join(operationsDir, "dashboards", "*.json"))
	if err != nil || len(dashboards) == 0 {
		t.Fatalf("no dashboards under %s/dashboards: %v", operationsDir, err)
	}
	labelValues := regexp.MustCompile(`^\s*label_values\((.*),\s*(\w+)\s*\)\s*$`)
	for _, path := range dashboards {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := filepath.Base(path)
		var walk func(v any, where string)
		walk = func(v any, where string) {
			switch v := v.(type) {
			case map[string]any:
				if e, ok := v["expr"].(string); ok {
					exprs = append(exprs, promExpr{where: fmt.Sprintf("%s %s", name, where), expr: e})
				}
				if v["type"] == "query" {
					if q, ok := v["query"].(string); ok {
						m := labelValues.FindStringSubmatch(q)
						if m == nil {
							t.Errorf("%s: template %v: query %q is not label_values(selector, label)", name, v["name"], q)
						} else {
							exprs = append(exprs, promExpr{where: fmt.Sprintf("%s template %v", name, v["name"]), expr: fmt.Sprintf("count by (%s) (%s)", m[2], m[1])})
						}
					}
				}
				if title, ok := v["title"].(string); ok {
					where = fmt.Sprintf("panel %q", title)
				}
				for _, c := range v {
					walk(c, where)
				}
			case []any:
				for _, c := range v {
					walk(c, where)
				}
			}
		}
		walk(doc, "")
	}
	rulesFile = filepath.Join(operationsDir, "weft-rules.yaml")
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Record string `yaml:"record"`
				Alert  string `yaml:"alert"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, promExpr{where: fmt.Sprintf("weft-rules.yaml %s %s%s", g.Name, r.Record, r.Alert), expr: r.Expr})
		}
	}
	return exprs, rulesFile
}

// findPromtool returns promtool beside WEFT_PROMETHEUS_BIN, else on PATH,
// else "".
func findPromtool() string {
	if bin := os.Getenv("WEFT_PROMETHEUS_BIN"); bin != "" {
		p := filepath.Join(filepath.Dir(bin), "promtool")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	p, err := exec.LookPath("promtool")
	if err != nil {
		return ""
	}
	return p
}

// use is a metric or a label an expression needs.
type use struct {
	metric string
	label  string // "" for the metric itself
}

// exprUses parses expr and returns the metrics its selectors name and the
// labels it names in selectors, by(), without(), on(), ignoring() and
// group_left/right(), each label with the metrics selected under the node
// that names it (a label must be on one of them).
func exprUses(expr string) (map[use]bool, error) {
	e, err := promQL.ParseExpr(substituteGrafana(expr))
	if err != nil {
		return nil, err
	}
	uses := map[use]bool{}
	needLabels := func(node parser.Node, labels []string) {
		if len(labels) == 0 {
			return
		}
		var under []string
		parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				under = append(under, selectorName(vs))
			}
			return nil
		})
		for _, l := range labels {
			if targetLabels[l] || l == "__name__" {
				continue
			}
			// The label must be exposed on one of the metrics below; it
			// is recorded as "label of any of them" by joining the names.
			slices.Sort(under)
			uses[use{metric: strings.Join(slices.Compact(under), "|"), label: l}] = true
		}
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := selectorName(n)
			uses[use{metric: name}] = true
			for _, m := range n.LabelMatchers {
				if m.Name != "__name__" && !targetLabels[m.Name] {
					uses[use{metric: name, label: m.Name}] = true
				}
			}
		case *parser.AggregateExpr:
			needLabels(n.Expr, n.Grouping)
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				needLabels(n, n.VectorMatching.MatchingLabels)
				needLabels(n, n.VectorMatching.Include)
			}
		}
		return nil
	})
	return uses, nil
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == "__name__" {
			return m.Value
		}
	}
	return ""
}

// exposition reads a /metrics text answer into series name -> label names.
func exposition(t *testing.T, text string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("metrics line %q", line)
		}
		series := line[:i]
		name, labels := series, []string(nil)
		if j := strings.IndexByte(series, '{'); j >= 0 {
			name = series[:j]
			sel, err := promQL.ParseMetricSelector(series)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			for _, m := range sel {
				if m.Name != "__name__" {
					labels = append(labels, m.Name)
				}
			}
		}
		if out[name] == nil {
			out[name] = map[string]bool{}
		}
		for _, l := range labels {
			out[name][l] = true
		}
	}
	return out
}

// missingUses returns, sorted, the uses the exposition does not satisfy.
func missingUses(uses map[use][]string, exposed map[string]map[string]bool) []string {
	var missing []string
	for u, where := range uses {
		switch {
		case u.label == "":
			if _, ok := exposed[u.metric]; !ok {
				missing = append(missing, fmt.Sprintf("metric %s (in %s)", u.metric, strings.Join(where, "; ")))
			}
		default:
			found := false
			for _, m := range strings.Split(u.metric, "|") {
				found = found || exposed[m][u.label]
			}
			if !found {
				missing = append(missing, fmt.Sprintf("label %q of %s (in %s)", u.label, u.metric, strings.Join(where, "; ")))
			}
		}
	}
	slices.Sort(missing)
	return missing
}

// TestShippedDashboardsAndRules checks that every metric and label the
// dashboards and the rules file under operations/ name is exposed by a
// running weft (a monolithic process that received spans over the
// OpenTelemetry SDK, answered a search, a bad search and a push with a bad
// span, and made and compacted blocks; and a query-frontend and querier
// process over the same blocks, which reads their tenant index); and that
// promtool accepts the rules file.
func TestShippedDashboardsAndRules(t *testing.T) {
	exprs, rulesFile := shippedExpressions(t)
	uses := map[use][]string{}
	for _, e := range exprs {
		u, err := exprUses(e.expr)
		if err != nil {
			t.Errorf("%s: cannot parse %q: %v", e.where, e.expr, err)
			continue
		}
		for k := range u {
			uses[k] = append(uses[k], e.where)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(uses) < 20 {
		t.Fatalf("only %d metrics and labels found in %d expressions: the walk of the files is broken", len(uses), len(exprs))
	}

	if promtool := findPromtool(); promtool == "" {
		t.Logf("promtool is not on PATH nor beside WEFT_PROMETHEUS_BIN (Debian's prometheus package has it; make tools installs it): promtool check rules skipped")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, promtool, "check", "rules", rulesFile).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool check rules %s: %v\n%s", rulesFile, err, out)
		}
	}

	a := startWeft(t, fastBackend)
	base := "http://" + a.HTTPAddr()
	// A query-frontend and querier process over the same blocks: tenant
	// indexes are read by processes that do not write them, so the
	// tempodb_blocklist_tenant_index_* series are on it (the dashboards
	// cover a deployment of several processes).
	broker, err := kafka.StartDevBroker("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Close() })
	reader := startWeft(t, func(c *config.Config) {
		c.Target = "query-frontend,querier"
		c.Storage.Trace.Store.Local.Path = a.cfg.Storage.Trace.Store.Local.Path
		c.Storage.Trace.BlocklistPoll = 200 * time.Millisecond
		c.Storage.Trace.BlocklistPollFallback = true
		c.Ingest.Kafka.Address = broker.Addrs()
		c.Ingest.Kafka.Version = kafka.DevBrokerVersion
	})
	for round := range 3 {
		exp, _ := exporters(t, a)
		sendTraces(t, exp, fmt.Sprintf("dashboards-%d", round), 5)
		time.Sleep(400 * time.Millisecond) // past max_block_duration: a block per round
	}
	if _, err := exportGRPC(t, a, "", request(span(goodTrace, goodSpan, "good"), span(goodTrace, make([]byte, 8), "zero-span-id"))); err != nil {
		t.Fatal(err)
	}
	get(t, base+"/api/search?q="+url.QueryEscape(`{ resource.service.name = "dashboards-0" }`), "", http.StatusOK)
	get(t, base+"/api/search?q="+url.QueryEscape(`{ nonsense`), "", http.StatusBadRequest)

	// Some series come with the backend's cycles: scrape until every use
	// is met or 30 s passed, then name what is missing.
	var missing []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		exposed := map[string]map[string]bool{}
		for _, addr := range []string{base, "http://" + reader.HTTPAddr()} {
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s/metrics: %d %v", addr, resp.StatusCode, err)
			}
			if !bytes.Contains(body, []byte("tempo_build_info{")) {
				t.Fatalf("no tempo_build_info in %s/metrics:\n%s", addr, grep(string(body), "build_info"))
			}
			for name, labels := range exposition(t, string(body)) {
				if exposed[name] == nil {
					exposed[name] = map[string]bool{}
				}
				maps.Copy(exposed[name], labels)
			}
		}
		missing = missingUses(uses, exposed)
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, m := range missing {
		t.Errorf("not exposed by a running weft: %s", m)
	}
}

// TestExprUses checks the collection of metrics and labels on expressions
// of each kind the shipped files use.
func TestExprUses(t *testing.T) {
	got, err := exprUses(`sum by (tenant) (rate(a_total{job=~"$job", reason="x"}[$__rate_interval])) / on (tenant) group_left (zone) sum by (tenant, zone) (b)`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[use]bool{
		{metric: "a_total"}: true, {metric: "a_total", label: "reason"}: true, {metric: "a_total", label: "tenant"}: true,
		{metric: "b"}: true, {metric: "b", label: "tenant"}: true, {metric: "b", label: "zone"}: true,
		{metric: "a_total|b", label: "tenant"}: true, {metric: "a_total|b", label: "zone"}: true,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("uses\n got %v\nwant %v", got, want)
	}
	exposed := exposition(t, "# HELP x\na_total{reason=\"r\",tenant=\"t\"} 1\nb{tenant=\"t\"} 2\n")
	uses := map[use][]string{}
	for u := range got {
		uses[u] = []string{"here"}
	}
	if m := missingUses(uses, exposed); len(m) != 2 || !strings.Contains(m[0], `label "zone" of a_total|b`) || !strings.Contains(m[1], `label "zone" of b`) {
		t.Errorf("missing %q, want the two zone labels", m)
	}
}
