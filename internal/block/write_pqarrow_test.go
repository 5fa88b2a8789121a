package block

// The pqarrow writer is kept, test-only, for BenchmarkWrite: it lost to
// parquet-go (docs/block-format.md, "Writer choice").

import (
	"context"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	pqcompress "github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// fileSchema is the Arrow schema of data.parquet as pqarrow writes it: the
// buffer's columns with the resource-derived ones inserted.
var fileSchema = func() *arrow.Schema {
	bf := bufferSchema.Fields()
	var f []arrow.Field
	f = append(f, bf[:bSpanDedicated]...)
	f = append(f, arrow.Field{Name: colServiceName, Type: dictString, Nullable: true})
	for _, d := range resourceDedicated {
		f = append(f, arrow.Field{Name: d.column, Type: dictString, Nullable: true})
	}
	f = append(f, bf[bSpanDedicated:bEventNames]...)
	f = append(f, arrow.Field{Name: colResourceAttrs, Type: attrListType})
	f = append(f, bf[bEventNames:]...)
	return arrow.NewSchema(f, nil)
}()

// writeParquetArrow writes the planned rows with arrow-go's pqarrow, one
// row group at a time: the group's rows are gathered from the buffered
// arrays with compute.Take, the resource-derived columns are built, and the
// record batch is written as one row group. With a single buffered record
// batch (the common case: Add ... Add, Write) nothing else is copied.
func writeParquetArrow(w io.Writer, p *plan, mem memory.Allocator, codec pqcompress.Compression) error {
	ctx := compute.WithAllocator(context.Background(), mem)
	// The buffered columns, each as one array.
	cols := make([]arrow.Array, bColumns)
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	offsets := make([]int64, len(p.chunks)+1)
	for i, cv := range p.chunks {
		offsets[i+1] = offsets[i] + cv.rec.NumRows()
	}
	for col := range bColumns {
		if len(p.chunks) == 1 {
			cols[col] = p.chunks[0].rec.Column(col)
			cols[col].Retain()
			continue
		}
		parts := make([]arrow.Array, len(p.chunks))
		for i, cv := range p.chunks {
			parts[i] = cv.rec.Column(col)
		}
		all, err := array.Concatenate(parts, mem)
		if err != nil {
			return err
		}
		cols[col] = all
	}

	fw, err := pqarrow.NewFileWriter(fileSchema, w, arrowWriterProps(mem, codec), pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem)))
	if err != nil {
		return err
	}
	lo := 0
	for _, hi := range p.groups {
		rec, err := arrowRowGroup(ctx, mem, p, cols, offsets, p.rows[lo:hi])
		if err != nil {
			return err
		}
		err = fw.Write(rec)
		rec.Release()
		if err != nil {
			return err
		}
		lo = hi
	}
	return fw.Close()
}

// arrowRowGroup builds the record batch of one row group.
func arrowRowGroup(ctx context.Context, mem memory.Allocator, p *plan, cols []arrow.Array, offsets []int64, rows []rowRef) (arrow.RecordBatch, error) {
	ib := array.NewInt64Builder(mem)
	ib.Reserve(len(rows))
	for _, r := range rows {
		ib.UnsafeAppend(offsets[r.chunk] + int64(r.row))
	}
	indices := ib.NewArray()
	ib.Release()
	defer indices.Release()

	var out []arrow.Array
	release := func() {
		for _, c := range out {
			c.Release()
		}
	}
	take := func(from, to int) error {
		for col := from; col < to; col++ {
			a, err := compute.TakeArray(ctx, cols[col], indices)
			if err != nil {
				return err
			}
			if d, ok := a.(*array.Dictionary); ok {
				// pqarrow writes the whole Arrow dictionary as the row
				// group's dictionary page: keep only the values used.
				c, err := compactDictionary(ctx, mem, d)
				a.Release()
				if err != nil {
					return err
				}
				a = c
			}
			out = append(out, a)
		}
		return nil
	}
	if err := take(0, bSpanDedicated); err != nil {
		release()
		return nil, err
	}
	// Resource-derived columns.
	svc := array.NewDictionaryBuilder(mem, dictString).(*array.BinaryDictionaryBuilder)
	var k8s [len(resourceDedicated)]*array.BinaryDictionaryBuilder
	for i := range k8s {
		k8s[i] = array.NewDictionaryBuilder(mem, dictString).(*array.BinaryDictionaryBuilder)
	}
	ra := array.NewBuilder(mem, attrListType).(*array.ListBuilder)
	raStruct := ra.ValueBuilder().(*array.StructBuilder)
	raKey := raStruct.FieldBuilder(0).(*array.StringBuilder)
	raValue := raStruct.FieldBuilder(1).(*array.StringBuilder)
	raType := raStruct.FieldBuilder(2).(*array.Int32Builder)
	for _, r := range rows {
		ri := p.chunks[r.chunk].resourceInfo(int(r.row))
		if ri.hasService {
			_ = svc.Append(nonNil(ri.service))
		} else {
			svc.AppendNull()
		}
		for i, b := range k8s {
			if ri.hasK8s[i] {
				_ = b.Append(nonNil(ri.k8s[i]))
			} else {
				b.AppendNull()
			}
		}
		ra.Append(true)
		for _, a := range ri.attrs {
			raStruct.Append(true)
			raKey.BinaryBuilder.Append(a.key)
			raValue.BinaryBuilder.Append(a.value)
			raType.Append(a.typ)
		}
	}
	out = append(out, svc.NewArray())
	svc.Release()
	for _, b := range k8s {
		out = append(out, b.NewArray())
		b.Release()
	}
	if err := take(bSpanDedicated, bEventNames); err != nil {
		release()
		return nil, err
	}
	out = append(out, ra.NewArray())
	ra.Release()
	if err := take(bEventNames, bColumns); err != nil {
		release()
		return nil, err
	}
	rec := array.NewRecordBatch(fileSchema, out, int64(len(rows)))
	release() // the record holds its own references
	return rec, nil
}

// compactDictionary returns a dictionary array holding only the dictionary
// values d uses.
func compactDictionary(ctx context.Context, mem memory.Allocator, d *array.Dictionary) (arrow.Array, error) {
	dict := d.Dictionary()
	remap := make([]int32, dict.Len()) // new index + 1, 0 while unused
	ub := array.NewInt32Builder(mem)
	defer ub.Release()
	ib := array.NewInt32Builder(mem)
	defer ib.Release()
	ib.Reserve(d.Len())
	used := int32(0)
	for i := range d.Len() {
		if d.IsNull(i) {
			ib.AppendNull()
			continue
		}
		old := d.GetValueIndex(i)
		if remap[old] == 0 {
			used++
			remap[old] = used
			ub.Append(int32(old))
		}
		ib.UnsafeAppend(remap[old] - 1)
	}
	if int(used) == dict.Len() {
		d.Retain()
		return d, nil
	}
	usedIdx := ub.NewArray()
	defer usedIdx.Release()
	values, err := compute.TakeArray(ctx, dict, usedIdx)
	if err != nil {
		return nil, err
	}
	defer values.Release()
	idx := ib.NewArray()
	defer idx.Release()
	return array.NewDictionaryArray(d.DataType(), idx, values), nil
}

// arrowWriterProps mirror the parquet-go writer's settings: dictionary
// encoding where pqRow says dict, delta encoding for the times, page index.
func arrowWriterProps(mem memory.Allocator, codec pqcompress.Compression) *pq.WriterProperties {
	opts := []pq.WriterProperty{
		pq.WithAllocator(mem),
		pq.WithCompression(codec),
		pq.WithDictionaryDefault(false),
		pq.WithDataPageSize(pageBufferBytes),
		pq.WithDataPageVersion(pq.DataPageV2),
		pq.WithDictionaryPageSizeLimit(dictMaxBytes),
		pq.WithPageIndexEnabled(true),
		pq.WithStats(true),
		pq.WithMaxRowGroupLength(1 << 40),
		pq.WithCreatedBy("weft " + FormatV1),
		pq.WithEncodingFor(colStart, pq.Encodings.DeltaBinaryPacked),
		pq.WithEncodingFor(colDuration, pq.Encodings.DeltaBinaryPacked),
		pq.WithStatsFor(colSpan, false),
		pq.WithStatsFor(colResource, false),
		pq.WithStatsFor(colScope, false),
	}
	dict := []string{colName, colKind, colStatusCode, colStatusMessage, colServiceName, colResource, colScope,
		colSpanAttrs + ".list.element.key", colSpanAttrs + ".list.element.value", colSpanAttrs + ".list.element.type",
		colResourceAttrs + ".list.element.key", colResourceAttrs + ".list.element.value", colResourceAttrs + ".list.element.type",
		colEventNames + ".list.element"}
	for _, d := range resourceDedicated {
		dict = append(dict, d.column)
	}
	for _, d := range spanDedicated {
		dict = append(dict, d.column)
	}
	for _, c := range dict {
		opts = append(opts, pq.WithDictionaryFor(c, true))
	}
	return pq.NewWriterProperties(opts...)
}
