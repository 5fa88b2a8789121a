package block

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/weftdb/weft/internal/spangen"
)

// TestReadMetaRefusesInvalidMeta damages the meta.json of a written block
// in each way issue 12 found harmful (an empty rowGroups made the block's
// traces 404 silently, a bogus size made tag values answer 500) and others,
// and checks that ReadMeta refuses it with ErrInvalidMeta, naming the
// field.
func TestReadMetaRefusesInvalidMeta(t *testing.T) {
	bkt := newBucket(t)
	buf := NewBuffer(nil)
	defer buf.Release()
	addTraces(t, buf, spangen.Generate(spangen.Options{Seed: 7, Traces: 20, SpansPerTrace: 3}))
	good, err := Write(ctx, bkt, "t", uuid.New(), Source{Partition: 1, FirstOffset: 5, LastOffset: 9}, buf, WriteOptions{RowGroupBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(good.RowGroups) < 2 {
		t.Fatalf("want several row groups, got %d", len(good.RowGroups))
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("a written meta is not valid: %v", err)
	}
	put := func(data []byte) {
		t.Helper()
		if err := bkt.Upload(ctx, good.ObjectName(MetaName), strings.NewReader(string(data))); err != nil {
			t.Fatal(err)
		}
	}
	edit := func(f func(m *Meta)) []byte {
		m := *good
		m.RowGroups = append([]RowGroupMeta(nil), good.RowGroups...)
		f(&m)
		b, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty object", "", "the object is empty"},
		{"not JSON", "{\"format\": \"weft-parq", "cannot decode"},
		{"other block", string(edit(func(m *Meta) { m.BlockID = uuid.New() })), "names block t/"},
		{"other tenant", string(edit(func(m *Meta) { m.TenantID = "u" })), "names block u/"},
		{"no row groups", string(edit(func(m *Meta) { m.RowGroups = nil })), "rowGroups: empty"},
		{"negative size", string(edit(func(m *Meta) { m.Size = -1 })), "size: -1"},
		{"no bloom", string(edit(func(m *Meta) { m.BloomBytes = 0 })), "bloomBytes: 0"},
		{"rows do not add up", string(edit(func(m *Meta) { m.RowGroups[0].Rows++ })), "totalSpans says"},
		{"zero rows", string(edit(func(m *Meta) { m.RowGroups[1].Rows = 0 })), "rowGroups[1].rows: 0"},
		{"bad trace ID", string(edit(func(m *Meta) { m.RowGroups[0].MinTraceID = "XYZ" })), "rowGroups[0].minTraceID"},
		{"row groups out of order", string(edit(func(m *Meta) { m.RowGroups[0], m.RowGroups[1] = m.RowGroups[1], m.RowGroups[0] })), "before the previous row group"},
		{"min after max", string(edit(func(m *Meta) {
			m.RowGroups[0].MinTraceID, m.RowGroups[0].MaxTraceID = m.RowGroups[0].MaxTraceID, m.RowGroups[0].MinTraceID
		})), "is after maxTraceID"},
		{"more traces than spans", string(edit(func(m *Meta) { m.TotalTraces = m.TotalSpans + 1 })), "totalTraces"},
		{"no times", string(edit(func(m *Meta) { m.StartTime, m.EndTime = time.Time{}, time.Time{} })), "startTime: missing; endTime: missing"},
		{"offsets reversed", string(edit(func(m *Meta) { m.Source.FirstOffset = 10 })), "source:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put([]byte(tc.data))
			_, err := ReadMeta(ctx, bkt, "t", good.BlockID)
			if !errors.Is(err, ErrInvalidMeta) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), good.BlockID.String()) {
				t.Fatalf("err = %v; want ErrInvalidMeta naming the block and %q", err, tc.want)
			}
		})
	}
	// Another format is read (for tools) but not valid.
	put(edit(func(m *Meta) { m.Format = "weft-parquet-v9"; m.RowGroups = nil }))
	m, err := ReadMeta(ctx, bkt, "t", good.BlockID)
	if err != nil {
		t.Fatalf("a meta of another format: %v", err)
	}
	if err := m.Validate(); !errors.Is(err, ErrUnknownFormat) || !errors.Is(err, ErrInvalidMeta) {
		t.Fatalf("Validate of another format: %v", err)
	}
	// An end before the start is a span as sent, not an invalid meta.
	put(edit(func(m *Meta) { m.EndTime = m.StartTime.Add(-time.Second) }))
	if _, err := ReadMeta(ctx, bkt, "t", good.BlockID); err != nil {
		t.Fatalf("end before start: %v", err)
	}
}
