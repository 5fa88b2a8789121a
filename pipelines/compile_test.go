package pipelines_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/pipelines"
)

// Test node kinds: a source that hands out its Output, a stage that splits
// a message in two (or fails / rejects on command), and a sink that records.

type testSource struct{ out pipelines.Output }

func (*testSource) Start(context.Context) error    { return nil }
func (*testSource) Shutdown(context.Context) error { return nil }

type testStage struct{}

func (*testStage) Start(context.Context) error    { return nil }
func (*testStage) Shutdown(context.Context) error { return nil }
func (*testStage) Process(msg *message.Message) ([]*message.Message, error) {
	switch string(msg.Payload) {
	case "fail-stage":
		return nil, status.Error(codes.InvalidArgument, "stage refused the push")
	case "panic":
		panic("boom")
	case "reject":
		pipelines.RejectSpans(msg.Context(), 3, errors.New("three spans were bad"))
	}
	a := message.NewMessage(watermill.NewUUID(), append([]byte("a:"), msg.Payload...))
	b := message.NewMessage(watermill.NewUUID(), append([]byte("b:"), msg.Payload...))
	return []*message.Message{a, b}, nil
}

type testSink struct {
	mu    sync.Mutex
	got   []string
	delay time.Duration
	fail  bool
	// afterAck makes the sink keep a message in acked only once its push is
	// acknowledged (pipelines.OnSettled), as the live-store does, and
	// count in refused those of refused pushes.
	afterAck bool
	acked    []string
	refused  int
}

func (*testSink) Start(context.Context) error    { return nil }
func (*testSink) Shutdown(context.Context) error { return nil }
func (s *testSink) Consume(msg *message.Message) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return status.Error(codes.Unavailable, "sink is full")
	}
	s.got = append(s.got, string(msg.Payload))
	if s.afterAck {
		payload := string(msg.Payload)
		pipelines.OnSettled(msg.Context(), func(acknowledged bool) {
			s.mu.Lock()
			if acknowledged {
				s.acked = append(s.acked, payload)
			} else {
				s.refused++
			}
			s.mu.Unlock()
		})
	}
	return nil
}

func (s *testSink) refusedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

func (s *testSink) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

func (s *testSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

type testFactory struct {
	kind string
	role pipelines.Role
	make func(set pipelines.Settings) pipelines.Node
}

func (f testFactory) Type() string         { return f.kind }
func (f testFactory) Role() pipelines.Role { return f.role }
func (f testFactory) Input() pipelines.DataType {
	if f.role == pipelines.RoleSource {
		return ""
	}
	return pipelines.DataTraces
}
func (f testFactory) Output() pipelines.DataType {
	if f.role == pipelines.RoleSink {
		return ""
	}
	return pipelines.DataTraces
}
func (testFactory) DefaultConfig() any { return &struct{}{} }
func (f testFactory) Create(set pipelines.Settings, _ any) (pipelines.Node, error) {
	return f.make(set), nil
}

const testGraph = `nodes:
  in:
    kind: src
    target: distributor
  split:
    kind: split
    target: distributor
    from: [in]
  store-a:
    kind: sink
    target: live-store
    from: [split]
  store-b:
    kind: sink
    target: block-builder
    from: [split]
`

func startTestPipeline(t *testing.T, sinks ...*testSink) (*pipelines.Pipeline, pipelines.Output, *prometheus.Registry) {
	t.Helper()
	src := &testSource{}
	p, metrics := compileTargets(t, nil, []string{"all"}, src, map[string]*testSink{"store-a": sinks[0], "store-b": sinks[1]})
	return p, src.out, metrics
}

func push(t *testing.T, out pipelines.Output, payload string) (*pipelines.Outcome, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return out.Push(ctx, message.NewMessage(watermill.NewUUID(), []byte(payload)))
}

// A push returns only after every sink of the process has the data.
func TestPushWaitsForEverySink(t *testing.T) {
	a, b := &testSink{delay: 20 * time.Millisecond}, &testSink{}
	_, out, metrics := startTestPipeline(t, a, b)
	oc, err := push(t, out, "x")
	if err != nil || oc.Err() != nil {
		t.Fatalf("push: %v / %v", err, oc.Err())
	}
	if a.count() != 2 || b.count() != 2 {
		t.Fatalf("after the push returned, sinks hold %d and %d messages, want 2 and 2", a.count(), b.count())
	}
	if got := counterValue(t, metrics, "store-a", "ok"); got != 2 {
		t.Fatalf("weft_pipeline_messages_total{node=store-a,result=ok} = %v, want 2", got)
	}
}

// counterValue reads weft_pipeline_messages_total{node, result}.
func counterValue(t *testing.T, reg *prometheus.Registry, node, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weft_pipeline_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["node"] == node && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestStageAndSinkErrorsReachThePush(t *testing.T) {
	a, b := &testSink{}, &testSink{fail: true}
	_, out, _ := startTestPipeline(t, a, b)

	oc, err := push(t, out, "fail-stage")
	if err != nil {
		t.Fatal(err)
	}
	if status.Code(oc.Err()) != codes.InvalidArgument || a.count() != 0 {
		t.Fatalf("stage error: got %v, sink a has %d", oc.Err(), a.count())
	}

	oc, err = push(t, out, "ok")
	if err != nil {
		t.Fatal(err)
	}
	if status.Code(oc.Err()) != codes.Unavailable {
		t.Fatalf("sink error: got %v, want Unavailable", oc.Err())
	}

	oc, err = push(t, out, "panic")
	if err != nil {
		t.Fatal(err)
	}
	if status.Code(oc.Err()) != codes.Internal {
		t.Fatalf("panic: got %v, want Internal", oc.Err())
	}
}

func TestRejectedSpansArePartialSuccess(t *testing.T) {
	a, b := &testSink{}, &testSink{}
	_, out, _ := startTestPipeline(t, a, b)
	oc, err := push(t, out, "reject")
	if err != nil || oc.Err() != nil {
		t.Fatalf("push: %v / %v", err, oc.Err())
	}
	if oc.Rejected() != 3 || oc.RejectionMessage() != "three spans were bad" {
		t.Fatalf("rejected %d (%q), want 3", oc.Rejected(), oc.RejectionMessage())
	}
	if a.count() != 2 {
		t.Fatalf("the rest of the push was not kept: sink has %d", a.count())
	}
}

func TestPushTimesOutWithUnavailable(t *testing.T) {
	a, b := &testSink{delay: 2 * time.Second}, &testSink{}
	_, out, _ := startTestPipeline(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := out.Push(ctx, message.NewMessage(watermill.NewUUID(), []byte("slow")))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
}

// Many pushes at once all complete, each seeing its own outcome.
func TestConcurrentPushes(t *testing.T) {
	a, b := &testSink{}, &testSink{}
	_, out, _ := startTestPipeline(t, a, b)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			payload := "ok"
			if i%5 == 0 {
				payload = "reject"
			}
			oc, err := push(t, out, payload)
			if err != nil || oc.Err() != nil {
				failed.Add(1)
				return
			}
			if want := map[bool]int64{true: 3, false: 0}[i%5 == 0]; oc.Rejected() != want {
				failed.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if failed.Load() != 0 || a.count() != 100 || b.count() != 100 {
		t.Fatalf("failed=%d, sinks hold %d and %d, want 100 each", failed.Load(), a.count(), b.count())
	}
}

// Shutdown lets a push in flight finish before the sinks stop.
func TestShutdownDrains(t *testing.T) {
	a, b := &testSink{delay: 300 * time.Millisecond}, &testSink{}
	p, out, _ := startTestPipeline(t, a, b)
	done := make(chan error, 1)
	go func() {
		oc, err := push(t, out, "x")
		if err == nil {
			err = oc.Err()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("in-flight push failed: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("push did not finish")
	}
	if a.count() != 2 {
		t.Fatalf("sink a holds %d messages after drain, want 2", a.count())
	}
}

// A sink that keeps data only once the push is acknowledged keeps nothing
// of a push another sink refused, or one the source gave up waiting for,
// and has it before an acknowledged push returns.
func TestOnSettledKeepsOnlyAcknowledgedPushes(t *testing.T) {
	a, b := &testSink{afterAck: true}, &testSink{fail: true}
	_, out, _ := startTestPipeline(t, a, b)
	oc, err := push(t, out, "x")
	if err != nil || status.Code(oc.Err()) != codes.Unavailable {
		t.Fatalf("push with a failing sink: %v / %v", err, oc.Err())
	}
	if a.count() != 2 || a.ackedCount() != 0 || a.refusedCount() != 2 {
		t.Fatalf("refused push: sink a consumed %d, kept %d and was told of %d refused messages, want 2, 0 and 2", a.count(), a.ackedCount(), a.refusedCount())
	}

	b.mu.Lock()
	b.fail = false
	b.mu.Unlock()
	oc, err = push(t, out, "y")
	if err != nil || oc.Err() != nil {
		t.Fatalf("push: %v / %v", err, oc.Err())
	}
	if a.ackedCount() != 2 {
		t.Fatalf("acknowledged push: sink a kept %d messages when it returned, want 2", a.ackedCount())
	}

	b.mu.Lock()
	b.delay = 300 * time.Millisecond
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := out.Push(ctx, message.NewMessage(watermill.NewUUID(), []byte("late"))); status.Code(err) != codes.Unavailable {
		t.Fatalf("push that times out: %v, want Unavailable", err)
	}
	time.Sleep(800 * time.Millisecond) // b handles both messages meanwhile
	if a.ackedCount() != 2 || a.refusedCount() != 4 {
		t.Fatalf("a push the source gave up on: sink a kept %d messages and was told of %d refused, want 2 and 4", a.ackedCount(), a.refusedCount())
	}
}
