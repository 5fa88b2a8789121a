// Package partial records what a query could not read — a damaged block,
// object storage that failed or did not answer — so that the query goes on
// with everything else and its answer says it is partial, naming what was
// skipped.
//
// The HTTP API puts Notes in the context of each query (NewContext); the
// querier, the searcher and the query-frontend add a Skip for each block
// they could not read (Add) and the API shows the notes' Message to the
// client and counts the skipped blocks. Search jobs run on another process
// carry their skip back in search.JobResult.
package partial

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/weftdb/weft/internal/storage"
)

// Reasons a block was skipped: the label values of
// weft_query_blocks_skipped_total.
const (
	// ReasonDamaged: a file of the block is missing or cannot be decoded.
	ReasonDamaged = "damaged"
	// ReasonStorage: object storage failed or did not answer.
	ReasonStorage = "storage"
)

// Skip is one block a query did not read.
type Skip struct {
	Tenant string `json:"tenant,omitempty"`
	// Block is the block's ID.
	Block string `json:"block"`
	// Reason is ReasonDamaged or ReasonStorage.
	Reason string `json:"reason"`
	// Error says what failed.
	Error string `json:"error,omitempty"`
}

// ReasonOf classifies the error of a block read: ReasonStorage when object
// storage caused it (storage.ErrUnavailable), else ReasonDamaged.
func ReasonOf(err error) string {
	if storage.IsUnavailable(err) {
		return ReasonStorage
	}
	return ReasonDamaged
}

// Skippable reports whether a block read that failed with err may be
// skipped: not when ctx (the query's) ended, which fails the query itself.
func Skippable(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled)
}

// Notes collects the skips of one query. Its methods are safe for
// concurrent use and do nothing on a nil Notes.
type Notes struct {
	mu    sync.Mutex
	skips []Skip
	seen  map[[2]string]bool // block, reason
}

type notesKey struct{}

// NewContext returns ctx carrying new Notes, and the notes.
func NewContext(ctx context.Context) (context.Context, *Notes) {
	n := &Notes{}
	return context.WithValue(ctx, notesKey{}, n), n
}

// FromContext returns the notes of ctx, or nil.
func FromContext(ctx context.Context) *Notes {
	n, _ := ctx.Value(notesKey{}).(*Notes)
	return n
}

// Add records s, once per block and reason.
func (n *Notes) Add(s Skip) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	k := [2]string{s.Tenant + "/" + s.Block, s.Reason}
	if n.seen[k] {
		return
	}
	if n.seen == nil {
		n.seen = map[[2]string]bool{}
	}
	n.seen[k] = true
	n.skips = append(n.skips, s)
}

// Skips returns the skips recorded so far.
func (n *Notes) Skips() []Skip {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Skip(nil), n.skips...)
}

// StorageFailed reports whether a block was skipped because object storage
// failed: the query reads no more blocks, which would fail the same way
// (after the read timeout, for a hung store).
func (n *Notes) StorageFailed() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.skips {
		if s.Reason == ReasonStorage {
			return true
		}
	}
	return false
}

// maxNamed is how many damaged blocks Message names.
const maxNamed = 5

// Message says what the answer lacks, or "" when nothing was skipped.
func (n *Notes) Message() string {
	skips := n.Skips()
	if len(skips) == 0 {
		return ""
	}
	var damaged, down []Skip
	for _, s := range skips {
		if s.Reason == ReasonStorage {
			down = append(down, s)
		} else {
			damaged = append(damaged, s)
		}
	}
	var parts []string
	for i, s := range damaged {
		if i == maxNamed {
			parts = append(parts, fmt.Sprintf("and %d more damaged blocks", len(damaged)-maxNamed))
			break
		}
		parts = append(parts, fmt.Sprintf("block %s%s could not be read (%s)", s.Block, ofTenant(s.Tenant), s.Error))
	}
	if len(down) > 0 {
		first := ""
		for _, s := range down {
			if s.Error != "" {
				first = s.Error
				break
			}
		}
		parts = append(parts, fmt.Sprintf("%d %s not read because object storage failed (%s)", len(down), plural(len(down), "block was", "blocks were"), first))
	}
	return "partial answer: " + strings.Join(parts, "; ")
}

func ofTenant(t string) string {
	if t == "" {
		return ""
	}
	return fmt.Sprintf(" of tenant %q", t)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
