package app

import (
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/tmpfstest"
)

// pushTrace posts one span of a new trace over OTLP/HTTP and returns the
// trace ID and the status of the answer.
func pushTrace(t *testing.T, a *App) ([]byte, int) {
	t.Helper()
	traceID, spanID := make([]byte, 16), make([]byte, 8)
	rand.Read(traceID)
	rand.Read(spanID)
	body, _ := proto.Marshal(request(span(traceID, spanID, "wal-fault-"+strings.Repeat("x", 2000))))
	_, httpAddr := a.OTLPAddrs()
	code, _ := postOTLP(t, "http://"+httpAddr+"/v1/traces", "application/x-protobuf", body, nil)
	return traceID, code
}

// While the block-builder's WAL cannot be written (its disk is full), a
// push is refused with 503 and none of its spans is served, /ready says
// why and the metric says so; once space is freed weft takes pushes again
// by itself, and shuts down cleanly.
func TestWALDiskFullRefusedPushesAreNotServed(t *testing.T) {
	walDir := tmpfstest.Mount(t, 1<<20)
	a := startWeft(t, func(c *config.Config) { c.BlockBuilder.WAL.Path = walDir })
	base := "http://" + a.HTTPAddr()

	ok, code := pushTrace(t, a)
	if code != http.StatusOK || !traceExists(t, a, ok, "") {
		t.Fatalf("push before the disk is full: status %d", code)
	}
	free := tmpfstest.Fill(t, walDir)
	var refused [][]byte
	for i := 0; i < 40 && len(refused) < 10; i++ {
		id, code := pushTrace(t, a)
		switch code {
		case http.StatusOK: // the last free bytes
		case http.StatusServiceUnavailable:
			refused = append(refused, id)
		default:
			t.Fatalf("push on a full WAL disk: status %d, want 503", code)
		}
	}
	if len(refused) < 10 {
		t.Fatalf("only %d of 40 pushes refused on a full WAL disk", len(refused))
	}
	for _, id := range refused {
		if traceExists(t, a, id, "") {
			t.Fatal("a trace whose push was refused with 503 is served")
		}
	}
	code, body, _ := fetch(t, base+"/ready", "", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "WAL") {
		t.Fatalf("/ready while the WAL fails: %d %s", code, body)
	}
	_, metrics, _ := fetch(t, base+"/metrics", "", "")
	if !strings.Contains(string(metrics), "\nweft_block_builder_wal_failing 1\n") {
		t.Fatalf("weft_block_builder_wal_failing is not 1:\n%s", grep(string(metrics), "weft_block_builder_wal"))
	}

	free()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, _ := fetch(t, base+"/ready", "", "")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 10s after the space was freed: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after, code := pushTrace(t, a)
	if code != http.StatusOK || !traceExists(t, a, after, "") {
		t.Fatalf("push after the space was freed: status %d", code)
	}
	for _, id := range refused {
		if traceExists(t, a, id, "") {
			t.Fatal("a trace whose push was refused with 503 is served after the recovery")
		}
	}
}
