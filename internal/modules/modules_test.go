package modules

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// recorder builds a graph whose services log their starts and stops.
type recorder struct {
	log  []string
	fail map[string]string // module -> "init", "start" or "stop"
}

func (r *recorder) module(name string, deps ...string) Module {
	return Module{Name: name, Deps: deps, Init: func() (Service, error) {
		r.log = append(r.log, "init "+name)
		if r.fail[name] == "init" {
			return nil, errors.New("cannot init " + name)
		}
		return Funcs{
			OnStart: func(context.Context) error {
				r.log = append(r.log, "start "+name)
				if r.fail[name] == "start" {
					return errors.New("cannot start " + name)
				}
				return nil
			},
			OnStop: func(context.Context) error {
				r.log = append(r.log, "stop "+name)
				if r.fail[name] == "stop" {
					return errors.New("cannot stop " + name)
				}
				return nil
			},
		}, nil
	}}
}

func (r *recorder) graph() *Graph {
	g := &Graph{}
	g.Add(r.module("store"))
	g.Add(r.module("server"))
	g.Add(r.module("pipeline", "store", "server"))
	g.Add(r.module("writer", "pipeline"))
	g.Add(r.module("reader", "store", "server"))
	g.Add(Module{Name: "all", Description: "everything", Target: true, Deps: []string{"writer", "reader"}})
	return g
}

// A module is built and started after its dependencies and stopped before
// them; a target brings in only what it needs.
func TestOrder(t *testing.T) {
	r := &recorder{}
	g := r.graph()
	if err := g.Check(); err != nil {
		t.Fatal(err)
	}
	order, err := g.Resolve("reader")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"store", "server", "reader"}; !slices.Equal(order, want) {
		t.Fatalf("Resolve(reader) = %v, want %v", order, want)
	}
	s, err := g.Init("all")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"init store", "init server", "init pipeline", "init writer", "init reader",
		"start store", "start server", "start pipeline", "start writer", "start reader",
		"stop reader", "stop writer", "stop pipeline", "stop server", "stop store",
	}
	if !slices.Equal(r.log, want) {
		t.Fatalf("got\n%v\nwant\n%v", r.log, want)
	}
	if got := g.Targets(); len(got) != 1 || got[0].Name != "all" {
		t.Fatalf("Targets() = %v, want only all", got)
	}
}

// When a module cannot start, the ones started are stopped in reverse
// order, the failed one is not, and its error is returned.
func TestStartFailureStopsStarted(t *testing.T) {
	r := &recorder{fail: map[string]string{"pipeline": "start"}}
	s, err := r.graph().Init("writer")
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(context.Background())
	if err == nil || err.Error() != "cannot start pipeline" {
		t.Fatalf("Start: %v", err)
	}
	want := []string{"init store", "init server", "init pipeline", "init writer",
		"start store", "start server", "start pipeline", "stop server", "stop store"}
	if !slices.Equal(r.log, want) {
		t.Fatalf("got\n%v\nwant\n%v", r.log, want)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
}

// A failing stop does not keep the others from stopping; its error is kept.
func TestStopFailureStopsTheRest(t *testing.T) {
	r := &recorder{fail: map[string]string{"pipeline": "stop"}}
	s, err := r.graph().Init("writer")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.log = nil
	if err := s.Stop(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot stop pipeline") {
		t.Fatalf("Stop: %v", err)
	}
	if want := []string{"stop writer", "stop pipeline", "stop server", "stop store"}; !slices.Equal(r.log, want) {
		t.Fatalf("got %v, want %v", r.log, want)
	}
}

func TestInitFailure(t *testing.T) {
	r := &recorder{fail: map[string]string{"server": "init"}}
	if _, err := r.graph().Init("reader"); err == nil || err.Error() != "cannot init server" {
		t.Fatalf("Init: %v", err)
	}
	if want := []string{"init store", "init server"}; !slices.Equal(r.log, want) {
		t.Fatalf("got %v, want %v", r.log, want)
	}
}

func TestGraphErrors(t *testing.T) {
	g := &Graph{}
	g.Add(Module{Name: "a", Deps: []string{"b"}})
	g.Add(Module{Name: "b", Deps: []string{"c"}})
	g.Add(Module{Name: "c", Deps: []string{"a"}})
	g.Add(Module{Name: "d", Deps: []string{"nope"}})
	err := g.Check()
	if err == nil || !strings.Contains(err.Error(), `module "d" depends on unknown module "nope"`) {
		t.Fatalf("Check: %v", err)
	}
	if _, err := g.Resolve("a"); err == nil || !strings.Contains(err.Error(), "cycle: a -> b -> c -> a") {
		t.Fatalf("Resolve(a): %v", err)
	}
	if _, err := g.Resolve("zzz"); err == nil || !strings.Contains(err.Error(), `unknown module "zzz"`) {
		t.Fatalf("Resolve(zzz): %v", err)
	}
	if got := g.Dependents("b"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("Dependents(b) = %v", got)
	}
}
