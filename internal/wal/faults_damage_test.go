package wal

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// appendN appends n records of 60 bytes and closes the log.
func appendN(t *testing.T, dir string, segBytes int64, n int) {
	t.Helper()
	w, _ := replayAll(t, dir, segBytes)
	for i := 0; i < n; i++ {
		if _, err := w.Append("t", 0, bytes.Repeat([]byte{byte(i)}, 60)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	return segs
}

// flipByte damages the byte at pos of path (negative: from the end).
func flipByte(t *testing.T, path string, pos int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pos < 0 {
		pos += len(b)
	}
	b[pos] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func offsets(recs []Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Offset)
	}
	return out
}

// Damage in the middle of the last segment loses the damaged record only:
// the intact records after it are replayed at their own offsets, and
// Damage says exactly which record was lost.
func TestDamageInTheLastSegmentKeepsTheRecordsAfterIt(t *testing.T) {
	dir := t.TempDir()
	appendN(t, dir, 0, 10)
	segs := segments(t, dir)
	// Record 4 starts at byte 4*(16+header of the body+60); damage its body.
	recLen := 16 + len(encodePrefix(nil, "t", 0)) + 60
	flipByte(t, segs[0], 4*recLen+30)
	w, got := replayAll(t, dir, 0)
	defer w.Close()
	if len(got) != 9 {
		t.Fatalf("replayed offsets %v, want every one but 4", offsets(got))
	}
	for _, r := range got {
		if r.Offset == 4 || !bytes.Equal(r.Data, bytes.Repeat([]byte{byte(r.Offset)}, 60)) {
			t.Fatalf("record at offset %d holds the data of another", r.Offset)
		}
	}
	d := w.Damage()
	if len(d) != 1 || d[0].Records != 1 || d[0].FirstLost != 4 || d[0].LastLost != 4 || d[0].Segment != segs[0] {
		t.Fatalf("damage = %+v, want record 4 of %s", d, segs[0])
	}
	if !strings.Contains(d[0].String(), "1 records (offsets 4 to 4)") {
		t.Fatalf("damage says %q", d[0].String())
	}
	if off, err := w.Append("t", 0, []byte("after")); err != nil || off != 10 {
		t.Fatalf("append after the damage: %d %v", off, err)
	}
}

// Damage in an older segment no longer stops the log from opening: the
// records around it are kept and the loss is reported; so is a segment
// that is missing between two others.
func TestDamageInAnOlderSegmentAndAMissingSegment(t *testing.T) {
	dir := t.TempDir()
	appendN(t, dir, 300, 20) // ~3 records a segment
	segs := segments(t, dir)
	if len(segs) < 5 {
		t.Fatalf("%d segments, want 5 or more", len(segs))
	}
	flipByte(t, segs[0], -1) // the last record of the first segment
	if err := os.Remove(segs[2]); err != nil {
		t.Fatal(err)
	}
	w, got := replayAll(t, dir, 300)
	defer w.Close()
	d := w.Damage()
	if len(d) != 2 {
		t.Fatalf("damage = %v, want two entries", d)
	}
	lostDamaged, lostMissing := d[0].Records, d[1].Records
	if d[0].Missing || lostDamaged != 1 || !d[1].Missing || lostMissing < 1 {
		t.Fatalf("damage = %+v", d)
	}
	if int64(len(got)) != 20-lostDamaged-lostMissing {
		t.Fatalf("replayed %d records, want %d", len(got), 20-lostDamaged-lostMissing)
	}
	for _, r := range got {
		if (r.Offset >= d[0].FirstLost && r.Offset <= d[0].LastLost) || (r.Offset >= d[1].FirstLost && r.Offset <= d[1].LastLost) {
			t.Fatalf("offset %d replayed though reported lost", r.Offset)
		}
		if !bytes.Equal(r.Data, bytes.Repeat([]byte{byte(r.Offset)}, 60)) {
			t.Fatalf("record at offset %d holds the data of another", r.Offset)
		}
	}
	if !strings.Contains(d[1].String(), "missing") {
		t.Fatalf("missing segment reported as %q", d[1].String())
	}
}

// oldRecord frames a record as the first format did: no offset.
func oldRecord(tenant string, data []byte) []byte {
	body := append(encodePrefix(nil, tenant, 0), data...)
	var hdr [headerLen]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(len(body)))
	binary.LittleEndian.PutUint32(hdr[4:], crc32.Checksum(body, castagnoli))
	return append(hdr[:], body...)
}

// A log written before records held their offset is still read, and new
// records follow it; damage among old records is reported with an unknown
// count.
func TestFirstFormatIsStillRead(t *testing.T) {
	dir := t.TempDir()
	var seg []byte
	for i := 0; i < 5; i++ {
		seg = append(seg, oldRecord("old", []byte{byte(i)})...)
	}
	if err := os.WriteFile(segmentPath(dir, 0), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	w, got := replayAll(t, dir, 0)
	if len(got) != 5 || got[4].Offset != 4 || got[4].Tenant != "old" || got[4].Data[0] != 4 {
		t.Fatalf("first-format replay: %+v", got)
	}
	if off, err := w.Append("new", 0, []byte{5}); err != nil || off != 5 {
		t.Fatalf("append after a first-format log: %d %v", off, err)
	}
	w.Close()
	// Damage the second old record: the new record after the old ones
	// says how many were lost.
	flipByte(t, segmentPath(dir, 0), len(oldRecord("old", []byte{0}))+12)
	w, got = replayAll(t, dir, 0)
	w.Close()
	if len(got) != 2 || got[0].Offset != 0 || got[1].Offset != 5 || got[1].Tenant != "new" {
		t.Fatalf("replay of damaged first-format records: %+v", offsets(got))
	}
	if d := w.Damage(); len(d) != 1 || d[0].Records != 4 || d[0].FirstLost != 1 {
		t.Fatalf("damage = %+v", d)
	}
}

// Damage among first-format records at the end of the last segment cannot
// say their offsets: they are dropped, and counted.
func TestDamagedFirstFormatTailIsCounted(t *testing.T) {
	dir := t.TempDir()
	var seg []byte
	for i := 0; i < 5; i++ {
		seg = append(seg, oldRecord("old", []byte{byte(i)})...)
	}
	seg[len(oldRecord("old", []byte{0}))+12] ^= 0xff // the second record
	if err := os.WriteFile(segmentPath(dir, 0), seg, 0o644); err != nil {
		t.Fatal(err)
	}
	w, got := replayAll(t, dir, 0)
	defer w.Close()
	if len(got) != 1 {
		t.Fatalf("replayed %v, want offset 0 only", offsets(got))
	}
	if d := w.Damage(); len(d) != 1 || d[0].Records != -1 || d[0].Intact != 3 || !strings.Contains(d[0].String(), "3 intact") {
		t.Fatalf("damage = %+v", d)
	}
}

// SkipTo leaves offsets unused without a replay reporting them lost.
func TestSkipTo(t *testing.T) {
	dir := t.TempDir()
	appendN(t, dir, 0, 5)
	w, _ := replayAll(t, dir, 0)
	if err := w.SkipTo(100); err != nil {
		t.Fatal(err)
	}
	if off, err := w.Append("t", 0, []byte{1}); err != nil || off <= 100 {
		t.Fatalf("append after SkipTo(100): offset %d, %v", off, err)
	}
	w.Close()
	w, got := replayAll(t, dir, 0)
	defer w.Close()
	if len(got) != 6 || got[5].Offset <= 100 || len(w.Damage()) != 0 {
		t.Fatalf("replay after SkipTo: offsets %v, damage %v", offsets(got), w.Damage())
	}
}
