package block

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/weftdb/weft/internal/otlpwire"
)

// This file answers tag look-ups (attribute names and values, Tempo's
// /api/search/tags and /api/search/tag/{name}/values) on one block, reading
// as little of data.parquet as it can:
//
//   - names of span and resource attributes: the dictionary pages of the
//     span_attrs / resource_attrs key columns, plus the dictionary page (or
//     null count) of each dedicated column, which contributes its attribute
//     name when it holds a value;
//   - names of instrumentation-scope attributes: the dictionary page of the
//     scope column (one entry per distinct scope);
//   - values of a dedicated attribute: its column's dictionary page, plus the
//     generic list (an attribute whose type does not fit its column is
//     there);
//   - values of a generic attribute: the key column's dictionary page first
//     (a row group whose dictionary lacks the key is skipped), then the key,
//     value and type leaf columns of the row groups that may hold it;
//   - names and values of event and link attributes: they exist only inside
//     the raw span column, so every span of the block is read (about the
//     size of the block). Callers ask for these scopes only when a request
//     names them explicitly.
//
// A column chunk whose dictionary fell back to plain encoding (over 1 MiB)
// is read whole instead of its dictionary page.

// TagScope is a set of places attributes live in.
type TagScope uint8

// Tag scopes; they combine with |.
const (
	TagScopeSpan TagScope = 1 << iota
	TagScopeResource
	TagScopeInstrumentation
	TagScopeEvent
	TagScopeLink
)

// TagNames are the distinct attribute names of a block per scope, each list
// sorted.
type TagNames struct {
	Span, Resource, Instrumentation, Event, Link []string
}

// TagValue is one distinct attribute value: its OTLP type and its text as
// stored in the generic value column (pcommon.Value.AsString: strings as
// they are, ints in decimal, doubles in shortest form, true/false).
type TagValue struct {
	Type  otlpwire.ValueType
	Value string
}

// IntrinsicColumn names a span field whose distinct values a block can
// list from one column.
type IntrinsicColumn int

// Intrinsic columns.
const (
	IntrinsicSpanName IntrinsicColumn = iota + 1
	IntrinsicStatusMessage
	IntrinsicEventName
	IntrinsicScopeName
	IntrinsicScopeVersion
)

// Leaf paths of the generic attribute lists and of event names.
var (
	spanAttrKey   = []string{colSpanAttrs, "list", "element", "key"}
	spanAttrValue = []string{colSpanAttrs, "list", "element", "value"}
	spanAttrType  = []string{colSpanAttrs, "list", "element", "type"}
	resAttrKey    = []string{colResourceAttrs, "list", "element", "key"}
	resAttrValue  = []string{colResourceAttrs, "list", "element", "value"}
	resAttrType   = []string{colResourceAttrs, "list", "element", "type"}
	eventNameLeaf = []string{colEventNames, "list", "element"}
)

// tagRead is one tag look-up on a block: the open file and the bytes read.
type tagRead struct {
	r     *Reader
	f     *parquet.File
	cols  leafColumns
	ra    *objectReaderAt
	bytes int64
}

func (r *Reader) tagRead(ctx context.Context) (*tagRead, error) {
	f, cols, err := r.loadFile(ctx)
	if err != nil {
		return nil, err
	}
	return &tagRead{r: r, f: f, cols: cols, ra: r.readerAt(ctx)}, nil
}

func (t *tagRead) leaf(path []string) (int, error) {
	leaf, ok := t.f.Schema().Lookup(path...)
	if !ok {
		return 0, fmt.Errorf("block %s: no column %q", t.r.meta.BlockID, strings.Join(path, "."))
	}
	return leaf.ColumnIndex, nil
}

// cache fetches ranges and counts their bytes.
func (t *tagRead) cache(ranges [][2]int64) (*rangeCache, error) {
	c := newRangeCache(t.ra)
	if err := c.fetch(ranges); err != nil {
		return nil, fmt.Errorf("block %s: %w", t.r.meta.BlockID, err)
	}
	for _, rg := range c.ranges {
		t.bytes += int64(len(rg.data))
	}
	return c, nil
}

// chunkRange is the byte range of a whole column chunk.
func (t *tagRead) chunkRange(g, col int) [2]int64 {
	md := chunkMeta(t.f, g, col)
	start := md.DataPageOffset
	if d := md.DictionaryPageOffset; d > 0 && d < start {
		start = d
	}
	return [2]int64{start, start + md.TotalCompressedSize}
}

// distinct calls fn with every distinct non-null value of column col in row
// group g (it may repeat a value when the chunk has no dictionary), from
// the dictionary page alone when the chunk has one. Values point into
// pages: fn copies what it keeps.
func (t *tagRead) distinct(g, col int, fn func(parquet.Value)) error {
	md := chunkMeta(t.f, g, col)
	chunk := chunkOf(t.f.RowGroups()[g], col)
	if d := md.DictionaryPageOffset; d > 0 && d < md.DataPageOffset {
		c, err := t.cache([][2]int64{{d, md.DataPageOffset}})
		if err != nil {
			return err
		}
		pages := chunk.PagesFrom(c)
		defer pages.Close()
		dict, err := pages.ReadDictionary()
		if err != nil {
			return fmt.Errorf("block %s: row group %d: dictionary of column %d: %w", t.r.meta.BlockID, g, col, err)
		}
		if dict != nil {
			for i := 0; i < dict.Len(); i++ {
				fn(dict.Index(int32(i)))
			}
			return nil
		}
	}
	return t.each(g, []int{col}, func(_ int, vs []parquet.Value) {
		if !vs[0].IsNull() {
			fn(vs[0])
		}
	})
}

// hasValue reports whether column col of row group g holds a non-null
// value.
func (t *tagRead) hasValue(g, col int) (bool, error) {
	md := chunkMeta(t.f, g, col)
	if md.NumValues == 0 {
		return false, nil
	}
	found := false
	err := t.distinct(g, col, func(parquet.Value) { found = true })
	return found, err
}

// each reads the columns cols of row group g in step, value by value
// (nulls included, so that the leaves of one list line up), and calls fn
// with the index and the values of each position.
func (t *tagRead) each(g int, cols []int, fn func(i int, vs []parquet.Value)) error {
	var ranges [][2]int64
	for _, col := range cols {
		ranges = append(ranges, t.chunkRange(g, col))
	}
	c, err := t.cache(ranges)
	if err != nil {
		return err
	}
	// Read each column whole (values copied), then walk them in step.
	all := make([][]parquet.Value, len(cols))
	for ci, col := range cols {
		vals, err := readAllValues(c, chunkOf(t.f.RowGroups()[g], col))
		if err != nil {
			return fmt.Errorf("block %s: row group %d: %w", t.r.meta.BlockID, g, err)
		}
		all[ci] = vals
	}
	n := len(all[0])
	for _, vals := range all[1:] {
		if len(vals) != n {
			return fmt.Errorf("block %s: row group %d: columns %v have different value counts", t.r.meta.BlockID, g, cols)
		}
	}
	vs := make([]parquet.Value, len(cols))
	for i := 0; i < n; i++ {
		for ci := range cols {
			vs[ci] = all[ci][i]
		}
		fn(i, vs)
	}
	return nil
}

// readAllValues returns every value (nulls included) of a column chunk,
// copied out of the pages.
func readAllValues(ra io.ReaderAt, chunk *parquet.FileColumnChunk) ([]parquet.Value, error) {
	pages := chunk.PagesFrom(ra)
	defer pages.Close()
	var out []parquet.Value
	buf := make([]parquet.Value, 512)
	for {
		page, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read column %d: %w", chunk.Column(), err)
		}
		vr := page.Values()
		for {
			n, err := vr.ReadValues(buf)
			for _, v := range buf[:n] {
				out = append(out, v.Clone())
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				parquet.Release(page)
				return nil, fmt.Errorf("read column %d: %w", chunk.Column(), err)
			}
		}
		parquet.Release(page)
	}
}

// eachRawSpan calls fn with every encoded span of the block: the whole span
// column is read.
func (t *tagRead) eachRawSpan(fn func(span []byte) error) error {
	for g := range t.f.RowGroups() {
		var ferr error
		err := t.each(g, []int{t.cols.span}, func(_ int, vs []parquet.Value) {
			if ferr == nil {
				ferr = fn(vs[0].ByteArray())
			}
		})
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// eachScopeHeader calls fn with every distinct scope header of the block.
func (t *tagRead) eachScopeHeader(fn func(h []byte) error) error {
	for g := range t.f.RowGroups() {
		var ferr error
		err := t.distinct(g, t.cols.scope, func(v parquet.Value) {
			if ferr == nil {
				ferr = fn(v.ByteArray())
			}
		})
		if err != nil {
			return err
		}
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// TagNames returns the distinct attribute names of the block in the given
// scopes and the bytes of data.parquet it read. See the top of this file
// for what each scope costs; event and link scopes read every span.
func (r *Reader) TagNames(ctx context.Context, scopes TagScope) (*TagNames, int64, error) {
	t, err := r.tagRead(ctx)
	if err != nil {
		return nil, 0, err
	}
	sets := map[TagScope]map[string]bool{}
	add := func(s TagScope, name string) {
		if sets[s] == nil {
			sets[s] = map[string]bool{}
		}
		sets[s][name] = true
	}
	type listCols struct {
		scope     TagScope
		key       []string
		dedicated []dedicatedColumn
	}
	resDedicated := append([]dedicatedColumn{{attr: serviceNameAttr, column: colServiceName}}, resourceDedicated[:]...)
	for _, lc := range []listCols{
		{TagScopeSpan, spanAttrKey, spanDedicated[:]},
		{TagScopeResource, resAttrKey, resDedicated},
	} {
		if scopes&lc.scope == 0 {
			continue
		}
		keyCol, err := t.leaf(lc.key)
		if err != nil {
			return nil, t.bytes, err
		}
		for g := range t.f.RowGroups() {
			if err := ctx.Err(); err != nil {
				return nil, t.bytes, err
			}
			if err := t.distinct(g, keyCol, func(v parquet.Value) { add(lc.scope, string(v.ByteArray())) }); err != nil {
				return nil, t.bytes, err
			}
			for _, d := range lc.dedicated {
				if sets[lc.scope][d.attr] {
					continue
				}
				col, err := t.leaf([]string{d.column})
				if err != nil {
					return nil, t.bytes, err
				}
				ok, err := t.hasValue(g, col)
				if err != nil {
					return nil, t.bytes, err
				}
				if ok {
					add(lc.scope, d.attr)
				}
			}
		}
	}
	if scopes&TagScopeInstrumentation != 0 {
		err := t.eachScopeHeader(func(h []byte) error {
			return otlpwire.EachAttribute(h, otlpwire.MessageScopeHeader, func(k []byte, _ otlpwire.AnyValueView) bool {
				add(TagScopeInstrumentation, string(k))
				return true
			})
		})
		if err != nil {
			return nil, t.bytes, fmt.Errorf("block %s: scope attributes: %w", r.meta.BlockID, err)
		}
	}
	if scopes&(TagScopeEvent|TagScopeLink) != 0 {
		err := t.eachRawSpan(func(span []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return eachEventLinkAttr(span, scopes, func(s TagScope, k []byte, _ otlpwire.AnyValueView) {
				add(s, string(k))
			})
		})
		if err != nil {
			return nil, t.bytes, fmt.Errorf("block %s: event and link attributes: %w", r.meta.BlockID, err)
		}
	}
	sorted := func(s TagScope) []string {
		var out []string
		for k := range sets[s] {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	return &TagNames{
		Span:            sorted(TagScopeSpan),
		Resource:        sorted(TagScopeResource),
		Instrumentation: sorted(TagScopeInstrumentation),
		Event:           sorted(TagScopeEvent),
		Link:            sorted(TagScopeLink),
	}, t.bytes, nil
}

// eachEventLinkAttr calls fn with the attributes of the events and links of
// an encoded span, for the scopes asked.
func eachEventLinkAttr(span []byte, scopes TagScope, fn func(TagScope, []byte, otlpwire.AnyValueView)) error {
	var inner error
	visit := func(s TagScope, kind otlpwire.MessageKind) func([]byte) bool {
		return func(msg []byte) bool {
			inner = otlpwire.EachAttribute(msg, kind, func(k []byte, v otlpwire.AnyValueView) bool {
				fn(s, k, v)
				return true
			})
			return inner == nil
		}
	}
	if scopes&TagScopeEvent != 0 {
		if err := otlpwire.EachEvent(span, visit(TagScopeEvent, otlpwire.MessageEvent)); err != nil {
			return err
		}
		if inner != nil {
			return inner
		}
	}
	if scopes&TagScopeLink != 0 {
		if err := otlpwire.EachLink(span, visit(TagScopeLink, otlpwire.MessageLink)); err != nil {
			return err
		}
	}
	return inner
}

// TagValues returns the distinct values of attribute key in the given
// scopes (TagScopeSpan|TagScopeResource for an unscoped attribute) and the
// bytes of data.parquet it read, in no particular order.
func (r *Reader) TagValues(ctx context.Context, scopes TagScope, key string) ([]TagValue, int64, error) {
	t, err := r.tagRead(ctx)
	if err != nil {
		return nil, 0, err
	}
	seen := map[TagValue]bool{}
	var out []TagValue
	add := func(v TagValue) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	type listCols struct {
		scope         TagScope
		key, val, typ []string
		dedicated     *dedicatedColumn
	}
	lists := []listCols{
		{scope: TagScopeSpan, key: spanAttrKey, val: spanAttrValue, typ: spanAttrType},
		{scope: TagScopeResource, key: resAttrKey, val: resAttrValue, typ: resAttrType},
	}
	if i, ok := spanDedicatedIndex[key]; ok {
		lists[0].dedicated = &spanDedicated[i]
	}
	if i, ok := resourceDedicatedIndex[key]; ok {
		lists[1].dedicated = &resourceDedicated[i]
	} else if key == serviceNameAttr {
		lists[1].dedicated = &dedicatedColumn{attr: serviceNameAttr, column: colServiceName}
	}
	for _, lc := range lists {
		if scopes&lc.scope == 0 {
			continue
		}
		cols := make([]int, 3)
		for i, p := range [][]string{lc.key, lc.val, lc.typ} {
			if cols[i], err = t.leaf(p); err != nil {
				return nil, t.bytes, err
			}
		}
		dcol := -1
		if lc.dedicated != nil {
			if dcol, err = t.leaf([]string{lc.dedicated.column}); err != nil {
				return nil, t.bytes, err
			}
		}
		for g := range t.f.RowGroups() {
			if err := ctx.Err(); err != nil {
				return nil, t.bytes, err
			}
			if dcol >= 0 {
				isInt := lc.dedicated.isInt
				err := t.distinct(g, dcol, func(v parquet.Value) {
					if isInt {
						add(TagValue{Type: otlpwire.ValueTypeInt, Value: fmt.Sprint(v.Int64())})
					} else {
						add(TagValue{Type: otlpwire.ValueTypeStr, Value: string(v.ByteArray())})
					}
				})
				if err != nil {
					return nil, t.bytes, err
				}
			}
			// Skip the row group when the key dictionary lacks the key.
			present := false
			if err := t.distinct(g, cols[0], func(v parquet.Value) {
				present = present || string(v.ByteArray()) == key
			}); err != nil {
				return nil, t.bytes, err
			}
			if !present {
				continue
			}
			err := t.each(g, cols, func(_ int, vs []parquet.Value) {
				if vs[0].IsNull() || string(vs[0].ByteArray()) != key {
					return
				}
				add(TagValue{Type: otlpwire.ValueType(vs[2].Int32()), Value: string(vs[1].ByteArray())})
			})
			if err != nil {
				return nil, t.bytes, err
			}
		}
	}
	if scopes&TagScopeInstrumentation != 0 {
		err := t.eachScopeHeader(func(h []byte) error {
			return eachValueOf(h, otlpwire.MessageScopeHeader, key, add)
		})
		if err != nil {
			return nil, t.bytes, fmt.Errorf("block %s: scope attributes: %w", r.meta.BlockID, err)
		}
	}
	if scopes&(TagScopeEvent|TagScopeLink) != 0 {
		var verr error
		err := t.eachRawSpan(func(span []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := eachEventLinkAttr(span, scopes, func(_ TagScope, k []byte, v otlpwire.AnyValueView) {
				if string(k) == key && verr == nil {
					var tv TagValue
					if tv, verr = valueOf(v); verr == nil {
						add(tv)
					}
				}
			})
			return errors.Join(err, verr)
		})
		if err != nil {
			return nil, t.bytes, fmt.Errorf("block %s: event and link attributes: %w", r.meta.BlockID, err)
		}
	}
	return out, t.bytes, nil
}

func eachValueOf(msg []byte, kind otlpwire.MessageKind, key string, add func(TagValue)) error {
	var verr error
	err := otlpwire.EachAttribute(msg, kind, func(k []byte, v otlpwire.AnyValueView) bool {
		if string(k) != key {
			return true
		}
		var tv TagValue
		if tv, verr = valueOf(v); verr != nil {
			return false
		}
		add(tv)
		return true
	})
	return errors.Join(err, verr)
}

// valueOf is v as the generic value column stores it.
func valueOf(v otlpwire.AnyValueView) (TagValue, error) {
	b, err := v.AppendString(nil)
	if err != nil {
		return TagValue{}, err
	}
	return TagValue{Type: v.Type(), Value: string(b)}, nil
}

// IntrinsicValues returns the distinct values of a span field that has a
// column (span names, status messages, event names from their dictionary
// pages; instrumentation scope names and versions from the scope column's
// dictionary page) and the bytes of data.parquet it read.
func (r *Reader) IntrinsicValues(ctx context.Context, which IntrinsicColumn) ([]string, int64, error) {
	t, err := r.tagRead(ctx)
	if err != nil {
		return nil, 0, err
	}
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	switch which {
	case IntrinsicScopeName, IntrinsicScopeVersion:
		err := t.eachScopeHeader(func(h []byte) error {
			sf, err := otlpwire.ReadScopeHeader(h)
			if err != nil {
				return err
			}
			if which == IntrinsicScopeName {
				add(string(sf.Name))
			} else {
				add(string(sf.Version))
			}
			return nil
		})
		if err != nil {
			return nil, t.bytes, fmt.Errorf("block %s: scopes: %w", r.meta.BlockID, err)
		}
		return out, t.bytes, nil
	}
	var path []string
	switch which {
	case IntrinsicSpanName:
		path = []string{colName}
	case IntrinsicStatusMessage:
		path = []string{colStatusMessage}
	case IntrinsicEventName:
		path = eventNameLeaf
	default:
		return nil, 0, fmt.Errorf("cannot list values: unknown intrinsic column %d", which)
	}
	col, err := t.leaf(path)
	if err != nil {
		return nil, t.bytes, err
	}
	for g := range t.f.RowGroups() {
		if err := ctx.Err(); err != nil {
			return nil, t.bytes, err
		}
		if err := t.distinct(g, col, func(v parquet.Value) { add(string(v.ByteArray())) }); err != nil {
			return nil, t.bytes, err
		}
	}
	return out, t.bytes, nil
}
