package block

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// Column names of data.parquet (leaf paths for nested columns are listed in
// docs/block-format.md).
const (
	colTraceID       = "trace_id"
	colSpanID        = "span_id"
	colParentSpanID  = "parent_span_id"
	colStart         = "start_unix_nano"
	colDuration      = "duration_nano"
	colName          = "name"
	colKind          = "kind"
	colStatusCode    = "status_code"
	colStatusMessage = "status_message"
	colServiceName   = "service_name"
	colSpanAttrs     = "span_attrs"
	colResourceAttrs = "resource_attrs"
	colEventNames    = "event_names"
	colSpan          = "span"
	colResource      = "resource"
	colScope         = "scope"
)

// dedicatedColumn is an attribute with a column of its own. An attribute
// goes to its dedicated column when its key matches and its value has the
// column's type (string, or int for isInt); otherwise, and for a second
// occurrence of the key, it goes to the generic attribute list.
type dedicatedColumn struct {
	attr   string
	column string
	isInt  bool
}

// resourceDedicated are the dedicated columns of resource attributes.
// service.name is handled apart: it fills service_name.
var resourceDedicated = [...]dedicatedColumn{
	{attr: "k8s.cluster.name", column: "res_k8s_cluster_name"},
	{attr: "k8s.namespace.name", column: "res_k8s_namespace_name"},
	{attr: "k8s.pod.name", column: "res_k8s_pod_name"},
	{attr: "k8s.container.name", column: "res_k8s_container_name"},
}

// spanDedicated are the dedicated columns of span attributes.
var spanDedicated = [...]dedicatedColumn{
	{attr: "http.request.method", column: "http_request_method"},
	{attr: "http.response.status_code", column: "http_response_status_code", isInt: true},
	{attr: "url.path", column: "url_path"},
	{attr: "http.route", column: "http_route"},
	{attr: "server.address", column: "server_address"},
	{attr: "http.method", column: "http_method"},
	{attr: "http.url", column: "http_url"},
	{attr: "http.status_code", column: "http_status_code", isInt: true},
}

const serviceNameAttr = "service.name"

var (
	spanDedicatedIndex     = dedicatedIndex(spanDedicated[:])
	resourceDedicatedIndex = dedicatedIndex(resourceDedicated[:])
)

func dedicatedIndex(cols []dedicatedColumn) map[string]int {
	m := make(map[string]int, len(cols))
	for i, c := range cols {
		m[c.attr] = i
	}
	return m
}

// Columns of the Arrow record batches a Buffer holds. The resource-derived
// columns (service_name, res_k8s_*, resource_attrs) are not buffered: they
// are functions of the resource column, computed once per distinct
// resource when Add first sees it and joined in at write time.
const (
	bTraceID = iota
	bSpanID
	bParentSpanID
	bStart
	bDuration
	bName
	bKind
	bStatusCode
	bStatusMessage
	bSpanDedicated // first of len(spanDedicated) columns
	bSpanAttrs     = bSpanDedicated + len(spanDedicated)
	bEventNames    = bSpanAttrs + 1
	bSpan          = bEventNames + 1
	bResource      = bSpan + 1
	bScope         = bResource + 1
	bColumns       = bScope + 1
)

var (
	dictString = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	dictBinary = &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.Binary}

	// attrType is the element of span_attrs and resource_attrs.
	attrType = arrow.StructOf(
		arrow.Field{Name: "key", Type: arrow.BinaryTypes.String},
		arrow.Field{Name: "value", Type: arrow.BinaryTypes.String},
		arrow.Field{Name: "type", Type: arrow.PrimitiveTypes.Int32},
	)
	attrListType = arrow.ListOfNonNullable(attrType)
)

// bufferSchema is the schema of a Buffer's record batches.
var bufferSchema = func() *arrow.Schema {
	f := make([]arrow.Field, bColumns)
	f[bTraceID] = arrow.Field{Name: colTraceID, Type: &arrow.FixedSizeBinaryType{ByteWidth: 16}}
	f[bSpanID] = arrow.Field{Name: colSpanID, Type: &arrow.FixedSizeBinaryType{ByteWidth: 8}}
	f[bParentSpanID] = arrow.Field{Name: colParentSpanID, Type: arrow.BinaryTypes.Binary}
	f[bStart] = arrow.Field{Name: colStart, Type: arrow.PrimitiveTypes.Int64}
	f[bDuration] = arrow.Field{Name: colDuration, Type: arrow.PrimitiveTypes.Int64}
	f[bName] = arrow.Field{Name: colName, Type: dictString}
	f[bKind] = arrow.Field{Name: colKind, Type: arrow.PrimitiveTypes.Int32}
	f[bStatusCode] = arrow.Field{Name: colStatusCode, Type: arrow.PrimitiveTypes.Int32}
	f[bStatusMessage] = arrow.Field{Name: colStatusMessage, Type: dictString}
	for i, d := range spanDedicated {
		f[bSpanDedicated+i] = arrow.Field{Name: d.column, Type: dictString, Nullable: true}
		if d.isInt {
			f[bSpanDedicated+i].Type = arrow.PrimitiveTypes.Int64
		}
	}
	f[bSpanAttrs] = arrow.Field{Name: colSpanAttrs, Type: attrListType}
	f[bEventNames] = arrow.Field{Name: colEventNames, Type: arrow.ListOfNonNullable(arrow.BinaryTypes.String)}
	f[bSpan] = arrow.Field{Name: colSpan, Type: arrow.BinaryTypes.Binary}
	f[bResource] = arrow.Field{Name: colResource, Type: dictBinary}
	f[bScope] = arrow.Field{Name: colScope, Type: dictBinary}
	return arrow.NewSchema(f, nil)
}()
