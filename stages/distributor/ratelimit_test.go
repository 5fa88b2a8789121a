package distributor

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/overrides"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/pipelines"
)

// fixedLimits gives every tenant the defaults except those listed.
type fixedLimits map[string]*overrides.Limits

func (f fixedLimits) For(ten string) *overrides.Limits {
	if l, ok := f[ten]; ok {
		return l
	}
	d := overrides.DefaultLimits()
	return &d
}

func limitsWithRate(rateBytes, burst int) *overrides.Limits {
	l := overrides.DefaultLimits()
	l.Ingestion.RateLimitBytes, l.Ingestion.BurstSizeBytes = rateBytes, burst
	return &l
}

// TestRateLimitRefusesLoudly pushes one tenant past its burst: the push is
// refused whole with ResourceExhausted naming the limit, the tenant and the
// config keys, the spans are counted as rate_limited, and another tenant
// with its own bucket is not affected.
func TestRateLimitRefusesLoudly(t *testing.T) {
	payload := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 1, Traces: 10, SpansPerTrace: 5, Services: 2}))
	n := len(payload)
	limits := fixedLimits{
		"small": limitsWithRate(1, 3*n), // room for three pushes, refilled at 1 byte/s
		"tiny":  limitsWithRate(1, n-1), // no push fits in the burst
	}
	reg := prometheus.NewRegistry()
	d := New(pipelines.Settings{Name: "distributor", Metrics: reg}, Config{MultitenancyEnabled: true, MaxAttributeBytes: 2048, Partitions: 1, TraceIdlePeriod: time.Second}, limits)

	for i := range 3 {
		if _, err := d.Process(msgOf(payload, "small")); err != nil {
			t.Fatalf("push %d within the burst: %v", i, err)
		}
	}
	_, err := d.Process(msgOf(payload, "small"))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("push over the rate: %v, want ResourceExhausted", err)
	}
	for _, want := range []string{"RATE_LIMITED", "ingestion rate limit (local: 1 bytes/s", `tenant "small"`, "overrides.defaults.ingestion.rate_limit_bytes", "burst_size_bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = d.Process(msgOf(payload, "tiny"))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "exceeds the ingestion burst size") {
		t.Fatalf("push larger than the burst: %v", err)
	}
	// Another tenant has its own bucket (the defaults: 30 MB/s).
	if _, err := d.Process(msgOf(payload, "other")); err != nil {
		t.Fatalf("other tenant: %v", err)
	}
	if got := testutil.ToFloat64(d.discarded.WithLabelValues("small", "rate_limited")); got != 50 {
		t.Fatalf("discarded rate_limited spans of small = %v, want 50", got)
	}
	if got := testutil.ToFloat64(d.discarded.WithLabelValues("tiny", "rate_limited")); got != 50 {
		t.Fatalf("discarded rate_limited spans of tiny = %v, want 50", got)
	}
	if got := testutil.ToFloat64(d.refused.WithLabelValues("rate_limited")); got != 2 {
		t.Fatalf("refused pushes = %v, want 2", got)
	}
}

// TestRateLimitRefills checks the token bucket over time, on a fake clock:
// the rate refills the bucket, and a changed limit applies at once.
func TestRateLimitRefills(t *testing.T) {
	var r rateLimiters
	l := limitsWithRate(1000, 2000).Ingestion
	now := time.Unix(1_700_000_000, 0)
	if err := r.allow("t", &l, 2000, now); err != nil {
		t.Fatalf("burst: %v", err)
	}
	if err := r.allow("t", &l, 500, now); err == nil {
		t.Fatal("empty bucket allowed 500 bytes")
	}
	if err := r.allow("t", &l, 500, now.Add(600*time.Millisecond)); err != nil {
		t.Fatalf("after 0.6s at 1000 B/s: %v", err)
	}
	// The tenant's runtime override turns the limit off.
	off := l
	off.RateLimitBytes = 0
	if err := r.allow("t", &off, 1<<30, now.Add(time.Second)); err != nil {
		t.Fatalf("limit off: %v", err)
	}
	// Raised limits apply from the next push on: the bucket grows at once
	// and fills at the new rate.
	high := limitsWithRate(1_000_000, 1_000_000).Ingestion
	if err := r.allow("t", &high, 1000, now.Add(3*time.Second)); err != nil {
		t.Fatalf("after raising the limits: %v", err)
	}
	if err := r.allow("t", &high, 900_000, now.Add(4*time.Second)); err != nil {
		t.Fatalf("a second after raising the limits: %v", err)
	}
}

// TestTenantMaxAttributeBytes checks that a tenant's
// ingestion.max_attribute_bytes wins over the node's.
func TestTenantMaxAttributeBytes(t *testing.T) {
	l := overrides.DefaultLimits()
	l.Ingestion.MaxAttributeBytes = 4
	d := New(pipelines.Settings{Name: "distributor", Metrics: prometheus.NewRegistry()},
		Config{MultitenancyEnabled: true, MaxAttributeBytes: 2048, Partitions: 1, TraceIdlePeriod: time.Second}, fixedLimits{"short": &l})
	payload := spangen.Marshal(spangen.Generate(spangen.Options{Seed: 2, Traces: 1, SpansPerTrace: 2, Services: 1}))
	out, err := d.Process(msgOf(payload, "short"))
	if err != nil {
		t.Fatal(err)
	}
	attrs := decode(t, out[0].Payload).ResourceSpans().At(0).Resource().Attributes()
	if attrs.Len() == 0 {
		t.Fatal("no resource attributes")
	}
	for k, v := range attrs.All() {
		if len(k) > 4 || len(v.Str()) > 4 {
			t.Fatalf("attribute %q = %q, want key and value cut to 4 bytes", k, v.Str())
		}
	}
	if got := testutil.ToFloat64(d.truncated.WithLabelValues("short")); got == 0 {
		t.Fatal("no truncation counted")
	}
}
