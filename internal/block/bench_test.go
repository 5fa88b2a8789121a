package block

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	pqcompress "github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/lz4"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/parquet-go/parquet-go/compress/uncompressed"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/spanpred"
)

// benchSpans is the data of the write benchmarks: 10,000 traces of 10
// spans over 5 services, as 100 export requests of 100 traces.
const (
	benchTraces   = 10_000
	benchRequests = 100
)

var benchData = sync.OnceValue(func() [][]byte {
	var reqs [][]byte
	for i := range benchRequests {
		td := spangen.Generate(spangen.Options{Seed: uint64(i), Traces: benchTraces / benchRequests, SpansPerTrace: 10, Services: 5})
		reqs = append(reqs, spangen.Marshal(td))
	}
	return reqs
})

func benchBuffer(b testing.TB) *Buffer {
	b.Helper()
	buf := NewBuffer(nil)
	for _, req := range benchData() {
		if err := buf.Add(parse(b, req)); err != nil {
			b.Fatal(err)
		}
	}
	buf.flush()
	return buf
}

// BenchmarkWrite compares the two Parquet writers on the same buffer
// (sorting and row-group planning included, as in Write):
//
//	go test ./internal/block -run '^$' -bench 'BenchmarkWrite$' -benchtime 10x
func BenchmarkWrite(b *testing.B) {
	buf := benchBuffer(b)
	defer buf.Release()
	opts := WriteOptions{}.withDefaults()
	run := func(b *testing.B, write func(*bytes.Buffer, *plan) error) {
		var out bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			out.Reset()
			p, err := newPlan(buf, opts)
			if err != nil {
				b.Fatal(err)
			}
			if err := write(&out, p); err != nil {
				b.Fatal(err)
			}
		}
		spans := float64(buf.Spans())
		b.ReportMetric(spans*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
		b.ReportMetric(float64(out.Len())/spans, "bytes/span")
	}
	b.Run("pqarrow", func(b *testing.B) {
		run(b, func(w *bytes.Buffer, p *plan) error {
			return writeParquetArrow(w, p, memory.DefaultAllocator, pqcompress.Codecs.Zstd)
		})
	})
	b.Run("parquet-go", func(b *testing.B) {
		run(b, func(w *bytes.Buffer, p *plan) error {
			return writeParquetGo(w, p, &zstd.Codec{Level: zstdLevel}, pageBufferBytes)
		})
	})
	// The same without the value filters: their cost.
	b.Run("parquet-go-nofilters", func(b *testing.B) {
		defer func(old bool) { writeFilters = old }(writeFilters)
		writeFilters = false
		run(b, func(w *bytes.Buffer, p *plan) error {
			return writeParquetGo(w, p, &zstd.Codec{Level: zstdLevel}, pageBufferBytes)
		})
	})
}

// BenchmarkCodec compares compression codecs with the chosen writer:
//
//	go test ./internal/block -run '^$' -bench 'BenchmarkCodec' -benchtime 10x
func BenchmarkCodec(b *testing.B) {
	buf := benchBuffer(b)
	defer buf.Release()
	opts := WriteOptions{}.withDefaults()
	var raw int64
	for _, c := range buf.chunks {
		cv, _ := newChunkView(c, buf.resources)
		for i := range cv.span.Len() {
			raw += int64(len(cv.span.Value(i)))
		}
	}
	for _, c := range []struct {
		name  string
		codec compress.Codec
	}{
		{"zstd", &zstd.Codec{Level: zstd.SpeedDefault}},
		{"zstd-fastest", &zstd.Codec{Level: zstd.SpeedFastest}},
		{"zstd-better", &zstd.Codec{Level: zstd.SpeedBetterCompression}},
		{"snappy", &snappy.Codec{}},
		{"lz4", &lz4.Codec{}},
		{"none", &uncompressed.Codec{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				p, err := newPlan(buf, opts)
				if err != nil {
					b.Fatal(err)
				}
				if err := writeParquetGo(&out, p, c.codec, pageBufferBytes); err != nil {
					b.Fatal(err)
				}
			}
			spans := float64(buf.Spans())
			b.ReportMetric(spans*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(out.Len())/spans, "bytes/span")
			b.ReportMetric(float64(raw)/float64(out.Len()), "ratio")
		})
	}
}

// BenchmarkPageSize shows the effect of the page size on the file size.
func BenchmarkPageSize(b *testing.B) {
	buf := benchBuffer(b)
	defer buf.Release()
	opts := WriteOptions{}.withDefaults()
	for _, size := range []int{64 << 10, 128 << 10, 256 << 10, 512 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				p, err := newPlan(buf, opts)
				if err != nil {
					b.Fatal(err)
				}
				if err := writeParquetGo(&out, p, &zstd.Codec{Level: zstdLevel}, size); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.Len())/float64(buf.Spans()), "bytes/span")
		})
	}
}

// BenchmarkAdd measures Buffer.Add, per span.
func BenchmarkAdd(b *testing.B) {
	reqs := benchData()
	batches := make([]*otlpwire.Batch, len(reqs))
	spans := 0
	for i, r := range reqs {
		batches[i] = parse(b, r)
		spans += batches[i].SpanCount()
	}
	b.ReportAllocs()
	var bytesHeld int64
	for b.Loop() {
		buf := NewBuffer(nil)
		for _, batch := range batches {
			if err := buf.Add(batch); err != nil {
				b.Fatal(err)
			}
		}
		bytesHeld = buf.Bytes()
		buf.Release()
	}
	b.ReportMetric(float64(spans)*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(bytesHeld)/float64(spans), "buffer-bytes/span")
}

// BenchmarkFindTraceByID looks traces up in a block of the benchmark data
// on a filesystem bucket, with a warm reader (bloom filter, footer and the
// page indexes cached).
func BenchmarkFindTraceByID(b *testing.B) {
	buf := benchBuffer(b)
	defer buf.Release()
	bkt := newBucket(b)
	meta, err := Write(ctx, bkt, "bench", uuid.New(), Source{}, buf, WriteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var ids [][16]byte
	for _, req := range benchData()[:10] {
		batch := parse(b, req)
		ids = append(ids, [16]byte(batch.Resources[0].Scopes[0].Spans[0].TraceID))
	}
	r, err := Open(ctx, bkt, meta)
	if err != nil {
		b.Fatal(err)
	}
	for _, id := range ids { // warm up
		if data, err := r.FindTraceByID(ctx, id); err != nil || data == nil {
			b.Fatal(fmt.Sprint(data == nil, err))
		}
	}
	bkt.reads()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.FindTraceByID(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	_, ranges := bkt.reads()
	b.ReportMetric(float64(rangeBytes(ranges))/float64(b.N), "read-bytes/op")
	b.ReportMetric(float64(len(ranges))/float64(b.N), "requests/op")
}

// BenchmarkScan: a search's read of a whole block with a pushed-down
// condition that a fifth of the spans meet (projection, per-span test,
// then the raw columns of the matching traces).
func BenchmarkScan(b *testing.B) {
	buf := benchBuffer(b)
	defer buf.Release()
	bkt := newBucket(b)
	meta, err := Write(ctx, bkt, "bench", uuid.New(), Source{}, buf, WriteOptions{RowGroupBytes: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r, err := Open(ctx, bkt, meta)
	if err != nil {
		b.Fatal(err)
	}
	req := ScanRequest{Selection: spanpred.Selection{Pred: serviceAndSlower{"service-1", int64(50 * time.Millisecond)}}}
	b.ReportAllocs()
	for b.Loop() {
		traces := 0
		if _, err := r.Scan(ctx, req, func([16]byte, []byte) error { traces++; return nil }); err != nil {
			b.Fatal(err)
		}
		if traces == 0 {
			b.Fatal("no trace matched")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*meta.TotalSpans), "ns/span")
}

// serviceAndSlower is the predicate of
// `{ resource.service.name = "<service>" && duration > <nanos> }`.
type serviceAndSlower struct {
	service string
	nanos   int64
}

func (p serviceAndSlower) Fields() []spanpred.Field {
	return []spanpred.Field{{Resource: true, Name: "service.name"}, {Intrinsic: spanpred.IntrinsicDuration}}
}

func (p serviceAndSlower) Match(row []spanpred.Value) bool {
	return row[0].Kind == spanpred.String && row[0].Str == p.service && row[1].Kind == spanpred.Duration && row[1].Int > p.nanos
}

func (p serviceAndSlower) MayMatch(d []spanpred.Domain) bool {
	if d[0].Known && !d[0].Bounded && !slices.ContainsFunc(d[0].Values, func(v spanpred.Value) bool { return v.Str == p.service }) {
		return false
	}
	return !d[1].Known || !d[1].Bounded || d[1].Max.Int > p.nanos
}
