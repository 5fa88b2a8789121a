package main

// The redaction part of the backend crash test: requests submitted during
// the load (by trace ID, and by a query on an attribute only some traces
// carry), the kill moments of redaction jobs and requests, and what the
// checks expect of the traces the requests name.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/internal/block"
)

// The kill moments of redaction.
const (
	// A worker running a rewrite job of a request, before its output's
	// meta.json (the input still listed).
	atRedactRun killMoment = "redact-run"
	// A worker running a rewrite job whose output's meta.json is written
	// and whose input has no meta.compacted.json yet.
	atRedactUploaded killMoment = "redact-uploaded"
	// A worker running a rewrite job whose input has its
	// meta.compacted.json: the job is not reported done yet.
	atRedactMarked killMoment = "redact-marked"
	// The scheduler right after it rewrote work.json with a request in
	// the finding or redacting state.
	atRequestSaved killMoment = "request-saved"
)

func (m killMoment) redaction() bool {
	return m == atRedactRun || m == atRedactUploaded || m == atRedactMarked || m == atRequestSaved
}

// crashGroupAttr tags one trace of each push to crashKept with the load's
// current group; a query request redacts the traces of a closed group.
const crashGroupAttr = "crash.group"

// crashReq is a redaction request the test submitted, and the traces it
// must remove: every trace it names was in a listed block before it was
// submitted.
type crashReq struct {
	id, query string
	traces    map[[16]byte]bool
	submitted time.Time
	done      bool
	doneIn    time.Duration
	counts    scheduler.RequestCounts
}

// readRequests reads the redaction requests of work.json (nil while
// there is none or it is being rewritten).
func (r *crashRig) readRequests() []scheduler.Request { return r.readWorkFile().Redactions }

// redactState tells what the bucket holds of a rewrite job: its output's
// meta.json, and the input's meta.json and meta.compacted.json.
func (r *crashRig) redactState(j scheduler.Job) (written, listed, marked bool) {
	in := j.Blocks[0]
	out := block.RedactedID(j.Tenant, in, j.Redact.Request, j.Redact.Set)
	return r.exists(j.Tenant, out, block.MetaName), r.exists(j.Tenant, in, block.MetaName), r.exists(j.Tenant, in, block.CompactedName)
}

// redactHit says whether the running job j of worker w is at moment m.
func (r *crashRig) redactHit(m killMoment, j scheduler.Job, w *crashProc, late bool) (bool, string) {
	if j.Type != scheduler.JobRedaction || j.Redact == nil || j.Redact.Find || len(j.Blocks) != 1 {
		return false, ""
	}
	written, listed, marked := r.redactState(j)
	hit := false
	switch m {
	case atRedactRun:
		// Spooling: the rewrite is under way (a block without the
		// traces is not rewritten); late, any job before its output.
		hit = !written && listed && !marked && (spooling(w) || late)
	case atRedactUploaded:
		// Not a retry that finds its input deleted: the input is listed.
		hit = written && listed && !marked
	case atRedactMarked:
		hit = marked
	}
	if !hit {
		return false, ""
	}
	return true, fmt.Sprintf("output written: %v, input listed: %v, input let go: %v, spooling: %v", written, listed, marked, spooling(w))
}

// openRequests counts the requests of work.json not done or failed.
func (r *crashRig) openRequests() int {
	n := 0
	for _, q := range r.readRequests() {
		if !q.Done() {
			n++
		}
	}
	return n
}

// feedRedaction submits a request when none is open, alternating by trace
// ID and by query: a redaction moment needs a request running.
func (r *crashRig) feedRedaction() {
	if r.openRequests() > 0 {
		return
	}
	for _, q := range r.reqs {
		if !q.done {
			// Submitted, not yet in work.json as open: a status read says.
			r.refreshRequests()
			if !q.done {
				return
			}
		}
	}
	if len(r.reqs)%2 == 0 {
		r.redactByID(8)
	} else {
		r.redactGroup()
	}
}

// redactBothWays submits a request by trace ID and one by query unless
// requests of each kind were submitted already (the load goes on).
func (r *crashRig) redactBothWays() {
	byID, byQuery := false, false
	for _, q := range r.reqs {
		byID, byQuery = byID || q.query == "", byQuery || q.query != ""
	}
	if !byID {
		r.redactByID(8)
	}
	if !byQuery {
		r.redactGroup()
	}
}

// schedHTTP is the scheduler's HTTP address.
func (r *crashRig) schedHTTP() string { return loopback(r.sched.ps.http) }

// submitRedaction posts spec for crashKept to the scheduler, retrying while
// it is not up (a restart waits for the lock's lease), and returns the
// request's ID.
func (r *crashRig) submitRedaction(spec map[string]any) string {
	t := r.t
	body, _ := json.Marshal(spec)
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.schedHTTP()+"/api/backend/redactions", bytes.NewReader(body))
		req.Header.Set("X-Scope-OrgID", crashKept)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusAccepted:
			var st scheduler.RequestStatus
			if err := json.Unmarshal(b, &st); err != nil || st.ID == "" {
				t.Fatalf("cannot read the answer to a redaction request: %v: %s", err, b)
			}
			return st.ID
		case http.StatusServiceUnavailable:
			last = string(b)
			time.Sleep(200 * time.Millisecond)
		default:
			t.Fatalf("redaction request %s: %d %s", body, resp.StatusCode, b)
		}
	}
	t.Fatalf("redaction request %s not accepted within a minute: %s", body, last)
	return ""
}

// redacted are the traces named by any request so far.
func (r *crashRig) redacted() map[[16]byte]bool {
	out := map[[16]byte]bool{}
	for _, q := range r.reqs {
		for tid := range q.traces {
			out[tid] = true
		}
	}
	return out
}

// inListedBlocks returns the traces of acked all of whose spans are in
// the blocks of crashKept a reader lists.
func (r *crashRig) inListedBlocks(acked map[[16]byte][][8]byte) map[[16]byte]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counts, _, err := visibleSpans(ctx, r.bkt, crashKept)
	if err != nil {
		return nil
	}
	out := map[[16]byte]bool{}
	for tid, sids := range acked {
		all := true
		for _, sid := range sids {
			if counts[hex.EncodeToString(tid[:])+"/"+hex.EncodeToString(sid[:])] == 0 {
				all = false
				break
			}
		}
		if all {
			out[tid] = true
		}
	}
	return out
}

// redactByID submits a request naming n traces of crashKept acknowledged
// a while ago, untagged, named by no earlier request and in listed blocks.
func (r *crashRig) redactByID(n int) {
	acked := r.load.snapshot(crashKept)
	old := r.load.ackedBefore(crashKept, time.Now().Add(-4*time.Second))
	taken := r.redacted()
	tagged := r.load.taggedSet()
	listed := r.inListedBlocks(acked)
	var cand [][16]byte
	for _, tid := range old {
		if !taken[tid] && !tagged[tid] && listed[tid] {
			cand = append(cand, tid)
		}
	}
	if len(cand) == 0 {
		r.t.Logf("no trace to redact by ID yet")
		return
	}
	mathrand.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	cand = cand[:min(n, len(cand))]
	q := &crashReq{traces: map[[16]byte]bool{}, submitted: time.Now()}
	var ids []string
	for _, tid := range cand {
		q.traces[tid] = true
		ids = append(ids, hex.EncodeToString(tid[:]))
	}
	q.id = r.submitRedaction(map[string]any{"traceIDs": ids})
	r.reqs = append(r.reqs, q)
	r.t.Logf("redaction %s submitted: %d traces by ID", q.id, len(ids))
}

// redactGroup closes the load's current group, waits until all its traces
// are in listed blocks, and submits a request for the query that matches
// them (and no other trace).
func (r *crashRig) redactGroup() {
	group := r.load.nextGroup()
	tids := r.load.taggedOf(group)
	if len(tids) == 0 {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		listed := r.inListedBlocks(r.load.snapshot(crashKept))
		all := true
		for _, tid := range tids {
			all = all && listed[tid]
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the %d traces of group %s are not all in listed blocks after 30s", len(tids), group)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // the scheduler's block list polls every 300ms
	q := &crashReq{query: fmt.Sprintf(`{ span.%s = "%s" }`, crashGroupAttr, group), traces: map[[16]byte]bool{}, submitted: time.Now()}
	for _, tid := range tids {
		q.traces[tid] = true
	}
	q.id = r.submitRedaction(map[string]any{"query": q.query})
	r.reqs = append(r.reqs, q)
	r.t.Logf("redaction %s submitted: %s (%d traces)", q.id, q.query, len(tids))
}

// refreshRequests reads the state of every request not known done; a
// failed request fails the test.
func (r *crashRig) refreshRequests() {
	client := &http.Client{Timeout: 5 * time.Second}
	for _, q := range r.reqs {
		if q.done {
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+r.schedHTTP()+"/api/backend/redactions/"+q.id, nil)
		req.Header.Set("X-Scope-OrgID", crashKept)
		resp, err := client.Do(req)
		if err != nil {
			continue // the scheduler is down or restarting
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		var st scheduler.RequestStatus
		if err := json.Unmarshal(b, &st); err != nil {
			r.t.Fatalf("redaction %s: cannot read its status: %v: %s", q.id, err, b)
		}
		switch st.State {
		case scheduler.RequestFailed:
			r.t.Fatalf("redaction %s (%d traces, query %q) failed: %s", q.id, len(q.traces), q.query, st.Error)
		case scheduler.RequestDone:
			q.done, q.doneIn, q.counts = true, time.Since(q.submitted), st.Counts
			r.t.Logf("redaction %s done in %s: %d traces, %d spans removed, %d blocks rewritten, %d emptied, generation %d",
				q.id, q.doneIn.Round(time.Millisecond), st.Counts.Traces, st.Counts.Spans, st.Counts.BlocksRewritten, st.Counts.BlocksEmptied, st.Generation)
		}
	}
}

// waitRequestsDone waits until every request is done.
func (r *crashRig) waitRequestsDone(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		r.refreshRequests()
		open := 0
		for _, q := range r.reqs {
			if !q.done {
				open++
			}
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d redaction requests not done within %s", open, timeout)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// checkRequests checks, once all are done, what work.json keeps of the
// requests: a query request found exactly the traces of its group, and
// none removed more traces than it names.
func (r *crashRig) checkRequests() {
	t := r.t
	byID := map[string]scheduler.Request{}
	for _, q := range r.readRequests() {
		byID[q.ID] = q
	}
	for _, q := range r.reqs {
		w, ok := byID[q.id]
		if !ok {
			t.Errorf("redaction %s is not in work.json", q.id)
			continue
		}
		if w.State != scheduler.RequestDone {
			t.Errorf("redaction %s ended %s: %s", q.id, w.State, w.Error)
		}
		if q.query != "" {
			var want []string
			for tid := range q.traces {
				want = append(want, hex.EncodeToString(tid[:]))
			}
			slices.Sort(want)
			if !slices.Equal(w.Found, want) {
				t.Errorf("redaction %s (%s) found %d traces %v, want the %d of its group %v", q.id, q.query, len(w.Found), w.Found, len(want), want)
			}
		}
		// Each trace named was whole in listed blocks: its spans are all
		// removed. (The count of traces can be short: a job retried
		// after its input was deleted reports its output without them.)
		if q.counts.Traces > len(q.traces) || q.counts.Spans != int64(crashSpans*len(q.traces)) {
			t.Errorf("redaction %s removed %d traces and %d spans, want %d spans of the %d traces it names", q.id, q.counts.Traces, q.counts.Spans, crashSpans*len(q.traces), len(q.traces))
			r.logRequestJobs(q.id)
		}
		t.Logf("redaction %s (%s): %d traces named, done in %s, counts %+v", q.id, map[bool]string{true: "query", false: "by ID"}[q.query != ""], len(q.traces), q.doneIn.Round(time.Millisecond), q.counts)
	}
}

// expectations splits the traces acknowledged to crashKept: required
// (found exactly once), absent (named by a request done: found nowhere)
// and maybe (named by a request still running: never twice; some of its
// spans may be gone while the request runs).
func (r *crashRig) expectations(kept map[[16]byte][][8]byte) (required, absent, maybe map[[16]byte][][8]byte) {
	r.refreshRequests()
	required, absent, maybe = map[[16]byte][][8]byte{}, map[[16]byte][][8]byte{}, map[[16]byte][][8]byte{}
	state := map[[16]byte]int{} // 1 maybe, 2 absent
	for _, q := range r.reqs {
		for tid := range q.traces {
			if q.done {
				state[tid] = 2
			} else if state[tid] == 0 {
				state[tid] = 1
			}
		}
	}
	for tid, sids := range kept {
		switch state[tid] {
		case 0:
			required[tid] = sids
		case 1:
			maybe[tid] = sids
		case 2:
			absent[tid] = sids
		}
	}
	return required, absent, maybe
}

// logRequestJobs logs the last seen state of every job of request id.
func (r *crashRig) logRequestJobs(id string) {
	r.jobs.mu.Lock()
	defer r.jobs.mu.Unlock()
	for jid, j := range r.jobs.last {
		if j.Redact == nil || j.Redact.Request != id {
			continue
		}
		res, _ := json.Marshal(j.Result)
		r.t.Logf("job %s on block %s: find %v, generation %d, %s, attempts %d, workers %v, result %s", jid, j.Blocks[0], j.Redact.Find, j.Redact.Generation, j.State, j.Attempts, r.jobs.workers[jid], res)
	}
}
