package block

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
)

// CompactedName is the mark of a block let go: merged into another by
// compaction, or past its tenant's retention. It holds the block's meta
// and when the block was let go (compactedTime), as Tempo's
// meta.compacted.json does. A marked block has no meta.json, so no reader
// lists it; the backend deletes its objects once it has been marked for
// compacted_block_retention, which lets the queries still reading it end.
const CompactedName = "meta.compacted.json"

// CompactedMeta is the content of a block's CompactedName.
type CompactedMeta struct {
	Meta
	CompactedTime time.Time `json:"compactedTime"`
}

// MarkCompacted lets go of the block of meta at time at: it writes the
// mark first, then deletes meta.json, so that a crash in between leaves
// the block listed (and marked again later), never unlisted and unmarked.
// Marking a marked block again keeps its first time.
//
// The blocks meta was compacted from (Meta.CompactedFrom) that still have
// their meta.json are let go first, the same way: readers hide them only
// while meta is listed, so once meta is let go their spans would be
// counted again, beside the block meta was compacted into. A compaction
// job cut short between its output's upload and its inputs' marks leaves
// such blocks, and its output may be compacted again (or pass retention)
// before the job is retried.
func MarkCompacted(ctx context.Context, bkt objstore.Bucket, meta *Meta, at time.Time) error {
	for _, id := range meta.CompactedFrom {
		in, err := ReadMeta(ctx, bkt, meta.TenantID, id)
		switch {
		case err == nil:
			if err := MarkCompacted(ctx, bkt, in, at); err != nil {
				return err
			}
		case bkt.IsObjNotFoundErr(err), errors.Is(err, ErrInvalidMeta):
			// Let go already, or not listed (a meta.json cut short).
		default:
			return fmt.Errorf("cannot check block %s, which %s was compacted from: %w", id, meta.BlockID, err)
		}
	}
	mark := meta.ObjectName(CompactedName)
	if old, err := ReadCompactedMark(ctx, bkt, meta.TenantID, meta.BlockID); err != nil {
		return err
	} else if old == nil {
		b, err := json.MarshalIndent(CompactedMeta{Meta: *meta, CompactedTime: at.UTC()}, "", "  ")
		if err != nil {
			return fmt.Errorf("cannot encode %s: %w", mark, err)
		}
		if err := bkt.Upload(ctx, mark, bytes.NewReader(b)); err != nil {
			return fmt.Errorf("cannot write %s: %w", mark, err)
		}
	}
	if err := bkt.Delete(ctx, meta.ObjectName(MetaName)); err != nil && !bkt.IsObjNotFoundErr(err) {
		return fmt.Errorf("cannot delete %s: %w", meta.ObjectName(MetaName), err)
	}
	return nil
}

// ReadCompactedMark returns the mark of block id of tenant, nil when it
// has none (or its mark is not whole JSON: a write cut short).
func ReadCompactedMark(ctx context.Context, bkt objstore.BucketReader, tenant string, id uuid.UUID) (*CompactedMeta, error) {
	var m CompactedMeta
	if ok, err := readJSON(ctx, bkt, objectName(tenant, id, CompactedName), &m); !ok || err != nil {
		return nil, err
	}
	return &m, nil
}
