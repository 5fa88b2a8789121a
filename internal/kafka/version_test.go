package kafka

import (
	"testing"
	"time"

	"github.com/weftdb/weft/internal/testlong"
)

// versionTrial runs a consumer-group round trip against a DevBroker with
// each version and reports which worked.
func versionTrial(t *testing.T, b *DevBroker, versions []string, timeout time.Duration) map[string]error {
	t.Helper()
	out := map[string]error{}
	for _, v := range versions {
		cfg := testConfig(b, 4)
		cfg.Version = v
		start := time.Now()
		err := roundTrip(cfg, timeout)
		out[v] = err
		if err != nil {
			t.Logf("version %s: fails: %v (%s)", v, err, time.Since(start).Round(time.Millisecond))
		} else {
			t.Logf("version %s: consumer group works (%s)", v, time.Since(start).Round(time.Millisecond))
		}
	}
	return out
}

// TestDevBrokerVersion documents why DevBrokerVersion is what it is: it is
// the newest version with which sarama's consumer groups work against
// kfake. Trial of 2026 (sarama v1.43.3, kfake v0.0.0-20260918054303):
// 2.1.0, 2.2.0, 2.3.0 and 2.3.1 work; 2.4.0, 2.5.0, 2.6.0, 2.7.0, 2.7.1,
// 2.7.2 and 2.8.0 loop on "kafka: error decoding packet: invalid byteslice
// length" (TestDevBrokerVersionsLong tries them all again). The test fails
// if DevBrokerVersion stops working, and says so if the next version starts
// to.
func TestDevBrokerVersion(t *testing.T) {
	b := startBroker(t, 4)
	res := versionTrial(t, b, []string{DevBrokerVersion, "2.4.0"}, 3*time.Second)
	if err := res[DevBrokerVersion]; err != nil {
		t.Fatalf("DevBrokerVersion %s no longer works against kfake: %v", DevBrokerVersion, err)
	}
	if res["2.4.0"] == nil {
		t.Logf("2.4.0 works now: run TestDevBrokerVersionsLong and raise DevBrokerVersion")
	}
}

// TestDevBrokerVersionsLong tries every version from 2.1.0 to 2.8.0 (about
// 60 s, as each failing one waits for its timeout).
func TestDevBrokerVersionsLong(t *testing.T) {
	testlong.Skip(t)
	b := startBroker(t, 4)
	versionTrial(t, b, []string{"2.1.0", "2.2.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1", "2.5.0", "2.5.1", "2.6.0", "2.6.3", "2.7.0", "2.7.2", "2.8.0"}, 5*time.Second)
}
