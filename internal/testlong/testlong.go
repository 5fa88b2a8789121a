// Package testlong marks slow tests (soak, stress, fault and full-suite
// runs) that `make test` leaves out and `make test-long` runs.
package testlong

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// Skip skips t unless it is selected on purpose: by a -run pattern naming
// "Long" (make test-long runs -run Long) or by WEFT_TEST_LONG=1; never in
// -short mode. A plain `go test ./...` leaves it out. Name such tests
// ...Long so that make test-long selects them.
func Skip(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("long test: skipped in -short mode")
	}
	if os.Getenv("WEFT_TEST_LONG") != "" {
		return
	}
	if f := flag.Lookup("test.run"); f != nil && strings.Contains(f.Value.String(), "Long") {
		return
	}
	t.Skip("long test: select it with -run Long (make test-long) or WEFT_TEST_LONG=1")
}
