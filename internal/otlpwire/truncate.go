package otlpwire

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// TruncateSpan cuts every attribute key and string value of the span, its
// events and its links that is longer than max bytes to at most max bytes,
// on a UTF-8 boundary. It returns the span unchanged (same slice) when
// nothing is cut, else a new encoding, and the number of cut keys and values.
// The span must have been checked by Parse.
func TruncateSpan(span []byte, max int) ([]byte, int) { return truncate(span, kindSpan, max) }

// TruncateResourceHeader does what TruncateSpan does for the attributes of
// the resource in a Resource.Header.
func TruncateResourceHeader(h []byte, max int) ([]byte, int) {
	return truncate(h, kindResourceSpans, max)
}

// TruncateScopeHeader does what TruncateSpan does for the attributes of the
// instrumentation scope in a Scope.Header.
func TruncateScopeHeader(h []byte, max int) ([]byte, int) {
	return truncate(h, kindScopeSpans, max)
}

func truncate(msg []byte, k kind, max int) ([]byte, int) {
	if len(msg) <= max || max <= 0 {
		return msg, 0 // no field can be longer than its message
	}
	var out []byte
	copied, cut := 0, 0
	_ = forEachFieldRaw(msg, func(num protowire.Number, typ protowire.Type, val, raw []byte) error {
		f, ok := lookup(k, num)
		if !ok || typ != protowire.BytesType {
			return nil
		}
		var nv []byte
		var c int
		switch {
		case (k == kindKeyValue || k == kindAnyValue) && num == 1:
			if len(val) > max {
				nv, c = cutUTF8(val, max), 1
			}
		case f.msg != kindNone:
			nv, c = truncate(val, f.msg, max)
		}
		if c == 0 {
			return nil
		}
		off := cap(msg) - cap(raw) // raw is a sub-slice of msg
		out = append(out, msg[copied:off]...)
		out = protowire.AppendTag(out, num, protowire.BytesType)
		out = protowire.AppendBytes(out, nv)
		copied = off + len(raw)
		cut += c
		return nil
	})
	if cut == 0 {
		return msg, 0
	}
	return append(out, msg[copied:]...), cut
}

func cutUTF8(s []byte, max int) []byte {
	n := max
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
