package livestore

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/pipelines"
)

// The spans of a push are served only once the push is acknowledged: a
// push another sink refused leaves nothing, and the room its spans held
// while it was in flight is given back.
func TestOnlyAcknowledgedPushesAreServed(t *testing.T) {
	s := newStore(t, DefaultConfig())
	find := func(tid pcommon.TraceID) bool {
		b, _ := s.FindTraceByID(context.Background(), "t", tid, 0, 0)
		return b != nil
	}
	push := func(tid pcommon.TraceID, settle error) {
		t.Helper()
		ctx, oc := pipelines.ContextWithOutcome(context.Background())
		m := msg("t", oneTrace(tid, "svc", 1, 2, 3))
		m.SetContext(ctx)
		if err := s.Consume(m); err != nil {
			t.Fatal(err)
		}
		if find(tid) {
			t.Fatal("a push in flight is served before it is acknowledged")
		}
		if s.Bytes() < int64(len(m.Payload)) {
			t.Fatalf("a push in flight holds %d bytes of room, want its %d", s.Bytes(), len(m.Payload))
		}
		oc.SettleForTest(settle)
	}
	refused, acked := pcommon.TraceID{0xa1}, pcommon.TraceID{0xa2}
	push(refused, status.Error(codes.Unavailable, "cannot make spans durable in the block-builder WAL"))
	if find(refused) || s.Bytes() != 0 {
		t.Fatalf("refused push: served %v, %d bytes held, want not served and 0", find(refused), s.Bytes())
	}
	push(acked, nil)
	if !find(acked) {
		t.Fatal("an acknowledged push is not served")
	}
}
