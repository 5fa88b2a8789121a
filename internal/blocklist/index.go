package blocklist

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/internal/block"
)

// IndexName is the tenant index, the object <tenant>/index.json.gz: the
// tenant's block list as the process that writes it (the backend
// scheduler holding its lock) found it, so that the other processes read
// one object per tenant at each poll instead of listing the tenant's
// objects. It is gzipped JSON, Tempo's {created_at, meta, compacted}.
const IndexName = "index.json.gz"

// maxIndexBytes bounds the uncompressed size of an index read, so that a
// damaged or hostile object cannot exhaust memory: about 250,000 blocks
// of a few row groups each.
const maxIndexBytes = 1 << 30

// ErrInvalidIndex is wrapped by ReadIndex's error for an index that was
// read but cannot be used: not gzip, not JSON, of another tenant, or
// holding a meta that fails block.Meta.Validate.
var ErrInvalidIndex = errors.New("invalid tenant index")

// Index is the content of a tenant index.
type Index struct {
	// CreatedAt is when the writer began the listing the index holds:
	// blocks uploaded later may be missing from it.
	CreatedAt time.Time `json:"created_at"`
	// Meta are the blocks a reader serves: those with a meta.json, less
	// the inputs of a listed compacted block (hidden as the list hides
	// them).
	Meta []*block.Meta `json:"meta"`
	// Compacted are the blocks let go (meta.compacted.json) whose objects
	// are not deleted yet, with the time they were let go.
	Compacted []*block.CompactedMeta `json:"compacted"`
	// Unreadable are the blocks whose meta.json cannot be used (weft
	// only), with why, so that readers mark their answers partial as a
	// listing reader does.
	Unreadable []UnreadableBlock `json:"unreadable,omitempty"`
}

// UnreadableBlock is a block left out of an index, and why.
type UnreadableBlock struct {
	BlockID uuid.UUID `json:"blockID"`
	Error   string    `json:"error"`
}

// IndexObject is the bucket path of tenant's index.
func IndexObject(tenant string) string { return tenant + "/" + IndexName }

// WriteIndex writes tenant's index in one upload (an object store replaces
// an object whole: a reader gets the old index or the new one).
func WriteIndex(ctx context.Context, bkt objstore.Bucket, tenant string, idx *Index) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(idx); err != nil {
		return fmt.Errorf("cannot encode %s: %w", IndexObject(tenant), err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("cannot compress %s: %w", IndexObject(tenant), err)
	}
	if err := bkt.Upload(ctx, IndexObject(tenant), &buf); err != nil {
		return fmt.Errorf("cannot write %s: %w", IndexObject(tenant), err)
	}
	return nil
}

// ReadIndex reads and checks tenant's index. A missing index gives an
// error for which bkt.IsObjNotFoundErr is true (unwrapped); one that
// cannot be used an error wrapping ErrInvalidIndex.
func ReadIndex(ctx context.Context, bkt objstore.BucketReader, tenant string) (*Index, error) {
	idx, _, err := readIndex(ctx, bkt, tenant)
	return idx, err
}

func readIndex(ctx context.Context, bkt objstore.BucketReader, tenant string) (idx *Index, n int64, err error) {
	name := IndexObject(tenant)
	rc, err := bkt.Get(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	n = int64(len(raw))
	if err != nil {
		return nil, n, fmt.Errorf("cannot read %s: %w", name, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, n, fmt.Errorf("%w %s: not gzip: %v", ErrInvalidIndex, name, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxIndexBytes+1))
	if err != nil {
		return nil, n, fmt.Errorf("%w %s: cannot decompress: %v", ErrInvalidIndex, name, err)
	}
	if len(data) > maxIndexBytes {
		return nil, n, fmt.Errorf("%w %s: more than %d bytes uncompressed", ErrInvalidIndex, name, maxIndexBytes)
	}
	idx = &Index{}
	if err := json.Unmarshal(data, idx); err != nil {
		return nil, n, fmt.Errorf("%w %s: cannot decode: %v", ErrInvalidIndex, name, err)
	}
	if idx.CreatedAt.IsZero() {
		return nil, n, fmt.Errorf("%w %s: created_at missing", ErrInvalidIndex, name)
	}
	for i, m := range idx.Meta {
		if m == nil {
			return nil, n, fmt.Errorf("%w %s: meta[%d] is null", ErrInvalidIndex, name, i)
		}
		if m.TenantID != tenant {
			return nil, n, fmt.Errorf("%w %s: meta[%d] is block %s of tenant %q", ErrInvalidIndex, name, i, m.BlockID, m.TenantID)
		}
		if err := m.Validate(); err != nil {
			return nil, n, fmt.Errorf("%w %s: meta[%d]: %w", ErrInvalidIndex, name, i, err)
		}
	}
	for i, c := range idx.Compacted {
		if c == nil || c.TenantID != tenant || c.BlockID == uuid.Nil {
			return nil, n, fmt.Errorf("%w %s: compacted[%d] is not a block of tenant %q", ErrInvalidIndex, name, i, tenant)
		}
	}
	return idx, n, nil
}
