package main

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestREADMEExample runs the shell commands of the README's "Send a trace,
// search it and read it back" against a running weft (its ports put in
// place of the standard ones): the push is accepted, both searches find
// the pushed trace, the metrics query counts its span, and both
// trace-by-ID routes return it.
func TestREADMEExample(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's commands need %s, which is not installed: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "## Send a trace, search it and read it back")
	if start < 0 {
		t.Fatal("README has no section \"Send a trace, search it and read it back\"")
	}
	section = section[start:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1)
	if len(blocks) != 4 {
		t.Fatalf("the section has %d sh blocks, want 4 (push, search, metrics, trace by ID)", len(blocks))
	}

	ps := newPorts(t)
	cfg := writeFile(t, "weft.yaml", loopbackConfig(ps, t.TempDir()))
	p := startWeft(t, nil, "-config.file="+cfg)
	p.waitReady(t, loopback(ps.http))
	run := func(script string) string {
		t.Helper()
		script = strings.ReplaceAll(script, "localhost:4318", loopback(ps.otlpHTTP))
		script = strings.ReplaceAll(script, "localhost:3200", loopback(ps.http))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("README commands failed: %v\n%s\n---\n%s", err, script, out)
		}
		return string(out)
	}
	if out := strings.TrimSpace(run(blocks[0][1])); out != "{}" {
		t.Fatalf("the push answered %q, the README says {}", out)
	}
	const id = "5b8efff798038103d269b633813fc60c"
	// Each search is one line of output; both find the trace.
	searches := run(blocks[1][1])
	if n := strings.Count(searches, `"traceID":"`+id+`"`); n != 2 {
		t.Fatalf("the README's two searches found the trace %d times:\n%s", n, searches)
	}
	if !strings.Contains(searches, `"rootServiceName":"checkout"`) || !strings.Contains(searches, `"rootTraceName":"POST /cart"`) {
		t.Fatalf("searches do not answer as the README says:\n%s", searches)
	}
	// One span a minute ago: a rate of 1/60 per second in its one-minute
	// interval, 0 in the others, for the series of checkout.
	rate := run(blocks[2][1])
	if !strings.Contains(rate, `"labels":[{"key":"resource.service.name","value":{"stringValue":"checkout"}}]`) ||
		!strings.Contains(rate, `"value":0.016666666666666666}`) {
		t.Fatalf("the metrics query does not answer a rate of 1/60 for checkout:\n%s", rate)
	}
	byID := run(blocks[3][1])
	if n := strings.Count(byID, strconv.Quote("POST /cart")); n != 2 || !strings.Contains(byID, `"batches"`) {
		t.Fatalf("trace by ID (v2, then v1) does not return the span twice:\n%s", byID)
	}
}
