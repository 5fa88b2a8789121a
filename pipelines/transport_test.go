package pipelines_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/pipelines"
)

// memTransport stands for Kafka between the "processes" of a test: one
// watermill gochannel shared by several compiled pipelines.
type memTransport struct {
	pubsub *gochannel.GoChannel
	fail   atomic.Bool // publishing fails while set
}

func (m *memTransport) Topic(node string) string { return "kafka." + node }
func (m *memTransport) Publisher() (message.Publisher, error) {
	return publisherFunc(func(topic string, msgs ...*message.Message) error {
		if m.fail.Load() {
			return errors.New("broker 127.0.0.1:1 unreachable")
		}
		return m.pubsub.Publish(topic, msgs...)
	}), nil
}
func (m *memTransport) Subscriber(string) (message.Subscriber, error) { return m.pubsub, nil }
func (m *memTransport) Close() error                                  { return nil }
func (m *memTransport) CommitSubscriber(string, string) (message.Subscriber, pipelines.Committer, error) {
	return nil, nil, errors.New("no committing readers in these tests")
}
func (m *memTransport) ReplaySubscriber(string, string, time.Duration, func([]int32)) (message.Subscriber, error) {
	return nil, errors.New("no replaying readers in these tests")
}

type publisherFunc func(topic string, msgs ...*message.Message) error

func (f publisherFunc) Publish(topic string, msgs ...*message.Message) error {
	return f(topic, msgs...)
}
func (publisherFunc) Close() error { return nil }

// compileTargets compiles testGraph for the given targets over tr (nil:
// no transport) and starts it; it is shut down at the end of the test.
func compileTargets(t *testing.T, tr pipelines.Transport, targets []string, src *testSource, sinks map[string]*testSink) (*pipelines.Pipeline, *prometheus.Registry) {
	t.Helper()
	reg, err := pipelines.NewRegistry(
		testFactory{kind: "src", role: pipelines.RoleSource, make: func(set pipelines.Settings) pipelines.Node { src.out = set.Output; return src }},
		testFactory{kind: "split", role: pipelines.RoleStage, make: func(pipelines.Settings) pipelines.Node { return &testStage{} }},
		testFactory{kind: "sink", role: pipelines.RoleSink, make: func(set pipelines.Settings) pipelines.Node { return sinks[set.Name] }},
	)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := pipelines.Parse("test.yaml", []byte(testGraph))
	if err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	p, err := pipelines.Compile(spec, reg, pipelines.Options{Targets: targets, Metrics: metrics, CloseTimeout: 5 * time.Second, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p, metrics
}

func waitCount(t *testing.T, s *testSink, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.count() < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.count(); got != want {
		t.Fatalf("sink holds %d messages, want %d", got, want)
	}
}

// Edges between targets run in different processes go through the
// transport: the push is acknowledged once the transport holds the
// output, each remote node reads it, and a transport that fails makes the
// push fail with Unavailable.
func TestEdgesAcrossProcessesUseTheTransport(t *testing.T) {
	tr := &memTransport{pubsub: gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})}
	a, b := &testSink{}, &testSink{}
	src := &testSource{}
	compileTargets(t, tr, []string{"live-store"}, &testSource{}, map[string]*testSink{"store-a": a})
	compileTargets(t, tr, []string{"block-builder"}, &testSource{}, map[string]*testSink{"store-b": b})
	compileTargets(t, tr, []string{"distributor"}, src, nil)

	oc, err := push(t, src.out, "x")
	if err != nil || oc.Err() != nil {
		t.Fatalf("push: %v / %v", err, oc.Err())
	}
	waitCount(t, a, 2)
	waitCount(t, b, 2)

	tr.fail.Store(true)
	oc, err = push(t, src.out, "y")
	if err == nil {
		err = oc.Err()
	}
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("push with the transport down: %v, want Unavailable naming the broker", err)
	}
	tr.fail.Store(false)
	if oc, err := push(t, src.out, "z"); err != nil || oc.Err() != nil {
		t.Fatalf("push after the transport is back: %v %v", err, oc.Err())
	}
	waitCount(t, a, 4)
}

// A remote reader that fails gets the message again (nack → redelivery).
func TestRemoteReaderFailureIsRedelivered(t *testing.T) {
	tr := &memTransport{pubsub: gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})}
	a := &testSink{fail: true}
	src := &testSource{}
	compileTargets(t, tr, []string{"live-store", "block-builder"}, &testSource{}, map[string]*testSink{"store-a": a, "store-b": &testSink{}})
	compileTargets(t, tr, []string{"distributor"}, src, nil)
	if _, err := push(t, src.out, "x"); err != nil {
		t.Fatal(err) // acknowledged: the transport holds it
	}
	time.Sleep(200 * time.Millisecond) // a few failed attempts, with backoff
	a.mu.Lock()
	a.fail = false
	a.mu.Unlock()
	waitCount(t, a, 2)
}

// Without a transport, an edge across processes is refused with its line.
func TestCrossingEdgeNeedsTransport(t *testing.T) {
	reg, _ := pipelines.NewRegistry(
		testFactory{kind: "src", role: pipelines.RoleSource, make: func(pipelines.Settings) pipelines.Node { return &testSource{} }},
		testFactory{kind: "split", role: pipelines.RoleStage, make: func(pipelines.Settings) pipelines.Node { return &testStage{} }},
		testFactory{kind: "sink", role: pipelines.RoleSink, make: func(pipelines.Settings) pipelines.Node { return &testSink{} }},
	)
	spec, _ := pipelines.Parse("test.yaml", []byte(testGraph))
	_, err := pipelines.Compile(spec, reg, pipelines.Options{Targets: []string{"live-store"}, Metrics: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "test.yaml:12") || !strings.Contains(err.Error(), "ingest.kafka") {
		t.Fatalf("got %v", err)
	}
}
