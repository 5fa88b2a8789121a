package otlp

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/pipelines"
)

// switchAdmission refuses while closed is set, and sums the sizes of the
// pushes it admitted when they are done.
type switchAdmission struct {
	closed    atomic.Bool
	asked     atomic.Int32
	doneBytes atomic.Int64
	doneCalls atomic.Int32
}

func (a *switchAdmission) Admit(string) (func(int), error) {
	a.asked.Add(1)
	if a.closed.Load() {
		return nil, status.Error(codes.Unavailable, "cannot take the push now: over the memory budget (memory_limiter.limit_bytes)")
	}
	return func(n int) { a.doneCalls.Add(1); a.doneBytes.Add(int64(n)) }, nil
}

// TestAdmissionRefusesBeforeReading closes the admission of a running
// source: gRPC and HTTP pushes are refused with UNAVAILABLE / 503 and retry
// information, and nothing reaches the pipeline; reopened, pushes go through.
func TestAdmissionRefusesBeforeReading(t *testing.T) {
	out := &fakeOutput{}
	adm := &switchAdmission{}
	s, _ := startAdmitting(t, out, adm, nil)
	client, _ := grpcClient(t, s)
	body := testProtoBody(t)
	_, httpAddr := s.Addrs()
	url := "http://" + httpAddr + TracesPath

	adm.closed.Store(true)
	_, err := export(t, client, "")
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !bytes.Contains([]byte(st.Message()), []byte("memory_limiter.limit_bytes")) {
		t.Fatalf("gRPC: %v, want UNAVAILABLE naming the budget", err)
	}
	var retry time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri.GetRetryDelay().AsDuration()
		}
	}
	if retry <= 0 {
		t.Fatalf("gRPC refusal without RetryInfo: %v", st.Details())
	}
	resp, err := http.Post(url, contentTypeProtobuf, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("HTTP: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if len(out.messages()) != 0 {
		t.Fatalf("%d refused pushes reached the pipeline", len(out.messages()))
	}

	adm.closed.Store(false)
	if _, err := export(t, client, ""); err != nil {
		t.Fatalf("gRPC after reopening: %v", err)
	}
	resp, err = http.Post(url, contentTypeProtobuf, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP after reopening: %d", resp.StatusCode)
	}
	if len(out.messages()) != 2 || adm.asked.Load() != 4 {
		t.Fatalf("%d pushes reached the pipeline, admission asked %d times; want 2 and 4", len(out.messages()), adm.asked.Load())
	}
	var pushed int64
	for _, m := range out.messages() {
		pushed += int64(len(m.Payload))
	}
	if adm.doneCalls.Load() != 2 || adm.doneBytes.Load() != pushed {
		t.Fatalf("done called %d times with %d bytes, want 2 with %d", adm.doneCalls.Load(), adm.doneBytes.Load(), pushed)
	}
}

// TestAdmissionEndsForUnreadRequests checks that a gRPC request admitted
// and then refused while it is read (over max_recv_msg_size_mib) still ends
// its admission, so that refused requests never count as in progress.
func TestAdmissionEndsForUnreadRequests(t *testing.T) {
	adm := &switchAdmission{}
	s, _ := startAdmitting(t, &fakeOutput{}, adm, func(c *Config) { c.Protocols.GRPC.MaxRecvMsgSizeMiB = 1 })
	client, _ := grpcClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req := testRequest(t)
	req.ResourceSpans[0].ScopeSpans[0].Spans[0].Name = strings.Repeat("x", 2<<20)
	if _, err := client.Export(ctx, req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversize request: %v, want RESOURCE_EXHAUSTED", err)
	}
	if adm.asked.Load() != 1 || adm.doneCalls.Load() != 1 {
		t.Fatalf("admission asked %d times and ended %d times, want 1 and 1", adm.asked.Load(), adm.doneCalls.Load())
	}
}

// TestFactoryPassesAdmission checks that the sources a factory creates ask
// the factory's admission.
func TestFactoryPassesAdmission(t *testing.T) {
	adm := &switchAdmission{}
	f := NewFactory(testConfig(), adm)
	n, err := f.Create(pipelines.Settings{Name: "otlp", Output: &fakeOutput{}}, f.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got := n.(*Source).admit; got != Admission(adm) {
		t.Fatalf("source admission %v, want the factory's", got)
	}
}
