// Package procstat reads a process's memory figures from Linux's
// /proc/<pid>/status, for the memory limiter, the bench and the tests that
// measure weft as a process.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Self names the calling process.
const Self = 0

// Fields of /proc/<pid>/status read with Bytes.
const (
	// RSS is the resident set size now.
	RSS = "VmRSS"
	// PeakRSS is the highest resident set size since the process started.
	PeakRSS = "VmHWM"
)

// Bytes returns a "kB" field of /proc/<pid>/status (pid Self for this
// process) in bytes, or 0 when it cannot be read, as on systems without
// /proc.
func Bytes(pid int, field string) int64 {
	path := "/proc/self/status"
	if pid != Self {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
