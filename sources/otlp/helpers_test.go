package otlp

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftdb/weft/pipelines"
)

// waitTimeout bounds every wait in the tests.
const waitTimeout = 10 * time.Second

// fakeOutput records the messages pushed and answers with respond, or with
// an empty successful Outcome when respond is nil.
type fakeOutput struct {
	mu      sync.Mutex
	msgs    []*message.Message
	respond func(ctx context.Context, msg *message.Message) (*pipelines.Outcome, error)
	entered chan struct{} // receives once per push, if not nil
}

func (f *fakeOutput) Push(ctx context.Context, msg *message.Message) (*pipelines.Outcome, error) {
	f.mu.Lock()
	f.msgs = append(f.msgs, msg)
	respond, entered := f.respond, f.entered
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if respond == nil {
		return pipelines.NewOutcomeForTest(0, "", nil), nil
	}
	return respond(ctx, msg)
}

func (f *fakeOutput) messages() []*message.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.msgs)
}

// answer makes the output answer every push with an outcome or an error.
func answer(rejected int64, msg string, outcomeErr, pushErr error) func(context.Context, *message.Message) (*pipelines.Outcome, error) {
	return func(context.Context, *message.Message) (*pipelines.Outcome, error) {
		if pushErr != nil {
			return nil, pushErr
		}
		return pipelines.NewOutcomeForTest(rejected, msg, outcomeErr), nil
	}
}

// testConfig is the default config bound to loopback ephemeral ports.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Protocols.GRPC.Endpoint = "127.0.0.1:0"
	cfg.Protocols.HTTP.Endpoint = "127.0.0.1:0"
	return cfg
}

// startSource starts a source on loopback with the config changed by
// mutate, and shuts it down at the end of the test.
func startSource(t testing.TB, out pipelines.Output, mutate func(*Config)) (*Source, *prometheus.Registry) {
	t.Helper()
	return startAdmitting(t, out, nil, mutate)
}

// startAdmitting is startSource with an Admission asked before each request
// is read (nil: none).
func startAdmitting(t testing.TB, out pipelines.Output, admit Admission, mutate func(*Config)) (*Source, *prometheus.Registry) {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	reg := prometheus.NewRegistry()
	s, err := New(pipelines.Settings{
		Name:    "otlp",
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: reg,
		Output:  out,
	}, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.admit = admit
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s, reg
}

var testSpanNames = []string{"GET /users", "SELECT users"}

// testSpans are the spans the SDK exporters send.
func testSpans() tracetest.SpanStubs {
	traceID := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	now := time.Now()
	var stubs tracetest.SpanStubs
	for i, name := range testSpanNames {
		stubs = append(stubs, tracetest.SpanStub{
			Name: name,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: traceID,
				SpanID:  trace.SpanID{0, 0, 0, 0, 0, 0, 0, byte(i + 1)},
			}),
			StartTime: now,
			EndTime:   now.Add(time.Millisecond),
		})
	}
	return stubs
}

// testTraces are the spans of testSpanNames as pdata.
func testTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "users")
	ss := rs.ScopeSpans().AppendEmpty()
	for i, name := range testSpanNames {
		sp := ss.Spans().AppendEmpty()
		sp.SetName(name)
		sp.SetTraceID([16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		sp.SetSpanID([8]byte{0, 0, 0, 0, 0, 0, 0, byte(i + 1)})
	}
	return td
}

func testProtoBody(t *testing.T) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(testTraces()).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testJSONBody(t *testing.T) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(testTraces()).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// spanNames decodes a pushed payload as OTLP TracesData protobuf and returns
// its span names, sorted.
func spanNames(t *testing.T, payload []byte) []string {
	t.Helper()
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(payload)
	if err != nil {
		t.Fatalf("cannot decode the pushed payload as TracesData: %v", err)
	}
	var names []string
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				names = append(names, sp.Name())
			}
		}
	}
	slices.Sort(names)
	return names
}

// checkPushed checks that out received exactly one message carrying the
// test spans and the given org ID.
func checkPushed(t *testing.T, out *fakeOutput, wantOrgID string) {
	t.Helper()
	msgs := out.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages pushed, want 1", len(msgs))
	}
	want := slices.Sorted(slices.Values(testSpanNames))
	if got := spanNames(t, msgs[0].Payload); !slices.Equal(got, want) {
		t.Errorf("pushed spans %q, want %q", got, want)
	}
	if got := msgs[0].Metadata.Get(pipelines.MetaOrgID); got != wantOrgID {
		t.Errorf("metadata %s = %q, want %q", pipelines.MetaOrgID, got, wantOrgID)
	}
	if msgs[0].UUID == "" {
		t.Error("message has no UUID")
	}
}

// waitSignal waits for one value on ch, failing the test after waitTimeout.
func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}
