package otlp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/pipelines"
)

// blockingOutput returns an output whose pushes signal entered and then
// wait for release (or their context).
func blockingOutput() (out *fakeOutput, release chan struct{}) {
	release = make(chan struct{})
	out = &fakeOutput{
		entered: make(chan struct{}, 1),
		respond: func(ctx context.Context, _ *message.Message) (*pipelines.Outcome, error) {
			select {
			case <-release:
				return pipelines.NewOutcomeForTest(0, "", nil), nil
			case <-ctx.Done():
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		},
	}
	return out, release
}

// checkShutdownWaits shuts s down while a push is in flight and checks that
// Shutdown returns only after the push is released.
func checkShutdownWaits(t *testing.T, s *Source, out *fakeOutput, release chan struct{}, requestDone <-chan error) {
	t.Helper()
	waitSignal(t, out.entered, "the push to reach the output")

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		shutdownDone <- s.Shutdown(ctx)
	}()
	select {
	case err := <-shutdownDone:
		t.Fatalf("Shutdown returned %v with a push in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-shutdownDone:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Shutdown did not return after the push finished")
	}
	select {
	case err := <-requestDone:
		if err != nil {
			t.Errorf("the in-flight request failed: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the in-flight request did not finish")
	}
}

func TestShutdownWaitsForHTTPPush(t *testing.T) {
	out, release := blockingOutput()
	s, _ := startSource(t, out, nil)
	_, addr := s.Addrs()
	requestDone := make(chan error, 1)
	go func() {
		resp, err := http.Post("http://"+addr+TracesPath, "application/x-protobuf", bytes.NewReader(testProtoBody(t)))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = errors.New(resp.Status)
			}
		}
		requestDone <- err
	}()
	checkShutdownWaits(t, s, out, release, requestDone)
	if _, err := http.Post("http://"+addr+TracesPath, "application/x-protobuf", bytes.NewReader(testProtoBody(t))); err == nil {
		t.Error("a request after Shutdown succeeded")
	}
}

func TestShutdownWaitsForGRPCPush(t *testing.T) {
	out, release := blockingOutput()
	s, _ := startSource(t, out, nil)
	client, _ := grpcClient(t, s)
	req := testRequest(t)
	requestDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_, err := client.Export(ctx, req)
		requestDone <- err
	}()
	checkShutdownWaits(t, s, out, release, requestDone)
}

func TestShutdownDeadline(t *testing.T) {
	out, release := blockingOutput()
	defer close(release)
	s, _ := startSource(t, out, nil)
	_, addr := s.Addrs()
	requestDone := make(chan struct{})
	go func() {
		defer close(requestDone)
		resp, err := http.Post("http://"+addr+TracesPath, "application/x-protobuf", bytes.NewReader(testProtoBody(t)))
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	waitSignal(t, out.entered, "the push to reach the output")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown past its deadline returned %v, want DeadlineExceeded", err)
	}
	// Closing the connection cancels the push, which ends the request.
	waitSignal(t, requestDone, "the request to end")
}

func TestShutdownWithoutStart(t *testing.T) {
	s, err := New(pipelines.Settings{Output: &fakeOutput{}}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for range 2 {
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	if err := s.Start(ctx); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
	if g, h := s.Addrs(); g != "" || h != "" {
		t.Errorf("Addrs() = %q, %q before Start", g, h)
	}
}

func TestStartTwice(t *testing.T) {
	s, _ := startSource(t, &fakeOutput{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := s.Start(ctx); err == nil || !strings.Contains(err.Error(), "already started") {
		t.Errorf("second Start returned %v", err)
	}
}

func TestStartBindError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	addr := taken.Addr().String()
	for _, proto := range []string{"grpc", "http"} {
		t.Run(proto, func(t *testing.T) {
			cfg := testConfig()
			if proto == "grpc" {
				cfg.Protocols.GRPC.Endpoint = addr
			} else {
				cfg.Protocols.HTTP.Endpoint = addr
			}
			s, err := New(pipelines.Settings{Output: &fakeOutput{}}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			err = s.Start(ctx)
			if err == nil {
				_ = s.Shutdown(ctx)
				t.Fatal("Start on a taken port succeeded")
			}
			if !strings.Contains(err.Error(), addr) || !strings.HasPrefix(err.Error(), "cannot listen") {
				t.Errorf("error %q does not name the endpoint %s", err, addr)
			}
			if g, h := s.Addrs(); g != "" || h != "" {
				t.Errorf("Addrs() = %q, %q after a failed Start", g, h)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(pipelines.Settings{}, testConfig()); err == nil {
		t.Error("New without an output succeeded")
	}
	bad := testConfig()
	bad.PushTimeout = 0
	if _, err := New(pipelines.Settings{Output: &fakeOutput{}}, bad); err == nil {
		t.Error("New with an invalid config succeeded")
	}
}

// counterValue returns the value of weft_otlp_requests_total for the labels,
// and the sample count of weft_otlp_push_duration_seconds.
func metricValues(t *testing.T, reg *prometheus.Registry, protocol, code string) (requests float64, observations uint64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	match := func(m *dto.Metric) bool {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		return labels["protocol"] == protocol && labels["code"] == code
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if !match(m) {
				continue
			}
			switch f.GetName() {
			case "weft_otlp_requests_total":
				requests = m.GetCounter().GetValue()
			case "weft_otlp_push_duration_seconds":
				observations = m.GetHistogram().GetSampleCount()
			}
		}
	}
	return requests, observations
}

func TestMetrics(t *testing.T) {
	out := &fakeOutput{}
	s, reg := startSource(t, out, nil)
	for range 2 {
		post(t, s, bytes.NewReader(testProtoBody(t)), "Content-Type", "application/x-protobuf")
	}
	post(t, s, bytes.NewReader(testProtoBody(t)), "Content-Type", "text/plain")
	client, _ := grpcClient(t, s)
	if _, err := export(t, client, ""); err != nil {
		t.Fatal(err)
	}
	out.mu.Lock()
	out.respond = answer(0, "", status.Error(codes.ResourceExhausted, "rate limited"), nil)
	out.mu.Unlock()
	_, _ = export(t, client, "")

	for _, tc := range []struct {
		protocol, code string
		want           float64
	}{
		{"http", "OK", 2},
		{"http", "InvalidArgument", 1},
		{"grpc", "OK", 1},
		{"grpc", "ResourceExhausted", 1},
	} {
		requests, observations := metricValues(t, reg, tc.protocol, tc.code)
		if requests != tc.want || observations != uint64(tc.want) {
			t.Errorf("%s %s: %v requests and %d observations, want %v", tc.protocol, tc.code, requests, observations, tc.want)
		}
	}
}

func TestFactory(t *testing.T) {
	defaults := testConfig()
	f := NewFactory(defaults, nil)
	if f.Type() != "otlp" || f.Role() != pipelines.RoleSource || f.Input() != "" || f.Output() != pipelines.DataTraces {
		t.Errorf("factory is %s %s %q -> %q", f.Type(), f.Role(), f.Input(), f.Output())
	}
	// The defaults are copied deeply, both ways.
	defaults.Protocols.GRPC.Endpoint = "changed:1"
	c1 := f.DefaultConfig().(*Config)
	c1.Protocols.GRPC.Endpoint = "changed:2"
	c1.Protocols.HTTP.MaxRequestBodySize = 1
	c2 := f.DefaultConfig().(*Config)
	if c2.Protocols.GRPC.Endpoint != "127.0.0.1:0" || c2.Protocols.HTTP.MaxRequestBodySize != DefaultMaxRequestBodySize {
		t.Errorf("DefaultConfig shares state: %+v %+v", *c2.Protocols.GRPC, *c2.Protocols.HTTP)
	}

	reg := prometheus.NewRegistry()
	out := &fakeOutput{}
	set := pipelines.Settings{Name: "otlp", Metrics: reg, Output: out}
	var sources []*Source
	for range 2 { // two nodes on one registry share the collectors
		n, err := f.Create(set, f.DefaultConfig())
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		sources = append(sources, n.(*Source))
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, s := range sources {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Shutdown(ctx) }()
		post(t, s, bytes.NewReader(testProtoBody(t)), "Content-Type", "application/x-protobuf")
	}
	if requests, _ := metricValues(t, reg, "http", "OK"); requests != 2 {
		t.Errorf("%v requests counted on the shared registry, want 2", requests)
	}

	if _, err := f.Create(set, "not a config"); err == nil {
		t.Error("Create with a wrong config type succeeded")
	}
	if _, err := f.Create(pipelines.Settings{Name: "otlp"}, f.DefaultConfig()); err == nil {
		t.Error("Create without an output succeeded")
	}
	if _, err := f.Create(set, &Config{}); err == nil {
		t.Error("Create with an invalid config succeeded")
	}
	// A collector of another type under the same name is an error.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "weft_otlp_requests_total", Help: "x"}))
	if _, err := f.Create(pipelines.Settings{Metrics: reg2, Output: out}, f.DefaultConfig()); err == nil {
		t.Error("Create with a clashing metric succeeded")
	}
}
