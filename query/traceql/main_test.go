package traceql

import (
	"flag"
	"os"
	"testing"
)

// TestMain lowers the fuzzer's minimization time from Go's default of 60s
// per new input to 5s, unless -fuzzminimizetime is given. Go's byte
// minimizer tries O(n²) candidates, and the fuzzer likes to grow inputs
// such as a 2 KB regular expression, which under coverage instrumentation
// takes ~10ms to compile: with the default, one minimization can eat all of
// a 60s `make test-long` fuzz run.
func TestMain(m *testing.M) {
	if f := flag.Lookup("test.fuzzminimizetime"); f != nil {
		_ = f.Value.Set("5s")
	}
	os.Exit(m.Run())
}
