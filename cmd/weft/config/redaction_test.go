package config

import (
	"strings"
	"testing"
	"time"
)

// Tempo's backend_scheduler.provider.redaction keys are applied, not
// ignored, and checked.
func TestRedactionKeys(t *testing.T) {
	yaml := `
backend_scheduler:
  provider:
    redaction:
      poll_interval: 3s
      rescan_delay: 7m
      max_rescan_generations: 2
`
	c, ignored, err := Load("tempo.yaml", []byte(yaml), false)
	if err != nil {
		t.Fatal(err)
	}
	r := c.BackendScheduler.Provider.Redaction
	if r.PollInterval != 3*time.Second || r.RescanDelay != 7*time.Minute || r.MaxRescanGenerations != 2 {
		t.Fatalf("provider.redaction: %+v", r)
	}
	set := c.BackendScheduler.Settings()
	if set.RedactionPollInterval != 3*time.Second || set.RedactionRescanDelay != 7*time.Minute || set.RedactionMaxGenerations != 2 {
		t.Fatalf("scheduler settings: %+v", set)
	}
	for _, k := range ignored {
		if strings.Contains(k, "redaction") {
			t.Fatalf("ignored keys %v list %q", ignored, k)
		}
	}
	_, _, err = Load("tempo.yaml", []byte(strings.Replace(yaml, "max_rescan_generations: 2", "max_rescan_generations: 0", 1)), false)
	if err == nil || !strings.Contains(err.Error(), "provider.redaction.max_rescan_generations") {
		t.Fatalf("max_rescan_generations 0: %v", err)
	}
}
