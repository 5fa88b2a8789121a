package block

import (
	"io"
	"slices"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// pqRow is one row of data.parquet as parquet-go writes it; its tags define
// the file's schema (docs/block-format.md lists it).
type pqRow struct {
	TraceID       [16]byte `parquet:"trace_id,plain"`
	SpanID        [8]byte  `parquet:"span_id,plain"`
	ParentSpanID  []byte   `parquet:"parent_span_id,plain"`
	StartUnixNano int64    `parquet:"start_unix_nano,delta"`
	DurationNano  int64    `parquet:"duration_nano,delta"`
	Name          string   `parquet:"name,dict"`
	Kind          int32    `parquet:"kind,dict"`
	StatusCode    int32    `parquet:"status_code,dict"`
	StatusMessage string   `parquet:"status_message,dict"`

	ServiceName         *string `parquet:"service_name,optional,dict"`
	ResK8sClusterName   *string `parquet:"res_k8s_cluster_name,optional,dict"`
	ResK8sNamespaceName *string `parquet:"res_k8s_namespace_name,optional,dict"`
	ResK8sPodName       *string `parquet:"res_k8s_pod_name,optional,dict"`
	ResK8sContainerName *string `parquet:"res_k8s_container_name,optional,dict"`

	HTTPRequestMethod      *string `parquet:"http_request_method,optional,dict"`
	HTTPResponseStatusCode *int64  `parquet:"http_response_status_code,optional,dict"`
	URLPath                *string `parquet:"url_path,optional,dict"`
	HTTPRoute              *string `parquet:"http_route,optional,dict"`
	ServerAddress          *string `parquet:"server_address,optional,dict"`
	HTTPMethod             *string `parquet:"http_method,optional,dict"`
	HTTPURL                *string `parquet:"http_url,optional,dict"`
	HTTPStatusCode         *int64  `parquet:"http_status_code,optional,dict"`

	SpanAttrs     []pqAttr `parquet:"span_attrs,list"`
	ResourceAttrs []pqAttr `parquet:"resource_attrs,list"`
	EventNames    []string `parquet:"event_names,list" parquet-element:",dict"`

	Span     []byte `parquet:"span,plain"`
	Resource []byte `parquet:"resource,dict"`
	Scope    []byte `parquet:"scope,dict"`
}

type pqAttr struct {
	Key   string `parquet:"key,dict"`
	Value string `parquet:"value,dict"`
	Type  int32  `parquet:"type,dict"`
}

// Writer settings shared by both Parquet writers.
const (
	pageBufferBytes = 256 << 10 // target size of a data page before compression
	dictMaxBytes    = 1 << 20   // a bigger dictionary falls back to plain encoding
	zstdLevel       = zstd.SpeedDefault
)

// noBounds skips the bounds (minimum and maximum in the column index, the
// column chunk's statistics and each data page header) of every byte-array
// column but trace_id: no reader uses them (string fields prune by
// dictionary, see scan.go; trace IDs by the column index, see reader.go),
// and computing them took about 9% of the ingest CPU in profiles of go run
// ./bench. The offset index is still written.
var noBounds = func() []parquet.WriterOption {
	var opts []parquet.WriterOption
	schema := parquet.SchemaOf(pqRow{})
	for _, path := range schema.Columns() {
		leaf, _ := schema.Lookup(path...)
		switch leaf.Node.Type().Kind() {
		case parquet.ByteArray, parquet.FixedLenByteArray:
			if len(path) == 1 && path[0] == colTraceID {
				continue
			}
			opts = append(opts, parquet.SkipPageBounds(path...), parquet.SkipPageStatistics(path...))
		}
	}
	return opts
}()

// pqWriteBatch is the number of rows handed to parquet-go at once.
const pqWriteBatch = 512

// writeParquet writes the planned rows as data.parquet to w.
func writeParquet(w io.Writer, p *plan, pageBytes int) error {
	return writeParquetGo(w, p, compactCodec, pageBytes)
}

// newPQWriter returns the writer of a data.parquet: the schema of pqRow,
// the encodings, codec, value filters and footer of docs/block-format.md.
// The caller cuts row groups with Flush.
func newPQWriter(w io.Writer, codec compress.Codec, pageBytes int) *dataWriter {
	tw := &tailWriter{w: w}
	return &dataWriter{pw: newParquetGoWriter(tw, codec, pageBytes), out: tw, filters: newFilterCollector()}
}

// newParquetGoWriter is parquet-go's writer of a data.parquet, without
// the value filters.
func newParquetGoWriter(w io.Writer, codec compress.Codec, pageBytes int) *parquet.GenericWriter[pqRow] {
	return parquet.NewGenericWriter[pqRow](w, append(slices.Clip(noBounds),
		parquet.Compression(codec),
		parquet.PageBufferSize(pageBytes),
		parquet.DictionaryMaxBytes(dictMaxBytes),
		parquet.CreatedBy("weft", FormatV1, ""),
		parquet.KeyValueMetadata("weft.format", FormatV1),
		parquet.SortingWriterConfig(parquet.SortingColumns(
			parquet.Ascending(colTraceID),
			parquet.Ascending(colStart),
		)),
	)...)
}

func writeParquetGo(w io.Writer, p *plan, codec compress.Codec, pageBytes int) error {
	pw := newPQWriter(w, codec, pageBytes)
	var c pqConverter
	rows := make([]pqRow, 0, pqWriteBatch)
	lo := 0
	for _, hi := range p.groups {
		for i := lo; i < hi; i++ {
			if len(rows) == cap(rows) {
				if _, err := pw.Write(rows); err != nil {
					return err
				}
				rows = rows[:0]
				c.reset()
			}
			rows = append(rows, pqRow{})
			c.fill(&rows[len(rows)-1], p, p.rows[i])
		}
		if _, err := pw.Write(rows); err != nil {
			return err
		}
		rows = rows[:0]
		c.reset()
		if err := pw.Flush(); err != nil { // one row group
			return err
		}
		lo = hi
	}
	return pw.Close()
}

// pqConverter fills pqRows from Arrow arrays; its arenas back the pointers
// and slices of one write batch.
type pqConverter struct {
	strs  []string
	ints  []int64
	attrs []pqAttr
	names []string
}

func (c *pqConverter) reset() {
	c.strs, c.ints, c.attrs, c.names = c.strs[:0], c.ints[:0], c.attrs[:0], c.names[:0]
}

// Arenas are sized for a whole batch up front so that pointers into them
// stay valid while the batch is being filled.
func (c *pqConverter) str(s string) *string {
	if len(c.strs) == cap(c.strs) {
		c.strs = make([]string, 0, max(2*cap(c.strs), pqWriteBatch*16))
	}
	c.strs = append(c.strs, s)
	return &c.strs[len(c.strs)-1]
}

func (c *pqConverter) int(v int64) *int64 {
	if len(c.ints) == cap(c.ints) {
		c.ints = make([]int64, 0, max(2*cap(c.ints), pqWriteBatch*2))
	}
	c.ints = append(c.ints, v)
	return &c.ints[len(c.ints)-1]
}

func (c *pqConverter) fill(r *pqRow, p *plan, ref rowRef) {
	cv := p.chunks[ref.chunk]
	i := int(ref.row)
	copy(r.TraceID[:], cv.traceID.Value(i))
	copy(r.SpanID[:], cv.spanID.Value(i))
	r.ParentSpanID = cv.parent.Value(i)
	r.StartUnixNano = cv.start.Value(i)
	r.DurationNano = cv.duration.Value(i)
	r.Name = cv.name.value(i)
	r.Kind = cv.kind.Value(i)
	r.StatusCode = cv.status.Value(i)
	r.StatusMessage = cv.statusMsg.value(i)

	ri := cv.resourceInfo(i)
	if ri.hasService {
		r.ServiceName = c.str(bstr(ri.service))
	}
	k8s := [...]**string{&r.ResK8sClusterName, &r.ResK8sNamespaceName, &r.ResK8sPodName, &r.ResK8sContainerName}
	for j, dst := range k8s {
		if ri.hasK8s[j] {
			*dst = c.str(bstr(ri.k8s[j]))
		}
	}
	for j, d := range spanDedicated {
		if d.isInt {
			if a := cv.dedInt[j]; a.IsValid(i) {
				*r.dedicatedInt(j) = c.int(a.Value(i))
			}
		} else if a := cv.dedStr[j]; a.idx.IsValid(i) {
			*r.dedicatedString(j) = c.str(a.value(i))
		}
	}

	start := len(c.attrs)
	lo, hi := cv.attrs.ValueOffsets(i)
	for k := int(lo); k < int(hi); k++ {
		c.attrs = append(c.attrs, pqAttr{Key: cv.attrKey.Value(k), Value: cv.attrValue.Value(k), Type: cv.attrType.Value(k)})
	}
	for _, a := range ri.attrs {
		c.attrs = append(c.attrs, pqAttr{Key: bstr(a.key), Value: bstr(a.value), Type: a.typ})
	}
	// The arena may have moved: take the sub-slices after appending.
	r.SpanAttrs = c.attrs[start : start+int(hi-lo) : start+int(hi-lo)]
	r.ResourceAttrs = c.attrs[start+int(hi-lo) : len(c.attrs) : len(c.attrs)]

	estart := len(c.names)
	lo, hi = cv.events.ValueOffsets(i)
	for k := int(lo); k < int(hi); k++ {
		c.names = append(c.names, cv.eventName.Value(k))
	}
	r.EventNames = c.names[estart:len(c.names):len(c.names)]

	r.Span = cv.span.Value(i)
	r.Resource = cv.resource.value(i)
	r.Scope = cv.scope.value(i)
}

// dedicatedString is the field of the string column spanDedicated[j].
func (r *pqRow) dedicatedString(j int) **string {
	switch spanDedicated[j].column {
	case "http_request_method":
		return &r.HTTPRequestMethod
	case "url_path":
		return &r.URLPath
	case "http_route":
		return &r.HTTPRoute
	case "server_address":
		return &r.ServerAddress
	case "http_method":
		return &r.HTTPMethod
	case "http_url":
		return &r.HTTPURL
	}
	panic("no pqRow field for column " + spanDedicated[j].column)
}

// dedicatedInt is the field of the int column spanDedicated[j].
func (r *pqRow) dedicatedInt(j int) **int64 {
	switch spanDedicated[j].column {
	case "http_response_status_code":
		return &r.HTTPResponseStatusCode
	case "http_status_code":
		return &r.HTTPStatusCode
	}
	panic("no pqRow field for column " + spanDedicated[j].column)
}

// bstr views b as a string without copying; b must not change after.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
