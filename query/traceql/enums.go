package traceql

import (
	"fmt"
	"strings"
)

// StaticType is the static type of a value.
type StaticType int

// Static types. TypeAttribute means "decided at query time by the
// attribute's value": attributes are dynamically typed.
const (
	TypeNil StaticType = iota
	TypeAttribute
	TypeInt
	TypeFloat
	TypeString
	TypeBoolean
	TypeDuration
	TypeStatus
	TypeKind
)

var staticTypeNames = [...]string{
	TypeNil:       "nil",
	TypeAttribute: "attribute",
	TypeInt:       "int",
	TypeFloat:     "float",
	TypeString:    "string",
	TypeBoolean:   "boolean",
	TypeDuration:  "duration",
	TypeStatus:    "status",
	TypeKind:      "kind",
}

// String returns the type's name: int, string, duration...
func (t StaticType) String() string {
	if t >= 0 && int(t) < len(staticTypeNames) {
		return staticTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", int(t))
}

// IsNumeric reports whether t is int, float or duration.
func (t StaticType) IsNumeric() bool {
	return t == TypeInt || t == TypeFloat || t == TypeDuration
}

// compatible reports whether values of types t and o can be operands of
// the same binary operator: equal types, two numeric types, or an attribute
// on either side.
func (t StaticType) compatible(o StaticType) bool {
	return t == TypeAttribute || o == TypeAttribute || t == o || (t.IsNumeric() && o.IsNumeric())
}

// Status is a span status literal.
type Status int

// Span statuses.
const (
	StatusError Status = iota
	StatusOk
	StatusUnset
)

// String returns the status literal: ok, error or unset.
func (s Status) String() string {
	switch s {
	case StatusError:
		return "error"
	case StatusOk:
		return "ok"
	case StatusUnset:
		return "unset"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Kind is a span kind literal.
type Kind int

// Span kinds.
const (
	KindUnspecified Kind = iota
	KindInternal
	KindClient
	KindServer
	KindProducer
	KindConsumer
)

// String returns the kind literal: server, client...
func (k Kind) String() string {
	switch k {
	case KindUnspecified:
		return "unspecified"
	case KindInternal:
		return "internal"
	case KindClient:
		return "client"
	case KindServer:
		return "server"
	case KindProducer:
		return "producer"
	case KindConsumer:
		return "consumer"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Scope is where an attribute (or intrinsic) lives.
type Scope int

// Scopes. ScopeNone is the unscoped `.name`, which matches a span or a
// resource attribute. ScopeTrace is only used by intrinsics.
const (
	ScopeNone Scope = iota
	ScopeSpan
	ScopeResource
	ScopeEvent
	ScopeLink
	ScopeInstrumentation
	ScopeTrace
)

// String returns the scope's keyword (span, resource...), "" for ScopeNone.
func (s Scope) String() string {
	switch s {
	case ScopeNone:
		return ""
	case ScopeSpan:
		return "span"
	case ScopeResource:
		return "resource"
	case ScopeEvent:
		return "event"
	case ScopeLink:
		return "link"
	case ScopeInstrumentation:
		return "instrumentation"
	case ScopeTrace:
		return "trace"
	}
	return fmt.Sprintf("scope(%d)", int(s))
}

// Intrinsic is a built-in span, trace, event, link or instrumentation
// field.
type Intrinsic int

// Intrinsics.
const (
	IntrinsicNone Intrinsic = iota
	IntrinsicDuration
	IntrinsicName
	IntrinsicStatus
	IntrinsicStatusMessage
	IntrinsicKind
	IntrinsicChildCount
	IntrinsicSpanID
	IntrinsicParentID
	IntrinsicTraceRootName
	IntrinsicTraceRootService
	IntrinsicTraceDuration
	IntrinsicTraceID
	IntrinsicEventName
	IntrinsicEventTimeSinceStart
	IntrinsicLinkTraceID
	IntrinsicLinkSpanID
	IntrinsicInstrumentationName
	IntrinsicInstrumentationVersion
	IntrinsicNestedSetLeft
	IntrinsicNestedSetRight
	IntrinsicNestedSetParent
	// IntrinsicParent is Tempo's `parent`; it parses but is unsupported.
	IntrinsicParent
)

type intrinsicInfo struct {
	unscoped string // spelling without a scope, "" if none
	scoped   string // spelling with a scope, "" if none
	scope    Scope
	typ      StaticType
}

var intrinsics = [...]intrinsicInfo{
	IntrinsicDuration:               {"duration", "span:duration", ScopeSpan, TypeDuration},
	IntrinsicName:                   {"name", "span:name", ScopeSpan, TypeString},
	IntrinsicStatus:                 {"status", "span:status", ScopeSpan, TypeStatus},
	IntrinsicStatusMessage:          {"statusMessage", "span:statusMessage", ScopeSpan, TypeString},
	IntrinsicKind:                   {"kind", "span:kind", ScopeSpan, TypeKind},
	IntrinsicChildCount:             {"childCount", "span:childCount", ScopeSpan, TypeInt},
	IntrinsicSpanID:                 {"", "span:id", ScopeSpan, TypeString},
	IntrinsicParentID:               {"", "span:parentID", ScopeSpan, TypeString},
	IntrinsicTraceRootName:          {"rootName", "trace:rootName", ScopeTrace, TypeString},
	IntrinsicTraceRootService:       {"rootServiceName", "trace:rootService", ScopeTrace, TypeString},
	IntrinsicTraceDuration:          {"traceDuration", "trace:duration", ScopeTrace, TypeDuration},
	IntrinsicTraceID:                {"", "trace:id", ScopeTrace, TypeString},
	IntrinsicEventName:              {"", "event:name", ScopeEvent, TypeString},
	IntrinsicEventTimeSinceStart:    {"", "event:timeSinceStart", ScopeEvent, TypeDuration},
	IntrinsicLinkTraceID:            {"", "link:traceID", ScopeLink, TypeString},
	IntrinsicLinkSpanID:             {"", "link:spanID", ScopeLink, TypeString},
	IntrinsicInstrumentationName:    {"", "instrumentation:name", ScopeInstrumentation, TypeString},
	IntrinsicInstrumentationVersion: {"", "instrumentation:version", ScopeInstrumentation, TypeString},
	IntrinsicNestedSetLeft:          {"nestedSetLeft", "", ScopeSpan, TypeInt},
	IntrinsicNestedSetRight:         {"nestedSetRight", "", ScopeSpan, TypeInt},
	IntrinsicNestedSetParent:        {"nestedSetParent", "", ScopeSpan, TypeInt},
	IntrinsicParent:                 {"parent", "", ScopeSpan, TypeAttribute},
}

// unscopedIntrinsics and scopedIntrinsics map spellings to intrinsics.
var unscopedIntrinsics, scopedIntrinsics = func() (map[string]Intrinsic, map[string]Intrinsic) {
	u, s := map[string]Intrinsic{}, map[string]Intrinsic{}
	for i, info := range intrinsics {
		if info.unscoped != "" {
			u[info.unscoped] = Intrinsic(i)
		}
		if info.scoped != "" {
			s[info.scoped] = Intrinsic(i)
		}
	}
	return u, s
}()

// String returns the canonical spelling: the unscoped name when there is
// one (`duration`, `rootServiceName`), else the scoped one (`span:id`).
func (i Intrinsic) String() string {
	if i > IntrinsicNone && int(i) < len(intrinsics) {
		if info := intrinsics[i]; info.unscoped != "" {
			return info.unscoped
		}
		return intrinsics[i].scoped
	}
	return fmt.Sprintf("intrinsic(%d)", int(i))
}

// Scope returns the scope the intrinsic belongs to.
func (i Intrinsic) Scope() Scope {
	if i > IntrinsicNone && int(i) < len(intrinsics) {
		return intrinsics[i].scope
	}
	return ScopeNone
}

// Type returns the intrinsic's static type.
func (i Intrinsic) Type() StaticType {
	if i > IntrinsicNone && int(i) < len(intrinsics) {
		return intrinsics[i].typ
	}
	return TypeAttribute
}

// scopedIntrinsicNames lists the scoped spellings with the given scope
// prefix ("span:"), for error messages.
func scopedIntrinsicNames(prefix string) string {
	var names []string
	for _, info := range intrinsics {
		if strings.HasPrefix(info.scoped, prefix) {
			names = append(names, info.scoped)
		}
	}
	return strings.Join(names, ", ")
}

// Operator is a field or scalar expression operator.
type Operator int

// Operators.
const (
	OpNone Operator = iota
	OpAdd
	OpSub
	OpMul
	OpDiv
	OpMod
	OpPow
	OpEqual
	OpNotEqual
	OpLess
	OpLessEqual
	OpGreater
	OpGreaterEqual
	OpRegex
	OpNotRegex
	OpAnd
	OpOr
	OpNot // unary !
	OpNeg // unary -
)

var operatorNames = [...]string{
	OpNone:         "<none>",
	OpAdd:          "+",
	OpSub:          "-",
	OpMul:          "*",
	OpDiv:          "/",
	OpMod:          "%",
	OpPow:          "^",
	OpEqual:        "=",
	OpNotEqual:     "!=",
	OpLess:         "<",
	OpLessEqual:    "<=",
	OpGreater:      ">",
	OpGreaterEqual: ">=",
	OpRegex:        "=~",
	OpNotRegex:     "!~",
	OpAnd:          "&&",
	OpOr:           "||",
	OpNot:          "!",
	OpNeg:          "-",
}

// String returns the operator as written in TraceQL (OpNeg is "-").
func (op Operator) String() string {
	if op >= 0 && int(op) < len(operatorNames) {
		return operatorNames[op]
	}
	return fmt.Sprintf("operator(%d)", int(op))
}

// IsArithmetic reports whether op is + - * / % or ^.
func (op Operator) IsArithmetic() bool { return op >= OpAdd && op <= OpPow }

// IsComparison reports whether op is = != < <= > >= =~ or !~.
func (op Operator) IsComparison() bool { return op >= OpEqual && op <= OpNotRegex }

// IsLogical reports whether op is && || or !.
func (op Operator) IsLogical() bool { return op == OpAnd || op == OpOr || op == OpNot }

// Binding strengths, weakest first (Tempo's grammar: && and || share one
// level; unary operators sit between + - and * / %).
const (
	precLogical    = 1
	precComparison = 2
	precAdditive   = 3
	precUnary      = 4
	precMultiply   = 5
	precPower      = 6
)

func (op Operator) precedence() int {
	switch op {
	case OpAnd, OpOr:
		return precLogical
	case OpAdd, OpSub:
		return precAdditive
	case OpMul, OpDiv, OpMod:
		return precMultiply
	case OpPow:
		return precPower
	case OpNot, OpNeg:
		return precUnary
	}
	return precComparison
}

func (op Operator) rightAssociative() bool { return op == OpPow }

// accepts reports whether op takes an operand of type t.
func (op Operator) accepts(t StaticType) bool {
	switch t {
	case TypeAttribute:
		return true
	case TypeBoolean:
		return op == OpAnd || op == OpOr || op == OpEqual || op == OpNotEqual || op == OpNot
	case TypeInt, TypeFloat, TypeDuration:
		return op.IsArithmetic() || op == OpNeg ||
			(op.IsComparison() && op != OpRegex && op != OpNotRegex)
	case TypeString:
		return op.IsComparison()
	case TypeStatus, TypeKind:
		return op == OpEqual || op == OpNotEqual
	}
	return false
}

// SpansetOperator combines two spanset expressions.
type SpansetOperator int

// Spanset operators. The structural ones relate spans of the left and the
// right spansets in the trace tree: Child `>` returns right-hand spans whose
// parent matched the left; Not… returns right-hand spans without such a
// relative; Union… returns the matching spans of both sides.
const (
	SpansetNone            SpansetOperator = iota
	SpansetAnd                             // &&: both spansets are non-empty in the trace
	SpansetUnion                           // ||: either
	SpansetChild                           // >
	SpansetParent                          // <
	SpansetDescendant                      // >>
	SpansetAncestor                        // <<
	SpansetSibling                         // ~
	SpansetNotChild                        // !>
	SpansetNotParent                       // !<
	SpansetNotDescendant                   // !>>
	SpansetNotAncestor                     // !<<
	SpansetNotSibling                      // !~
	SpansetUnionChild                      // &>
	SpansetUnionParent                     // &<
	SpansetUnionDescendant                 // &>>
	SpansetUnionAncestor                   // &<<
	SpansetUnionSibling                    // &~
)

var spansetOperatorNames = [...]string{
	SpansetNone:            "<none>",
	SpansetAnd:             "&&",
	SpansetUnion:           "||",
	SpansetChild:           ">",
	SpansetParent:          "<",
	SpansetDescendant:      ">>",
	SpansetAncestor:        "<<",
	SpansetSibling:         "~",
	SpansetNotChild:        "!>",
	SpansetNotParent:       "!<",
	SpansetNotDescendant:   "!>>",
	SpansetNotAncestor:     "!<<",
	SpansetNotSibling:      "!~",
	SpansetUnionChild:      "&>",
	SpansetUnionParent:     "&<",
	SpansetUnionDescendant: "&>>",
	SpansetUnionAncestor:   "&<<",
	SpansetUnionSibling:    "&~",
}

// String returns the operator as written in TraceQL.
func (op SpansetOperator) String() string {
	if op >= 0 && int(op) < len(spansetOperatorNames) {
		return spansetOperatorNames[op]
	}
	return fmt.Sprintf("spansetOperator(%d)", int(op))
}

// IsStructural reports whether op relates spans through the trace tree.
func (op SpansetOperator) IsStructural() bool { return op >= SpansetChild }

func (op SpansetOperator) precedence() int {
	if op == SpansetAnd || op == SpansetUnion {
		return precLogical
	}
	return precComparison
}

// AggregateOp is an aggregate function of a scalar filter.
type AggregateOp int

// Aggregates.
const (
	AggregateCount AggregateOp = iota
	AggregateAvg
	AggregateMin
	AggregateMax
	AggregateSum
)

// String returns the aggregate's function name.
func (a AggregateOp) String() string {
	switch a {
	case AggregateCount:
		return "count"
	case AggregateAvg:
		return "avg"
	case AggregateMin:
		return "min"
	case AggregateMax:
		return "max"
	case AggregateSum:
		return "sum"
	}
	return fmt.Sprintf("aggregate(%d)", int(a))
}

// FieldRef names a field a query reads: an attribute (Intrinsic is
// IntrinsicNone) or an intrinsic (Name is its canonical spelling, Scope its
// scope).
type FieldRef struct {
	Scope     Scope
	Name      string
	Intrinsic Intrinsic
	Parent    bool
}

// String returns the field as TraceQL.
func (f FieldRef) String() string {
	a := Attribute{Scope: f.Scope, Name: f.Name, Intrinsic: f.Intrinsic, Parent: f.Parent}
	return a.String()
}

// Hint names weft recognises in `with (...)`.
var knownHints = []string{
	"most_recent", "sample", "span_sample", "trace_sample", "exemplars", "extrapolate",
	"job_size", "time_overlap_cutoff", "concurrent_blocks", "spanonly_fetch", "debug",
	"info", "skip_ast_transformations",
}
