// Package modules assembles a process from modules that name their
// dependencies, in the manner of dskit's modules and services: a Graph holds
// the modules, Resolve turns the names a process is asked to run into every
// module they need, in dependency order, and Init builds their services,
// which start in that order and stop in the reverse one, so that a module
// starts after everything it needs and stops before it.
package modules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Service is what a module runs once built. Start returns once the service
// works, or with the reason it cannot; it is called after every dependency
// started. Stop releases what Start acquired, gives up what is left when
// ctx is done, and is called only after a successful Start, once every
// module that depends on this one stopped.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Funcs is a Service made of two functions; a nil one does nothing.
type Funcs struct {
	OnStart func(ctx context.Context) error
	OnStop  func(ctx context.Context) error
}

// Start calls OnStart.
func (f Funcs) Start(ctx context.Context) error {
	if f.OnStart == nil {
		return nil
	}
	return f.OnStart(ctx)
}

// Stop calls OnStop.
func (f Funcs) Stop(ctx context.Context) error {
	if f.OnStop == nil {
		return nil
	}
	return f.OnStop(ctx)
}

// Module is one part of a process.
type Module struct {
	// Name is unique in the graph.
	Name string
	// Description is one line on what the module does.
	Description string
	// Target says the module may be asked for on its own (a -target).
	Target bool
	// Deps are the modules this one needs: built and started before it,
	// stopped after it.
	Deps []string
	// Init builds the module's service once its dependencies are built.
	// It may return a nil Service when the module has nothing to run.
	Init func() (Service, error)
}

// Graph is a set of modules. The zero value is empty and ready to use; it
// is not safe for concurrent use.
type Graph struct {
	mods  map[string]*Module
	order []string // registration order, which breaks ties
}

// Add registers m. Adding a name twice is a programming error and panics.
func (g *Graph) Add(m Module) {
	if g.mods == nil {
		g.mods = map[string]*Module{}
	}
	if _, ok := g.mods[m.Name]; ok {
		panic(fmt.Sprintf("modules: module %q added twice", m.Name))
	}
	g.mods[m.Name] = &m
	g.order = append(g.order, m.Name)
}

// Targets returns the modules that may be asked for on their own, in
// registration order.
func (g *Graph) Targets() []Module {
	var out []Module
	for _, n := range g.order {
		if m := g.mods[n]; m.Target {
			out = append(out, *m)
		}
	}
	return out
}

// Modules returns every module in registration order.
func (g *Graph) Modules() []Module {
	out := make([]Module, 0, len(g.order))
	for _, n := range g.order {
		out = append(out, *g.mods[n])
	}
	return out
}

// Check reports every dependency on an unknown module and every cycle.
func (g *Graph) Check() error {
	var errs []error
	for _, n := range g.order {
		for _, d := range g.mods[n].Deps {
			if _, ok := g.mods[d]; !ok {
				errs = append(errs, fmt.Errorf("module %q depends on unknown module %q", n, d))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	_, err := g.Resolve(g.order...)
	return err
}

// Resolve returns names and every module they depend on, directly or not,
// each once, in an order where every module comes after its dependencies.
// Among modules that do not depend on each other, the order is that of
// registration. Unknown names and cycles are errors.
func (g *Graph) Resolve(names ...string) ([]string, error) {
	need := map[string]bool{}
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		m, ok := g.mods[n]
		if !ok {
			return fmt.Errorf("unknown module %q", n)
		}
		if slices.Contains(path, n) {
			return fmt.Errorf("modules depend on each other in a cycle: %s", strings.Join(append(path, n), " -> "))
		}
		if need[n] {
			return nil
		}
		for _, d := range m.Deps {
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		need[n] = true
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	// Kahn's algorithm, taking the earliest registered ready module each
	// time, so that the order does not depend on map iteration.
	done := map[string]bool{}
	var out []string
	for len(out) < len(need) {
		progress := false
		for _, n := range g.order {
			if !need[n] || done[n] {
				continue
			}
			ready := true
			for _, d := range g.mods[n].Deps {
				if !done[d] {
					ready = false
					break
				}
			}
			if ready {
				done[n] = true
				out = append(out, n)
				progress = true
				break
			}
		}
		if !progress {
			return nil, errors.New("modules depend on each other in a cycle") // visit finds cycles first
		}
	}
	return out, nil
}

// Dependents returns the modules that depend on name directly, sorted.
func (g *Graph) Dependents(name string) []string {
	var out []string
	for _, n := range g.order {
		if slices.Contains(g.mods[n].Deps, name) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Init resolves names and builds each module's service in dependency
// order. The first error stops it and is returned as is: a module's errors
// say what failed.
func (g *Graph) Init(names ...string) (*Services, error) {
	order, err := g.Resolve(names...)
	if err != nil {
		return nil, err
	}
	s := &Services{}
	for _, n := range order {
		m := g.mods[n]
		var svc Service
		if m.Init != nil {
			if svc, err = m.Init(); err != nil {
				return nil, err
			}
		}
		if svc == nil {
			svc = Funcs{} // nothing to run; still started and stopped in order
		}
		s.names = append(s.names, n)
		s.svcs = append(s.svcs, svc)
	}
	return s, nil
}

// Services are the built modules of a process, in dependency order.
type Services struct {
	names   []string
	svcs    []Service
	started int // how many of svcs have started
	// OnEvent, when set, is told of each start and stop as it happens
	// ("start", "started", "stop", "stopped"); for logs and tests.
	OnEvent func(module, event string, err error)
}

// Names returns the modules in start order.
func (s *Services) Names() []string { return slices.Clone(s.names) }

func (s *Services) event(module, event string, err error) {
	if s.OnEvent != nil {
		s.OnEvent(module, event, err)
	}
}

// Start starts every service in dependency order. When one fails, those
// already started are stopped again, in reverse order, and its error is
// returned as is.
func (s *Services) Start(ctx context.Context) error {
	for s.started < len(s.svcs) {
		n, svc := s.names[s.started], s.svcs[s.started]
		s.event(n, "start", nil)
		if err := svc.Start(ctx); err != nil {
			s.event(n, "started", err)
			_ = s.Stop(ctx)
			return err
		}
		s.event(n, "started", nil)
		s.started++
	}
	return nil
}

// Stop stops the started services in reverse dependency order: each after
// every module that depends on it. Every service is stopped even when one
// fails or ctx is done (each then gives up quickly); the errors are joined.
func (s *Services) Stop(ctx context.Context) error {
	var errs []error
	for s.started > 0 {
		s.started--
		n, svc := s.names[s.started], s.svcs[s.started]
		s.event(n, "stop", nil)
		err := svc.Stop(ctx)
		s.event(n, "stopped", err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
