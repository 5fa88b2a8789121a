package main

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The decode floor is what it costs to decode the bench's requests once
// with the reference OTLP decoder (pdata's ptrace.ProtoUnmarshaler), on one
// goroutine: a floor that no OTLP backend's ingest can go under. The server's
// ingest CPU per million spans is reported as a multiple of it.
const (
	// decodeSampleBytes caps the request bodies kept from the ingest for the
	// decode floor (over all workers).
	decodeSampleBytes = 16 << 20
	// decodeMinCPU is the CPU time the decode loop runs for, at least.
	decodeMinCPU = time.Second
	// decodeMaxWall bounds the decode loop's wall time, whatever the CPU.
	decodeMaxWall = 30 * time.Second
)

// sampleRequest is one request the bench sent, as encoded protobuf, with
// the spans it holds.
type sampleRequest struct {
	body  []byte
	spans int
}

// decodeFloorResult is the decode floor of one run; -json writes it as
// "decode_floor".
type decodeFloorResult struct {
	// Requests, Spans and Bytes are the sample of sent requests decoded on
	// every pass.
	Requests int   `json:"requests"`
	Spans    int64 `json:"spans"`
	Bytes    int64 `json:"bytes"`
	// Passes over the sample, and the spans decoded over all of them.
	Passes       int   `json:"passes"`
	SpansDecoded int64 `json:"spans_decoded"`
	// CPUSeconds is the process's utime + stime (getrusage) over the loop.
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPerMillionSpans is the floor: CPUSeconds per million spans decoded.
	CPUPerMillionSpans float64 `json:"cpu_seconds_per_million_spans"`
	// IngestMultiple is the server's ingest CPU per million spans (summed
	// over its processes) divided by the floor; 0 when the server's CPU was
	// not measured.
	IngestMultiple float64 `json:"ingest_multiple"`
	// Error is why the floor could not be measured.
	Error string `json:"error,omitempty"`
}

// cpuTimer reads the CPU time used so far; processCPU in the bench, a fake
// in tests.
type cpuTimer func() (time.Duration, error)

// processCPU is the process's utime + stime, from getrusage(RUSAGE_SELF).
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("cannot read getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// measureDecodeFloor decodes every request of sample with pdata's
// ProtoUnmarshaler, pass after pass on the calling goroutine, until the
// loop has used minCPU of CPU time (per cpu) or maxWall has passed, and at
// least once. It fails if a request does not decode or decodes to another
// number of spans than it holds.
func measureDecodeFloor(sample []sampleRequest, cpu cpuTimer, minCPU, maxWall time.Duration) (decodeFloorResult, error) {
	r := decodeFloorResult{Requests: len(sample)}
	for _, s := range sample {
		r.Spans += int64(s.spans)
		r.Bytes += int64(len(s.body))
	}
	if r.Spans == 0 {
		return r, errors.New("cannot measure the decode floor: no spans were sent")
	}
	runtime.GC() // the ingest's garbage is not the loop's to collect
	var u ptrace.ProtoUnmarshaler
	start := time.Now()
	c0, err := cpu()
	if err != nil {
		return r, err
	}
	var used time.Duration
	for used < minCPU && (r.Passes == 0 || time.Since(start) < maxWall) {
		for i, s := range sample {
			td, err := u.UnmarshalTraces(s.body)
			if err != nil {
				return r, fmt.Errorf("cannot decode sent request %d: %w", i, err)
			}
			if n := td.SpanCount(); n != s.spans {
				return r, fmt.Errorf("cannot measure the decode floor: sent request %d decoded to %d spans, it holds %d", i, n, s.spans)
			}
			r.SpansDecoded += int64(s.spans)
		}
		r.Passes++
		c, err := cpu()
		if err != nil {
			return r, err
		}
		used = c - c0
	}
	r.CPUSeconds = used.Seconds()
	r.CPUPerMillionSpans = r.CPUSeconds / (float64(r.SpansDecoded) / 1e6)
	return r, nil
}

// decodeFloorPhase measures the decode floor on the requests of the
// ingest, once the target has stopped (so that nothing else runs), and
// sets res.DecodeFloor.
func decodeFloorPhase(res *results) {
	if res.Ingest == nil || len(res.Ingest.Sample) == 0 {
		return
	}
	progress("decode floor: decoding %d sent requests with pdata, one goroutine, for %s of CPU", len(res.Ingest.Sample), decodeMinCPU)
	d, err := measureDecodeFloor(res.Ingest.Sample, processCPU, decodeMinCPU, decodeMaxWall)
	if err != nil {
		d.Error = err.Error()
	} else if res.Server.Measured && res.Server.CPUPerMillionSpans > 0 && d.CPUPerMillionSpans > 0 {
		d.IngestMultiple = res.Server.CPUPerMillionSpans / d.CPUPerMillionSpans
	}
	res.DecodeFloor = &d
}

// writeDecodeFloor prints the decode floor and the ingest's multiple of it.
func writeDecodeFloor(p func(string, ...any), d *decodeFloorResult, s serverResult) {
	p("## Decode floor")
	p("")
	if d.Error != "" {
		p("Not measured: %s", d.Error)
		p("")
		return
	}
	p("decode floor: %.2f CPU-s per million spans", d.CPUPerMillionSpans)
	p("")
	switch {
	case d.IngestMultiple > 0 && s.Processes > 1:
		p("ingest = %.1f × decode floor (%.1f CPU-s per million spans, the sum of %d processes)", d.IngestMultiple, s.CPUPerMillionSpans, s.Processes)
	case d.IngestMultiple > 0:
		p("ingest = %.1f × decode floor (%.1f CPU-s per million spans)", d.IngestMultiple, s.CPUPerMillionSpans)
	default:
		p("ingest = n/a × decode floor (the server's CPU was not measured)")
	}
	p("")
	p("The floor: %d of the requests sent (%d spans, %.1f MB of OTLP protobuf), decoded %d times with pdata's ptrace.ProtoUnmarshaler on one goroutine after the target stopped: %.2f CPU-s (getrusage, the bench process) for %d spans.",
		d.Requests, d.Spans, float64(d.Bytes)/1e6, d.Passes, d.CPUSeconds, d.SpansDecoded)
	p("")
}
