package main

import (
	"slices"
	"testing"
	"time"

	"github.com/weftdb/weft/cmd/weft/config"
)

// The config of an "on" run is one weft loads and validates, with the
// processors and the ingestion limits both in overrides.defaults, remote
// write to the bench's Prometheus and the run's label; that of an "off" run
// has no processors.
func TestGeneratorABConfig(t *testing.T) {
	ports := []int{3200, 9095, 4317, 4318}
	gen := &generatorSetup{writeURL: "http://127.0.0.1:9090/api/v1/write", run: "on-2"}
	cfg, _, err := config.Load("on.yaml", []byte(monolithicConfig(ports, t.TempDir(), 5*time.Second, gen, monoOptions{})), false)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("the config of an on run: %v", err)
	}
	d := cfg.Overrides.Defaults
	if want := []string{"span-metrics", "service-graphs"}; !slices.Equal(d.MetricsGenerator.Processors, want) {
		t.Errorf("processors %v, want %v", d.MetricsGenerator.Processors, want)
	}
	if d.Ingestion.RateLimitBytes != 0 || d.Ingestion.MaxTracesPerUser != 0 {
		t.Errorf("ingestion limits %+v, want none", d.Ingestion)
	}
	rw := cfg.MetricsGenerator.Storage.RemoteWrite
	if len(rw) != 1 || rw[0].URL != gen.writeURL || cfg.MetricsGenerator.Registry.ExternalLabels[abRunLabel] != "on-2" {
		t.Errorf("remote write %+v, external labels %v", rw, cfg.MetricsGenerator.Registry.ExternalLabels)
	}

	cfg, _, err = config.Load("off.yaml", []byte(monolithicConfig(ports, t.TempDir(), 5*time.Second, nil, monoOptions{})), false)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("the config of an off run: %v", err)
	}
	if p := cfg.Overrides.Defaults.MetricsGenerator.Processors; len(p) != 0 {
		t.Errorf("off run: processors %v, want none", p)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
