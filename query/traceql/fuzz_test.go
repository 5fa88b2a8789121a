package traceql

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, that its errors are
// *ParseErrors at a real position, and that any query it accepts prints
// (String) as canonical TraceQL that parses back to the same tree and the
// same text.
func FuzzParse(f *testing.F) {
	for _, c := range validQueries {
		f.Add(c.query)
	}
	for _, c := range invalidQueries {
		f.Add(c.query)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r, err := Parse(q)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T is not a *ParseError", q, err)
			}
			if strings.HasPrefix(pe.Msg, "BUG:") {
				t.Fatalf("Parse(%q): %v", q, err)
			}
			if pe.Pos.Offset < 0 || pe.Pos.Offset > len(q) || pe.Pos.Line < 1 || pe.Pos.Column < 1 {
				t.Fatalf("Parse(%q) error at impossible position %+v", q, pe.Pos)
			}
			if utf8.ValidString(q) {
				if want := positionAt(q, pe.Pos.Offset); want != pe.Pos {
					t.Fatalf("Parse(%q) error position %+v, offset %d is at %+v", q, pe.Pos, pe.Pos.Offset, want)
				}
			}
			return
		}
		s := r.String()
		// the canonical form may be longer (spaces) or nest one level more
		// (parentheses around a unary operand) than the input
		r2, err := ParseWithLimits(s, Limits{MaxBytes: 8 * len(s), MaxDepth: 2 * DefaultMaxDepth})
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", q, s, err)
		}
		if s2 := r2.String(); s2 != s {
			t.Fatalf("Parse(%q) = %q, which parses to %q", q, s, s2)
		}
		if d1, d2 := dump(r), dump(r2); d1 != d2 {
			t.Fatalf("Parse(%q) = %q, which parses to another tree:\n%s\n%s", q, s, d1, d2)
		}
		_ = r.Fields()
		for _, sf := range r.SpansetFilters() {
			_ = sf.Conjuncts()
		}
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzParse/seed-* from the
// valid and invalid query tables when TRACEQL_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("TRACEQL_WRITE_CORPUS") != "1" {
		t.Skip("set TRACEQL_WRITE_CORPUS=1 to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, q string) {
		data := fmt.Sprintf("go test fuzz v1\nstring(%q)\n", q)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range validQueries {
		write(fmt.Sprintf("seed-valid-%03d", i), c.query)
	}
	for i, c := range invalidQueries {
		write(fmt.Sprintf("seed-invalid-%03d", i), c.query)
	}
}

// TestFuzzCorpus checks the committed seed corpus is there.
func TestFuzzCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParse", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("%d seed corpus files, want at least 40 (run TRACEQL_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus)", len(files))
	}
}
