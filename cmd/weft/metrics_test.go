package main

import (
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/internal/metricstest"
)

// TestMetricsMatchReferenceMicroservices runs the metrics reference test
// (every function, with and without by(), range and instant, over data
// only recent, only in blocks and across the boundary) against weft in
// microservices mode: a broker, a distributor, two live-stores, a
// block-builder, a querier and a query-frontend, each an OS process on
// loopback. Jobs go from the query-frontend to the querier over gRPC, and
// the live job from the querier to both live-stores over gRPC.
func TestMetricsMatchReferenceMicroservices(t *testing.T) {
	broker := startDevKafka(t)
	data := t.TempDir()
	start := func(name, target, seed string) (ports, string) {
		ps := newPorts(t)
		ml, mlAddr := memberlistConfig(t, seed)
		cfg := kafkaConfig(ps, data, broker) + ml + "multitenancy_enabled: true\n"
		p := startWeft(t, nil, "-config.file="+writeFile(t, name+".yaml", cfg), "-target="+target)
		p.waitReady(t, loopback(ps.http))
		return ps, mlAddr
	}
	fps, seed := start("frontend", "query-frontend", "")
	start("querier", "querier", seed)
	dps, _ := start("distributor", "distributor", seed)
	start("live-1", "live-store", seed)
	start("live-2", "live-store", seed)
	start("block-builder", "block-builder", seed)

	now := time.Now()
	spans := metricstest.PushPlaces(t, loopback(dps.otlpHTTP), now, func(tenant string) int {
		n := 0
		for k := range blockSpans(t, data+"/blocks") {
			if strings.HasPrefix(k, tenant+"/") {
				n++
			}
		}
		return n
	})
	metricstest.CheckPlaces(t, loopback(fps.http), now, spans)
}
