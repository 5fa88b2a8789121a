package otlpwire

import "google.golang.org/protobuf/encoding/protowire"

// Builder assembles a TracesData message from spans of parsed batches, each
// span under its own resource and scope. Spans added one after the other
// under the same resource and scope share one ResourceSpans and ScopeSpans.
// The zero value is ready to use; Reset makes it reusable.
type Builder struct {
	groups []group
	spans  [][]byte
}

type group struct {
	res        *Resource
	scope      *Scope
	start, end int // range in spans
}

// Add appends span (an encoded Span message) under res and scope, which must
// stay unchanged until the builder is encoded.
func (b *Builder) Add(res *Resource, scope *Scope, span []byte) {
	if n := len(b.groups); n > 0 && b.groups[n-1].res == res && b.groups[n-1].scope == scope {
		b.spans = append(b.spans, span)
		b.groups[n-1].end++
		return
	}
	b.groups = append(b.groups, group{res: res, scope: scope, start: len(b.spans), end: len(b.spans) + 1})
	b.spans = append(b.spans, span)
}

// SpanCount is the number of spans added since the last Reset.
func (b *Builder) SpanCount() int { return len(b.spans) }

// Reset empties the builder, keeping its memory.
func (b *Builder) Reset() {
	clear(b.groups)
	clear(b.spans)
	b.groups = b.groups[:0]
	b.spans = b.spans[:0]
}

// AppendTo appends the TracesData encoding of the spans added so far to dst.
// As TracesData has only the repeated resource_spans field, appending two
// encodings yields one valid TracesData holding both.
func (b *Builder) AppendTo(dst []byte) []byte {
	for i := 0; i < len(b.groups); {
		// Consecutive groups with the same resource form one ResourceSpans.
		j := i + 1
		for j < len(b.groups) && b.groups[j].res == b.groups[i].res {
			j++
		}
		res := b.groups[i].res
		size := len(res.Header)
		for _, g := range b.groups[i:j] {
			size += sizeOfBytesField(fieldRSScopeSpans, b.scopeSize(g))
		}
		dst = protowire.AppendTag(dst, fieldTracesResourceSpans, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(size))
		dst = append(dst, res.Header...)
		for _, g := range b.groups[i:j] {
			dst = protowire.AppendTag(dst, fieldRSScopeSpans, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(b.scopeSize(g)))
			dst = append(dst, g.scope.Header...)
			for _, sp := range b.spans[g.start:g.end] {
				dst = protowire.AppendTag(dst, fieldSSSpans, protowire.BytesType)
				dst = protowire.AppendBytes(dst, sp)
			}
		}
		i = j
	}
	return dst
}

// Size is the length AppendTo would append.
func (b *Builder) Size() int {
	n := 0
	for i := 0; i < len(b.groups); {
		j := i + 1
		for j < len(b.groups) && b.groups[j].res == b.groups[i].res {
			j++
		}
		size := len(b.groups[i].res.Header)
		for _, g := range b.groups[i:j] {
			size += sizeOfBytesField(fieldRSScopeSpans, b.scopeSize(g))
		}
		n += sizeOfBytesField(fieldTracesResourceSpans, size)
		i = j
	}
	return n
}

func (b *Builder) scopeSize(g group) int {
	size := len(g.scope.Header)
	for _, sp := range b.spans[g.start:g.end] {
		size += sizeOfBytesField(fieldSSSpans, len(sp))
	}
	return size
}

func sizeOfBytesField(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}
