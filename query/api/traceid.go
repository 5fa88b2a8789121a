package api

import (
	"encoding/hex"
	"fmt"
	"unicode/utf8"
)

// ParseTraceID parses a trace ID written as hex, the way Tempo reads the
// {traceID} of its trace-by-ID routes: 1 to 32 hex digits of either case,
// left-padded with zeros to 16 bytes, so "abc" is the ID 0x00…0abc. An empty
// string, a non-hex character or more than 32 digits is an error that quotes
// the input (its first 48 bytes when longer) and names the problem.
func ParseTraceID(s string) ([16]byte, error) {
	var id [16]byte
	if s == "" {
		return id, fmt.Errorf("invalid trace ID %s: empty", quoteID(s))
	}
	pos := 0
	for _, c := range s {
		pos++
		if c >= utf8.RuneSelf || !isHex(byte(c)) {
			return id, fmt.Errorf("invalid trace ID %s: character %q at position %d is not a hex digit", quoteID(s), c, pos)
		}
	}
	if len(s) > 2*len(id) {
		return id, fmt.Errorf("invalid trace ID %s: %d hex digits, at most %d (128 bits) allowed", quoteID(s), len(s), 2*len(id))
	}
	// Pad to 32 digits so that odd lengths decode too.
	var padded [2 * len(id)]byte
	for i := range padded {
		padded[i] = '0'
	}
	copy(padded[len(padded)-len(s):], s)
	if _, err := hex.Decode(id[:], padded[:]); err != nil {
		// Unreachable: every character was checked above.
		return [16]byte{}, fmt.Errorf("invalid trace ID %s: %w", quoteID(s), err)
	}
	return id, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// maxQuotedID is how much of a bad trace ID an error message repeats.
const maxQuotedID = 48

// quoteID quotes s for an error message, cut after maxQuotedID bytes (at a
// character boundary) so that a huge input is not echoed back whole.
func quoteID(s string) string {
	if len(s) <= maxQuotedID {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuotedID
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}
