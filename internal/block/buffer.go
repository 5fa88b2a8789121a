package block

import (
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/weftdb/weft/internal/otlpwire"
)

// Buffer accumulates one tenant's spans in Arrow arrays until a block is
// cut with Write. It is not safe for concurrent use.
//
// Spans are appended to Arrow builders; Write (and nothing else) turns the
// builders into a record batch, so a Buffer holds a list of record batches
// plus the batch being built. The columns derived from the resource
// (service_name, res_k8s_*, resource_attrs) are kept once per distinct
// resource, not per span.
type Buffer struct {
	alloc     *countingAllocator
	bl        *builders // nil until the first Add after a flush
	chunks    []arrow.RecordBatch
	spans     int
	resources map[string]*resourceInfo // by Resource.Header
	resBytes  int64                    // estimated memory of resources
	scratch   scratch
	released  bool
}

// NewBuffer returns an empty buffer allocating Arrow memory from alloc
// (nil: memory.DefaultAllocator).
func NewBuffer(alloc memory.Allocator) *Buffer {
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	return &Buffer{alloc: &countingAllocator{mem: alloc}, resources: map[string]*resourceInfo{}}
}

// Spans is the number of spans added.
func (b *Buffer) Spans() int { return b.spans }

// Bytes is the memory held by the buffer: its Arrow buffers (builders
// included, at their capacity) and its per-resource data.
func (b *Buffer) Bytes() int64 { return b.alloc.n.Load() + b.resBytes }

// Release frees the buffer's memory. The buffer must not be used after.
func (b *Buffer) Release() {
	if b.bl != nil {
		b.bl.release()
		b.bl = nil
	}
	for _, c := range b.chunks {
		c.Release()
	}
	b.chunks = nil
	b.resources = nil
	b.resBytes = 0
	b.spans = 0
	b.released = true
}

// Add appends every span of batch, with its resource and scope. It checks
// every span first, so a batch with a malformed span, or a trace ID that is
// not 16 bytes or a span ID that is not 8, is refused whole and leaves the
// buffer unchanged.
func (b *Buffer) Add(batch *otlpwire.Batch) error {
	if b.released {
		return fmt.Errorf("block buffer used after Release")
	}
	s := &b.scratch
	s.reset()
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		if _, err := b.resource(res.Header); err != nil {
			return fmt.Errorf("resource_spans[%d]: %w", ri, err)
		}
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			if _, err := otlpwire.ReadScopeHeader(sc.Header); err != nil {
				return fmt.Errorf("resource_spans[%d].scope_spans[%d]: %w", ri, si, err)
			}
			for pi := range sc.Spans {
				if err := s.parse(sc.Spans[pi].Raw); err != nil {
					return fmt.Errorf("resource_spans[%d].scope_spans[%d].spans[%d]: %w", ri, si, pi, err)
				}
			}
		}
	}
	if len(s.spans) == 0 {
		return nil
	}
	if b.bl == nil {
		b.bl = newBuilders(b.alloc)
	}
	bl := b.bl
	k := 0
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			n := len(sc.Spans)
			if n == 0 {
				continue
			}
			bl.appendRun(bl.resource, res.Header, n)
			bl.appendRun(bl.scope, sc.Header, n)
			for range n {
				bl.appendSpan(s, &s.spans[k])
				k++
			}
		}
	}
	b.spans += k
	return nil
}

// resource returns the derived columns of a resource, computing them the
// first time the resource is seen.
func (b *Buffer) resource(header []byte) (*resourceInfo, error) {
	if ri, ok := b.resources[string(header)]; ok {
		return ri, nil
	}
	ri, err := newResourceInfo(header)
	if err != nil {
		return nil, err
	}
	b.resources[string(header)] = ri
	b.resBytes += ri.size + int64(len(header))
	return ri, nil
}

// flush turns the builders into a record batch.
func (b *Buffer) flush() {
	if b.bl == nil {
		return
	}
	if b.bl.rb.Field(0).Len() > 0 {
		b.chunks = append(b.chunks, b.bl.rb.NewRecordBatch())
	}
	b.bl.release()
	b.bl = nil
}

// attr is one entry of span_attrs or resource_attrs.
type attr struct {
	key, value []byte
	typ        int32
}

// resourceInfo are the columns derived from one resource.
type resourceInfo struct {
	service    []byte
	hasService bool
	k8s        [len(resourceDedicated)][]byte
	hasK8s     [len(resourceDedicated)]bool
	attrs      []attr // everything else
	size       int64
}

func newResourceInfo(header []byte) (*resourceInfo, error) {
	ri := &resourceInfo{}
	var text []byte
	var err error
	type pending struct {
		key   []byte
		start int
		typ   int32
	}
	var attrs []pending
	ierr := otlpwire.EachAttribute(header, otlpwire.MessageResourceHeader, func(key []byte, v otlpwire.AnyValueView) bool {
		if v.Type() == otlpwire.ValueTypeStr {
			if string(key) == serviceNameAttr && !ri.hasService {
				ri.service, ri.hasService = v.Str(), true
				return true
			}
			if i, ok := resourceDedicatedIndex[string(key)]; ok && !ri.hasK8s[i] {
				ri.k8s[i], ri.hasK8s[i] = v.Str(), true
				return true
			}
		}
		start := len(text)
		if text, err = v.AppendString(text); err != nil {
			return false
		}
		attrs = append(attrs, pending{key: key, start: start, typ: int32(v.Type())})
		return true
	})
	if err = firstErr(ierr, err); err != nil {
		return nil, err
	}
	// The info outlives the batch: copy what it keeps.
	ri.service = clone(ri.service)
	for i := range ri.k8s {
		ri.k8s[i] = clone(ri.k8s[i])
	}
	ri.attrs = make([]attr, len(attrs))
	for i, a := range attrs {
		end := len(text)
		if i+1 < len(attrs) {
			end = attrs[i+1].start
		}
		ri.attrs[i] = attr{key: clone(a.key), value: text[a.start:end:end], typ: a.typ}
		ri.size += int64(len(a.key)) + 40
	}
	ri.size += int64(cap(text)) + 128
	return ri, nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// clone copies b, keeping nil as nil and empty as empty.
func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// scratch holds the parsed spans of one Add call; its slices point into the
// batch or into text.
type scratch struct {
	spans  []parsedSpan
	attrs  []attr
	events [][]byte
	text   []byte // stringified attribute values
}

type parsedSpan struct {
	raw      []byte
	f        otlpwire.SpanFields
	dedSet   [len(spanDedicated)]bool
	dedStr   [len(spanDedicated)][]byte
	dedInt   [len(spanDedicated)]int64
	attrs    [2]int // range in scratch.attrs
	evNames  [2]int // range in scratch.events
	duration int64
}

func (s *scratch) reset() {
	clear(s.spans)
	clear(s.attrs)
	clear(s.events)
	s.spans, s.attrs, s.events, s.text = s.spans[:0], s.attrs[:0], s.events[:0], s.text[:0]
}

func (s *scratch) parse(raw []byte) error {
	f, err := otlpwire.ReadSpan(raw)
	if err != nil {
		return err
	}
	if len(f.TraceID) != 16 {
		return fmt.Errorf("trace ID must be 16 bytes, got %d", len(f.TraceID))
	}
	if len(f.SpanID) != 8 {
		return fmt.Errorf("span ID must be 8 bytes, got %d", len(f.SpanID))
	}
	s.spans = append(s.spans, parsedSpan{raw: raw, f: f, duration: int64(f.EndTimeUnixNano - f.StartTimeUnixNano)})
	p := &s.spans[len(s.spans)-1]
	p.attrs[0] = len(s.attrs)
	var aerr error
	err = otlpwire.EachAttribute(raw, otlpwire.MessageSpan, func(key []byte, v otlpwire.AnyValueView) bool {
		if i, ok := spanDedicatedIndex[string(key)]; ok && !p.dedSet[i] {
			switch {
			case spanDedicated[i].isInt && v.Type() == otlpwire.ValueTypeInt:
				p.dedSet[i], p.dedInt[i] = true, v.Int()
				return true
			case !spanDedicated[i].isInt && v.Type() == otlpwire.ValueTypeStr:
				p.dedSet[i], p.dedStr[i] = true, v.Str()
				return true
			}
		}
		var val []byte
		if v.Type() == otlpwire.ValueTypeStr {
			val = v.Str()
		} else {
			// Appending never writes before len(s.text), so slices taken
			// earlier stay valid even when the array moves.
			start := len(s.text)
			if s.text, aerr = v.AppendString(s.text); aerr != nil {
				return false
			}
			val = s.text[start:len(s.text):len(s.text)]
		}
		s.attrs = append(s.attrs, attr{key: key, value: val, typ: int32(v.Type())})
		return true
	})
	if err = firstErr(err, aerr); err != nil {
		return err
	}
	p.attrs[1] = len(s.attrs)
	p.evNames[0] = len(s.events)
	var everr error
	err = otlpwire.EachEvent(raw, func(ev []byte) bool {
		var ef otlpwire.EventFields
		if ef, everr = otlpwire.ReadEvent(ev); everr != nil {
			return false
		}
		s.events = append(s.events, ef.Name)
		return true
	})
	if err = firstErr(err, everr); err != nil {
		return err
	}
	p.evNames[1] = len(s.events)
	return nil
}

// builders are the Arrow builders of the batch being built.
type builders struct {
	rb              *array.RecordBuilder
	traceID, spanID *array.FixedSizeBinaryBuilder
	parent          *array.BinaryBuilder
	start, duration *array.Int64Builder
	name, statusMsg *array.BinaryDictionaryBuilder
	kind, status    *array.Int32Builder
	dedStr          [len(spanDedicated)]*array.BinaryDictionaryBuilder
	dedInt          [len(spanDedicated)]*array.Int64Builder
	attrs           *array.ListBuilder
	attr            *array.StructBuilder
	attrKey         *array.BinaryBuilder
	attrValue       *array.BinaryBuilder
	attrType        *array.Int32Builder
	events          *array.ListBuilder
	eventName       *array.BinaryBuilder
	span            *array.BinaryBuilder
	resource, scope *array.BinaryDictionaryBuilder
	run             []int // scratch for appendRun
}

func newBuilders(mem memory.Allocator) *builders {
	rb := array.NewRecordBuilder(mem, bufferSchema)
	b := &builders{
		rb:        rb,
		traceID:   rb.Field(bTraceID).(*array.FixedSizeBinaryBuilder),
		spanID:    rb.Field(bSpanID).(*array.FixedSizeBinaryBuilder),
		parent:    rb.Field(bParentSpanID).(*array.BinaryBuilder),
		start:     rb.Field(bStart).(*array.Int64Builder),
		duration:  rb.Field(bDuration).(*array.Int64Builder),
		name:      rb.Field(bName).(*array.BinaryDictionaryBuilder),
		kind:      rb.Field(bKind).(*array.Int32Builder),
		status:    rb.Field(bStatusCode).(*array.Int32Builder),
		statusMsg: rb.Field(bStatusMessage).(*array.BinaryDictionaryBuilder),
		attrs:     rb.Field(bSpanAttrs).(*array.ListBuilder),
		events:    rb.Field(bEventNames).(*array.ListBuilder),
		span:      rb.Field(bSpan).(*array.BinaryBuilder),
		resource:  rb.Field(bResource).(*array.BinaryDictionaryBuilder),
		scope:     rb.Field(bScope).(*array.BinaryDictionaryBuilder),
	}
	for i, d := range spanDedicated {
		if d.isInt {
			b.dedInt[i] = rb.Field(bSpanDedicated + i).(*array.Int64Builder)
		} else {
			b.dedStr[i] = rb.Field(bSpanDedicated + i).(*array.BinaryDictionaryBuilder)
		}
	}
	b.attr = b.attrs.ValueBuilder().(*array.StructBuilder)
	b.attrKey = b.attr.FieldBuilder(0).(*array.StringBuilder).BinaryBuilder
	b.attrValue = b.attr.FieldBuilder(1).(*array.StringBuilder).BinaryBuilder
	b.attrType = b.attr.FieldBuilder(2).(*array.Int32Builder)
	b.eventName = b.events.ValueBuilder().(*array.StringBuilder).BinaryBuilder
	return b
}

func (b *builders) release() { b.rb.Release() }

// nonNil makes nil an empty slice: dictionary builders append a null for
// nil.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// appendRun appends n copies of v to a dictionary column, hashing v once.
func (b *builders) appendRun(d *array.BinaryDictionaryBuilder, v []byte, n int) {
	_ = d.Append(nonNil(v))
	if n == 1 {
		return
	}
	idx := d.GetValueIndex(d.Len() - 1)
	b.run = b.run[:0]
	for range n - 1 {
		b.run = append(b.run, idx)
	}
	d.AppendIndices(b.run, nil)
}

func (b *builders) appendSpan(s *scratch, p *parsedSpan) {
	b.traceID.Append(p.f.TraceID)
	b.spanID.Append(p.f.SpanID)
	b.parent.Append(p.f.ParentSpanID)
	b.start.Append(int64(p.f.StartTimeUnixNano))
	b.duration.Append(p.duration)
	_ = b.name.Append(nonNil(p.f.Name))
	b.kind.Append(p.f.Kind)
	b.status.Append(p.f.StatusCode)
	_ = b.statusMsg.Append(nonNil(p.f.StatusMessage))
	for i := range spanDedicated {
		switch {
		case b.dedInt[i] != nil && p.dedSet[i]:
			b.dedInt[i].Append(p.dedInt[i])
		case b.dedInt[i] != nil:
			b.dedInt[i].AppendNull()
		case p.dedSet[i]:
			_ = b.dedStr[i].Append(nonNil(p.dedStr[i]))
		default:
			b.dedStr[i].AppendNull()
		}
	}
	b.attrs.Append(true)
	for _, a := range s.attrs[p.attrs[0]:p.attrs[1]] {
		b.attr.Append(true)
		b.attrKey.Append(a.key)
		b.attrValue.Append(a.value)
		b.attrType.Append(a.typ)
	}
	b.events.Append(true)
	for _, name := range s.events[p.evNames[0]:p.evNames[1]] {
		b.eventName.Append(name)
	}
	b.span.Append(p.raw)
}

// countingAllocator counts the bytes allocated and not yet freed.
type countingAllocator struct {
	mem memory.Allocator
	n   atomic.Int64
}

func (a *countingAllocator) Allocate(size int) []byte {
	b := a.mem.Allocate(size)
	a.n.Add(int64(len(b)))
	return b
}

func (a *countingAllocator) Reallocate(size int, b []byte) []byte {
	old := len(b)
	b = a.mem.Reallocate(size, b)
	a.n.Add(int64(len(b) - old))
	return b
}

func (a *countingAllocator) Free(b []byte) {
	a.n.Add(-int64(len(b)))
	a.mem.Free(b)
}
