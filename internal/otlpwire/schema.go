package otlpwire

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// kind names an OTLP message type whose fields Parse checks.
type kind uint8

const (
	kindNone kind = iota
	kindResourceSpans
	kindScopeSpans
	kindResource
	kindScope
	kindSpan
	kindEvent
	kindLink
	kindStatus
	kindKeyValue
	kindAnyValue
	kindArrayValue
	kindKeyValueList
	kindEntityRef
	kindCount
)

// maxField is the highest field number of any known OTLP trace field.
const maxField = 16

// field is the expected shape of one known field.
type field struct {
	name string // empty for an unknown field
	typ  protowire.Type
	msg  kind // nested message kind, kindNone for scalars
	str  bool // a string: must be valid UTF-8
}

// schemaMaps lists the known fields of each message kind. Unknown fields are
// accepted as long as they are well-formed, for forward compatibility.
var schemaMaps = map[kind]map[protowire.Number]field{
	kindResourceSpans: {
		1: {name: "resource", typ: protowire.BytesType, msg: kindResource},
		3: {name: "schema_url", typ: protowire.BytesType, str: true},
	},
	kindScopeSpans: {
		1: {name: "scope", typ: protowire.BytesType, msg: kindScope},
		3: {name: "schema_url", typ: protowire.BytesType, str: true},
	},
	kindResource: {
		1: {name: "attributes", typ: protowire.BytesType, msg: kindKeyValue},
		2: {name: "dropped_attributes_count", typ: protowire.VarintType},
		3: {name: "entity_refs", typ: protowire.BytesType, msg: kindEntityRef},
	},
	kindEntityRef: {
		1: {name: "schema_url", typ: protowire.BytesType, str: true},
		2: {name: "type", typ: protowire.BytesType, str: true},
		3: {name: "id_keys", typ: protowire.BytesType, str: true},
		4: {name: "description_keys", typ: protowire.BytesType, str: true},
	},
	kindScope: {
		1: {name: "name", typ: protowire.BytesType, str: true},
		2: {name: "version", typ: protowire.BytesType, str: true},
		3: {name: "attributes", typ: protowire.BytesType, msg: kindKeyValue},
		4: {name: "dropped_attributes_count", typ: protowire.VarintType},
	},
	kindSpan: {
		1:  {name: "trace_id", typ: protowire.BytesType},
		2:  {name: "span_id", typ: protowire.BytesType},
		3:  {name: "trace_state", typ: protowire.BytesType, str: true},
		4:  {name: "parent_span_id", typ: protowire.BytesType},
		5:  {name: "name", typ: protowire.BytesType, str: true},
		6:  {name: "kind", typ: protowire.VarintType},
		7:  {name: "start_time_unix_nano", typ: protowire.Fixed64Type},
		8:  {name: "end_time_unix_nano", typ: protowire.Fixed64Type},
		9:  {name: "attributes", typ: protowire.BytesType, msg: kindKeyValue},
		10: {name: "dropped_attributes_count", typ: protowire.VarintType},
		11: {name: "events", typ: protowire.BytesType, msg: kindEvent},
		12: {name: "dropped_events_count", typ: protowire.VarintType},
		13: {name: "links", typ: protowire.BytesType, msg: kindLink},
		14: {name: "dropped_links_count", typ: protowire.VarintType},
		15: {name: "status", typ: protowire.BytesType, msg: kindStatus},
		16: {name: "flags", typ: protowire.Fixed32Type},
	},
	kindEvent: {
		1: {name: "time_unix_nano", typ: protowire.Fixed64Type},
		2: {name: "name", typ: protowire.BytesType, str: true},
		3: {name: "attributes", typ: protowire.BytesType, msg: kindKeyValue},
		4: {name: "dropped_attributes_count", typ: protowire.VarintType},
	},
	kindLink: {
		1: {name: "trace_id", typ: protowire.BytesType},
		2: {name: "span_id", typ: protowire.BytesType},
		3: {name: "trace_state", typ: protowire.BytesType, str: true},
		4: {name: "attributes", typ: protowire.BytesType, msg: kindKeyValue},
		5: {name: "dropped_attributes_count", typ: protowire.VarintType},
		6: {name: "flags", typ: protowire.Fixed32Type},
	},
	kindStatus: {
		2: {name: "message", typ: protowire.BytesType, str: true},
		3: {name: "code", typ: protowire.VarintType},
	},
	kindKeyValue: {
		1: {name: "key", typ: protowire.BytesType, str: true},
		2: {name: "value", typ: protowire.BytesType, msg: kindAnyValue},
	},
	kindAnyValue: {
		1: {name: "string_value", typ: protowire.BytesType, str: true},
		2: {name: "bool_value", typ: protowire.VarintType},
		3: {name: "int_value", typ: protowire.VarintType},
		4: {name: "double_value", typ: protowire.Fixed64Type},
		5: {name: "array_value", typ: protowire.BytesType, msg: kindArrayValue},
		6: {name: "kvlist_value", typ: protowire.BytesType, msg: kindKeyValueList},
		7: {name: "bytes_value", typ: protowire.BytesType},
	},
	kindArrayValue: {
		1: {name: "values", typ: protowire.BytesType, msg: kindAnyValue},
	},
	kindKeyValueList: {
		1: {name: "values", typ: protowire.BytesType, msg: kindKeyValue},
	},
}

// schema is schemaMaps as arrays: a lookup per field of every message is
// the inner loop of Parse, and an array index is several times cheaper than
// a map lookup there.
var schema = func() (out [kindCount][maxField + 1]field) {
	for k, fields := range schemaMaps {
		for num, f := range fields {
			out[k][num] = f
		}
	}
	return out
}()

// lookup returns the known field num of kind k.
func lookup(k kind, num protowire.Number) (field, bool) {
	if num > maxField {
		return field{}, false
	}
	f := schema[k][num]
	return f, f.name != ""
}

// MaxDepth bounds the nesting of messages (arrays of key-value lists of
// arrays...) that Parse accepts, so a hostile message cannot exhaust the
// stack.
const MaxDepth = 32

// checkField checks one field of a message of kind k: its wire type, and
// for a nested message, all of its content.
func checkField(k kind, num protowire.Number, typ protowire.Type, val []byte, depth int) error {
	f, known := lookup(k, num)
	if !known {
		return nil
	}
	if typ != f.typ {
		return fmt.Errorf("%s: wrong wire type %d", f.name, typ)
	}
	if f.str && !utf8.Valid(val) {
		return fmt.Errorf("%s: invalid UTF-8", f.name)
	}
	if f.msg == kindNone {
		return nil
	}
	if depth >= MaxDepth {
		return fmt.Errorf("%s: nested deeper than %d levels", f.name, MaxDepth)
	}
	i := 0
	err := forEachField(val, func(n protowire.Number, t protowire.Type, v []byte) error {
		i++
		return checkField(f.msg, n, t, v, depth+1)
	})
	if err != nil {
		return fmt.Errorf("%s.%w", f.name, err)
	}
	return nil
}
