package main

// The crash test of the backend (issue 15): the backend scheduler and two
// backend workers, each a process of its own, are killed with SIGKILL at
// chosen moments of their jobs while spans keep coming, and restarted;
// after each restart every acknowledged span is found once, by trace ID,
// by search and in the blocks a reader lists, but the traces of the
// redaction requests submitted meanwhile (crash_redact_test.go), which are
// found nowhere once their request is done. TestBackendCrash runs a few
// kills within make test; TestBackendCrashLong (make test-long) runs 24.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/testlong"
)

// The tenants of the crash test: crashKept keeps its blocks (every
// acknowledged span must stay, once); crashExpiring has a block_retention
// of crashRetention, so that retention jobs let its blocks go and delete
// them while the processes are killed.
const (
	crashKept      = "crash-kept"
	crashExpiring  = "crash-expiring"
	crashRetention = 4 * time.Second
	crashSpans     = 4 // spans per trace
	crashService   = "crash-test"
)

// A kill moment says when a process is killed: a worker at a point of a
// compaction, retention or redaction job (the redaction moments are in
// crash_redact_test.go), or the scheduler.
type killMoment string

const (
	// During the merge: a compaction job runs and its output's meta.json
	// is not written (the worker's spool file, or data.parquet, is there).
	atMerge killMoment = "merge"
	// After the output's upload: its meta.json is there, no input is let
	// go yet.
	atUploaded killMoment = "uploaded"
	// Between letting the inputs go and deleting them: an input of a
	// running job has its meta.compacted.json.
	atMarked killMoment = "marked"
	// A worker running a retention job.
	atRetention killMoment = "retention"
	// A worker at a random time.
	atRandomWorker killMoment = "random-worker"
	// The scheduler right after it rewrote work.json (a job handed out,
	// renewed, finished or planned).
	atWorkSaved killMoment = "work-saved"
	// The scheduler at a random time.
	atRandomScheduler killMoment = "random-scheduler"
)

func (m killMoment) scheduler() bool {
	return m == atWorkSaved || m == atRandomScheduler || m == atRequestSaved
}

// crashProc is one process of the rig, restarted with the same config.
type crashProc struct {
	name, target, cfg string
	ps                ports
	env               []string
	tmp               string // the process's TMPDIR: a worker spools merges there
	p                 *proc
	runs              []*proc // every run, for their logs
}

// crashRig is weft's backend as processes on one filesystem bucket: a
// front (distributor, live-store, block-builder, querier,
// query-frontend), the backend scheduler and two backend workers.
type crashRig struct {
	t       *testing.T
	bucket  string
	bkt     objstore.Bucket
	front   *crashProc
	sched   *crashProc
	workers []*crashProc
	load    *crashLoad
	jobs    *jobLog
	kills   []killRecord
	reqs    []*crashReq // the redaction requests submitted
}

// killRecord is one kill and what the bucket showed right after it.
type killRecord struct {
	moment killMoment
	victim string // process name
	job    string // the job the killed worker ran, if any
	worker string // its worker name in work.json
	found  string // the state of the job's blocks after the kill
}

// crashConfig is the config every process of the rig runs with.
func crashConfig(ps ports, data, bucket, overridesFile string, schedGRPC int) string {
	cfg := durableConfig(ps, data)
	cfg = strings.Replace(cfg, "path: "+data+"/blocks\n", "path: "+bucket+"\n", 1)
	cfg = strings.Replace(cfg, "    backend: local\n", "    backend: local\n    blocklist_poll: 300ms\n", 1)
	// query_end_cutoff 0: searches reach the spans just pushed.
	// A short live-store window: a redacted trace is served from the
	// blocks alone a few seconds after its last span.
	return cfg + fmt.Sprintf(`multitenancy_enabled: true
live_store:
  window: 3s
  sweep_interval: 500ms
query_frontend:
  query_end_cutoff: 0s
overrides:
  defaults:
    ingestion:
      max_traces_per_user: 0
  per_tenant_override_config: %s
  per_tenant_override_period: 1s
backend_scheduler:
  job_lease: 5s
  job_timeout: 200ms
  maintenance_interval: 500ms
  work:
    prune_age: 10m
  provider:
    redaction:
      poll_interval: 200ms
      rescan_delay: 1s
    retention:
      interval: 2s
    compaction:
      min_cycle_interval: 300ms
      compaction:
        compaction_cycle: 300ms
backend_worker:
  backend_scheduler_addr: 127.0.0.1:%d
  backoff: {min_period: 50ms, max_period: 500ms}
  finish_on_shutdown_timeout: 1s
  compaction:
    compacted_block_retention: 3s
`, overridesFile, schedGRPC)
}

func startCrashRig(t *testing.T) *crashRig {
	r := &crashRig{t: t, bucket: t.TempDir(), jobs: newJobLog()}
	var err error
	if r.bkt, err = filesystem.NewBucket(r.bucket); err != nil {
		t.Fatal(err)
	}
	overrides := writeFile(t, "overrides.yaml", fmt.Sprintf("overrides:\n  %s:\n    compaction:\n      block_retention: %s\n", crashExpiring, crashRetention))
	schedPorts := newPorts(t)
	mk := func(name, target string, ps ports) *crashProc {
		data := t.TempDir()
		tmp := t.TempDir()
		return &crashProc{name: name, target: target, ps: ps, tmp: tmp, env: []string{"TMPDIR=" + tmp},
			cfg: writeFile(t, name+".yaml", crashConfig(ps, data, r.bucket, overrides, schedPorts.grpc))}
	}
	r.front = mk("front", "distributor,live-store,block-builder,metrics-generator,querier,query-frontend", newPorts(t))
	r.sched = mk("scheduler", "backend-scheduler", schedPorts)
	r.workers = []*crashProc{mk("worker-1", "backend-worker", newPorts(t)), mk("worker-2", "backend-worker", newPorts(t))}
	for _, c := range append([]*crashProc{r.front, r.sched}, r.workers...) {
		r.start(c)
	}
	r.load = newCrashLoad(t, loopback(r.front.ps.otlpHTTP))
	t.Cleanup(func() {
		if t.Failed() {
			r.logJobs()
		}
	})
	return r
}

func (r *crashRig) start(c *crashProc) {
	c.p = startWeft(r.t, c.env, "-config.file="+c.cfg, "-target="+c.target)
	c.runs = append(c.runs, c.p)
	c.p.waitReady(r.t, loopback(c.ps.http))
}

// kill sends SIGKILL to c and waits for it to die.
func (r *crashRig) kill(c *crashProc) {
	if err := c.p.cmd.Process.Kill(); err != nil {
		r.t.Fatalf("cannot kill %s: %v", c.name, err)
	}
	select {
	case <-c.p.done:
	case <-time.After(10 * time.Second):
		r.t.Fatalf("%s did not die after SIGKILL", c.name)
	}
}

// workerPID is the process ID in a worker name (host-PID-random).
func workerPID(name string) int {
	parts := strings.Split(name, "-")
	if len(parts) < 3 {
		return 0
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	return pid
}

// byWorker returns the rig's worker process whose current run is the
// worker called name, or nil.
func (r *crashRig) byWorker(name string) *crashProc {
	pid := workerPID(name)
	for _, w := range r.workers {
		if w.p.cmd.Process.Pid == pid && !w.p.exited() {
			return w
		}
	}
	return nil
}

// workFile is what the crash test reads of the scheduler's work.json.
type workFile struct {
	Jobs       []scheduler.Job     `json:"jobs"`
	Redactions []scheduler.Request `json:"redactions"`
}

// readWorkFile reads work.json (empty while there is none or it is being
// rewritten).
func (r *crashRig) readWorkFile() workFile {
	var w workFile
	b, err := os.ReadFile(filepath.Join(r.bucket, scheduler.WorkName))
	if err != nil || json.Unmarshal(b, &w) != nil {
		return workFile{}
	}
	return w
}

// readWork reads the jobs of work.json (nil while there is none or it is
// being rewritten).
func (r *crashRig) readWork() []scheduler.Job { return r.readWorkFile().Jobs }

func (r *crashRig) exists(tenant string, id uuid.UUID, object string) bool {
	_, err := os.Stat(filepath.Join(r.bucket, tenant, id.String(), object))
	return err == nil
}

// jobState tells what the bucket holds of a compaction job: whether its
// output is written, and how many of its inputs are let go.
func (r *crashRig) jobState(j scheduler.Job) (written bool, marked int) {
	out := block.CompactedID(j.Tenant, j.Blocks)
	written = r.exists(j.Tenant, out, block.MetaName)
	for _, in := range j.Blocks {
		if r.exists(j.Tenant, in, block.CompactedName) {
			marked++
		}
	}
	return written, marked
}

func spooling(w *crashProc) bool {
	m, _ := filepath.Glob(filepath.Join(w.tmp, "compact-*.parquet"))
	return len(m) > 0
}

// waitMoment waits, polling the bucket every few milliseconds, for the
// moment m, and kills the process it names right then. It returns false
// when the moment did not come within timeout (nothing is killed).
func (r *crashRig) waitMoment(m killMoment, timeout time.Duration) bool {
	t := r.t
	deadline := time.Now().Add(timeout)
	if m == atRandomWorker || m == atRandomScheduler {
		time.Sleep(time.Duration(mathrand.Int64N(int64(3 * time.Second))))
		victim := r.sched
		rec := killRecord{moment: m, victim: victim.name}
		if m == atRandomWorker {
			// Not a worker in a job's last attempt (that fails the job,
			// by design): wait for one that is not.
			for {
				victim = r.workers[mathrand.IntN(len(r.workers))]
				rec = killRecord{moment: m, victim: victim.name}
				last := false
				for _, j := range r.readWork() {
					if j.State == scheduler.Running && r.byWorker(j.Worker) == victim {
						rec.job, rec.worker = j.ID, j.Worker
						last = last || j.Attempts >= scheduler.MaxAttempts
					}
				}
				if !last {
					break
				}
				if time.Now().After(deadline) {
					return false
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		r.kill(victim)
		r.record(rec)
		return true
	}
	if m == atWorkSaved {
		path := filepath.Join(r.bucket, scheduler.WorkName)
		first, _ := os.Stat(path)
		for time.Now().Before(deadline) {
			fi, err := os.Stat(path)
			if err == nil && (first == nil || !fi.ModTime().Equal(first.ModTime())) {
				r.kill(r.sched)
				r.record(killRecord{moment: m, victim: r.sched.name})
				return true
			}
			time.Sleep(2 * time.Millisecond)
		}
		return false
	}
	if m == atRequestSaved {
		path := filepath.Join(r.bucket, scheduler.WorkName)
		first, _ := os.Stat(path)
		fed := time.Now()
		for time.Now().Before(deadline) {
			fi, err := os.Stat(path)
			if err == nil && (first == nil || !fi.ModTime().Equal(first.ModTime())) {
				first = fi
				for _, q := range r.readRequests() {
					if q.State == scheduler.RequestFinding || q.State == scheduler.RequestRedacting {
						r.kill(r.sched)
						r.record(killRecord{moment: m, victim: r.sched.name, found: fmt.Sprintf("request %s %s, generation %d", q.ID, q.State, q.Generation)})
						return true
					}
				}
			}
			if time.Since(fed) > time.Second {
				r.feedRedaction()
				fed = time.Now()
			}
			time.Sleep(2 * time.Millisecond)
		}
		return false
	}
	fed := time.Now()
	for time.Now().Before(deadline) {
		if m.redaction() && time.Since(fed) > time.Second {
			r.feedRedaction()
			fed = time.Now()
		}
		for _, j := range r.readWork() {
			// A job on its last attempt is not killed: that fails it, by
			// design (scheduler.MaxAttempts).
			if j.State != scheduler.Running || j.Attempts >= scheduler.MaxAttempts {
				continue
			}
			w := r.byWorker(j.Worker)
			if w == nil {
				continue
			}
			hit, found := false, ""
			switch m {
			case atRedactRun, atRedactUploaded, atRedactMarked:
				hit, found = r.redactHit(m, j, w, time.Until(deadline) < timeout/2)
			case atRetention:
				hit = j.Type == scheduler.JobRetention
			case atMerge, atUploaded, atMarked:
				if j.Type != scheduler.JobCompaction {
					continue
				}
				written, marked := r.jobState(j)
				switch m {
				case atMerge:
					hit = !written && spooling(w)
				case atUploaded:
					hit = written && marked == 0
				case atMarked:
					hit = marked > 0
				}
			default:
				t.Fatalf("unknown kill moment %q", m)
			}
			if !hit {
				continue
			}
			r.kill(w)
			rec := killRecord{moment: m, victim: w.name, job: j.ID, worker: j.Worker, found: found}
			if j.Type == scheduler.JobCompaction {
				written, marked := r.jobState(j)
				rec.found = fmt.Sprintf("output written: %v, inputs let go: %d of %d", written, marked, len(j.Blocks))
			}
			r.record(rec)
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

func (r *crashRig) record(rec killRecord) {
	r.kills = append(r.kills, rec)
	r.t.Logf("kill %d: %s at %s (job %s) %s", len(r.kills), rec.victim, rec.moment, rec.job, rec.found)
}

// crashOnce kills the process moment m names, at that moment (or, if it
// does not come within 30s, at a random time), and restarts it.
func (r *crashRig) crashOnce(m killMoment) {
	if m.redaction() {
		r.feedRedaction()
	}
	if !r.waitMoment(m, 30*time.Second) {
		r.t.Logf("moment %s did not come within 30s: killing at a random time", m)
		if m.scheduler() {
			m = atRandomScheduler
		} else {
			m = atRandomWorker
		}
		r.waitMoment(m, 0)
	}
	for _, c := range append([]*crashProc{r.sched}, r.workers...) {
		if c.p.exited() {
			r.start(c)
		}
	}
}

// crashLoad pushes traces with the OpenTelemetry SDK's OTLP/HTTP exporter,
// one exporter per tenant, and keeps what was acknowledged.
type crashLoad struct {
	t   *testing.T
	rec *endedSpans
	tp  *sdktrace.TracerProvider
	exp map[string]*otlptrace.Exporter

	mu    sync.Mutex
	seq   int
	acked map[string]map[[16]byte][][8]byte // tenant → trace → span IDs
	order map[string][][16]byte             // tenant → traces, in push order
	at    map[[16]byte]time.Time            // trace → when it was acknowledged
	// group tags one trace of every fourth push to crashKept
	// (crashGroupAttr); tagged are the traces of each group.
	groupSeq int
	pushes   int
	tagged   map[string][][16]byte
}

// endedSpans is a span processor that keeps the spans ended, for the test
// to export them itself and see whether they were acknowledged.
type endedSpans struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (e *endedSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e *endedSpans) OnEnd(s sdktrace.ReadOnlySpan) {
	e.mu.Lock()
	e.spans = append(e.spans, s)
	e.mu.Unlock()
}
func (e *endedSpans) Shutdown(context.Context) error   { return nil }
func (e *endedSpans) ForceFlush(context.Context) error { return nil }
func (e *endedSpans) take() []sdktrace.ReadOnlySpan {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.spans
	e.spans = nil
	return s
}

func newCrashLoad(t *testing.T, otlpHTTP string) *crashLoad {
	l := &crashLoad{t: t, rec: &endedSpans{}, exp: map[string]*otlptrace.Exporter{},
		acked: map[string]map[[16]byte][][8]byte{}, order: map[string][][16]byte{},
		at: map[[16]byte]time.Time{}, groupSeq: 1, tagged: map[string][][16]byte{}}
	l.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(l.rec),
		sdktrace.WithResource(resource.NewWithAttributes("", attribute.String("service.name", crashService))))
	for _, tenant := range []string{crashKept, crashExpiring} {
		exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(otlpHTTP), otlptracehttp.WithInsecure(),
			otlptracehttp.WithHeaders(map[string]string{"X-Scope-OrgID": tenant}),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		l.exp[tenant] = exp
		l.acked[tenant] = map[[16]byte][][8]byte{}
	}
	return l
}

// push sends n traces of crashSpans spans to tenant; it fails the test if
// they are not acknowledged (the front is never killed).
func (l *crashLoad) push(tenant string, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	tr := l.tp.Tracer("crash")
	var tagged trace.TraceID
	group := l.group()
	tag := tenant == crashKept && l.pushes%4 == 0
	if tenant == crashKept {
		l.pushes++
	}
	for i := range n {
		l.seq++
		attrs := traceAttr(l.seq)
		if i == 0 && tag {
			attrs = trace.WithAttributes(attribute.Int("crash.seq", l.seq), attribute.String(crashGroupAttr, group))
		}
		ctx, root := tr.Start(context.Background(), "root", attrs)
		for i := 1; i < crashSpans; i++ {
			_, sp := tr.Start(ctx, fmt.Sprintf("child-%d", i), attrs)
			sp.End()
		}
		root.End()
		if i == 0 && tag {
			tagged = root.SpanContext().TraceID()
		}
	}
	spans := l.rec.take()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := l.exp[tenant].ExportSpans(ctx, spans); err != nil {
		return fmt.Errorf("cannot push %d spans to tenant %s: %w", len(spans), tenant, err)
	}
	for _, s := range spans {
		tid, sid := [16]byte(s.SpanContext().TraceID()), [8]byte(s.SpanContext().SpanID())
		if _, ok := l.acked[tenant][tid]; !ok {
			l.order[tenant] = append(l.order[tenant], tid)
		}
		l.acked[tenant][tid] = append(l.acked[tenant][tid], sid)
		l.at[tid] = time.Now()
	}
	if tagged.IsValid() {
		l.tagged[group] = append(l.tagged[group], [16]byte(tagged))
	}
	return nil
}

// group is the current group's name. l.mu is held.
func (l *crashLoad) group() string { return fmt.Sprintf("g%d", l.groupSeq) }

// nextGroup closes the current group, returning its name: the traces
// pushed from now on are tagged with the next.
func (l *crashLoad) nextGroup() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.group()
	l.groupSeq++
	return g
}

// taggedOf returns the traces of group.
func (l *crashLoad) taggedOf(group string) [][16]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.tagged[group])
}

// taggedSet returns every tagged trace.
func (l *crashLoad) taggedSet() map[[16]byte]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[[16]byte]bool{}
	for _, ts := range l.tagged {
		for _, t := range ts {
			out[t] = true
		}
	}
	return out
}

// ackedBefore returns the traces of tenant acknowledged before t.
func (l *crashLoad) ackedBefore(tenant string, t time.Time) [][16]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][16]byte
	for _, tid := range l.order[tenant] {
		if l.at[tid].Before(t) {
			out = append(out, tid)
		}
	}
	return out
}

func traceAttr(seq int) trace.SpanStartOption {
	return trace.WithAttributes(attribute.Int("crash.seq", seq))
}

// snapshot returns a copy of what tenant had acknowledged.
func (l *crashLoad) snapshot(tenant string) map[[16]byte][][8]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[[16]byte][][8]byte, len(l.acked[tenant]))
	for k, v := range l.acked[tenant] {
		out[k] = slices.Clone(v)
	}
	return out
}

// run pushes a few traces to each tenant every period until stop is
// closed; done is closed when it has stopped.
func (l *crashLoad) run(period time.Duration, perPush int, stop <-chan struct{}) (done <-chan struct{}, errs <-chan error) {
	d := make(chan struct{})
	e := make(chan error, 1)
	go func() {
		defer close(d)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			for _, tenant := range []string{crashKept, crashExpiring} {
				if err := l.push(tenant, perPush); err != nil {
					e <- err
					return
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return d, e
}

// visibleSpans reads the blocks of tenant a reader lists (those with a
// meta.json, less those another listed block was compacted from) and
// counts each span, keyed trace/span in hex.
func visibleSpans(ctx context.Context, bkt objstore.BucketReader, tenant string) (map[string]int, int, error) {
	metas, err := block.ListBlocks(ctx, bkt, tenant)
	if err != nil {
		return nil, 0, err
	}
	hidden := map[uuid.UUID]bool{}
	for _, m := range metas {
		for _, in := range m.CompactedFrom {
			hidden[in] = true
		}
	}
	counts := map[string]int{}
	n := 0
	for _, m := range metas {
		if hidden[m.BlockID] {
			continue
		}
		n++
		rd, err := block.Open(ctx, bkt, m)
		if err != nil {
			return nil, 0, err
		}
		data, err := rd.ReadAll(ctx)
		rd.Close()
		if err != nil {
			return nil, 0, err
		}
		var b otlpwire.Batch
		if err := b.Parse(data); err != nil {
			return nil, 0, fmt.Errorf("block %s: %w", m.BlockID, err)
		}
		for _, res := range b.Resources {
			for _, sc := range res.Scopes {
				for _, sp := range sc.Spans {
					counts[hex.EncodeToString(sp.TraceID)+"/"+hex.EncodeToString(sp.SpanID)]++
				}
			}
		}
	}
	return counts, n, nil
}

// crashSpanKeys are the spans of acked, keyed trace/span in hex.
func crashSpanKeys(acked map[[16]byte][][8]byte) map[string]bool {
	keys := map[string]bool{}
	for tid, sids := range acked {
		for _, sid := range sids {
			keys[hex.EncodeToString(tid[:])+"/"+hex.EncodeToString(sid[:])] = true
		}
	}
	return keys
}

// checkBlocks compares the spans the listed blocks of tenant hold with
// what was acknowledged: "" when no span is there twice, none is unknown,
// none of absent (the traces of redactions done) is there and, when
// required is not nil, each of required is there; else what is wrong.
func (r *crashRig) checkBlocks(tenant string, required, absent map[[16]byte][][8]byte) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	counts, blocks, err := visibleSpans(ctx, r.bkt, tenant)
	if err != nil {
		return "cannot read the blocks: " + err.Error(), 0
	}
	// Every span pushed so far, taken after the blocks were read: the
	// spans of a push still in flight are counted once it is answered.
	known := crashSpanKeys(r.load.snapshot(tenant))
	var problems []string
	for k, n := range counts {
		switch {
		case n > 1:
			problems = append(problems, fmt.Sprintf("span %s is in %d listed blocks", k, n))
		case !known[k]:
			problems = append(problems, fmt.Sprintf("span %s was never acknowledged", k))
		}
	}
	if required != nil {
		want := crashSpanKeys(required)
		missing := 0
		for k := range want {
			if counts[k] == 0 {
				missing++
			}
		}
		if missing > 0 {
			problems = append(problems, fmt.Sprintf("%d of %d acknowledged spans are in no listed block", missing, len(want)))
		}
	}
	left := 0
	for k := range crashSpanKeys(absent) {
		if counts[k] > 0 {
			left++
		}
	}
	if left > 0 {
		problems = append(problems, fmt.Sprintf("%d spans of the %d traces of redactions done are in listed blocks", left, len(absent)))
	}
	if len(problems) > 5 {
		problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
	}
	return strings.Join(problems, "; "), blocks
}

// checkByID fetches every trace of required, absent and maybe from the
// API and compares its span IDs: "" when each trace of required has
// exactly its acknowledged spans, each of absent none, and each of maybe
// some of its spans, none twice.
func checkByID(httpAddr, tenant string, required, absent, maybe map[[16]byte][][8]byte) string {
	client := &http.Client{Timeout: 15 * time.Second}
	bad := 0
	var first string
	all := map[[16]byte][][8]byte{}
	for _, m := range []map[[16]byte][][8]byte{required, absent, maybe} {
		for tid, sids := range m {
			all[tid] = sids
		}
	}
	for tid, sids := range all {
		req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/api/traces/"+hex.EncodeToString(tid[:]), nil)
		req.Header.Set("Accept", "application/protobuf")
		req.Header.Set("X-Scope-OrgID", tenant)
		resp, err := client.Do(req)
		if err != nil {
			return err.Error()
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got [][8]byte
		if resp.StatusCode == http.StatusOK {
			var td tracepb.TracesData
			if err := proto.Unmarshal(body, &td); err != nil {
				return fmt.Sprintf("trace %x: %v", tid, err)
			}
			for _, rs := range td.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						got = append(got, [8]byte(sp.SpanId))
					}
				}
			}
		}
		want := slices.Clone(sids)
		cmpIDs := func(a, b [8]byte) int { return strings.Compare(string(a[:]), string(b[:])) }
		slices.SortFunc(got, cmpIDs)
		slices.SortFunc(want, cmpIDs)
		ok := slices.Equal(got, want)
		what := "all"
		if _, gone := absent[tid]; gone {
			ok, what = len(got) == 0, "none (redacted)"
		} else if _, running := maybe[tid]; running {
			// Some blocks rewritten, others not yet: a subset, none twice.
			ok, what = len(slices.Compact(slices.Clone(got))) == len(got), "some, none twice (being redacted)"
			for _, sid := range got {
				ok = ok && slices.Contains(want, sid)
			}
		}
		if !ok {
			bad++
			if first == "" {
				first = fmt.Sprintf("trace %x: %d %d spans, want %s of %d", tid, resp.StatusCode, len(got), what, len(want))
			}
		}
	}
	if bad > 0 {
		return fmt.Sprintf("%d of %d traces (%d redacted, %d being redacted) are not served as they should be (first: %s)", bad, len(all), len(absent), len(maybe), first)
	}
	return ""
}

// checkSearch searches the tenant's traces of the test: "" when the
// search finds every trace of acked, no trace of absent and no trace that
// was not acknowledged, each trace but those of maybe with all its spans.
func (r *crashRig) checkSearch(httpAddr, tenant string, acked, absent, maybe map[[16]byte][][8]byte) string {
	q := url.QueryEscape(fmt.Sprintf(`{ resource.service.name = "%s" }`, crashService))
	now := time.Now().Unix()
	u := fmt.Sprintf("http://%s/api/search?q=%s&limit=%d&spss=%d&start=%d&end=%d", httpAddr, q, len(acked)+1000, crashSpans+1, now-3600, now+60)
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("X-Scope-OrgID", tenant)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("search: %d %s", resp.StatusCode, body)
	}
	var out struct {
		Traces []struct {
			TraceID  string `json:"traceID"`
			SpanSets []struct {
				Matched int `json:"matched"`
			} `json:"spanSets"`
		} `json:"traces"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Sprintf("search: %v", err)
	}
	known := r.load.snapshot(tenant)
	found := map[string]bool{}
	short, redacted := 0, 0
	for _, tr := range out.Traces {
		id := strings.Repeat("0", max(0, 32-len(tr.TraceID))) + tr.TraceID
		found[id] = true
		b, _ := hex.DecodeString(id)
		if _, ok := absent[[16]byte(b)]; ok {
			redacted++
		}
		if _, ok := maybe[[16]byte(b)]; ok {
			continue
		}
		matched := 0
		for _, ss := range tr.SpanSets {
			matched += ss.Matched
		}
		if matched != crashSpans {
			short++
		}
	}
	missing := 0
	for tid := range acked {
		if !found[hex.EncodeToString(tid[:])] {
			missing++
		}
	}
	unknown := 0
	for id := range found {
		b, _ := hex.DecodeString(id)
		if _, ok := known[[16]byte(b)]; !ok {
			unknown++
		}
	}
	if missing > 0 || unknown > 0 || short > 0 || redacted > 0 {
		b := string(body)
		if len(b) > 300 {
			b = b[:300] + "..."
		}
		return fmt.Sprintf("search found %d traces: %d of the %d acknowledged not found, %d never acknowledged, %d of the %d redacted, %d with other than %d matched spans (%s)", len(found), missing, len(acked), unknown, redacted, len(absent), short, crashSpans, b)
	}
	return ""
}

// checkAll waits until every span acknowledged so far to crashKept is
// found once by trace ID, by search and in the listed blocks, and no span
// of crashExpiring is listed twice. It fails the test after timeout,
// saying what was still wrong.
func (r *crashRig) checkAll(label string, timeout time.Duration) {
	t := r.t
	t.Helper()
	start := time.Now()
	kept := r.load.snapshot(crashKept)
	api := loopback(r.front.ps.http)
	var last string
	blocks := 0
	for time.Since(start) < timeout {
		var problems []string
		required, absent, maybe := r.expectations(kept)
		p, n := r.checkBlocks(crashKept, required, absent)
		blocks = n
		if p != "" {
			problems = append(problems, "blocks of "+crashKept+": "+p)
		}
		if p, _ := r.checkBlocks(crashExpiring, nil, nil); p != "" && !strings.HasPrefix(p, "cannot read") {
			problems = append(problems, "blocks of "+crashExpiring+": "+p)
		}
		if len(problems) == 0 {
			if p := checkByID(api, crashKept, required, absent, maybe); p != "" {
				problems = append(problems, "by ID: "+p)
			}
		}
		if len(problems) == 0 {
			if p := r.checkSearch(api, crashKept, required, absent, maybe); p != "" {
				problems = append(problems, "search: "+p)
			}
		}
		if len(problems) == 0 {
			t.Logf("check %s: the %d traces (%d spans) of %s found once by ID, by search and in %d listed blocks; the %d traces of redactions done found nowhere, the %d of redactions running never twice; no span of %s listed twice (%s)",
				label, len(required), len(required)*crashSpans, crashKept, blocks, len(absent), len(maybe), crashExpiring, time.Since(start).Round(time.Millisecond))
			return
		}
		if cur := strings.Join(problems, "; "); cur != last {
			t.Logf("check %s, %s in: %s", label, time.Since(start).Round(time.Millisecond), cur)
			last = cur
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("check %s: not settled within %s: %s", label, timeout, last)
}

// jobLog follows work.json: every worker each job was handed to, and its
// last state.
type jobLog struct {
	mu      sync.Mutex
	workers map[string][]string
	last    map[string]scheduler.Job
}

func newJobLog() *jobLog {
	return &jobLog{workers: map[string][]string{}, last: map[string]scheduler.Job{}}
}

// follow polls work.json every 20ms until stop is closed.
func (r *crashRig) follow(stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			jobs := r.readWork()
			r.jobs.mu.Lock()
			for _, j := range jobs {
				if j.Worker != "" && !slices.Contains(r.jobs.workers[j.ID], j.Worker) {
					r.jobs.workers[j.ID] = append(r.jobs.workers[j.ID], j.Worker)
				}
				r.jobs.last[j.ID] = j
			}
			r.jobs.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return done
}

func (r *crashRig) logJobs() {
	r.jobs.mu.Lock()
	defer r.jobs.mu.Unlock()
	for id, j := range r.jobs.last {
		r.t.Logf("job %s %s %s: %s attempts %d, workers %v, error %q", id, j.Type, j.Tenant, j.State, j.Attempts, r.jobs.workers[id], j.Error)
	}
}

// settle stops nothing but waits for the backend to finish its work on
// what was pushed: no job pending or running, every block directory of
// crashKept with its meta.json (let-go blocks and abandoned outputs
// deleted), no block of crashExpiring left, and no spool file left by a
// worker. It returns the number of crashKept blocks.
func (r *crashRig) settle(timeout time.Duration) {
	t := r.t
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		var problems []string
		open := 0
		for _, j := range r.readWork() {
			if j.State == scheduler.Pending || j.State == scheduler.Running {
				open++
			}
		}
		if open > 0 {
			problems = append(problems, fmt.Sprintf("%d jobs pending or running", open))
		}
		dirs := blockDirs(filepath.Join(r.bucket, crashKept))
		var notListed, empty []string
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, block.MetaName)); err != nil {
				files, _ := os.ReadDir(d)
				if len(files) == 0 {
					// The filesystem bucket's own directory, left by a kill
					// inside its Upload (after MkdirAll) or Delete (before
					// it removes the emptied directory): no object, which
					// object storage would not have.
					empty = append(empty, crashKept+"/"+filepath.Base(d))
				}
				for _, f := range files {
					fi, _ := f.Info()
					notListed = append(notListed, fmt.Sprintf("%s/%s (%s old)", filepath.Base(d), f.Name(), time.Since(fi.ModTime()).Round(time.Second)))
				}
			}
		}
		if len(notListed) > 0 {
			problems = append(problems, fmt.Sprintf("block directories of %s without meta.json (let go, or abandoned): %v", crashKept, notListed))
		}
		left := blockDirs(filepath.Join(r.bucket, crashExpiring))
		var objs []string
		for _, d := range left {
			files, _ := os.ReadDir(d)
			if len(files) == 0 {
				empty = append(empty, crashExpiring+"/"+filepath.Base(d))
			}
			for _, f := range files {
				objs = append(objs, filepath.Base(d)+"/"+f.Name())
			}
		}
		if len(objs) > 0 {
			problems = append(problems, fmt.Sprintf("objects of %s left: %v", crashExpiring, objs))
		}
		spooled := 0
		for _, w := range r.workers {
			m, _ := filepath.Glob(filepath.Join(w.tmp, "compact-*.parquet"))
			spooled += len(m)
		}
		if spooled > 0 {
			problems = append(problems, fmt.Sprintf("%d spool files of merges left in the workers' temporary directories", spooled))
		}
		if len(problems) == 0 {
			if len(empty) > 0 {
				t.Logf("empty block directories (no object; a kill inside the filesystem bucket's Upload or Delete): %v", empty)
			}
			t.Logf("settled in %s: no job open, the %d block directories of %s all listed, no object of %s left",
				time.Since(start).Round(time.Millisecond), len(dirs), crashKept, crashExpiring)
			return
		}
		last = strings.Join(problems, "; ")
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the backend did not settle within %s: %s", timeout, last)
}

// blockDirs are the block directories (named by a UUID) of a tenant's
// directory in the filesystem bucket.
func blockDirs(tenantDir string) []string {
	entries, _ := os.ReadDir(tenantDir)
	var out []string
	for _, e := range entries {
		if _, err := uuid.Parse(e.Name()); err == nil && e.IsDir() {
			out = append(out, filepath.Join(tenantDir, e.Name()))
		}
	}
	return out
}

// checkJobs checks what work.json showed of the jobs: no worker ran a job
// that had been handed to another (a worker logs that it lost its lease
// and stops), no job failed, and every job whose worker was killed
// finished on another worker.
func (r *crashRig) checkJobs() {
	t := r.t
	for _, c := range r.workers {
		for _, p := range c.runs {
			for line := range strings.Lines(p.stderr.String()) {
				if strings.Contains(line, "lost its lease") {
					t.Errorf("%s ran a job that had been handed to another worker: %s", c.name, line)
				}
			}
		}
	}
	r.jobs.mu.Lock()
	defer r.jobs.mu.Unlock()
	for id, j := range r.jobs.last {
		if j.State == scheduler.Failed && j.Tenant == crashExpiring {
			// Retention let an input go before the merge: the job
			// cannot be run and is given up after its attempts.
			t.Logf("job %s (%s) of %s failed after %d attempts: %s", id, j.Type, j.Tenant, j.Attempts, j.Error)
		} else if j.State == scheduler.Failed {
			t.Errorf("job %s (%s) failed after %d attempts: %s", id, j.Type, j.Attempts, j.Error)
		}
	}
	retried := 0
	for _, k := range r.kills {
		if k.job == "" {
			continue
		}
		j, ok := r.jobs.last[k.job]
		switch {
		case !ok:
			t.Errorf("kill at %s: job %s is not in work.json", k.moment, k.job)
		case j.State == scheduler.Failed && j.Tenant == crashExpiring:
			t.Logf("kill at %s: job %s of %s failed: retention let an input go before the retry: %s", k.moment, k.job, j.Tenant, j.Error)
		case j.State != scheduler.Succeeded:
			t.Errorf("kill at %s: job %s ended %s", k.moment, k.job, j.State)
		case j.Worker == k.worker:
			// The killed worker reported it done before it died.
			t.Logf("kill at %s: job %s was reported done by the killed worker before it died", k.moment, k.job)
		default:
			retried++
			t.Logf("kill at %s: job %s of killed worker %s finished on %s (workers in turn: %v)", k.moment, k.job, k.worker, j.Worker, r.jobs.workers[k.job])
		}
	}
	t.Logf("%d kills, %d of them of a worker in a job that another worker then finished", len(r.kills), retried)
}

// runCrashTest runs the rig through schedule: after each kill the killed
// process is restarted, and after every checkEvery kills the spans are
// checked; at the end the backend settles and is checked once more.
func runCrashTest(t *testing.T, schedule []killMoment, checkEvery int) {
	began := time.Now()
	r := startCrashRig(t)
	stopLoad := make(chan struct{})
	loadDone, loadErr := r.load.run(250*time.Millisecond, 3, stopLoad)
	stopFollow := make(chan struct{})
	followDone := r.follow(stopFollow)
	defer func() {
		close(stopFollow)
		<-followDone
	}()
	stopped := false
	stop := func() {
		if !stopped {
			close(stopLoad)
			<-loadDone
			stopped = true
		}
	}
	defer stop()
	time.Sleep(3 * time.Second) // blocks to compact
	for i, m := range schedule {
		select {
		case err := <-loadErr:
			t.Fatal(err)
		default:
		}
		r.crashOnce(m)
		if (i+1)%checkEvery == 0 && i+1 < len(schedule) {
			r.checkAll(fmt.Sprintf("after kill %d", i+1), 2*time.Minute)
		}
	}
	r.redactBothWays()
	stop()
	select {
	case err := <-loadErr:
		t.Fatal(err)
	default:
	}
	r.checkAll("after the last kill", 2*time.Minute)
	r.waitRequestsDone(2 * time.Minute)
	r.settle(2 * time.Minute)
	r.checkAll("settled", time.Minute)
	r.checkJobs()
	r.checkRequests()
	kept := r.load.snapshot(crashKept)
	expiring := r.load.snapshot(crashExpiring)
	t.Logf("%d kills in %s; %d traces pushed to %s, %d to %s",
		len(r.kills), time.Since(began).Round(time.Second), len(kept), crashKept, len(expiring), crashExpiring)
}

// TestBackendCrash (make test): the backend scheduler and workers killed
// with SIGKILL seven times: a worker during a merge, after an output's
// upload, while the inputs are let go, in a retention job, in a redaction
// rewrite before its output and after it let its input go, and the
// scheduler right after it saved work.json; every acknowledged span is
// then found once (the redacted traces nowhere), the jobs of the killed
// worker finish on another worker, every redaction request is done, and
// the bucket is left clean.
func TestBackendCrash(t *testing.T) {
	t.Parallel()
	runCrashTest(t, []killMoment{atMerge, atUploaded, atWorkSaved, atMarked, atRetention, atRedactRun, atRedactMarked}, 2)
}

// TestBackendCrashLong (make test-long): 24 kills, each moment once (with
// the redaction ones) and then moments at random, checked after each.
func TestBackendCrashLong(t *testing.T) {
	testlong.Skip(t)
	moments := []killMoment{atMerge, atUploaded, atMarked, atRetention, atRandomWorker, atWorkSaved, atRandomScheduler,
		atRedactRun, atRedactUploaded, atRedactMarked, atRequestSaved}
	var schedule []killMoment
	for i := range 24 {
		if i < len(moments) {
			schedule = append(schedule, moments[i])
		} else {
			schedule = append(schedule, moments[mathrand.IntN(len(moments))])
		}
	}
	runCrashTest(t, schedule, 1)
}
