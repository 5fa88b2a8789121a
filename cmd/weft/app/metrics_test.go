package app

import (
	"testing"
	"time"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/metricstest"
)

// TestMetricsMatchReferenceMonolithic pushes spans of three tenants
// (recent, in blocks only, across the boundary) to monolithic weft and
// checks every metrics function, with and without by(), range and
// instant, against the series computed from the spans themselves.
func TestMetricsMatchReferenceMonolithic(t *testing.T) {
	a := startWeft(t, func(c *config.Config) {
		c.MultitenancyEnabled = true
		c.BlockBuilder.MaxBlockDuration = 500 * time.Millisecond
	})
	_, httpAddr := a.OTLPAddrs()
	now := time.Now()
	data := metricstest.PushPlaces(t, httpAddr, now, func(tenant string) int {
		n := 0
		for _, e := range a.blocks.Blocks(tenant, time.Time{}, time.Time{}) {
			n += int(e.Meta.TotalSpans)
		}
		return n
	})
	metricstest.CheckPlaces(t, a.HTTPAddr(), now, data)
}
