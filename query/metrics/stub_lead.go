package metrics

// TEMPORARY: the engine helper's API, stubbed so the lead's plumbing
// compiles. Deleted when branch tqm-engine is merged.

import (
	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/query/partial"
	"github.com/weftdb/weft/query/search"
	"github.com/weftdb/weft/query/traceql"
)

type Request struct {
	Query     string `json:"q"`
	Start     uint64 `json:"start"`
	End       uint64 `json:"end"`
	Step      uint64 `json:"step"`
	Exemplars int    `json:"exemplars,omitempty"`
	MaxSeries int    `json:"maxSeries,omitempty"`
}

func DefaultStep(start, end uint64) uint64 { return 0 }
func (r Request) Instant() bool            { return r.End-r.Start == r.Step }
func (r Request) Align() Request           { return r }
func (r Request) Intervals() int           { return 0 }

type Query struct{ root *traceql.RootExpr }

func Compile(req Request) (*Query, error)                    { return nil, nil }
func (q *Query) Request() Request                            { return Request{} }
func (q *Query) Root() *traceql.RootExpr                     { return q.root }
func (q *Query) Selection() spanpred.Selection               { return spanpred.Selection{} }
func (q *Query) NewAccumulator(from, to uint64) *Accumulator { return nil }

type Accumulator struct{}

func (a *Accumulator) ObserveTrace(t *traceql.Trace) error { return nil }
func (a *Accumulator) Full() bool                          { return false }
func (a *Accumulator) Result() *Partial                    { return nil }

type JobMetrics struct {
	InspectedBytes, InspectedSpans, InspectedTraces uint64
}
type Partial struct {
	Truncated bool          `json:"truncated,omitempty"`
	Metrics   JobMetrics    `json:"metrics"`
	Skipped   *partial.Skip `json:"skipped,omitempty"`
}

func (q *Query) NewCombiner() *Combiner { return nil }

type Combiner struct{}

func (c *Combiner) Add(p *Partial) error  { return nil }
func (c *Combiner) Truncated() bool       { return false }
func (c *Combiner) Response() *Response   { return nil }

type Response struct {
	Series  []*Series
	Metrics *search.Metrics
	Status  string
	Message string
}
type Series struct{}

func (r *Response) MarshalJSON() ([]byte, error) { return nil, nil }
func (r *Response) MarshalProto() []byte         { return nil }
func (r *Response) Instant() *InstantResponse    { return nil }

type InstantResponse struct{}

func (r *InstantResponse) MarshalJSON() ([]byte, error) { return nil, nil }
func (r *InstantResponse) MarshalProto() []byte         { return nil }
