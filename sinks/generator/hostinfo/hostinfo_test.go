package hostinfo

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/sinks/generator/registry"
	"github.com/weftdb/weft/sinks/generator/spanview"
	"github.com/weftdb/weft/sinks/generator/spanview/spantest"
)

func TestHostInfo(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.DefaultConfig(), "t", nil)
	p := New(cfg, reg)
	var b spanview.Batch
	err := b.Parse(spantest.Marshal(
		spantest.Span{Service: "a", Resource: map[string]any{"host.id": "h-1", "k8s.node.name": "node-1"}, ID: 1},
		spantest.Span{Service: "b", Resource: map[string]any{"host.id": "h-2"}, ID: 2},
		spantest.Span{Service: "c", Resource: map[string]any{"host.id": int64(3)}, ID: 3}, // not a string: ignored, as in Tempo
		spantest.Span{Service: "d", ID: 4},
	))
	if err != nil {
		t.Fatal(err)
	}
	p.PushSpans(&b)
	got := map[string]float64{}
	for _, ts := range reg.Collect(time.Now(), registry.CollectOptions{}) {
		var parts []string
		for _, l := range ts.Labels {
			parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
		}
		got[strings.Join(parts, ",")] = ts.Samples[len(ts.Samples)-1].Value
	}
	want := map[string]float64{
		`__name__="traces_host_info",grafana_host_id="node-1",host_source="k8s.node.name"`: 1,
		`__name__="traces_host_info",grafana_host_id="h-2",host_source="host.id"`:          1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	bad := Config{MetricName: "bad name"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "host_info.host_identifiers") || !strings.Contains(err.Error(), "host_info.metric_name") {
		t.Errorf("Validate: %v", err)
	}
}
