// Package spanpred is the contract between the query engine and the places
// spans are kept (blocks, the live-store): a predicate on single spans that
// storage tests on the few fields it reads, before any trace is decoded.
//
// A Predicate is necessary, never sufficient: storage hands the engine
// every trace with a span that may satisfy it, and the engine decides. So
// a value storage cannot give exactly is Unknown, which the predicate takes
// to match. The engine builds predicates (query/traceql's Condition);
// storage reads the fields a predicate names and calls it.
package spanpred

// Intrinsic is a field every span has.
type Intrinsic uint8

// The intrinsics storage reads per span. IntrinsicNone marks an attribute.
const (
	IntrinsicNone Intrinsic = iota
	IntrinsicDuration
	IntrinsicName
	IntrinsicStatus
	IntrinsicStatusMessage
	IntrinsicKind
)

// Field is one field a predicate reads: an intrinsic, or a span or
// resource attribute by name.
type Field struct {
	Intrinsic Intrinsic
	// Resource selects a resource attribute, not a span one (attributes
	// only).
	Resource bool
	// Name is the attribute's key (attributes only).
	Name string
}

// Kind is the type of a Value.
type Kind uint8

// The kinds of values. Missing is an attribute the span does not have.
// Unknown is a present value storage cannot give exactly (an array, a
// key-value list, bytes): a predicate reading it takes it to match.
const (
	Missing Kind = iota
	String
	Int
	Float
	Bool
	Duration
	Status
	SpanKind
	Unknown
)

// Value is the value of one field of one span.
type Value struct {
	Kind Kind
	// Str is a String.
	Str string
	// Int is an Int, a Duration in nanoseconds, a Status as its OTLP code
	// (0 unset, 1 ok, 2 error), a SpanKind as its OTLP number, a Bool as 1
	// or 0.
	Int int64
	// Float is a Float.
	Float float64
}

// The constructors storage builds values with.
func StringValue(s string) Value      { return Value{Kind: String, Str: s} }
func IntValue(i int64) Value          { return Value{Kind: Int, Int: i} }
func FloatValue(f float64) Value      { return Value{Kind: Float, Float: f} }
func DurationValue(nanos int64) Value { return Value{Kind: Duration, Int: nanos} }
func StatusValue(code int32) Value    { return Value{Kind: Status, Int: int64(code)} }
func SpanKindValue(kind int32) Value  { return Value{Kind: SpanKind, Int: int64(kind)} }
func UnknownValue() Value             { return Value{Kind: Unknown} }
func BoolValue(b bool) Value {
	if b {
		return Value{Kind: Bool, Int: 1}
	}
	return Value{Kind: Bool}
}

// Domain is what storage knows of the values a field takes over a range of
// spans (a row group, a page): nothing, every distinct value, or bounds.
type Domain struct {
	// Known is false when storage knows nothing.
	Known bool
	// Values are all the values present (missing ones aside), when Known
	// and not Bounded. Empty means the field is missing from every span.
	Values []Value
	// Bounded says Min and Max bound every present value (ints, floats or
	// durations).
	Bounded  bool
	Min, Max Value
	// MayHold, when set on a domain that is not Known, tests single
	// values: false means that no span of the range has a value equal to
	// v (a bloom filter's answer); true, that some may. A predicate uses
	// it for equality only.
	MayHold func(v Value) bool
}

// Predicate is a necessary condition on single spans for a trace to match
// a query. Implementations are safe for concurrent use, and keep neither
// the rows nor the domains they are given.
type Predicate interface {
	// Fields are the fields the predicate reads, in the order Match and
	// MayMatch take their values.
	Fields() []Field
	// Match reports whether a span whose field values are row may
	// satisfy the predicate.
	Match(row []Value) bool
	// MayMatch reports whether some span could satisfy the predicate
	// given the domains of its fields over a range of spans; false lets
	// storage skip the range.
	MayMatch(domains []Domain) bool
}

// Selection says which traces a scan of storage hands the engine.
type Selection struct {
	// Pred, when set, passes only the traces with a span that may satisfy
	// it; nil passes every trace.
	Pred Predicate
	// ByTraceID restricts the scan to the traces in TraceIDs (none when
	// it is empty), which storage looks up instead of scanning.
	ByTraceID bool
	TraceIDs  [][16]byte
	// MinSpans, with Pred, is the fewest spans passing Pred a trace needs
	// (as in `{ ... } | count() > 2`); 0 or 1: one. Storage may hand over
	// traces with fewer (it counts only what it cheaply can).
	MinSpans int
}

// Part is a unit of recently stored spans (a live-store segment) that a
// reader can derive something from once and have it kept.
type Part interface {
	// EachData calls fn with what the part holds of each trace (OTLP
	// TracesData bytes), until fn returns false. data is valid only
	// during the call, and fn must not block.
	EachData(fn func(data []byte) bool)
	// Memo returns the value build derives from the part, built once
	// and kept under key (its size counted in the store's memory) until
	// the store needs the room. ok is false, and build is not called,
	// when the part still changes: the caller reads EachData itself.
	// build returning a nil value keeps nothing.
	Memo(key string, build func() (v any, bytes int64)) (v any, ok bool)
}
