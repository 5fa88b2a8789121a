package remotewrite

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Queue is one tenant's queue of remote-write requests.
type Queue struct {
	s      *Storage
	tenant string
	dir    string

	wmu sync.Mutex // serializes Enqueue
	// Enqueue's series without exemplars. The marshalled and compressed
	// request are not kept between collections: they are about 2×440
	// bytes per series (42 MiB per tenant at 100,000 series), which would
	// stay in the heap for the 15s between collections.
	scratch []prompb.TimeSeries

	mu        sync.Mutex
	entries   []*entry // oldest first
	bytes     int64
	nextSeq   uint64
	lastCP    []byte
	cpFileSeq uint64   // sequence number in the checkpoint file
	cursor    []uint64 // per endpoint: the next sequence number to send
	wake      []chan struct{}
	closing   bool

	cpMu sync.Mutex // serializes checkpoint file writes
}

type entry struct {
	seq        uint64
	enqueued   time.Time
	size       int64
	samples    int
	flags      uint32
	checkpoint []byte
	fromDisk   bool // read back by Open: it may have been delivered before
	left       int  // endpoints that have not finished with it
	removed    bool
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
	seq, cp, ok, err := readCheckpointFile(q.dir)
	if err != nil {
		q.s.logger.Warn("remote-write queue: ignoring a corrupt checkpoint file", "tenant", q.tenant, "err", err)
	} else if ok {
		q.lastCP, q.cpFileSeq, q.nextSeq = cp, seq, seq+1
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			os.Remove(filepath.Join(q.dir, name)) // an Enqueue or checkpoint write cut short
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
			checkpoint: h.checkpoint, fromDisk: true, left: len(q.s.eps),
		})
		q.bytes += size
		if fseq >= q.nextSeq {
			q.nextSeq = fseq + 1
			q.lastCP = h.checkpoint
		}
	}
	slices.SortFunc(q.entries, func(a, b *entry) int { return cmpU64(a.seq, b.seq) })
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
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

	samples, exemplars := 0, false
	for i := range series {
		samples += len(series[i].Samples) + len(series[i].Histograms)
		exemplars = exemplars || len(series[i].Exemplars) > 0
	}
	if exemplars && !q.s.anyExemplars() {
		// No endpoint sends exemplars: leave them out of the file.
		q.scratch = append(q.scratch[:0], series...)
		for i := range q.scratch {
			q.scratch[i].Exemplars = nil
		}
		series, exemplars = q.scratch, false
		defer clear(q.scratch)
	}
	req := prompb.WriteRequest{Timeseries: series}
	raw := make([]byte, req.Size())
	if _, err := req.MarshalToSizedBuffer(raw); err != nil {
		return fmt.Errorf("cannot marshal: %w", err)
	}
	body := snappy.Encode(nil, raw)

	h := header{enqueued: time.Now(), seq: seq, samples: samples, checkpoint: checkpoint}
	if exemplars {
		h.flags |= flagExemplars
	}
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
		checkpoint: slices.Clone(checkpoint), left: len(q.s.eps),
	})
	q.bytes += size
	q.lastCP = slices.Clone(checkpoint)
	var dropped []*entry
	for q.bytes > q.s.cfg.MaxQueueBytes && len(q.entries) > 1 {
		dropped = append(dropped, q.removeLocked(q.entries[0]))
	}
	q.mu.Unlock()
	for _, e := range dropped {
		q.dropped(e, ReasonMaxQueueBytes)
	}
	q.updateGauges(time.Now())
	q.wakeAll()
	return nil
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
// (deleteFile or dropped), without q.mu.
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

// dropped deletes a request that was not delivered, and counts it.
func (q *Queue) dropped(e *entry, reason string) {
	q.s.metrics.droppedReqs.WithLabelValues(q.tenant, reason).Inc()
	q.s.metrics.droppedSamples.WithLabelValues(q.tenant, reason).Add(float64(e.samples))
	q.deleteFile(e)
}

// deleteFile deletes a removed request's file. When it is the newest
// request, its checkpoint goes to the checkpoint file first, so that
// LastCheckpoint survives the queue running empty.
func (q *Queue) deleteFile(e *entry) {
	q.cpMu.Lock()
	q.mu.Lock()
	newest := e.seq+1 == q.nextSeq && e.seq > q.cpFileSeq
	q.mu.Unlock()
	if newest {
		if err := writeCheckpointFile(q.dir, e.seq, e.checkpoint); err != nil {
			q.cpMu.Unlock()
			// Keep the file: it still holds the checkpoint.
			q.s.logger.Warn("remote-write queue: cannot write the checkpoint file; keeping the request file", "tenant", q.tenant, "err", err)
			return
		}
		q.mu.Lock()
		q.cpFileSeq = e.seq
		q.mu.Unlock()
	}
	q.cpMu.Unlock()
	if err := os.Remove(filepath.Join(q.dir, reqName(e.seq))); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.s.logger.Warn("remote-write queue: cannot delete a request file", "tenant", q.tenant, "err", err)
	}
}

// dropOld drops the requests older than max_queue_age.
func (q *Queue) dropOld(now time.Time) {
	if q.s.cfg.MaxQueueAge <= 0 {
		return
	}
	q.mu.Lock()
	var dropped []*entry
	for len(q.entries) > 0 && now.Sub(q.entries[0].enqueued) > q.s.cfg.MaxQueueAge {
		dropped = append(dropped, q.removeLocked(q.entries[0]))
	}
	q.mu.Unlock()
	for _, e := range dropped {
		q.dropped(e, ReasonMaxQueueAge)
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
		if err != nil {
			q.mu.Lock()
			removed := e.removed
			if !removed {
				q.removeLocked(e)
			}
			q.mu.Unlock()
			if !removed {
				q.s.logger.Warn("remote-write queue: dropping an unreadable request file", "tenant", q.tenant, "seq", e.seq, "err", err)
				q.dropped(e, ReasonCorrupt)
				q.updateGauges(time.Now())
			}
			continue
		}
		if e.flags&flagExemplars != 0 && !ep.cfg.SendExemplars {
			if body, err = stripExemplars(body); err != nil {
				q.mu.Lock()
				removed := e.removed
				if !removed {
					q.removeLocked(e)
				}
				q.mu.Unlock()
				if !removed {
					q.dropped(e, ReasonCorrupt)
				}
				continue
			}
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
