package remotewrite

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Queue is one tenant's queue of remote-write requests.
type Queue struct {
	s      *Storage
	tenant string
	dir    string

	wmu sync.Mutex // serializes Enqueue

	mu       sync.Mutex
	entries  []*entry // oldest first
	bytes    int64
	nextSeq  uint64
	lastCP   []byte
	haveLast bool     // the file "last" exists
	lastSeq  uint64   // its sequence number
	cursor   []uint64 // per endpoint: the next sequence number to send
	wake     []chan struct{}
	closing  bool

	lastMu sync.Mutex // serializes renames to "last"

	headers atomic.Pointer[map[string]string] // the tenant's remote_write_headers
}

// SetHeaders sets the tenant's own headers (the per-tenant override
// metrics_generator.remote_write_headers), added to every request to every
// endpoint from the next attempt on; they win over the endpoints' headers
// and X-Scope-OrgID. Nil or empty removes them. The protocol's own headers
// are refused.
func (q *Queue) SetHeaders(h map[string]string) error {
	for k := range h {
		if err := checkHeaderName(k); err != nil {
			return fmt.Errorf("invalid remote_write_headers of tenant %q: %w", q.tenant, err)
		}
	}
	if len(h) == 0 {
		q.headers.Store(nil)
		return nil
	}
	c := maps.Clone(h)
	q.headers.Store(&c)
	return nil
}

type entry struct {
	seq      uint64
	enqueued time.Time
	size     int64
	samples  int
	flags    uint32
	fromDisk bool // read back by Open: it may have been delivered before
	left     int  // endpoints that have not finished with it
	removed  bool
}

// Tenant is the queue's tenant.
func (q *Queue) Tenant() string { return q.tenant }

// load reads the queue's directory back.
func (q *Queue) load() error {
	if err := os.MkdirAll(q.dir, 0o755); err != nil {
		return err
	}
	des, err := os.ReadDir(q.dir)
	if err != nil {
		return err
	}
	if h, _, err := readHeader(filepath.Join(q.dir, lastFn)); err == nil {
		q.lastCP, q.haveLast, q.lastSeq, q.nextSeq = h.checkpoint, true, h.seq, h.seq+1
	} else if !errors.Is(err, os.ErrNotExist) {
		q.s.logger.Warn("remote-write queue: ignoring the unreadable file of the last request", "tenant", q.tenant, "err", err)
		os.Remove(filepath.Join(q.dir, lastFn))
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			os.Remove(filepath.Join(q.dir, name)) // an Enqueue cut short
			continue
		}
		fseq, ok := parseReqName(name)
		if !ok {
			continue
		}
		path := filepath.Join(q.dir, name)
		h, size, err := readHeader(path)
		if err == nil && h.seq != fseq {
			err = fmt.Errorf("%w: sequence number %d in file %s", errCorrupt, h.seq, name)
		}
		if err != nil {
			q.s.logger.Warn("remote-write queue: dropping an unreadable request file", "tenant", q.tenant, "file", path, "err", err)
			q.s.metrics.droppedReqs.WithLabelValues(q.tenant, ReasonCorrupt).Inc()
			os.Remove(path)
			continue
		}
		q.entries = append(q.entries, &entry{
			seq: fseq, enqueued: h.enqueued, size: size, samples: h.samples, flags: h.flags,
			fromDisk: true, left: len(q.s.eps),
		})
		q.bytes += size
		if fseq >= q.nextSeq {
			q.nextSeq = fseq + 1
			q.lastCP = h.checkpoint
		}
	}
	slices.SortFunc(q.entries, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	return nil
}

// LastCheckpoint is the checkpoint of the newest request Enqueue wrote,
// including one written before a restart (kill -9 included); nil before
// the first.
func (q *Queue) LastCheckpoint() []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.lastCP)
}

// Enqueue writes one remote-write request of series durably (fsynced)
// before it returns, with the caller's checkpoint, and wakes the senders.
// The series are not kept: the caller may reuse them. It fails when the
// request alone is larger than max_queue_bytes, on a disk error, and after
// Close. Without remote_write endpoints it keeps only the checkpoint, in
// memory.
func (q *Queue) Enqueue(ctx context.Context, series []prompb.TimeSeries, checkpoint []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cannot enqueue a remote-write request: %w", err)
	}
	if len(q.s.eps) == 0 {
		q.mu.Lock()
		q.lastCP = slices.Clone(checkpoint)
		q.mu.Unlock()
		return nil
	}
	q.wmu.Lock()
	defer q.wmu.Unlock()
	err := q.enqueue(series, checkpoint)
	if err != nil {
		q.s.metrics.enqueueFailed.WithLabelValues(q.tenant).Inc()
		return fmt.Errorf("cannot enqueue a remote-write request of tenant %q: %w", q.tenant, err)
	}
	q.s.metrics.enqueued.WithLabelValues(q.tenant).Inc()
	return nil
}

func (q *Queue) enqueue(series []prompb.TimeSeries, checkpoint []byte) error {
	q.mu.Lock()
	if q.closing {
		q.mu.Unlock()
		return errors.New("the queue is closed")
	}
	seq := q.nextSeq // Enqueue is serialized: nextSeq moves only below, on success
	q.mu.Unlock()

	buf := encBufs.Get().(*encBuf)
	defer encBufs.Put(buf)
	body, samples, flags, err := q.encode(buf, series)
	if err != nil {
		return err
	}
	h := header{enqueued: time.Now(), seq: seq, samples: samples, flags: flags, checkpoint: checkpoint}
	head := appendHeader(make([]byte, 0, reqHeaderLen+len(checkpoint)+4), h)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(body)))
	crc := crc32.Update(crc32.Checksum(head, castagnoli), castagnoli, body)
	tail := binary.LittleEndian.AppendUint32(nil, crc)
	size := int64(len(head) + len(body) + len(tail))
	if size > q.s.cfg.MaxQueueBytes {
		return fmt.Errorf("the request is %d bytes, more than max_queue_bytes (%d)", size, q.s.cfg.MaxQueueBytes)
	}
	if _, err := writeFileSync(q.dir, reqName(seq), head, body, tail); err != nil {
		return fmt.Errorf("cannot write the request file: %w", err)
	}

	q.mu.Lock()
	q.nextSeq = seq + 1
	q.entries = append(q.entries, &entry{
		seq: seq, enqueued: h.enqueued, size: size, samples: samples, flags: h.flags,
		left: len(q.s.eps),
	})
	q.bytes += size
	q.lastCP = slices.Clone(checkpoint)
	var dropped []*entry
	for q.bytes > q.s.cfg.MaxQueueBytes && len(q.entries) > 1 {
		dropped = append(dropped, q.dropLocked(q.entries[0], ReasonMaxQueueBytes))
	}
	q.mu.Unlock()
	for _, e := range dropped {
		q.deleteFile(e)
	}
	q.updateGauges(time.Now())
	q.wakeAll()
	return nil
}

// encBuf holds Enqueue's buffers. They come from a pool shared by the
// tenants, so that memory holds a few of them, not one per tenant.
type encBuf struct {
	raw     []byte // marshalled request
	comp    []byte // snappy-compressed request
	scratch []prompb.TimeSeries
}

var encBufs = sync.Pool{New: func() any { return new(encBuf) }}

// encode marshals and compresses a request into b; the body is valid
// until b is used again.
func (q *Queue) encode(b *encBuf, series []prompb.TimeSeries) (body []byte, samples int, flags uint32, err error) {
	exemplars := false
	for i := range series {
		samples += len(series[i].Samples) + len(series[i].Histograms)
		exemplars = exemplars || len(series[i].Exemplars) > 0
	}
	if exemplars && !q.s.anyExemplars() {
		// No endpoint sends exemplars: leave them out of the file.
		b.scratch = append(b.scratch[:0], series...)
		for i := range b.scratch {
			b.scratch[i].Exemplars = nil
		}
		series, exemplars = b.scratch, false
		defer clear(b.scratch)
	}
	if exemplars {
		flags |= flagExemplars
	}
	req := prompb.WriteRequest{Timeseries: series}
	n := req.Size()
	if cap(b.raw) < n {
		b.raw = make([]byte, n)
	}
	raw := b.raw[:n]
	if _, err := req.MarshalToSizedBuffer(raw); err != nil {
		return nil, 0, 0, fmt.Errorf("cannot marshal: %w", err)
	}
	if m := s2.MaxEncodedLen(n); cap(b.comp) < m {
		b.comp = make([]byte, m)
	}
	return s2.EncodeSnappy(b.comp[:cap(b.comp)], raw), samples, flags, nil
}

func (s *Storage) anyExemplars() bool {
	for _, e := range s.eps {
		if e.cfg.SendExemplars {
			return true
		}
	}
	return false
}

// removeLocked takes e out of the queue; the caller then deletes its file
// (deleteFile), without q.mu.
func (q *Queue) removeLocked(e *entry) *entry {
	i := slices.Index(q.entries, e)
	if i < 0 {
		return e
	}
	q.entries = slices.Delete(q.entries, i, i+1)
	q.bytes -= e.size
	e.removed = true
	return e
}

// dropLocked takes a request that was not delivered out of the queue and
// counts it (under q.mu, so that the counts are up to date once it is gone
// from the queue); the caller then deletes its file (deleteFile), without
// q.mu.
func (q *Queue) dropLocked(e *entry, reason string) *entry {
	q.removeLocked(e)
	q.s.metrics.droppedReqs.WithLabelValues(q.tenant, reason).Inc()
	q.s.metrics.droppedSamples.WithLabelValues(q.tenant, reason).Add(float64(e.samples))
	return e
}

// dropCorrupt drops a request whose file cannot be read back, unless it
// was removed meanwhile.
func (q *Queue) dropCorrupt(e *entry, err error) {
	q.mu.Lock()
	removed := e.removed
	if !removed {
		q.dropLocked(e, ReasonCorrupt)
	}
	q.mu.Unlock()
	if !removed {
		q.s.logger.Warn("remote-write queue: dropping an unreadable request file", "tenant", q.tenant, "seq", e.seq, "err", err)
		os.Remove(filepath.Join(q.dir, reqName(e.seq))) // not kept as the last request
		q.updateGauges(time.Now())
	}
}

// deleteFile deletes a removed request's file. When it is the newest
// request, its file becomes "last" instead, so that LastCheckpoint and
// LastRequest survive the queue running empty.
func (q *Queue) deleteFile(e *entry) {
	q.lastMu.Lock()
	defer q.lastMu.Unlock()
	path := filepath.Join(q.dir, reqName(e.seq))
	q.mu.Lock()
	newest := e.seq+1 == q.nextSeq && (!q.haveLast || e.seq > q.lastSeq)
	q.mu.Unlock()
	if newest {
		err := os.Rename(path, filepath.Join(q.dir, lastFn))
		if err == nil {
			err = syncDir(q.dir)
		}
		if err != nil {
			q.s.logger.Warn("remote-write queue: cannot keep the file of the last request", "tenant", q.tenant, "err", err)
			return
		}
		q.mu.Lock()
		q.haveLast, q.lastSeq = true, e.seq
		q.mu.Unlock()
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.s.logger.Warn("remote-write queue: cannot delete a request file", "tenant", q.tenant, "err", err)
	}
}

// LastRequest decodes the newest request that Enqueue made durable, queued
// or already sent (the newest is kept on disk), with its checkpoint, in
// this process or before a restart. A generator that starts again can so
// continue its counters from the values it last handed over, instead of
// from zero (which Prometheus could not tell from no change). It returns
// nil series and checkpoint when there is no such request (or no
// remote_write endpoint); the exemplars may be left out.
func (q *Queue) LastRequest() ([]prompb.TimeSeries, []byte, error) {
	for range 10 {
		q.mu.Lock()
		var path string
		switch {
		case q.haveLast && q.lastSeq+1 == q.nextSeq:
			path = filepath.Join(q.dir, lastFn)
		case q.nextSeq > 0:
			path = filepath.Join(q.dir, reqName(q.nextSeq-1)) // queued, or on its way to "last"
		}
		q.mu.Unlock()
		if path == "" {
			return nil, nil, nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			time.Sleep(time.Millisecond) // it is becoming "last"
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read the last remote-write request of tenant %q: %w", q.tenant, err)
		}
		body, err := parseBody(b)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read the last remote-write request of tenant %q: %w", q.tenant, err)
		}
		cp := slices.Clone(b[reqHeaderLen : reqHeaderLen+int(binary.LittleEndian.Uint32(b[32:]))])
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot decode the last remote-write request of tenant %q: %w", q.tenant, err)
		}
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			return nil, nil, fmt.Errorf("cannot decode the last remote-write request of tenant %q: %w", q.tenant, err)
		}
		return req.Timeseries, cp, nil
	}
	return nil, nil, fmt.Errorf("cannot read the last remote-write request of tenant %q: its file is gone (dropped as corrupt)", q.tenant)
}

// dropOld drops the requests older than max_queue_age.
func (q *Queue) dropOld(now time.Time) {
	if q.s.cfg.MaxQueueAge <= 0 {
		return
	}
	q.mu.Lock()
	var dropped []*entry
	for len(q.entries) > 0 && now.Sub(q.entries[0].enqueued) > q.s.cfg.MaxQueueAge {
		dropped = append(dropped, q.dropLocked(q.entries[0], ReasonMaxQueueAge))
	}
	q.mu.Unlock()
	for _, e := range dropped {
		q.deleteFile(e)
	}
	if len(dropped) > 0 {
		q.wakeAll()
	}
}

func (q *Queue) updateGauges(now time.Time) {
	q.mu.Lock()
	n, b := len(q.entries), q.bytes
	age := 0.0
	if n > 0 {
		age = max(0, now.Sub(q.entries[0].enqueued).Seconds())
	}
	q.mu.Unlock()
	m := q.s.metrics
	m.queueLength.WithLabelValues(q.tenant).Set(float64(n))
	m.queueBytes.WithLabelValues(q.tenant).Set(float64(b))
	m.oldestAge.WithLabelValues(q.tenant).Set(age)
}

func (q *Queue) wakeAll() {
	for _, c := range q.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// next returns the next request for endpoint ep, waiting for one; nil
// when the queue is closing and ep has sent everything, or when the
// storage gives up.
func (q *Queue) next(ep int) *entry {
	for {
		q.mu.Lock()
		for _, e := range q.entries {
			if e.seq >= q.cursor[ep] {
				q.mu.Unlock()
				return e
			}
		}
		closing := q.closing
		q.mu.Unlock()
		if closing {
			return nil
		}
		select {
		case <-q.wake[ep]:
		case <-q.s.ctx.Done():
			return nil
		}
	}
}

// finish records that endpoint ep is done with e, and deletes e once every
// endpoint is.
func (q *Queue) finish(ep int, e *entry) {
	q.mu.Lock()
	q.cursor[ep] = e.seq + 1
	if e.removed {
		q.mu.Unlock()
		return
	}
	e.left--
	if e.left > 0 {
		q.mu.Unlock()
		return
	}
	q.removeLocked(e)
	q.mu.Unlock()
	q.deleteFile(e)
	q.updateGauges(time.Now())
}

// isRemoved reports whether e was dropped meanwhile (the sender then stops
// retrying it).
func (q *Queue) isRemoved(e *entry) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return e.removed
}

// run is the sender of endpoint ep.
func (q *Queue) run(ep *endpoint) {
	defer q.s.wg.Done()
	for {
		e := q.next(ep.idx)
		if e == nil {
			return
		}
		body, err := readBody(filepath.Join(q.dir, reqName(e.seq)))
		if err == nil && e.flags&flagExemplars != 0 && !ep.cfg.SendExemplars {
			body, err = stripExemplars(body)
		}
		if err != nil {
			q.dropCorrupt(e, err)
			continue
		}
		if !q.send(ep, e, body) {
			return // the storage gave up (Close's deadline)
		}
		q.finish(ep.idx, e)
	}
}

// stripExemplars re-encodes a request without its exemplars.
func stripExemplars(body []byte) ([]byte, error) {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, err
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, err
	}
	for i := range req.Timeseries {
		req.Timeseries[i].Exemplars = nil
	}
	raw, err = req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

// Appender is what the metrics-generator needs of a tenant's queue (Queue
// implements it). Enqueue makes one request of series durable, with the
// caller's checkpoint, before it returns nil; the series may be reused
// after it returns. LastCheckpoint is the checkpoint of the newest request
// that Enqueue made durable, in this process or before a restart (nil
// before the first). LastRequest decodes that request (see
// Queue.LastRequest). All are safe for concurrent use.
type Appender interface {
	Enqueue(ctx context.Context, series []prompb.TimeSeries, checkpoint []byte) error
	LastCheckpoint() []byte
	LastRequest() ([]prompb.TimeSeries, []byte, error)
}

var _ Appender = (*Queue)(nil)
