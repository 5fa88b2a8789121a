package metrics

import (
	"context"
	"encoding/hex"
	"errors"
	"math"
	"slices"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

// This file is the block jobs' fast path. Most metrics queries count
// spans one by one: `{ } | rate() by (resource.service.name)`,
// `{ status = error && span.http.route = "/cart" } |
// quantile_over_time(duration, .99)`. When the search part is one spanset
// filter on fields stored per span, and the measured attribute and the
// by() fields are stored per span too, a block job reads only those
// columns and start_unix_nano (block.Reader.ScanSpans), with the same
// row-group and page pruning as a search, and never reads or decodes the
// raw spans or assembles traces. A span value the columns cannot give
// exactly (an array or key-value list attribute) sends the job back to
// the whole-trace path, so both paths count the same spans.

// spanPlan is how a block job reads the spans of a query from columns.
type spanPlan struct {
	cond  *traceql.Condition // nil: every span passes
	npred int                // values of cond's fields, first in a row
	// fields are read after cond's: the measured attribute's, then each
	// by() field's.
	fields []spanpred.Field
	// attr and by locate the measured attribute and each by() field in a
	// row: one index, or two for an unscoped attribute (span, then
	// resource); attr[0] is -1 without a measured attribute.
	attr [2]int
	by   [][2]int
}

// planSpans returns the span plan of q, nil when the query needs whole
// traces (a structural or pipelined search, compare(), fields not stored
// per span).
func (q *Query) planSpans() *spanPlan {
	if q.fn == traceql.MetricsCompare {
		return nil
	}
	cond, ok := q.root.SpanFilter()
	if !ok {
		return nil
	}
	p := &spanPlan{cond: cond, attr: [2]int{-1, -1}}
	if cond != nil {
		p.npred = len(cond.Fields())
	}
	add := func(a *traceql.Attribute) ([2]int, bool) {
		fs, ok := a.StoredFields()
		if !ok {
			return [2]int{}, false
		}
		idx := [2]int{p.npred + len(p.fields), -1}
		if len(fs) == 2 {
			idx[1] = idx[0] + 1
		}
		p.fields = append(p.fields, fs...)
		return idx, true
	}
	if a := q.stage.Attr; a != nil {
		if p.attr, ok = add(a); !ok {
			return nil
		}
	}
	for _, a := range q.stage.By {
		idx, ok := add(a)
		if !ok {
			return nil
		}
		p.by = append(p.by, idx)
	}
	return p
}

// errNotExact says a span value was needed that the columns cannot give
// exactly: the job reads whole traces instead.
var errNotExact = errors.New("a span value is not stored exactly in the columns")

// pendingExemplar is an exemplar taken from a row, waiting for its IDs.
type pendingExemplar struct {
	ser      *series
	value    float64
	tsMs     int64
	rowGroup int
	row      int64
}

// observeRow counts one span read from a block's columns (see spanPlan).
func (a *Accumulator) observeRow(row *block.SpanRow) error {
	p := a.q.spans
	if p.cond != nil {
		m, exact := p.cond.MatchExactBuf(row.Values[:p.npred], &a.rowBuf)
		if !exact {
			return errNotExact
		}
		if !m {
			return nil
		}
	}
	a.metrics.InspectedSpans++
	st := uint64(row.Start)
	if !a.inWindow(st) {
		return nil
	}
	i := a.q.req.IntervalOf(st)
	if i < 0 {
		return nil
	}
	var av traceql.Value
	if p.attr[0] >= 0 {
		v, ok := storedValue(row.Values, p.attr)
		if !ok {
			return errNotExact
		}
		av = v
	}
	a.valBuf = a.valBuf[:0]
	for _, idx := range p.by {
		v, ok := storedValue(row.Values, idx)
		if !ok {
			return errNotExact
		}
		a.valBuf = append(a.valBuf, v)
	}
	ser, f := a.observeValues(i, av)
	if ser != nil && a.exPerIvl != nil && a.exemplars < a.q.req.Exemplars && int(a.exPerIvl[i]) < a.exIvlCap {
		if !a.q.measured() {
			f = math.NaN()
		}
		a.pending = append(a.pending, pendingExemplar{ser: ser, value: f, tsMs: int64(st / 1e6), rowGroup: row.RowGroup, row: row.Row})
		a.exPerIvl[i]++
		a.exemplars++
	}
	return nil
}

// storedValue is the value of a field in a row: idx[0], else idx[1] for
// an unscoped attribute the span does not have. ok is false for a value
// the columns cannot give exactly.
func storedValue(row []spanpred.Value, idx [2]int) (traceql.Value, bool) {
	v := row[idx[0]]
	if v.Kind == spanpred.Missing && idx[1] >= 0 {
		v = row[idx[1]]
	}
	return traceql.StoredValue(v)
}

// resolveExemplars gives the exemplars taken from rows their trace and
// span IDs, read from rd.
func (a *Accumulator) resolveExemplars(ctx context.Context, rd *block.Reader) error {
	slices.SortFunc(a.pending, func(x, y pendingExemplar) int {
		if x.rowGroup != y.rowGroup {
			return x.rowGroup - y.rowGroup
		}
		return int(x.row - y.row)
	})
	for lo := 0; lo < len(a.pending); {
		hi := lo
		for hi < len(a.pending) && a.pending[hi].rowGroup == a.pending[lo].rowGroup {
			hi++
		}
		rows := make([]int64, 0, hi-lo)
		for _, pe := range a.pending[lo:hi] {
			rows = append(rows, pe.row)
		}
		tids, sids, err := rd.SpanIDs(ctx, a.pending[lo].rowGroup, rows)
		if err != nil {
			return err
		}
		for j, pe := range a.pending[lo:hi] {
			pe.ser.ex = append(pe.ser.ex, exemplar{
				labels: []*search.KeyValue{
					strLabel("trace:id", hex.EncodeToString(tids[j][:])),
					strLabel("span:id", hex.EncodeToString(sids[j][:])),
				},
				value: pe.value,
				tsMs:  pe.tsMs,
			})
		}
		lo = hi
	}
	a.pending = nil
	return nil
}
