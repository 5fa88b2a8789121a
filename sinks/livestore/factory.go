package livestore

import (
	"context"
	"sync"
	"time"

	"github.com/weftdb/weft/internal/spanpred"
	"github.com/weftdb/weft/pipelines"
)

type factory struct {
	defaults Config
	set      *Set
}

// NewFactory returns the factory of live-store sinks with the given default
// config. Every store it creates joins set, through which the query side
// finds traces.
func NewFactory(defaults Config, set *Set) pipelines.Factory {
	return factory{defaults: defaults, set: set}
}

func (factory) Type() string               { return Type }
func (factory) Role() pipelines.Role       { return pipelines.RoleSink }
func (factory) Input() pipelines.DataType  { return pipelines.DataTraces }
func (factory) Output() pipelines.DataType { return "" }
func (f factory) DefaultConfig() any       { c := f.defaults; return &c }
func (f factory) Create(set pipelines.Settings, cfg any) (pipelines.Node, error) {
	s := New(set, *cfg.(*Config))
	if f.set != nil {
		f.set.add(s)
	}
	return s, nil
}

// Set is every live-store of the process; it finds a trace in all of them.
type Set struct {
	mu     sync.RWMutex
	stores []*Store
}

func (s *Set) add(st *Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stores = append(s.stores, st)
}

// SetSafeBefore passes Store.SetSafeBefore to every store.
func (s *Set) SetSafeBefore(t time.Time) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, st := range s.stores {
		st.SetSafeBefore(t)
	}
}

// FindTraceByID returns the trace's spans from every store that holds some
// of them, concatenated (a valid TracesData), or nil when none does.
func (s *Set) FindTraceByID(ctx context.Context, tenant string, traceID [16]byte, start, end int64) ([]byte, error) {
	s.mu.RLock()
	stores := append([]*Store(nil), s.stores...)
	s.mu.RUnlock()
	var out []byte
	for _, st := range stores {
		b, err := st.FindTraceByID(ctx, tenant, traceID, start, end)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// Scan passes Store.Scan to every store, until fn returns false or ctx is
// done. A trace held by several stores is given once per store.
func (s *Set) Scan(ctx context.Context, tenant string, sel spanpred.Selection, fn func(traceID [16]byte, data []byte) bool) (bytes int64, err error) {
	s.mu.RLock()
	stores := append([]*Store(nil), s.stores...)
	s.mu.RUnlock()
	for _, st := range stores {
		stop := false
		n, err := st.Scan(ctx, tenant, sel, func(id [16]byte, data []byte) bool {
			if !fn(id, data) {
				stop = true
				return false
			}
			return true
		})
		bytes += n
		if err != nil || stop {
			return bytes, err
		}
	}
	return bytes, nil
}

// EachPart passes Store.EachPart to every store, until fn returns false or
// ctx is done.
func (s *Set) EachPart(ctx context.Context, tenant string, fn func(p spanpred.Part) bool) error {
	s.mu.RLock()
	stores := append([]*Store(nil), s.stores...)
	s.mu.RUnlock()
	for _, st := range stores {
		stop := false
		err := st.EachPart(ctx, tenant, func(p spanpred.Part) bool {
			stop = !fn(p)
			return !stop
		})
		if err != nil || stop {
			return err
		}
	}
	return nil
}
