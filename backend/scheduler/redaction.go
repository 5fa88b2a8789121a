package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/weftdb/weft/backend/redaction"
	"github.com/weftdb/weft/internal/block"
)

// This file is the scheduler's side of redaction: a request (by trace IDs,
// or by a query) is kept in work.json and driven through its states, each
// step a set of redaction jobs, one per block:
//
//	queued     waits for the tenant's earlier requests to finish (a
//	           tenant's requests run one at a time), for the compactions of
//	           the tenant that are pending or running, and for the block
//	           list to show their outputs
//	           (compaction is not planned for a tenant with an unfinished
//	           request); then plans the blocks to read
//	finding    (query) find jobs: each reports the traces of its block the
//	           query matches; their union is the set to remove
//	redacting  rewrite jobs: each rewrites its block without the set (a
//	           dry run counts)
//	done       every block listed (in the window, older than the request)
//	           was handled; or failed
//
// When rewrite jobs are done, the block list is read again: a block that
// no job of the request read (the output of a compaction that raced, a
// block let go before its job read it) starts another generation after
// RedactionRescanDelay, up to RedactionMaxGenerations; past that the
// request fails, naming what is left, rather than report success while a
// trace may still be in a listed block.

// RequestState is where a redaction request is.
type RequestState string

// The states of a redaction request.
const (
	RequestQueued    RequestState = "queued"
	RequestFinding   RequestState = "finding"
	RequestRedacting RequestState = "redacting"
	RequestDone      RequestState = "done"
	RequestFailed    RequestState = "failed"
)

// Request is a redaction request, as work.json keeps it.
type Request struct {
	ID string `json:"id"`
	redaction.Spec
	State   RequestState `json:"state"`
	Created time.Time    `json:"created"`
	Updated time.Time    `json:"updated"`
	// Generation counts the plans of the request (1 for the first).
	Generation int `json:"generation"`
	// NotBefore delays the next generation (RedactionRescanDelay).
	NotBefore time.Time `json:"notBefore,omitzero"`
	// Found are the trace IDs (hex, sorted) a query request's find jobs
	// matched so far; Set is the hash of the set being removed.
	Found []string `json:"found,omitempty"`
	Set   string   `json:"set,omitempty"`
	// Final holds the counts once the request is done (its jobs are
	// pruned before it).
	Final *RequestCounts `json:"final,omitempty"`
	Error string         `json:"error,omitempty"`
}

// RequestCounts are what a request did (would do, in a dry run).
type RequestCounts struct {
	// Jobs of the request by state.
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	// BlocksRewritten were written again without the traces;
	// BlocksEmptied held nothing else and were let go; BlocksMatched
	// held some of the traces (a dry run rewrites none).
	BlocksMatched   int `json:"blocksMatched"`
	BlocksRewritten int `json:"blocksRewritten"`
	BlocksEmptied   int `json:"blocksEmptied"`
	// Traces removed (distinct trace IDs) and Spans removed.
	Traces int   `json:"traces"`
	Spans  int64 `json:"spans"`
}

// RequestStatus is a request and its counts, as the API shows it.
type RequestStatus struct {
	Request
	Counts RequestCounts `json:"counts"`
}

// ids are the trace IDs (hex) r removes: those given, or those its query
// matched so far.
func (r *Request) ids() []string {
	if r.Query != "" {
		return r.Found
	}
	return r.TraceIDs
}

// Done reports whether the request is finished.
func (r *Request) Done() bool { return r.State == RequestDone || r.State == RequestFailed }

// MetaBlocks is the part of the block list redaction reads: the metas of
// a tenant's listed blocks. The scheduler's Blocks implement it to take
// redaction requests.
type MetaBlocks interface {
	Metas(tenant string) []*block.Meta
}

// ErrNoRequest is RedactionStatus's error for an unknown request.
var ErrNoRequest = errors.New("no such redaction request")

// SubmitRedaction checks spec and queues a request for it; it returns the
// request. An invalid spec gives an error wrapping redaction.ErrInvalid.
func (s *Scheduler) SubmitRedaction(ctx context.Context, spec redaction.Spec) (*RequestStatus, error) {
	ids, err := redaction.Check(&spec)
	if err != nil {
		s.m.redactions.WithLabelValues("invalid").Inc()
		return nil, err
	}
	if !s.active.Load() {
		return nil, ErrInactive
	}
	if _, ok := s.blocks.(MetaBlocks); !ok {
		return nil, errors.New("cannot redact: this scheduler's block list gives no block metas")
	}
	now := s.clock()
	r := &Request{ID: uuid.NewString(), Spec: spec, State: RequestQueued, Created: now, Updated: now}
	if len(ids) > 0 {
		r.TraceIDs = hexIDs(ids)
		r.Set = setHash(r.TraceIDs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.ID] = r
	s.advanceLocked(r)
	if err := s.save(ctx); err != nil {
		delete(s.requests, r.ID)
		for id, j := range s.jobs {
			if j.Redact != nil && j.Redact.Request == r.ID {
				delete(s.jobs, id)
			}
		}
		return nil, err
	}
	s.m.redactions.WithLabelValues("accepted").Inc()
	s.logger.Info("redaction request queued", "request", r.ID, "tenant", r.Tenant, "trace_ids", len(r.TraceIDs), "query", r.Query, "dry_run", r.DryRun)
	return s.statusLocked(r), nil
}

// CountInvalidRedaction counts a redaction request refused before it
// reached SubmitRedaction (a body that does not decode).
func (s *Scheduler) CountInvalidRedaction() { s.m.redactions.WithLabelValues("invalid").Inc() }

// RedactionStatus returns request id of tenant with its counts.
func (s *Scheduler) RedactionStatus(tenant, id string) (*RequestStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests[id]
	if r == nil || r.Tenant != tenant {
		return nil, fmt.Errorf("redaction request %q of tenant %q: %w", id, tenant, ErrNoRequest)
	}
	return s.statusLocked(r), nil
}

// Redactions returns every request, oldest first.
func (s *Scheduler) Redactions() []RequestStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RequestStatus, 0, len(s.requests))
	for _, r := range s.requests {
		out = append(out, *s.statusLocked(r))
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Created.Before(out[b].Created) })
	return out
}

func (s *Scheduler) statusLocked(r *Request) *RequestStatus {
	st := &RequestStatus{Request: *r}
	if r.Final != nil {
		st.Counts = *r.Final
	} else {
		st.Counts = s.countsLocked(r)
	}
	st.Found = nil // possibly many: the counts say how many
	st.Final = nil // in Counts
	return st
}

// countsLocked adds up the jobs of r: rewrite jobs of its current set
// (and find jobs, in the job counts).
func (s *Scheduler) countsLocked(r *Request) RequestCounts {
	var c RequestCounts
	traces := map[string]bool{}
	for _, j := range s.jobs {
		if j.Redact == nil || j.Redact.Request != r.ID || !j.Redact.Find && j.Redact.Set != r.Set {
			continue
		}
		switch j.State {
		case Pending:
			c.Pending++
		case Running:
			c.Running++
		case Succeeded:
			c.Succeeded++
		case Failed:
			c.Failed++
		}
		if j.Redact.Find || j.State != Succeeded || j.Result == nil {
			continue
		}
		res := j.Result
		if len(res.TraceIDs) > 0 {
			c.BlocksMatched++
		}
		if res.Rewritten {
			c.BlocksRewritten++
		}
		if res.Emptied {
			c.BlocksEmptied++
		}
		c.Spans += res.Spans
		for _, t := range res.TraceIDs {
			traces[t] = true
		}
	}
	c.Traces = len(traces)
	return c
}

// advanceLocked moves r on as far as it can go now: see the file comment.
func (s *Scheduler) advanceLocked(r *Request) {
	now := s.clock()
	for range 4 { // each step either waits or moves to the next state
		prev := r.State
		switch r.State {
		case RequestQueued:
			s.planRequestLocked(r, now)
		case RequestFinding:
			s.findDoneLocked(r, now)
		case RequestRedacting:
			s.redactDoneLocked(r, now)
		}
		if r.State == prev {
			return
		}
		r.Updated = now
	}
}

// requestBlocksLocked is what generation planning reads: the listed blocks
// of r's tenant in its window that were written before r was made, or
// since from other blocks (compaction and redaction outputs), but the
// outputs of r's rewrites of its current set. Blocks the block-builder
// cut after r was made are not read: under steady ingest they would keep
// coming.
func (s *Scheduler) requestBlocksLocked(r *Request) []*block.Meta {
	mb, _ := s.blocks.(MetaBlocks)
	if mb == nil {
		return nil
	}
	var out []*block.Meta
	for _, m := range mb.Metas(r.Tenant) {
		if !r.Overlaps(m.StartTime, m.EndTime) || m.CreatedAt.After(r.Created) && len(m.CompactedFrom) == 0 {
			continue
		}
		if m.Redaction != nil && m.Redaction.Request == r.ID && m.Redaction.Set == r.Set {
			continue
		}
		out = append(out, m)
	}
	return out
}

// compactionBusyLocked says whether a compaction of tenant is pending or
// running, or finished with inputs the block list still shows.
func (s *Scheduler) compactionBusyLocked(tenant string) bool {
	var listed map[uuid.UUID]bool
	for _, j := range s.jobs {
		if j.Tenant != tenant || j.Type != JobCompaction {
			continue
		}
		switch j.State {
		case Pending, Running:
			return true
		case Succeeded:
			if listed == nil {
				listed = map[uuid.UUID]bool{}
				for _, b := range s.blocks.Compactable(tenant) {
					listed[b.ID] = true
				}
			}
			for _, id := range j.Blocks {
				if listed[id] {
					return true
				}
			}
		}
	}
	return false
}

// earlierRequestOpenLocked says whether a request of r's tenant made
// before r (by Created, then ID) is not finished: a tenant's requests run
// one at a time, so that no two rewrite the same block at once (each
// output would keep the other's traces) and no request lets go of another
// one's output before that one's job reported it.
func (s *Scheduler) earlierRequestOpenLocked(r *Request) bool {
	for _, o := range s.requests {
		if o != r && o.Tenant == r.Tenant && !o.Done() &&
			(o.Created.Before(r.Created) || o.Created.Equal(r.Created) && o.ID < r.ID) {
			return true
		}
	}
	return false
}

func (s *Scheduler) planRequestLocked(r *Request, now time.Time) {
	if now.Before(r.NotBefore) || s.compactionBusyLocked(r.Tenant) || s.earlierRequestOpenLocked(r) {
		return
	}
	r.Generation++
	r.NotBefore = time.Time{}
	if r.Query != "" {
		r.State = RequestFinding
		for _, m := range s.requestBlocksLocked(r) {
			s.addRedactJobLocked(r, m.BlockID, &RedactJob{Request: r.ID, Find: true, Query: r.Query}, now)
		}
		return
	}
	r.State = RequestRedacting
	s.planRewritesLocked(r, now)
}

// planRewritesLocked adds a rewrite job of r's set for each block of r
// whose row-group ranges may hold one of its traces.
func (s *Scheduler) planRewritesLocked(r *Request, now time.Time) {
	ids := r.ids()
	for _, m := range s.requestBlocksLocked(r) {
		if mayHold(m, ids) {
			s.addRedactJobLocked(r, m.BlockID, &RedactJob{Request: r.ID, Set: r.Set, DryRun: r.DryRun}, now)
		}
	}
}

// mayHold reports whether a row group of m may hold a trace of ids
// (sorted, lowercase hex).
func mayHold(m *block.Meta, ids []string) bool {
	for _, rg := range m.RowGroups {
		i, _ := slices.BinarySearch(ids, rg.MinTraceID)
		if i < len(ids) && ids[i] <= rg.MaxTraceID {
			return true
		}
	}
	return false
}

// redactKey is what makes a redaction job's ID: the request, and find or
// the set.
func redactKey(rj *RedactJob) string {
	if rj.Find {
		return rj.Request + "/find"
	}
	return rj.Request + "/" + rj.Set
}

func (s *Scheduler) addRedactJobLocked(r *Request, b uuid.UUID, rj *RedactJob, now time.Time) {
	id := jobID(JobRedaction, r.Tenant, []uuid.UUID{b}, redactKey(rj))
	if _, ok := s.jobs[id]; ok {
		return
	}
	rj.Generation = r.Generation
	s.jobs[id] = &Job{ID: id, Type: JobRedaction, Tenant: r.Tenant, Blocks: []uuid.UUID{b}, State: Pending, Created: now, Updated: now, Redact: rj}
	s.m.created.WithLabelValues(r.Tenant, string(JobRedaction)).Inc()
	s.wakeLocked()
}

// jobsOfLocked returns r's jobs of kind key (redactKey), and whether all
// are finished.
func (s *Scheduler) jobsOfLocked(r *Request, key string) (jobs []*Job, finished bool) {
	finished = true
	for _, j := range s.jobs {
		if j.Redact != nil && j.Redact.Request == r.ID && redactKey(j.Redact) == key {
			jobs = append(jobs, j)
			if j.State == Pending || j.State == Running {
				finished = false
			}
		}
	}
	return jobs, finished
}

func (s *Scheduler) failRequestLocked(r *Request, msg string) {
	r.State, r.Error = RequestFailed, msg
	c := s.countsLocked(r)
	r.Final = &c
	s.logger.Warn("redaction request failed", "request", r.ID, "tenant", r.Tenant, "err", msg)
}

func (s *Scheduler) findDoneLocked(r *Request, now time.Time) {
	jobs, finished := s.jobsOfLocked(r, r.ID+"/find")
	if !finished {
		return
	}
	found := map[string]bool{}
	for _, t := range r.Found {
		found[t] = true
	}
	for _, j := range jobs {
		if j.State == Failed {
			s.failRequestLocked(r, fmt.Sprintf("find job %s on block %s failed: %s", j.ID, j.Blocks[0], j.Error))
			return
		}
		if j.Result != nil {
			for _, t := range j.Result.TraceIDs {
				found[t] = true
			}
		}
	}
	if len(found) > redaction.MaxTraceIDs {
		s.failRequestLocked(r, fmt.Sprintf("the query matches %d traces, at most %d are redacted by one request: narrow the query or the window", len(found), redaction.MaxTraceIDs))
		return
	}
	r.Found = make([]string, 0, len(found)) // a new slice: Update may roll r back
	for t := range found {
		r.Found = append(r.Found, t)
	}
	slices.Sort(r.Found)
	r.Set = setHash(r.Found)
	r.State = RequestRedacting
	if len(r.Found) > 0 {
		s.planRewritesLocked(r, now)
	}
}

func (s *Scheduler) redactDoneLocked(r *Request, now time.Time) {
	jobs, finished := s.jobsOfLocked(r, r.ID+"/"+r.Set)
	if !finished {
		return
	}
	blocks := s.requestBlocksLocked(r)
	listed := make(map[uuid.UUID]bool, len(blocks))
	for _, m := range blocks {
		listed[m.BlockID] = true
	}
	// A job that found its block gone (let go before it read it) calls
	// for another read of the block list, which shows what took the
	// block's place: once, in the generation that planned the job. A later
	// generation read the list again (and planned jobs for what it
	// showed), unless the list still shows the block gone.
	gone := false
	for _, j := range jobs {
		if j.State == Failed {
			s.failRequestLocked(r, fmt.Sprintf("job %s on block %s failed: %s", j.ID, j.Blocks[0], j.Error))
			return
		}
		if j.Result != nil && j.Result.Gone && (j.Redact.Generation == 0 || j.Redact.Generation == r.Generation || listed[j.Blocks[0]]) {
			gone = true
		}
	}
	// Blocks no job of the request read (new since it was planned): with
	// a query, a block without a find job; and a block that may hold a
	// trace of the set without a rewrite job of the set.
	found, rewritten := map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
	for _, j := range s.jobs {
		switch {
		case j.Redact == nil || j.Redact.Request != r.ID:
		case j.Redact.Find:
			found[j.Blocks[0]] = true
		case j.Redact.Set == r.Set:
			rewritten[j.Blocks[0]] = true
		}
	}
	ids := r.ids()
	var left []uuid.UUID
	for _, m := range blocks {
		if r.Query != "" && !found[m.BlockID] || !rewritten[m.BlockID] && mayHold(m, ids) {
			left = append(left, m.BlockID)
		}
	}
	if !gone && len(left) == 0 {
		r.State = RequestDone
		c := s.countsLocked(r)
		r.Final = &c
		s.logger.Info("redaction request done", "request", r.ID, "tenant", r.Tenant, "traces", c.Traces, "spans", c.Spans, "blocks_rewritten", c.BlocksRewritten, "dry_run", r.DryRun)
		return
	}
	if r.Generation >= s.cfg.RedactionMaxGenerations {
		s.failRequestLocked(r, fmt.Sprintf("after %d generations, %d blocks that may hold the traces were not read (%v); submit the request again", r.Generation, len(left), left))
		return
	}
	r.State, r.NotBefore = RequestQueued, now.Add(s.cfg.RedactionRescanDelay)
}

// AdvanceRedactions moves every unfinished redaction request on as far as
// it can go now, and saves work.json if one moved.
func (s *Scheduler) AdvanceRedactions(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.advanceAllLocked() {
		return nil
	}
	return s.save(ctx)
}

// advanceAllLocked advances every unfinished request (each plan cycle).
func (s *Scheduler) advanceAllLocked() bool {
	changed := false
	for _, r := range s.requests {
		if r.Done() {
			continue
		}
		prev, gen := r.State, r.Generation
		s.advanceLocked(r)
		changed = changed || r.State != prev || r.Generation != gen
	}
	return changed
}

// redactingTenantLocked reports whether tenant has an unfinished request:
// compaction is not planned for it meanwhile.
func (s *Scheduler) redactingTenantLocked(tenant string) bool {
	for _, r := range s.requests {
		if r.Tenant == tenant && !r.Done() {
			return true
		}
	}
	return false
}

func hexIDs(ids [][16]byte) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = hex.EncodeToString(id[:])
	}
	return out
}

// setHash identifies a sorted set of trace IDs.
func setHash(ids []string) string {
	h := sha256.New()
	for _, t := range ids {
		h.Write([]byte(t))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
