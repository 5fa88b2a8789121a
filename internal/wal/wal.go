// Package wal is a local write-ahead log: an append-only sequence of
// records, each with a monotonically increasing offset, made durable with
// fsync before Append returns. The block-builder keeps in it what it has
// acknowledged and not yet uploaded, and replays it on start.
//
// Appends are group-committed: one fsync covers every record appended
// before it, so concurrent writers share the cost of a sync. Records are
// framed as [length uint32 | 1<<31][crc32c uint32][offset uint64][body],
// the CRC covering the body and then the offset; logs written before the offset
// was stored hold [length uint32][crc32c uint32][body] records, whose offset
// is their position, and are still read. A torn record at the end of the
// last segment (a crash during a write, never acknowledged) ends the replay
// and is cut off. Damage elsewhere does not stop the replay: it goes on at
// the next intact record (found by its CRC and its offset), and Damage
// reports what was lost, as does a segment missing between two others.
//
// A failed write or fsync (a full disk, an I/O error) fails the records not
// yet durable, and only those: the log cuts its open segment back to the
// last durable record and takes writes again, so it recovers by itself once
// the disk takes them. While it fails, Failing says why.
package wal

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultSegmentBytes is the size after which a new segment file starts.
const DefaultSegmentBytes = 64 << 20

// MaxRecordBytes bounds one record, so a corrupt length cannot make replay
// allocate without limit.
const MaxRecordBytes = 256 << 20

const (
	headerLen   = 8  // records without their offset (the first format)
	headerLenV2 = 16 // records with their offset
	flagV2      = 1 << 31
	flagSkip    = 1 << 30 // with flagV2: the offsets before this record were never written (SkipTo)
	suffix      = ".wal"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one entry of the log.
type Record struct {
	Offset    int64
	Tenant    string
	Partition int32
	Data      []byte
}

// Damage is a stretch of the log that Open could not read: records lost
// to damage in a segment, or to a segment missing between two others.
type Damage struct {
	// Segment is the file holding the damage; for a missing segment, the
	// one after the gap.
	Segment string
	// FromByte and ToByte delimit the unreadable bytes in Segment (both 0
	// for a missing segment).
	FromByte, ToByte int64
	// FirstLost and LastLost are the offsets of the records lost, when
	// known (Records > 0).
	FirstLost, LastLost int64
	// Records is the number of records lost, or -1 when it is not known
	// (records of the first format, which do not hold their offset).
	Records int64
	// Intact is, when Records is -1, how many intact records of the first
	// format follow the damage: dropped, as their offsets are not known.
	Intact int64
	// Missing says a whole segment (or several) is missing.
	Missing bool
}

func (d Damage) String() string {
	lost := fmt.Sprintf("an unknown number of records, among them %d intact ones that cannot be placed (written before records held their offset)", d.Intact)
	if d.Records >= 0 {
		lost = fmt.Sprintf("%d records (offsets %d to %d)", d.Records, d.FirstLost, d.LastLost)
	}
	if d.Missing {
		return fmt.Sprintf("a WAL segment is missing before %s: %s lost", d.Segment, lost)
	}
	return fmt.Sprintf("WAL segment %s is damaged from byte %d to %d: %s lost", d.Segment, d.FromByte, d.ToByte, lost)
}

// Ticket is a record written by Write, to wait for with Sync.
type Ticket struct {
	Offset int64
	gen    uint64 // the WAL's generation when it was written
}

// WAL is a write-ahead log in one directory. It is safe for concurrent use.
type WAL struct {
	dir          string
	segmentBytes int64

	mu       sync.Mutex // guards the fields below and writes to w
	f        *os.File
	w        *bufio.Writer
	segStart int64 // offset of the first record of the open segment
	segSize  int64
	good     int64 // bytes of the open segment that are durable
	next     int64 // offset of the next record
	closed   bool
	segments []segment // closed segments, oldest first

	// A write or fsync error breaks the log: what is not durable is lost,
	// writes are refused until recover cuts the open segment back to good
	// bytes and starts a new generation, whose records take the offsets of
	// the lost ones.
	gen      uint64
	broken   error                    // set from a failure until recover
	failing  error                    // set from a failure until a later sync succeeds
	failures int64                    // write or fsync errors
	lostFrom map[uint64]int64         // per ended generation, its first lost offset
	lastTry  time.Time                // of recover
	wrap     func(*os.File) io.Writer // tests: what the buffer writes to

	lock      *os.File // holds an exclusive flock on the directory
	epoch     string   // random ID of this log, kept across restarts
	truncated int64    // bytes cut off the end on Open
	damage    []Damage // found by Open

	syncMu sync.Mutex // one fsync at a time
	synced int64      // every record below this offset is durable
	syncMx sync.Mutex // guards synced
}

type segment struct {
	start int64 // first offset
	end   int64 // one past the last offset
	path  string
}

// Open opens (or creates) the log in dir and replays every record in it,
// oldest first, through fn. A torn record at the end is removed. New
// records continue after the last one replayed.
func Open(dir string, segmentBytes int64, fn func(Record) error) (*WAL, error) {
	if segmentBytes <= 0 {
		segmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the WAL directory: %w", err)
	}
	w := &WAL{dir: dir, segmentBytes: segmentBytes, lostFrom: map[uint64]int64{}}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	w.lock = lock
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	if w.epoch, err = readEpoch(dir); err != nil {
		return nil, err
	}
	starts, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	next := int64(0)
	for i, start := range starts {
		path := segmentPath(dir, start)
		if start < next {
			return nil, fmt.Errorf("cannot replay the WAL: segment %s overlaps the one before it (two copies of the log in one directory?); move the one that does not belong elsewhere", path)
		}
		if i > 0 && start > next {
			w.damage = append(w.damage, Damage{Segment: path, FirstLost: next, LastLost: start - 1, Records: start - next, Missing: true})
		}
		end, cut, dmg, err := replaySegment(path, start, i == len(starts)-1, fn)
		if err != nil {
			return nil, err
		}
		if i+1 < len(starts) && len(dmg) > 0 && dmg[len(dmg)-1].ToByte < 0 {
			// Damage to the end of a segment followed by another: the
			// next segment's name says which offsets were lost.
			d := &dmg[len(dmg)-1]
			d.ToByte = -d.ToByte
			if d.Records < 0 && starts[i+1] > end {
				d.FirstLost, d.LastLost, d.Records = end, starts[i+1]-1, starts[i+1]-end
			}
			end = starts[i+1]
		} else if len(dmg) > 0 && dmg[len(dmg)-1].ToByte < 0 {
			dmg[len(dmg)-1].ToByte *= -1
		}
		w.damage = append(w.damage, dmg...)
		w.truncated += cut
		w.segments = append(w.segments, segment{start: start, end: end, path: path})
		next = end
	}
	w.next, w.synced = next, next
	if err := w.openSegment(); err != nil {
		return nil, err
	}
	ok = true
	return w, nil
}

// Epoch is a random ID created with the log and kept across restarts: a
// new, empty log gets a new one, so names derived from offsets never repeat
// those of a log that was lost.
func (w *WAL) Epoch() string { return w.epoch }

// Truncated is how many bytes Open cut off the end of the last segment
// because they did not hold whole, intact records.
func (w *WAL) Truncated() int64 { return w.truncated }

// Damage is what Open could not read, oldest first: records lost to damage
// inside segments or to missing segments. A torn end of the last segment
// is not damage (see Truncated).
func (w *WAL) Damage() []Damage { return w.damage }

// First is the offset of the oldest record the log holds, or the next
// offset when it holds none.
func (w *WAL) First() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.segments) > 0 {
		return w.segments[0].start
	}
	return w.segStart
}

// ReadEpoch returns the epoch of the log in dir without opening it, ""
// if there is none yet.
func ReadEpoch(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "epoch"))
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the WAL epoch: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func readEpoch(dir string) (string, error) {
	path := filepath.Join(dir, "epoch")
	b, err := os.ReadFile(path)
	if err == nil && len(b) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("cannot read the WAL epoch: %w", err)
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("cannot create the WAL epoch: %w", err)
	}
	epoch := hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(epoch+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("cannot write the WAL epoch: %w", err)
	}
	return epoch, syncDir(dir)
}

// lockDir takes an exclusive lock on dir, so two processes (or two nodes of
// one process) cannot write the same log.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open the WAL lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock the WAL directory %s: another process or pipeline node uses it (give each block_builder its own wal.path): %w", dir, err)
	}
	return f, nil
}

func segmentPath(dir string, start int64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", start, suffix))
}

func listSegments(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list the WAL directory: %w", err)
	}
	var starts []int64
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, suffix) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(name, suffix), 10, 64)
		if err != nil {
			continue // not ours
		}
		starts = append(starts, n)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	return starts, nil
}

// replaySegment reads one segment and returns the offset after its last
// record. Damage is skipped: the replay goes on at the next intact record
// that holds its offset, and the records lost are reported. Damage that
// runs to the end of the segment is reported with ToByte negated; in the
// last segment it is a torn write, cut off (cut bytes) and not reported
// unless records of the first format may have been lost in it.
func replaySegment(path string, start int64, last bool, fn func(Record) error) (end, cut int64, dmg []Damage, err error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("cannot read WAL segment: %w", err)
	}
	off, pos := start, 0
	for pos < len(buf) {
		n, recOff, body, ok := parseRecord(buf[pos:], off, off, false)
		if !ok {
			next, nextOff := resync(buf, pos+1, off)
			d := Damage{Segment: path, FromByte: int64(pos), Records: -1}
			if next < 0 {
				d.ToByte = -int64(len(buf))
				if last {
					// A torn write at the end: cut it off so that appends
					// continue after the last intact record. Intact
					// records of the first format after it are lost, and
					// reported.
					if d.Intact = countOldRecords(buf[pos+1:]); d.Intact > 0 {
						d.ToByte = int64(len(buf))
						dmg = append(dmg, d)
					}
					if err := truncate(path, int64(pos)); err != nil {
						return 0, 0, nil, err
					}
					return off, int64(len(buf) - pos), dmg, nil
				}
				d.Intact = countOldRecords(buf[pos+1:])
				dmg = append(dmg, d)
				return off, 0, dmg, nil
			}
			d.ToByte = int64(next)
			d.FirstLost, d.LastLost, d.Records = off, nextOff-1, nextOff-off
			if d.Records > 0 || !oldFormatBetween(buf[pos:next]) {
				dmg = append(dmg, d)
			}
			pos, off = next, nextOff
			continue
		}
		skip := binary.LittleEndian.Uint32(buf[pos:])&flagSkip != 0
		pos += n
		if recOff > off && !skip {
			// Intact records follow one another, but for SkipTo.
			dmg = append(dmg, Damage{Segment: path, FromByte: int64(pos - n), ToByte: int64(pos - n), FirstLost: off, LastLost: recOff - 1, Records: recOff - off})
		}
		off = recOff + 1
		if len(body) == 0 || skip { // a probe (see Probe) or SkipTo
			continue
		}
		rec, err := decode(recOff, body)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("cannot replay the WAL: segment %s, byte %d: %w", path, pos-n, err)
		}
		// The record's data must outlive buf's reuse by the caller.
		rec.Data = append([]byte(nil), rec.Data...)
		if err := fn(rec); err != nil {
			return 0, 0, nil, err
		}
	}
	return off, 0, dmg, nil
}

// countOldRecords counts the intact records of the first format in b,
// found by their CRC.
func countOldRecords(b []byte) int64 {
	n := int64(0)
	for pos := 0; pos+headerLen <= len(b); {
		if size, _, _, ok := parseRecord(b[pos:], 0, 0, false); ok && binary.LittleEndian.Uint32(b[pos:])&flagV2 == 0 && size > headerLen {
			n++
			pos += size
			continue
		}
		pos++
	}
	return n
}

// oldFormatBetween says whether b is all zero bytes (a file extended but
// not written, as after a crash): no record is lost in it.
func oldFormatBetween(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cannot cut the torn end of WAL segment %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cannot cut the torn end of WAL segment %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cannot cut the torn end of WAL segment %s: %w", path, err)
	}
	return nil
}

// parseRecord reads the record at the start of b, expected at offset
// want. It returns its length in bytes, its offset and body, and whether
// it is whole and intact. A record that holds its offset must hold one of
// minOff or more; a record of the first format is at want. Resynchronising
// after damage is stricter (see below).
func parseRecord(b []byte, want, minOff int64, resyncing bool) (n int, off int64, body []byte, ok bool) {
	if len(b) < headerLen {
		return 0, 0, nil, false
	}
	word := binary.LittleEndian.Uint32(b[:4])
	sum := binary.LittleEndian.Uint32(b[4:8])
	if word&flagV2 == 0 {
		size := int(word)
		if size > MaxRecordBytes || len(b)-headerLen < size {
			return 0, 0, nil, false
		}
		body = b[headerLen : headerLen+size]
		if crc32.Checksum(body, castagnoli) != sum {
			return 0, 0, nil, false
		}
		return headerLen + size, want, body, true
	}
	size := int(word &^ (flagV2 | flagSkip))
	if size > MaxRecordBytes || len(b) < headerLenV2 || len(b)-headerLenV2 < size {
		return 0, 0, nil, false
	}
	off = int64(binary.LittleEndian.Uint64(b[8:16]))
	// Resynchronising, an offset is below the next one plus the records
	// that could fit in what is left: a cheap test before the CRC.
	if off < minOff || (resyncing && off > minOff+int64(len(b)/headerLenV2)) {
		return 0, 0, nil, false
	}
	if crc32.Update(crc32.Checksum(b[headerLenV2:headerLenV2+size], castagnoli), castagnoli, b[8:headerLenV2]) != sum {
		return 0, 0, nil, false
	}
	return headerLenV2 + size, off, b[headerLenV2 : headerLenV2+size], true
}

// resync finds, from byte from on, the next intact record that holds its
// offset (at least minOff): its position and offset, or -1.
func resync(buf []byte, from int, minOff int64) (int, int64) {
	for pos := from; pos+headerLenV2 <= len(buf); pos++ {
		if buf[pos+3]&0x80 == 0 { // flagV2 is the top bit of the length
			continue
		}
		if _, off, _, ok := parseRecord(buf[pos:], minOff, minOff, true); ok {
			return pos, off
		}
	}
	return -1, 0
}

// encodePrefix appends the fields a record body holds before its data.
func encodePrefix(dst []byte, tenant string, partition int32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(tenant)))
	dst = append(dst, tenant...)
	return binary.AppendVarint(dst, int64(partition))
}

func decode(off int64, body []byte) (Record, error) {
	n, k := binary.Uvarint(body)
	if k <= 0 || uint64(len(body)-k) < n {
		return Record{}, errors.New("bad tenant field")
	}
	tenant := string(body[k : k+int(n)])
	body = body[k+int(n):]
	p, k := binary.Varint(body)
	if k <= 0 {
		return Record{}, errors.New("bad partition field")
	}
	return Record{Offset: off, Tenant: tenant, Partition: int32(p), Data: body[k:]}, nil
}

// openSegment starts the segment of the next record. A segment is named
// after its first offset, so a file of that name can only be an empty last
// segment, which is reused.
func (w *WAL) openSegment() error {
	if n := len(w.segments); n > 0 && w.segments[n-1].start == w.next {
		w.segments = w.segments[:n-1]
	}
	f, err := os.OpenFile(segmentPath(w.dir, w.next), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open a WAL segment: %w", err)
	}
	w.f, w.w, w.segStart, w.segSize, w.good = f, bufio.NewWriterSize(w.sink(f), 1<<20), w.next, 0, 0
	return syncDir(w.dir)
}

func (w *WAL) sink(f *os.File) io.Writer {
	if w.wrap != nil {
		return w.wrap(f)
	}
	return f
}

// Append writes a record and returns once it is durable, with its offset.
func (w *WAL) Append(tenant string, partition int32, data []byte) (int64, error) {
	t, err := w.Write(tenant, partition, data)
	if err != nil {
		return 0, err
	}
	return t.Offset, w.Sync(t)
}

// Write appends a record without waiting for it to be durable and returns
// its ticket: offsets follow the order of Write calls, so a caller that
// holds its own lock around Write sees them in the order it acted on them.
// Sync(ticket) then waits for durability, outside that lock. A record whose
// Sync fails is not in the log, and its offset goes to a later record.
func (w *WAL) Write(tenant string, partition int32, data []byte) (Ticket, error) {
	// The body is prefix+data; data is written as it is, not copied.
	prefix := encodePrefix(make([]byte, 0, len(tenant)+16), tenant, partition)
	return w.write(prefix, data, 0)
}

// minRetry spaces the attempts at writing again after a failure.
const minRetry = 100 * time.Millisecond

func (w *WAL) write(prefix, data []byte, flags uint32) (Ticket, error) {
	size := len(prefix) + len(data)
	if size > MaxRecordBytes {
		return Ticket{}, fmt.Errorf("cannot append to the WAL: record of %d bytes is over the %d-byte limit", size, MaxRecordBytes)
	}
	var hdr [headerLenV2]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(size)|flagV2|flags)
	// The CRC covers the body, then the offset, known under the lock.
	bodyCRC := crc32.Update(crc32.Checksum(prefix, castagnoli), castagnoli, data)

	w.mu.Lock()
	if w.broken != nil && time.Since(w.lastTry) >= minRetry {
		w.mu.Unlock()
		_ = w.recover() // its error stays in broken
		w.mu.Lock()
	}
	defer w.mu.Unlock()
	if w.closed {
		return Ticket{}, errors.New("cannot append to the WAL: it is closed")
	}
	if w.broken != nil {
		return Ticket{}, fmt.Errorf("cannot append to the WAL: %w", w.broken)
	}
	if w.segSize > 0 && w.segSize+int64(size)+headerLenV2 > w.segmentBytes {
		if err := w.rotate(); err != nil {
			return Ticket{}, err
		}
	}
	off := w.next
	binary.LittleEndian.PutUint64(hdr[8:], uint64(off))
	binary.LittleEndian.PutUint32(hdr[4:8], crc32.Update(bodyCRC, castagnoli, hdr[8:]))
	_, err1 := w.w.Write(hdr[:])
	_, err2 := w.w.Write(prefix)
	_, err3 := w.w.Write(data)
	if err := errors.Join(err1, err2, err3); err != nil {
		err = fmt.Errorf("cannot write the WAL: %w", err)
		w.failLocked(err)
		return Ticket{}, err
	}
	w.next++
	w.segSize += headerLenV2 + int64(size)
	return Ticket{Offset: off, gen: w.gen}, nil
}

// Probe writes and syncs an empty record, which replay skips, and returns
// its offset: while the log is failing it shows whether writes succeed
// again (and ends Failing if they do).
func (w *WAL) Probe() (int64, error) {
	w.mu.Lock()
	w.lastTry = time.Time{} // try now
	w.mu.Unlock()
	t, err := w.write(nil, nil, 0)
	if err != nil {
		return 0, err
	}
	return t.Offset, w.Sync(t)
}

// SkipTo makes the next record take offset off or later, leaving the
// offsets between unused: when the log has lost its newest records, their
// offsets may already name blocks and must not be given again. A replay
// does not report the skipped offsets as lost.
func (w *WAL) SkipTo(off int64) error {
	w.mu.Lock()
	if off <= w.next {
		w.mu.Unlock()
		return nil
	}
	w.next = off
	w.mu.Unlock()
	t, err := w.write(nil, nil, flagSkip)
	if err != nil {
		return err
	}
	return w.Sync(t)
}

// failLocked breaks the log after a write or fsync error. Called with mu
// held.
func (w *WAL) failLocked(err error) {
	if w.broken != nil {
		return
	}
	w.broken, w.failing = err, err
	w.failures++
	w.lastTry = time.Now()
}

// recover makes a broken log writable again: it drops what was not
// durable, cuts the open segment back to its durable bytes and starts a
// new generation at the first offset lost.
func (w *WAL) recover() error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken == nil || w.closed {
		return nil
	}
	w.lastTry = time.Now()
	w.syncMx.Lock()
	synced := w.synced
	w.syncMx.Unlock()
	if w.f == nil { // a rotation closed the last segment and could not open the next
		if err := w.openSegment(); err != nil {
			w.f = nil
			return err
		}
	} else {
		if err := w.f.Truncate(w.good); err != nil {
			return fmt.Errorf("cannot cut the WAL back to its durable records: %w", err)
		}
		w.w.Reset(w.sink(w.f))
		w.segSize = w.good
	}
	w.lostFrom[w.gen] = synced
	delete(w.lostFrom, w.gen-maxGenerations)
	w.gen++
	w.next = synced
	w.broken = nil
	return nil
}

// maxGenerations bounds how many ended generations Sync can still tell
// about; a ticket older than that is reported as not durable.
const maxGenerations = 1 << 16

// Failing is the error of the last write or fsync while the log has not
// synced a record since it; nil when the log works.
func (w *WAL) Failing() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failing
}

// Failures is the number of write or fsync errors since Open.
func (w *WAL) Failures() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failures
}

// Sync returns once the record of t, and every one before it, is durable,
// or with an error if it never will be.
func (w *WAL) Sync(t Ticket) error { return w.syncThrough(t) }

// syncThrough returns once the record of t is durable. The first caller
// to get the sync lock flushes and fsyncs everything written so far;
// callers behind it usually find their record already synced.
func (w *WAL) syncThrough(t Ticket) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	if t.gen != w.gen {
		defer w.mu.Unlock()
		if lost, ok := w.lostFrom[t.gen]; ok && t.Offset < lost {
			return nil
		}
		return fmt.Errorf("cannot write the WAL: %w", w.lastErrLocked())
	}
	w.syncMx.Lock()
	done := w.synced > t.Offset
	w.syncMx.Unlock()
	if done {
		w.mu.Unlock()
		return nil
	}
	if w.broken != nil {
		defer w.mu.Unlock()
		return fmt.Errorf("cannot write the WAL: %w", w.broken)
	}
	if err := w.w.Flush(); err != nil {
		defer w.mu.Unlock()
		err = fmt.Errorf("cannot write the WAL: %w", err)
		w.failLocked(err)
		return err
	}
	f, upTo, size := w.f, w.next, w.segSize
	w.mu.Unlock()
	err := f.Sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncMx.Lock()
	defer w.syncMx.Unlock()
	if err != nil {
		if w.synced > t.Offset {
			return nil // a rotation closed f after syncing it
		}
		err = fmt.Errorf("cannot fsync the WAL: %w", err)
		w.failLocked(err)
		return err
	}
	if w.synced < upTo {
		w.synced = upTo
	}
	if w.f == f {
		w.good = max(w.good, size)
	}
	if w.broken == nil {
		w.failing = nil
	}
	return nil
}

func (w *WAL) lastErrLocked() error {
	if w.failing != nil {
		return w.failing
	}
	return errors.New("the record was lost to an earlier write error")
}

// rotate closes the open segment (durably) and opens the next. Called with
// mu held.
func (w *WAL) rotate() error {
	if err := w.w.Flush(); err != nil {
		err = fmt.Errorf("cannot write the WAL: %w", err)
		w.failLocked(err)
		return err
	}
	if err := w.f.Sync(); err != nil {
		err = fmt.Errorf("cannot fsync the WAL: %w", err)
		w.failLocked(err)
		return err
	}
	_ = w.f.Close() // synced: nothing of it is lost
	w.segments = append(w.segments, segment{start: w.segStart, end: w.next, path: segmentPath(w.dir, w.segStart)})
	w.syncMx.Lock()
	if w.synced < w.next {
		w.synced = w.next
	}
	w.syncMx.Unlock()
	if err := w.openSegment(); err != nil {
		w.f = nil
		w.failLocked(err)
		return err
	}
	return nil
}

// Next is the offset the next record will get.
func (w *WAL) Next() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// Release deletes the closed segments whose records all lie below offset:
// the caller no longer needs them. The open segment is kept.
func (w *WAL) Release(offset int64) error {
	w.mu.Lock()
	var drop []segment
	keep := w.segments[:0]
	for _, s := range w.segments {
		if s.end <= offset {
			drop = append(drop, s)
		} else {
			keep = append(keep, s)
		}
	}
	w.segments = keep
	w.mu.Unlock()
	var errs []error
	for _, s := range drop {
		if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("cannot delete WAL segment: %w", err))
		}
	}
	if len(drop) > 0 {
		errs = append(errs, syncDir(w.dir))
	}
	return errors.Join(errs...)
}

// Segments is the number of segment files, the open one included.
func (w *WAL) Segments() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.segments) + 1
}

// Close flushes, syncs and closes the open segment. What cannot be made
// durable then was never acknowledged (no Sync returned for it): it is cut
// off, and Close fails only if that cannot be done.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	var err error
	if w.f != nil {
		if w.broken == nil {
			err = w.w.Flush()
			if err == nil {
				err = w.f.Sync()
			}
		}
		if w.broken != nil || err != nil {
			err = w.f.Truncate(w.good)
			if err == nil {
				err = w.f.Sync()
			}
			if err != nil {
				err = fmt.Errorf("cannot cut the WAL back to its durable records: %w", err)
			}
		}
		err = errors.Join(err, w.f.Close())
	}
	return errors.Join(err, w.lock.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open the WAL directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot fsync the WAL directory: %w", err)
	}
	return nil
}

// Abandon lets go of the log as a crash would: it closes the files and the
// lock without flushing what Write buffered and Sync did not make durable.
// It exists for crash tests in one process.
func (w *WAL) Abandon() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f != nil {
		_ = w.f.Close()
	}
	_ = w.lock.Close()
}
