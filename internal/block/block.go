// Package block writes and reads weft blocks: the spans of one tenant in a
// Parquet file sorted by trace ID, with a bloom filter over the trace IDs
// and a meta.json that makes the block visible. docs/block-format.md
// describes the format, version FormatV1.
//
// Writing: spans are added to a Buffer (Arrow arrays) as they arrive and
// Write cuts the block. Reading: Open a block from its Meta, then
// FindTraceByID (bloom filter, row-group ranges, page index) or ReadAll.
// Compaction: Compact merges a few blocks of a tenant into one, streaming.
package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
)

// FormatV1 is the format of the blocks this package writes. A reader
// refuses blocks of any other format.
const FormatV1 = "weft-parquet-v1"

// Object names inside a block's directory <tenant>/<blockID>/.
const (
	MetaName  = "meta.json"
	DataName  = "data.parquet"
	BloomName = "bloom"
)

// ErrUnknownFormat is returned by Open for a block whose format this
// version of weft cannot read.
var ErrUnknownFormat = errors.New("unknown block format")

// ErrInvalidMeta is wrapped by the errors of ReadMeta and Meta.Validate for
// a meta.json that was read but cannot be used: not JSON, naming another
// block, or with values that contradict each other. Rereading it gives the
// same error until the object is replaced, unlike a storage error.
var ErrInvalidMeta = errors.New("invalid meta.json")

// Source is where a block's spans came from, so that a replay of the same
// input can recognise (and replace) the block it already wrote. A block
// written by Compact has {Origin: CompactionOrigin} and no partition or
// offsets: its spans come from the blocks in Meta.CompactedFrom, and no
// replay of a log rebuilds it.
type Source struct {
	// Origin names the log the offsets are in, so precisely that no other
	// log can repeat it: the block-builder's WAL epoch, or in Kafka mode
	// the topic (and its ID when the broker gives one) with the message ID
	// of the block's first record. Empty in blocks written before weft
	// recorded it.
	Origin      string `json:"origin,omitempty"`
	Partition   int32  `json:"partition"`
	FirstOffset int64  `json:"firstOffset"`
	LastOffset  int64  `json:"lastOffset"`
}

// SameStart reports whether s and o are blocks of the same log starting
// at the same record: a rebuild of one is the other (after a crash, the
// rebuild may end at another record). A block written before Origin was
// recorded matches on partition and offset alone.
func (s Source) SameStart(o Source) bool {
	return s.Partition == o.Partition && s.FirstOffset == o.FirstOffset &&
		(s.Origin == o.Origin || s.Origin == "" || o.Origin == "")
}

// ErrIDTaken is returned (wrapped) by Write when the block ID is already
// used by a block of other spans: Write never replaces such a block.
var ErrIDTaken = errors.New("block ID already used by a block of other spans")

// RowGroupMeta describes one Parquet row group of data.parquet: the range
// of trace IDs it holds, hex-encoded (lowercase, 32 digits), and its rows.
type RowGroupMeta struct {
	MinTraceID string `json:"minTraceID"`
	MaxTraceID string `json:"maxTraceID"`
	Rows       int64  `json:"rows"`
}

// Meta is the content of meta.json.
type Meta struct {
	Format      string         `json:"format"`
	BlockID     uuid.UUID      `json:"blockID"`
	TenantID    string         `json:"tenantID"`
	StartTime   time.Time      `json:"startTime"` // earliest span start
	EndTime     time.Time      `json:"endTime"`   // latest span end
	TotalTraces int64          `json:"totalTraces"`
	TotalSpans  int64          `json:"totalSpans"`
	Size        int64          `json:"size"` // bytes of data.parquet
	BloomBytes  int64          `json:"bloomBytes"`
	RowGroups   []RowGroupMeta `json:"rowGroups"`
	Source      Source         `json:"source"`
	CreatedAt   time.Time      `json:"createdAt"`
	// CompactionLevel is 0 for a block cut by the block-builder and, for
	// a block written by Compact, one more than the highest level of the
	// blocks it merged. Absent (0) in blocks written before compaction.
	CompactionLevel int `json:"compactionLevel,omitempty"`
	// CompactedFrom lists, sorted, the blocks a compacted block merged
	// (so that a crashed compaction's inputs and output can be told
	// apart); empty for a block of level 0.
	CompactedFrom []uuid.UUID `json:"compactedFrom,omitempty"`
	// Redaction is set on a block written by Redact: it was rewritten
	// from the one block of CompactedFrom without some traces, at that
	// block's compaction level (0 included).
	Redaction *Redaction `json:"redaction,omitempty"`
}

// ObjectName is the bucket path of the block object called name.
func (m *Meta) ObjectName(name string) string { return objectName(m.TenantID, m.BlockID, name) }

// CheckData checks that the block's data.parquet is in bkt with the size
// meta.json gives: a block whose data went missing or was cut short is
// not usable (the error wraps ErrInvalidMeta), and must not replace the
// blocks it was made from.
func (m *Meta) CheckData(ctx context.Context, bkt objstore.BucketReader) error {
	attrs, err := bkt.Attributes(ctx, m.ObjectName(DataName))
	switch {
	case err != nil && isNotFound(bkt, err):
		return fmt.Errorf("cannot use block %s/%s: %w: %s is missing", m.TenantID, m.BlockID, ErrInvalidMeta, DataName)
	case err != nil:
		return fmt.Errorf("cannot check block %s/%s: %w", m.TenantID, m.BlockID, err)
	case attrs.Size != m.Size:
		return fmt.Errorf("cannot use block %s/%s: %w: it gives %d bytes for %s, which has %d",
			m.TenantID, m.BlockID, ErrInvalidMeta, m.Size, DataName, attrs.Size)
	}
	return nil
}

// isNotFound reports whether err, or an error it wraps, says an object
// does not exist.
func isNotFound(bkt objstore.BucketReader, err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if bkt.IsObjNotFoundErr(e) {
			return true
		}
	}
	return false
}

func objectName(tenant string, id uuid.UUID, name string) string {
	return path.Join(tenant, id.String(), name)
}

// ReadMeta reads the meta.json of a block and checks it: a meta of FormatV1
// with Validate; one of another format only for its tenant and block ID
// (Open refuses the format), so that tools can list blocks of every
// version. An absent block gives an error for which bkt.IsObjNotFoundErr is
// true; a meta.json that is not valid, one that wraps ErrInvalidMeta.
func ReadMeta(ctx context.Context, bkt objstore.BucketReader, tenant string, id uuid.UUID) (*Meta, error) {
	rc, err := bkt.Get(ctx, objectName(tenant, id, MetaName))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, fmt.Errorf("read %s: %w", objectName(tenant, id, MetaName), err)
	}
	m := &Meta{}
	if err := json.Unmarshal(buf.Bytes(), m); err != nil {
		if buf.Len() == 0 {
			return nil, fmt.Errorf("%w %s: the object is empty", ErrInvalidMeta, objectName(tenant, id, MetaName))
		}
		return nil, fmt.Errorf("%w %s: cannot decode: %v", ErrInvalidMeta, objectName(tenant, id, MetaName), err)
	}
	if m.TenantID != tenant || m.BlockID != id {
		return nil, fmt.Errorf("%w %s: it names block %s/%s", ErrInvalidMeta, objectName(tenant, id, MetaName), m.TenantID, m.BlockID)
	}
	if m.Format == FormatV1 {
		if err := m.Validate(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// minParquetBytes is the smallest Parquet file: magic, footer length, magic.
const minParquetBytes = 12

// Validate checks that m describes a block this package can read: format
// FormatV1, the block's ID and tenant, non-negative counts and sizes, row
// groups with well-formed trace-ID ranges in trace-ID order whose rows add
// up to totalSpans, start and end times, and a compaction level of 0
// without inputs or above 0 with inputs (sorted, distinct, not m itself). The error wraps
// ErrInvalidMeta (ErrUnknownFormat too for another format) and names the
// block and every field found wrong. It does not look at the other objects
// of the block; the end time may be before the start time (a span's end
// before its start is kept as sent).
func (m *Meta) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if m.Format != FormatV1 {
		return fmt.Errorf("%w %s: %w %q: this version of weft reads only %q",
			ErrInvalidMeta, m.ObjectName(MetaName), ErrUnknownFormat, m.Format, FormatV1)
	}
	if m.BlockID == uuid.Nil {
		bad("blockID: missing")
	}
	if m.TenantID == "" {
		bad("tenantID: missing")
	}
	if m.StartTime.IsZero() {
		bad("startTime: missing")
	}
	if m.EndTime.IsZero() {
		bad("endTime: missing")
	}
	if m.TotalSpans <= 0 {
		bad("totalSpans: %d, a block holds at least one span", m.TotalSpans)
	}
	if m.TotalTraces <= 0 || m.TotalTraces > m.TotalSpans {
		bad("totalTraces: %d, must be between 1 and totalSpans (%d)", m.TotalTraces, m.TotalSpans)
	}
	if m.Size < minParquetBytes {
		bad("size: %d, data.parquet holds at least %d bytes", m.Size, minParquetBytes)
	}
	if m.BloomBytes <= 0 {
		bad("bloomBytes: %d, must be positive", m.BloomBytes)
	}
	if len(m.RowGroups) == 0 {
		bad("rowGroups: empty, a block has at least one row group")
	}
	var rows int64
	prevMax := ""
	for i, rg := range m.RowGroups {
		for _, f := range []struct{ name, v string }{{"minTraceID", rg.MinTraceID}, {"maxTraceID", rg.MaxTraceID}} {
			if !isTraceIDHex(f.v) {
				bad("rowGroups[%d].%s: %q is not 32 lowercase hex digits", i, f.name, f.v)
			}
		}
		if rg.MinTraceID > rg.MaxTraceID {
			bad("rowGroups[%d]: minTraceID %s is after maxTraceID %s", i, rg.MinTraceID, rg.MaxTraceID)
		}
		if rg.MinTraceID < prevMax {
			bad("rowGroups[%d]: minTraceID %s is before the previous row group's maxTraceID %s", i, rg.MinTraceID, prevMax)
		}
		prevMax = rg.MaxTraceID
		if rg.Rows <= 0 {
			bad("rowGroups[%d].rows: %d, must be positive", i, rg.Rows)
		}
		rows += rg.Rows
	}
	if len(m.RowGroups) > 0 && rows != m.TotalSpans {
		bad("rowGroups: %d rows in all, totalSpans says %d", rows, m.TotalSpans)
	}
	if m.Source.Partition < 0 || m.Source.FirstOffset < 0 || m.Source.FirstOffset > m.Source.LastOffset {
		bad("source: partition %d, offsets %d to %d", m.Source.Partition, m.Source.FirstOffset, m.Source.LastOffset)
	}
	switch {
	case m.CompactionLevel < 0:
		bad("compactionLevel: %d, must be 0 or more", m.CompactionLevel)
	case m.Redaction != nil && len(m.CompactedFrom) != 1:
		bad("compactedFrom: %d blocks in a redacted block, which is rewritten from one", len(m.CompactedFrom))
	case m.Redaction != nil:
	case m.CompactionLevel == 0 && len(m.CompactedFrom) > 0:
		bad("compactedFrom: %d blocks in a block of compaction level 0", len(m.CompactedFrom))
	case m.CompactionLevel > 0 && len(m.CompactedFrom) == 0:
		bad("compactedFrom: empty in a block of compaction level %d", m.CompactionLevel)
	}
	for i, id := range m.CompactedFrom {
		switch {
		case id == uuid.Nil || id == m.BlockID:
			bad("compactedFrom[%d]: %s is not another block", i, id)
		case i > 0 && bytes.Compare(m.CompactedFrom[i-1][:], id[:]) >= 0:
			bad("compactedFrom[%d]: %s is not after %s", i, id, m.CompactedFrom[i-1])
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %s: %s", ErrInvalidMeta, m.ObjectName(MetaName), strings.Join(errs, "; "))
	}
	return nil
}

func isTraceIDHex(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ListTenants returns, sorted, the tenants that have at least one block
// with a meta.json.
func ListTenants(ctx context.Context, bkt objstore.BucketReader) ([]string, error) {
	var dirs []string
	err := bkt.Iter(ctx, "", func(name string) error {
		if strings.HasSuffix(name, "/") {
			dirs = append(dirs, strings.TrimSuffix(name, "/"))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	var tenants []string
	for _, t := range dirs {
		ids, err := blockIDs(ctx, bkt, t)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			ok, err := bkt.Exists(ctx, objectName(t, id, MetaName))
			if err != nil {
				return nil, fmt.Errorf("list tenants: %w", err)
			}
			if ok {
				tenants = append(tenants, t)
				break
			}
		}
	}
	slices.Sort(tenants)
	return tenants, nil
}

// blockIDs lists the directories of a tenant that are named by a UUID.
func blockIDs(ctx context.Context, bkt objstore.BucketReader, tenant string) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := bkt.Iter(ctx, tenant+"/", func(name string) error {
		if !strings.HasSuffix(name, "/") {
			return nil
		}
		id, err := uuid.Parse(path.Base(name))
		if err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blocks of %s: %w", tenant, err)
	}
	return ids, nil
}

// listConcurrency bounds the meta.json reads in flight in ListBlocks.
const listConcurrency = 16

// ListBlocks returns the metas of a tenant's blocks, sorted by start time
// then block ID. Blocks without a meta.json (being written, or abandoned)
// are left out.
func ListBlocks(ctx context.Context, bkt objstore.BucketReader, tenant string) ([]*Meta, error) {
	return listMetas(ctx, bkt, tenant, func(id uuid.UUID) (*Meta, error) {
		m, err := ReadMeta(ctx, bkt, tenant, id)
		if bkt.IsObjNotFoundErr(err) {
			return nil, nil
		}
		return m, err
	})
}

// ListLetGo returns the metas of a tenant's blocks that were let go
// (compacted into another, or past retention) and are not deleted yet:
// their CompactedName marks, sorted as ListBlocks sorts.
func ListLetGo(ctx context.Context, bkt objstore.BucketReader, tenant string) ([]*Meta, error) {
	return listMetas(ctx, bkt, tenant, func(id uuid.UUID) (*Meta, error) {
		m, err := ReadCompactedMark(ctx, bkt, tenant, id)
		if m == nil || err != nil {
			return nil, err
		}
		return &m.Meta, nil
	})
}

// listMetas reads, listConcurrency at a time, the meta of each block
// directory of tenant with read (nil: none), and sorts them by start time
// then block ID.
func listMetas(ctx context.Context, bkt objstore.BucketReader, tenant string, read func(uuid.UUID) (*Meta, error)) ([]*Meta, error) {
	ids, err := blockIDs(ctx, bkt, tenant)
	if err != nil {
		return nil, err
	}
	metas := make([]*Meta, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, listConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			metas[i], errs[i] = read(id)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	metas = slices.DeleteFunc(metas, func(m *Meta) bool { return m == nil })
	slices.SortFunc(metas, func(a, b *Meta) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return bytes.Compare(a.BlockID[:], b.BlockID[:])
	})
	return metas, nil
}

// String describes s for messages.
func (s Source) String() string {
	origin := s.Origin
	if origin == "" {
		origin = "an unnamed log"
	}
	return fmt.Sprintf("%s partition %d offsets %d-%d", origin, s.Partition, s.FirstOffset, s.LastOffset)
}
