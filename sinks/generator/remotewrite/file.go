package remotewrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A request file, <seq>.req, holds one remote-write request as sent:
//
//	magic "WEFTRWQ1"
//	u64 enqueue time, Unix nanoseconds
//	u64 sequence number (the file name's)
//	u32 samples (float and histogram)
//	u32 flags (flagExemplars: the request holds exemplars)
//	u32 checkpoint length, checkpoint bytes
//	u32 body length, body (snappy-compressed prompb.WriteRequest)
//	u32 CRC-32C of everything before it
//
// It is written to <seq>.req.tmp, fsynced, renamed and the directory
// fsynced, so a file with the .req suffix is whole. When the newest request
// leaves the queue, its file is renamed to "last" instead of being deleted,
// so that its checkpoint and series outlive an empty queue (LastCheckpoint,
// LastRequest).
const (
	reqMagic      = "WEFTRWQ1"
	reqSuffix     = ".req"
	tmpSuffix     = ".tmp"
	lastFn        = "last"
	reqHeaderLen  = 8 + 8 + 8 + 4 + 4 + 4
	flagExemplars = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func reqName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, reqSuffix) }

// header is what Open reads of a request file, without its body.
type header struct {
	enqueued   time.Time
	seq        uint64
	samples    int
	flags      uint32
	checkpoint []byte
}

// appendHeader appends the request file's bytes before the body length.
func appendHeader(b []byte, h header) []byte {
	b = append(b, reqMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.enqueued.UnixNano()))
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.samples))
	b = binary.LittleEndian.AppendUint32(b, h.flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h.checkpoint)))
	return append(b, h.checkpoint...)
}

// writeFileSync writes the parts to dir/name durably: a temporary file,
// fsync, rename, fsync of the directory.
func writeFileSync(dir, name string, parts ...[]byte) (int64, error) {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		m, err := f.Write(p)
		n += int64(m)
		if err != nil {
			f.Close()
			os.Remove(tmp)
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return 0, err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

var errCorrupt = errors.New("corrupt request file")

// readHeader reads the header of a request file and checks that the file
// is as long as its header says. It does not read the body.
func readHeader(path string) (header, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return header{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return header{}, 0, err
	}
	buf := make([]byte, reqHeaderLen)
	if _, err := io.ReadFull(f, buf); err != nil {
		return header{}, 0, fmt.Errorf("%w: short header", errCorrupt)
	}
	if string(buf[:8]) != reqMagic {
		return header{}, 0, fmt.Errorf("%w: bad magic", errCorrupt)
	}
	h := header{
		enqueued: time.Unix(0, int64(binary.LittleEndian.Uint64(buf[8:]))),
		seq:      binary.LittleEndian.Uint64(buf[16:]),
		samples:  int(binary.LittleEndian.Uint32(buf[24:])),
		flags:    binary.LittleEndian.Uint32(buf[28:]),
	}
	cpLen := int64(binary.LittleEndian.Uint32(buf[32:]))
	if reqHeaderLen+cpLen+4 > st.Size() {
		return header{}, 0, fmt.Errorf("%w: checkpoint past the end", errCorrupt)
	}
	rest := make([]byte, cpLen+4)
	if _, err := io.ReadFull(f, rest); err != nil {
		return header{}, 0, fmt.Errorf("%w: %v", errCorrupt, err)
	}
	h.checkpoint = rest[:cpLen]
	bodyLen := int64(binary.LittleEndian.Uint32(rest[cpLen:]))
	if want := reqHeaderLen + cpLen + 4 + bodyLen + 4; want != st.Size() {
		return header{}, 0, fmt.Errorf("%w: %d bytes, its header says %d", errCorrupt, st.Size(), want)
	}
	return h, st.Size(), nil
}

// readBody reads a whole request file, checks its CRC and returns the body.
func readBody(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseBody(b)
}

// parseBody checks a request file's CRC and returns its body.
func parseBody(b []byte) ([]byte, error) {
	if len(b) < reqHeaderLen+8 || string(b[:8]) != reqMagic {
		return nil, fmt.Errorf("%w: bad header", errCorrupt)
	}
	if crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: CRC mismatch", errCorrupt)
	}
	cpLen := int(binary.LittleEndian.Uint32(b[32:]))
	off := reqHeaderLen + cpLen
	if off+4 > len(b)-4 {
		return nil, fmt.Errorf("%w: checkpoint past the end", errCorrupt)
	}
	bodyLen := int(binary.LittleEndian.Uint32(b[off:]))
	off += 4
	if off+bodyLen != len(b)-4 {
		return nil, fmt.Errorf("%w: body length", errCorrupt)
	}
	return b[off : off+bodyLen], nil
}

// parseReqName returns the sequence number of a request file name.
func parseReqName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, reqSuffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	return seq, err == nil
}
