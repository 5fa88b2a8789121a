package traceql

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/weftdb/weft/internal/otlpwire"
)

// Value is a runtime value of the evaluator: an attribute, intrinsic,
// literal or computed value. Type is TypeNil for a missing value. Int holds
// int values, Duration durations, Status and Kind their enums.
type Value struct {
	Type     StaticType
	Int      int64
	Float    float64
	Str      string
	Bool     bool
	Duration time.Duration
	Status   Status
	Kind     Kind

	// list holds the values of an array attribute (array true: `!=` and
	// `!~` mean "no element") or of an event/link field across the span's
	// events or links (array false: every operator means "some element").
	list  []Value
	multi bool
	array bool
}

// KeyValue is a named Value: a by() group value, an aggregate result or a
// selected field.
type KeyValue struct {
	Key   string
	Value Value
}

// List returns the elements of an array attribute or of an event/link
// field across several events or links (IsList reports which), nil for a
// single value.
func (v Value) List() []Value { return v.list }

// IsList reports whether v is a list (see List).
func (v Value) IsList() bool { return v.multi }

// IsNil reports whether the value is missing.
func (v Value) IsNil() bool { return v.Type == TypeNil && !v.multi }

// String renders the value as text (durations as Go durations such as
// "12.3ms", statuses and kinds as their literals, lists as [a, b]).
func (v Value) String() string {
	if v.multi {
		parts := make([]string, len(v.list))
		for i, e := range v.list {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	switch v.Type {
	case TypeInt:
		return strconv.FormatInt(v.Int, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case TypeString:
		return v.Str
	case TypeBoolean:
		return strconv.FormatBool(v.Bool)
	case TypeDuration:
		return v.Duration.String()
	case TypeStatus:
		return v.Status.String()
	case TypeKind:
		return v.Kind.String()
	}
	return "nil"
}

// clone returns v with its strings copied out of the trace's bytes.
func (v Value) clone() Value {
	v.Str = strings.Clone(v.Str)
	if v.list != nil {
		l := make([]Value, len(v.list))
		for i, e := range v.list {
			l[i] = e.clone()
		}
		v.list = l
	}
	return v
}

func intValue(i int64) Value         { return Value{Type: TypeInt, Int: i} }
func floatValue(f float64) Value     { return Value{Type: TypeFloat, Float: f} }
func strValue(s string) Value        { return Value{Type: TypeString, Str: s} }
func boolValue(b bool) Value         { return Value{Type: TypeBoolean, Bool: b} }
func durValue(d time.Duration) Value { return Value{Type: TypeDuration, Duration: d} }
func multiValue(l []Value, array bool) Value {
	return Value{list: l, multi: true, array: array}
}

func staticValue(s *Static) Value {
	switch s.Type {
	case TypeInt:
		return intValue(s.Int)
	case TypeFloat:
		return floatValue(s.Float)
	case TypeString:
		return strValue(s.Str)
	case TypeBoolean:
		return boolValue(s.Bool)
	case TypeDuration:
		return durValue(s.Duration)
	case TypeStatus:
		return Value{Type: TypeStatus, Status: s.Status}
	case TypeKind:
		return Value{Type: TypeKind, Kind: s.Kind}
	}
	return Value{}
}

// wireValue converts an encoded attribute value. Bytes and kvlists become
// their string form; arrays a list.
func wireValue(v otlpwire.AnyValueView) Value {
	switch v.Type() {
	case otlpwire.ValueTypeStr:
		return strValue(bstr(v.Str()))
	case otlpwire.ValueTypeInt:
		return intValue(v.Int())
	case otlpwire.ValueTypeDouble:
		return floatValue(v.Double())
	case otlpwire.ValueTypeBool:
		return boolValue(v.Bool())
	case otlpwire.ValueTypeArray:
		var l []Value
		_ = v.EachValue(func(e otlpwire.AnyValueView) bool {
			l = append(l, wireValue(e))
			return true
		})
		return multiValue(l, true)
	case otlpwire.ValueTypeBytes, otlpwire.ValueTypeKvlist:
		b, _ := v.AppendString(nil)
		return strValue(string(b))
	}
	return Value{}
}

// numeric returns the value as a float64 (durations in nanoseconds).
func (v Value) numeric() (float64, bool) {
	switch v.Type {
	case TypeInt:
		return float64(v.Int), true
	case TypeFloat:
		return v.Float, true
	case TypeDuration:
		return float64(v.Duration), true
	}
	return 0, false
}

// truthy reports whether v is the boolean true (or, for a list, whether
// some element is).
func (v Value) truthy() bool {
	if v.multi {
		for _, e := range v.list {
			if e.truthy() {
				return true
			}
		}
		return false
	}
	return v.Type == TypeBoolean && v.Bool
}

// compare applies a comparison operator. A missing operand or operands of
// incompatible types make every comparison false. re is the compiled
// pattern for =~ and !~.
func compare(op Operator, l, r Value, re interface{ MatchString(string) bool }) bool {
	if l.multi || r.multi {
		list, other, left := l, r, true
		if !l.multi {
			list, other, left = r, l, false
		}
		none := list.array && (op == OpNotEqual || op == OpNotRegex)
		if none {
			// Array: != and !~ hold when no element is equal/matching.
			pos := OpEqual
			if op == OpNotRegex {
				pos = OpRegex
			}
			for _, e := range list.list {
				if e.IsNil() {
					continue
				}
				a, b := e, other
				if !left {
					a, b = other, e
				}
				if compare(pos, a, b, re) {
					return false
				}
			}
			return len(list.list) > 0 && !other.IsNil()
		}
		for _, e := range list.list {
			a, b := e, other
			if !left {
				a, b = other, e
			}
			if compare(op, a, b, re) {
				return true
			}
		}
		return false
	}
	if l.IsNil() || r.IsNil() {
		return false
	}
	if op == OpRegex || op == OpNotRegex {
		if l.Type != TypeString || re == nil {
			return false
		}
		return re.MatchString(l.Str) == (op == OpRegex)
	}
	var c int
	switch {
	case l.Type == TypeString && r.Type == TypeString:
		c = strings.Compare(l.Str, r.Str)
	case l.Type == TypeBoolean && r.Type == TypeBoolean:
		if op != OpEqual && op != OpNotEqual {
			return false
		}
		c = 1
		if l.Bool == r.Bool {
			c = 0
		}
	case l.Type == TypeStatus && r.Type == TypeStatus:
		if op != OpEqual && op != OpNotEqual {
			return false
		}
		c = int(l.Status) - int(r.Status)
	case l.Type == TypeKind && r.Type == TypeKind:
		if op != OpEqual && op != OpNotEqual {
			return false
		}
		c = int(l.Kind) - int(r.Kind)
	case l.Type == TypeInt && r.Type == TypeInt:
		c = cmpOrdered(l.Int, r.Int)
	case l.Type == TypeDuration && r.Type == TypeDuration:
		c = cmpOrdered(l.Duration, r.Duration)
	default:
		a, ok1 := l.numeric()
		b, ok2 := r.numeric()
		if !ok1 || !ok2 || math.IsNaN(a) || math.IsNaN(b) {
			return false
		}
		c = cmpOrdered(a, b)
	}
	return cmpHolds(op, c)
}

func cmpOrdered[T int64 | float64 | time.Duration](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpHolds(op Operator, c int) bool {
	switch op {
	case OpEqual:
		return c == 0
	case OpNotEqual:
		return c != 0
	case OpLess:
		return c < 0
	case OpLessEqual:
		return c <= 0
	case OpGreater:
		return c > 0
	case OpGreaterEqual:
		return c >= 0
	}
	return false
}

// arith applies an arithmetic operator. Non-numeric or missing operands
// give a missing value; lists are mapped element by element. Between ints
// the result is an int (division truncates, as in Tempo; division by zero
// gives a missing value); otherwise a float, or a duration when an operand
// is a duration (except duration / duration and duration * duration).
func arith(op Operator, l, r Value) Value {
	if l.multi || r.multi {
		src, left := l, true
		if !l.multi {
			src, left = r, false
		}
		out := make([]Value, len(src.list))
		for i, e := range src.list {
			if left {
				out[i] = arith(op, e, r)
			} else {
				out[i] = arith(op, l, e)
			}
		}
		return multiValue(out, src.array)
	}
	if l.Type == TypeInt && r.Type == TypeInt {
		a, b := l.Int, r.Int
		switch op {
		case OpAdd:
			return intValue(a + b)
		case OpSub:
			return intValue(a - b)
		case OpMul:
			return intValue(a * b)
		case OpDiv:
			if b == 0 {
				return Value{}
			}
			return intValue(a / b) // truncated, as Tempo does
		case OpMod:
			if b == 0 {
				return Value{}
			}
			return intValue(a % b)
		case OpPow:
			return floatToInt(math.Pow(float64(a), float64(b)))
		}
	}
	a, ok1 := l.numeric()
	b, ok2 := r.numeric()
	if !ok1 || !ok2 {
		return Value{}
	}
	var f float64
	switch op {
	case OpAdd:
		f = a + b
	case OpSub:
		f = a - b
	case OpMul:
		f = a * b
	case OpDiv:
		f = a / b
	case OpMod:
		f = math.Mod(a, b)
	case OpPow:
		f = math.Pow(a, b)
	}
	ld, rd := l.Type == TypeDuration, r.Type == TypeDuration
	if (ld || rd) && !(ld && rd && (op == OpDiv || op == OpMul)) {
		return durValue(time.Duration(f))
	}
	return floatValue(f)
}

func floatToInt(f float64) Value {
	if f == math.Trunc(f) && f >= math.MinInt64 && f <= math.MaxInt64 {
		return intValue(int64(f))
	}
	return floatValue(f)
}

func negate(v Value) Value {
	if v.multi {
		out := make([]Value, len(v.list))
		for i, e := range v.list {
			out[i] = negate(e)
		}
		return multiValue(out, v.array)
	}
	switch v.Type {
	case TypeInt:
		return intValue(-v.Int)
	case TypeFloat:
		return floatValue(-v.Float)
	case TypeDuration:
		return durValue(-v.Duration)
	}
	return Value{}
}
