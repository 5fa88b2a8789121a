package api

import (
	"strings"
	"testing"
)

func TestParseTraceIDSuccess(t *testing.T) {
	f := func(s string, want [16]byte) {
		t.Helper()
		got, err := ParseTraceID(s)
		if err != nil {
			t.Fatalf("ParseTraceID(%q): %v", s, err)
		}
		if got != want {
			t.Fatalf("ParseTraceID(%q) = %x, want %x", s, got, want)
		}
	}
	f("0", [16]byte{})
	f("1", [16]byte{15: 0x01})
	f("abc", [16]byte{14: 0x0a, 15: 0xbc})
	f("ABC", [16]byte{14: 0x0a, 15: 0xbc})
	f("0000000000000000000000000000abcd", [16]byte{14: 0xab, 15: 0xcd})
	f("ffffffffffffffffffffffffffffffff", [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f(testTraceHex, testTraceID)
	f("1"+strings.Repeat("0", 31), [16]byte{0: 0x10})
	f("1"+strings.Repeat("0", 30), [16]byte{0: 0x01})
}

func TestParseTraceIDFailure(t *testing.T) {
	f := func(s, want string) {
		t.Helper()
		got, err := ParseTraceID(s)
		if err == nil {
			t.Fatalf("ParseTraceID(%q) = %x, want an error", s, got)
		}
		if err.Error() != want {
			t.Fatalf("ParseTraceID(%q) error = %q, want %q", s, err, want)
		}
		if got != ([16]byte{}) {
			t.Fatalf("ParseTraceID(%q) returned %x with its error", s, got)
		}
	}
	f("", `invalid trace ID "": empty`)
	f("xyz", `invalid trace ID "xyz": character 'x' at position 1 is not a hex digit`)
	f("12 4", `invalid trace ID "12 4": character ' ' at position 3 is not a hex digit`)
	f("0x1f", `invalid trace ID "0x1f": character 'x' at position 2 is not a hex digit`)
	f("-1", `invalid trace ID "-1": character '-' at position 1 is not a hex digit`)
	f("aé", `invalid trace ID "aé": character 'é' at position 2 is not a hex digit`)
	f("a\xff", `invalid trace ID "a\xff": character '�' at position 2 is not a hex digit`)
	f(strings.Repeat("a", 100)+"z", `invalid trace ID "`+strings.Repeat("a", 48)+`"… (101 bytes): character 'z' at position 101 is not a hex digit`)
	f(strings.Repeat("a", 47)+"éé", `invalid trace ID "`+strings.Repeat("a", 47)+`"… (51 bytes): character 'é' at position 48 is not a hex digit`)
	f(strings.Repeat("a", 33), `invalid trace ID "`+strings.Repeat("a", 33)+`": 33 hex digits, at most 32 (128 bits) allowed`)
}
