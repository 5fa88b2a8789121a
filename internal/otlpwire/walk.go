package otlpwire

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file walks encoded traces for readers that test a few fields of
// many spans (a search of the live-store): unlike Batch, it collects
// nothing and checks only the framing of what it walks, and attribute
// values are decoded only when asked for.

// EachResourceSpans calls fn with each encoded ResourceSpans of data (a
// TracesData message, or ResourceSpans fields appended one after the
// other), until fn returns false.
func EachResourceSpans(data []byte, fn func(rs []byte) bool) error {
	it := fieldIter{b: data}
	for it.next() {
		if it.num != fieldTracesResourceSpans {
			continue
		}
		if !it.want(protowire.BytesType, "resource_spans") {
			break
		}
		if !fn(it.val) {
			return nil
		}
	}
	return it.err
}

// EachSpan calls fn with each encoded Span of an encoded ResourceSpans,
// scope after scope, until fn returns false.
func EachSpan(rs []byte, fn func(span []byte) bool) error {
	it := fieldIter{b: rs}
	for it.next() {
		if it.num != fieldRSScopeSpans {
			continue
		}
		if !it.want(protowire.BytesType, "scope_spans") {
			break
		}
		in := fieldIter{b: it.val}
		for in.next() {
			if in.num != fieldSSSpans {
				continue
			}
			if !in.want(protowire.BytesType, "spans") {
				break
			}
			if !fn(in.val) {
				return nil
			}
		}
		if in.err != nil {
			return fmt.Errorf("scope_spans: %w", in.err)
		}
	}
	return it.err
}

// EachAttributeRaw is EachAttribute with the value left encoded (an
// AnyValue message, read with ReadAnyValue), for readers that need the
// values of a few keys only. For MessageResourceHeader, msg may also be a
// whole encoded ResourceSpans.
func EachAttributeRaw(msg []byte, k MessageKind, fn func(key, value []byte) bool) error {
	if k == 0 || int(k) >= len(attributesField) {
		return fmt.Errorf("unknown message kind %d", k)
	}
	_, err := eachAttributeRaw(msg, k, fn)
	return err
}

func eachAttributeRaw(msg []byte, k MessageKind, fn func(key, value []byte) bool) (stopped bool, err error) {
	num := attributesField[k]
	it := fieldIter{b: msg}
	for it.next() {
		if it.num != num {
			continue
		}
		if !it.want(protowire.BytesType, "attributes") {
			break
		}
		switch k {
		case MessageResourceHeader:
			if stopped, err = eachAttributeRaw(it.val, MessageResource, fn); stopped || err != nil {
				return stopped, err
			}
			continue
		case MessageScopeHeader:
			if stopped, err = eachAttributeRaw(it.val, MessageScope, fn); stopped || err != nil {
				return stopped, err
			}
			continue
		}
		key, val, err := splitKeyValue(it.val)
		if err != nil {
			return false, err
		}
		if !fn(key, val) {
			return true, nil
		}
	}
	if it.err != nil {
		return false, fmt.Errorf("attributes: %w", it.err)
	}
	return false, nil
}

// splitKeyValue reads the key of an encoded KeyValue and leaves its value
// (an AnyValue) encoded.
func splitKeyValue(kv []byte) (key, value []byte, err error) {
	it := fieldIter{b: kv}
	for it.next() {
		switch {
		case it.num == 1 && it.want(protowire.BytesType, "key"):
			key = it.val
		case it.num == 2 && it.want(protowire.BytesType, "value"):
			value = it.val
		}
	}
	if it.err != nil {
		return nil, nil, fmt.Errorf("attribute %q: %w", key, it.err)
	}
	return key, value, nil
}
