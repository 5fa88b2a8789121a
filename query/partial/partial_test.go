package partial

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/weftdb/weft/internal/storage"
)

func TestNotes(t *testing.T) {
	var none *Notes
	none.Add(Skip{Block: "x"}) // a nil Notes ignores everything
	if none.Message() != "" || none.StorageFailed() || FromContext(context.Background()) != nil {
		t.Fatal("nil notes")
	}
	ctx, n := NewContext(context.Background())
	if FromContext(ctx) != n || n.Message() != "" {
		t.Fatal("notes of the context")
	}
	for i := range 7 {
		n.Add(Skip{Tenant: "t", Block: fmt.Sprint("b", i), Reason: ReasonDamaged, Error: "bad"})
		n.Add(Skip{Tenant: "t", Block: fmt.Sprint("b", i), Reason: ReasonDamaged, Error: "bad again"}) // once per block
	}
	if len(n.Skips()) != 7 || n.StorageFailed() {
		t.Fatalf("skips %+v", n.Skips())
	}
	n.Add(Skip{Block: "s1", Reason: ReasonStorage, Error: "timeout"})
	n.Add(Skip{Block: "s2", Reason: ReasonStorage})
	msg := n.Message()
	for _, want := range []string{`partial answer: block b0 of tenant "t" could not be read (bad)`, "and 2 more damaged blocks", "2 blocks were not read because object storage failed (timeout)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if !n.StorageFailed() {
		t.Fatal("StorageFailed")
	}
	if ReasonOf(errors.New("x")) != ReasonDamaged || ReasonOf(fmt.Errorf("y: %w", storage.ErrUnavailable)) != ReasonStorage {
		t.Fatal("ReasonOf")
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Skippable(cctx, errors.New("x")) || Skippable(context.Background(), context.Canceled) || !Skippable(context.Background(), errors.New("x")) {
		t.Fatal("Skippable")
	}
}
