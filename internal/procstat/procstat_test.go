package procstat

import (
	"os"
	"testing"
)

func TestBytes(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	rss, peak := Bytes(Self, RSS), Bytes(os.Getpid(), PeakRSS)
	if rss <= 0 || peak < rss || rss%1024 != 0 {
		t.Fatalf("RSS %d, peak %d: want a positive RSS in whole kB, at most the peak", rss, peak)
	}
	if Bytes(Self, "NoSuchField") != 0 || Bytes(-1, RSS) != 0 {
		t.Fatal("an unknown field or process is not 0")
	}
}
