package app

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// above matches the packages that internal/, the ground floor, must not
// import: the components and the composition root are built on it.
var above = regexp.MustCompile(`^github\.com/weftdb/weft/(query|sinks|sources|stages|cmd)(/|$)`)

// Nothing under internal/ imports query/, sinks/, sources/, stages/ or
// cmd/, directly or through another package (tests aside), as `go list
// -deps` sees the build.
func TestInternalImportsNothingAbove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Each line: a package under internal/, then every package it needs.
	cmd := exec.CommandContext(ctx, "go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "github.com/weftdb/weft/internal/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 {
		t.Fatalf("go list listed %d packages under internal/:\n%s", len(lines), out)
	}
	for _, line := range lines {
		f := strings.Fields(line)
		for _, dep := range f[1:] {
			if above.MatchString(dep) {
				t.Errorf("%s imports %s (directly or not)", f[0], dep)
			}
		}
	}
}
