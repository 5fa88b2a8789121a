package otlpwire

import "encoding/binary"

// Merge combines several TracesData encodings of one trace (from the
// live-store and from blocks) into one, keeping the first copy of each span
// ID. Inputs must have passed Parse or Scan before (they are scanned, not
// checked). An input without duplicates is returned as it is.
func Merge(parts ...[]byte) ([]byte, error) {
	var nonEmpty [][]byte
	for _, p := range parts {
		if len(p) > 0 {
			nonEmpty = append(nonEmpty, p)
		}
	}
	switch len(nonEmpty) {
	case 0:
		return nil, nil
	case 1:
		if !hasDuplicates(nonEmpty[0]) {
			return nonEmpty[0], nil
		}
	}
	seen := map[uint64]struct{}{}
	var out []byte
	for _, p := range nonEmpty {
		var batch Batch
		if err := batch.Scan(p); err != nil {
			return nil, err
		}
		var b Builder
		for ri := range batch.Resources {
			res := &batch.Resources[ri]
			for si := range res.Scopes {
				sc := &res.Scopes[si]
				for _, sp := range sc.Spans {
					var id [8]byte
					copy(id[:], sp.SpanID)
					key := binary.BigEndian.Uint64(id[:])
					if _, dup := seen[key]; dup {
						continue
					}
					seen[key] = struct{}{}
					b.Add(res, sc, sp.Raw)
				}
			}
		}
		out = b.AppendTo(out)
	}
	return out, nil
}

// hasDuplicates reports whether a span ID occurs twice in data; data that
// cannot be scanned is reported as having none (Merge then returns it and
// the caller's decoder reports the problem).
func hasDuplicates(data []byte) bool {
	var batch Batch
	if err := batch.Scan(data); err != nil {
		return false
	}
	seen := make(map[uint64]struct{}, batch.SpanCount())
	for _, res := range batch.Resources {
		for _, sc := range res.Scopes {
			for _, sp := range sc.Spans {
				var id [8]byte
				copy(id[:], sp.SpanID)
				key := binary.BigEndian.Uint64(id[:])
				if _, dup := seen[key]; dup {
					return true
				}
				seen[key] = struct{}{}
			}
		}
	}
	return false
}

// DropEmptyParents returns TracesData data with DropEmptyParent applied to
// every span: data itself when no span has an empty parent_span_id, else a
// new encoding. Data must have passed Parse or Scan before.
func DropEmptyParents(data []byte) ([]byte, error) {
	var batch Batch
	if err := batch.Scan(data); err != nil {
		return nil, err
	}
	found := false
	for _, sp := range batch.spans {
		if sp.EmptyParent {
			found = true
			break
		}
	}
	if !found {
		return data, nil
	}
	var b Builder
	for ri := range batch.Resources {
		res := &batch.Resources[ri]
		for si := range res.Scopes {
			sc := &res.Scopes[si]
			for _, sp := range sc.Spans {
				raw := sp.Raw
				if sp.EmptyParent {
					raw = DropEmptyParent(raw)
				}
				b.Add(res, sc, raw)
			}
		}
	}
	return b.AppendTo(make([]byte, 0, b.Size())), nil
}
