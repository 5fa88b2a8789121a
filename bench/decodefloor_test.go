package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// sentRequests are n requests of the bench's generator, encoded as sent.
func sentRequests(t *testing.T, n int) []sampleRequest {
	t.Helper()
	g := newGenerator(genOptions{Seed: 7, Services: 5, SpansPerTrace: 7, Depth: 4, Attrs: 2, AttrBytes: 8, Events: 1, ErrorRate: 0.1, Batch: 30}, 0)
	var out []sampleRequest
	for range n {
		req, _, spans := g.next()
		body, err := proto.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sampleRequest{body: body, spans: spans})
	}
	return out
}

// fakeCPU advances by step at every reading.
func fakeCPU(step time.Duration) cpuTimer {
	var now time.Duration
	return func() (time.Duration, error) {
		now += step
		return now, nil
	}
}

func TestDecodeFloorDecodesEveryRequest(t *testing.T) {
	sample := sentRequests(t, 5)
	var spans int64
	for _, s := range sample {
		spans += int64(s.spans)
	}
	if spans != 5*35 { // 30 spans per request, rounded up to whole traces of 7
		t.Fatalf("the generator made %d spans, want 175", spans)
	}
	// The fake clock advances 10ms per reading: 3 passes reach 30ms.
	d, err := measureDecodeFloor(sample, fakeCPU(10*time.Millisecond), 30*time.Millisecond, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d.Passes != 3 || d.SpansDecoded != 3*spans || d.Spans != spans || d.Requests != 5 {
		t.Errorf("got %+v, want 3 passes over 5 requests of %d spans", d, spans)
	}
	if want := 0.03 / (float64(3*spans) / 1e6); d.CPUSeconds != 0.03 || d.CPUPerMillionSpans != want {
		t.Errorf("cpu %v s, %v per million spans; want 0.03, %v", d.CPUSeconds, d.CPUPerMillionSpans, want)
	}

	// Every request is decoded: a broken last one is found.
	broken := append([]sampleRequest(nil), sample...)
	broken[4] = sampleRequest{body: append([]byte{0x0a, 0xff}, sample[4].body...), spans: sample[4].spans}
	if _, err := measureDecodeFloor(broken, fakeCPU(time.Millisecond), time.Millisecond, time.Minute); err == nil || !strings.Contains(err.Error(), "request 4") {
		t.Errorf("a request that does not decode: %v, want an error naming request 4", err)
	}
	// And its spans are counted from what was decoded.
	miscounted := append([]sampleRequest(nil), sample...)
	miscounted[2].spans++
	if _, err := measureDecodeFloor(miscounted, fakeCPU(time.Millisecond), time.Millisecond, time.Minute); err == nil || !strings.Contains(err.Error(), "request 2 decoded to 35 spans, it holds 36") {
		t.Errorf("a request with another span count: %v", err)
	}
	if _, err := measureDecodeFloor(nil, fakeCPU(time.Millisecond), time.Millisecond, time.Minute); err == nil {
		t.Error("no requests: no error")
	}
}

func TestDecodeFloorRealCPU(t *testing.T) {
	d, err := measureDecodeFloor(sentRequests(t, 3), processCPU, 20*time.Millisecond, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Passes < 1 || d.CPUSeconds <= 0 || d.CPUPerMillionSpans <= 0 {
		t.Errorf("got %+v, want passes and a positive CPU time", d)
	}
}
