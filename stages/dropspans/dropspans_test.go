package dropspans

import (
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

func stage(t *testing.T, cfg Config) *Stage {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := NewFactory().Create(pipelines.Settings{Metrics: prometheus.NewRegistry()}, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n.(*Stage)
}

func names(t *testing.T, m *message.Message) map[string]int {
	t.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(m.Payload)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		for j := 0; j < td.ResourceSpans().At(i).ScopeSpans().Len(); j++ {
			spans := td.ResourceSpans().At(i).ScopeSpans().At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				out[spans.At(k).Name()]++
			}
		}
	}
	return out
}

func TestDropsByNameAndRegex(t *testing.T) {
	td := spangen.Generate(spangen.Options{Seed: 3, Traces: 50, SpansPerTrace: 8})
	in := message.NewMessage(watermill.NewUUID(), spangen.Marshal(td))
	in.Metadata.Set(pipelines.MetaTenant, "t1")
	in.Metadata.Set(pipelines.MetaPartition, "3")
	before := names(t, in)

	s := stage(t, Config{Names: []string{"GET /healthz"}, NameRegex: `GET /api/(cart|orders)`})
	out, err := s.Process(in)
	if err != nil || len(out) != 1 {
		t.Fatalf("Process: %v, %d messages", err, len(out))
	}
	after := names(t, out[0])
	for _, dropped := range []string{"GET /healthz", "GET /api/cart", "GET /api/orders"} {
		if before[dropped] == 0 {
			t.Fatalf("test data has no %q span", dropped)
		}
		if after[dropped] != 0 {
			t.Fatalf("%q spans were kept", dropped)
		}
	}
	if after["GET /api/checkout"] != before["GET /api/checkout"] {
		t.Fatalf("other spans were dropped")
	}
	if out[0].Metadata.Get(pipelines.MetaTenant) != "t1" || out[0].Metadata.Get(pipelines.MetaPartition) != "3" {
		t.Fatalf("metadata lost: %v", out[0].Metadata)
	}
	want := before["GET /healthz"] + before["GET /api/cart"] + before["GET /api/orders"]
	if got := testutil.ToFloat64(s.discarded.WithLabelValues("t1", "filtered")); got != float64(want) {
		t.Fatalf("discarded{filtered} = %v, want %d", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (&Config{}).Validate(); err == nil {
		t.Fatal("empty config accepted")
	}
	if err := (&Config{NameRegex: "("}).Validate(); err == nil || !strings.Contains(err.Error(), "name_regex") {
		t.Fatalf("bad regex: %v", err)
	}
}
