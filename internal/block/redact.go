package block

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
)

// This file is the rewrite a redaction job runs: Redact writes a block
// again without some of its traces.

// RedactionOrigin is the Source.Origin of a block written by Redact: its
// spans come from the one block in its Meta.CompactedFrom.
const RedactionOrigin = "redaction"

// redactionNamespace is the namespace of the version-5 UUIDs of redacted
// blocks.
var redactionNamespace = uuid.MustParse("0b8e7c2d-5a41-4f0e-9d3c-6e2f1a7b4c58")

// Redaction is what a block written by Redact records of the rewrite, in
// its meta.json (redaction).
type Redaction struct {
	// Request is the ID of the redaction request.
	Request string `json:"request"`
	// Set identifies the set of trace IDs left out (a hash the caller
	// gives), so that a rewrite for another set is another block.
	Set string `json:"set"`
	// TracesRemoved and SpansRemoved are what was left out of the input.
	TracesRemoved int64 `json:"tracesRemoved"`
	SpansRemoved  int64 `json:"spansRemoved"`
}

// RedactedID is the ID of the block Redact writes from block input of
// tenant for request and set: a version-5 (SHA-1) UUID of the four, so
// that a retried job writes the same block.
func RedactedID(tenant string, input uuid.UUID, request, set string) uuid.UUID {
	return uuid.NewSHA1(redactionNamespace, []byte(tenant+"/"+input.String()+"/"+request+"/"+set))
}

// RedactResult is what Redact did.
type RedactResult struct {
	// Meta is the rewritten block's meta; nil when nothing was written:
	// the block holds none of the traces (Matched false), or nothing but
	// them (Emptied true, no block is left to write).
	Meta *Meta
	// Matched says the block held spans of the traces.
	Matched bool
	// Emptied says every span of the block was of the traces: the caller
	// lets the input go without an output.
	Emptied bool
	// Written is false when nothing was written: no match, a dry run, or
	// the output was already complete (a retry of a job that finished).
	Written bool
	// TracesRemoved and SpansRemoved are what was (or, in a dry run,
	// would be) left out, Removed the IDs of those traces (in a retry
	// that finds the output, read again from the input; nil if the
	// input's data is gone).
	TracesRemoved, SpansRemoved int64
	Removed                     [][16]byte
}

// RedactOptions say what Redact leaves out and how it writes.
type RedactOptions struct {
	CompactOptions
	// Request and Set name the rewrite (Redaction.Request and .Set).
	Request, Set string
	// DryRun counts what would be left out and writes nothing.
	DryRun bool
}

// Redact rewrites the block of input without the traces ids names, as
// block RedactedID(tenant, input, opts.Request, opts.Set). Every other
// span, resource and scope is copied byte for byte, in the same order;
// the output keeps the input's compaction level, lists the input in
// CompactedFrom (so that the block list hides the input once the output
// is listed, as for a compaction) and records the rewrite in Redaction;
// its Source is {Origin: RedactionOrigin}. meta.json is written last.
// Letting the input go (MarkCompacted) is the caller's job.
//
// A block that holds none of the traces (bloom filter, row-group ranges,
// then the rows) is not rewritten. One that holds nothing else gets no
// output (Emptied). A dry run reads and counts, writes nothing. A retry
// of a rewrite that finished finds the output and returns it (its counts
// from its Redaction) without writing.
func Redact(ctx context.Context, bkt objstore.Bucket, input *Meta, ids [][16]byte, opts RedactOptions) (*RedactResult, error) {
	ins, err := checkCompactInputs([]*Meta{input})
	if err != nil {
		return nil, fmt.Errorf("cannot redact: %w", err)
	}
	in := ins[0]
	if opts.Request == "" {
		return nil, errors.New("cannot redact: no request named")
	}
	tenant := in.TenantID
	id := RedactedID(tenant, in.BlockID, opts.Request, opts.Set)
	out := tenant + "/" + id.String()
	if !opts.DryRun {
		old, err := ReadMeta(ctx, bkt, tenant, id)
		switch {
		case err == nil && len(old.CompactedFrom) == 1 && old.CompactedFrom[0] == in.BlockID && old.Redaction != nil:
			res := &RedactResult{Meta: old, Matched: true, TracesRemoved: old.Redaction.TracesRemoved, SpansRemoved: old.Redaction.SpansRemoved}
			if _, _, removed, err := countTraces(ctx, bkt, in, inSet(ids)); err == nil {
				res.Removed = removed
			}
			return res, nil
		case err == nil:
			return nil, fmt.Errorf("cannot redact into %s: it holds a block from %v: %w", out, old.CompactedFrom, ErrIDTaken)
		case bkt.IsObjNotFoundErr(err), errors.Is(err, ErrInvalidMeta):
		default:
			return nil, fmt.Errorf("cannot redact into %s: cannot check for an earlier output: %w", out, err)
		}
	}
	may, err := mayHold(ctx, bkt, in, ids)
	if err != nil || !may {
		return &RedactResult{}, err
	}
	drop := inSet(ids)
	if opts.DryRun {
		traces, spans, removed, err := countTraces(ctx, bkt, in, drop)
		if err != nil {
			return nil, fmt.Errorf("cannot redact block %s/%s: %w", tenant, in.BlockID, err)
		}
		return &RedactResult{Matched: spans > 0, Emptied: spans == in.TotalSpans, TracesRemoved: traces, SpansRemoved: spans, Removed: removed}, nil
	}
	mg, err := mergeInto(ctx, bkt, ins, opts.CompactOptions, tenant, id, in.TotalTraces, drop, func(mg *merger, size, bloomBytes int64) *Meta {
		m := mg.newMeta(tenant, id, size, bloomBytes, RedactionOrigin)
		m.CompactionLevel, m.CompactedFrom = in.CompactionLevel, []uuid.UUID{in.BlockID}
		m.Redaction = &Redaction{Request: opts.Request, Set: opts.Set, TracesRemoved: mg.droppedTraces, SpansRemoved: mg.droppedSpans}
		return m
	})
	if err != nil {
		return nil, err
	}
	res := &RedactResult{Meta: mg.meta, Matched: mg.droppedSpans > 0, TracesRemoved: mg.droppedTraces, SpansRemoved: mg.droppedSpans, Removed: mg.droppedIDs}
	res.Written = mg.meta != nil
	res.Emptied = mg.spans == 0 && mg.droppedSpans > 0
	return res, nil
}

// mayHold reports whether the block of m may hold a trace of ids: its
// row-group ranges and its bloom filter (when readable) are checked.
func mayHold(ctx context.Context, bkt objstore.BucketReader, m *Meta, ids [][16]byte) (bool, error) {
	r, err := Open(ctx, bkt, m)
	if err != nil {
		return false, err
	}
	defer r.Close()
	bf, err := r.loadBloom(ctx)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		in := slices.ContainsFunc(r.ranges, func(rg [2][16]byte) bool {
			return bytes.Compare(id[:], rg[0][:]) >= 0 && bytes.Compare(id[:], rg[1][:]) <= 0
		})
		if in && (bf == nil || bf.Test(id[:])) {
			return true, nil
		}
	}
	return false, nil
}

// inSet is the drop function of ids.
func inSet(ids [][16]byte) func([16]byte) bool {
	set := make(map[[16]byte]struct{}, len(ids))
	for _, t := range ids {
		set[t] = struct{}{}
	}
	return func(t [16]byte) bool { _, ok := set[t]; return ok }
}

// countTraces reads the block of m row by row and counts the traces and
// spans drop names, and returns those traces' IDs.
func countTraces(ctx context.Context, bkt objstore.BucketReader, m *Meta, drop func([16]byte) bool) (traces, spans int64, ids [][16]byte, err error) {
	c, err := openCompactCursor(ctx, bkt, m)
	if err != nil {
		return 0, 0, nil, err
	}
	for {
		ok, err := c.fill()
		if err != nil {
			return 0, 0, nil, err
		}
		if !ok {
			return traces, spans, ids, c.finish()
		}
		for _, r := range c.batch[:c.n] {
			if !drop(r.TraceID) {
				continue
			}
			if spans == 0 || r.TraceID != ids[len(ids)-1] {
				traces++
				ids = append(ids, r.TraceID)
			}
			spans++
		}
	}
}

// ParseTraceID parses a trace ID of 1 to 32 hex digits (shorter IDs are
// padded with zeros on the left, as Tempo's API takes them).
func ParseTraceID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("trace ID %q: must be 1 to 32 hex digits", s)
	}
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("trace ID %q: not hex", s)
	}
	copy(id[16-len(b):], b)
	return id, nil
}
