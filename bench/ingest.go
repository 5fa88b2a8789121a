package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

const (
	pushTimeout    = 30 * time.Second
	refusedBackoff = 100 * time.Millisecond // pause of a worker after a refused request
)

// ingestOptions shape the ingest phase.
type ingestOptions struct {
	Protocol string        `json:"protocol"` // grpc or http
	Workers  int           `json:"workers"`
	Duration time.Duration `json:"duration_ns"`
	Rate     float64       `json:"rate"`          // spans per second over all workers; 0 is no cap
	Samples  int           `json:"trace_samples"` // trace IDs kept for the query phase
	// Backfill, when positive, spreads the traces' time stamps over
	// [end−Backfill, end−backfillLag], end being the ingest's planned end
	// (backfillTime).
	Backfill time.Duration `json:"backfill_ns,omitempty"`
}

// ingestResult is what the ingest phase measured.
type ingestResult struct {
	Elapsed       time.Duration  `json:"elapsed_ns"`
	Requests      int64          `json:"requests"`
	SpansSent     int64          `json:"spans_sent"`
	SpansAcked    int64          `json:"spans_acked"`
	SpansRefused  int64          `json:"spans_refused"`
	BytesAcked    int64          `json:"bytes_acked"` // protobuf bytes of fully acknowledged requests
	BytesSent     int64          `json:"bytes_sent"`
	Errors        map[string]int `json:"errors,omitempty"` // refusal reason → requests
	LatencyP50    time.Duration  `json:"push_latency_p50_ns"`
	LatencyP99    time.Duration  `json:"push_latency_p99_ns"`
	TraceIDs      [][16]byte     `json:"-"`
	Start, End    time.Time      `json:"-"`
	SpansPerTrace int            `json:"-"`
	// Sample is the first requests each worker sent, up to its share of
	// decodeSampleBytes, for the decode floor.
	Sample []sampleRequest `json:"-"`
}

// pusher sends one encoded request and returns the spans the backend
// rejected, or an error if it refused the whole request.
type pusher func(ctx context.Context, body []byte, req *coltracepb.ExportTraceServiceRequest) (rejected int64, err error)

func newPusher(t *target, protocol string) (pusher, func(), error) {
	switch protocol {
	case "grpc":
		conn, err := grpc.NewClient(t.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
		if err != nil {
			return nil, nil, fmt.Errorf("cannot create a gRPC client for %s: %w", t.otlpGRPC, err)
		}
		client := coltracepb.NewTraceServiceClient(conn)
		return func(ctx context.Context, _ []byte, req *coltracepb.ExportTraceServiceRequest) (int64, error) {
			resp, err := client.Export(ctx, req)
			if err != nil {
				return 0, fmt.Errorf("grpc %s", status.Code(err))
			}
			return resp.GetPartialSuccess().GetRejectedSpans(), nil
		}, func() { conn.Close() }, nil
	case "http":
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		url := "http://" + t.otlpHTTP + "/v1/traces"
		return func(ctx context.Context, body []byte, _ *coltracepb.ExportTraceServiceRequest) (int64, error) {
			hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				return 0, fmt.Errorf("cannot create the request: %w", err)
			}
			hr.Header.Set("Content-Type", "application/x-protobuf")
			resp, err := client.Do(hr)
			if err != nil {
				return 0, fmt.Errorf("http transport error")
			}
			defer resp.Body.Close()
			rb, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return 0, fmt.Errorf("http %d", resp.StatusCode)
			}
			var er coltracepb.ExportTraceServiceResponse
			if err := proto.Unmarshal(rb, &er); err != nil {
				return 0, fmt.Errorf("http 200 with an undecodable body")
			}
			return er.GetPartialSuccess().GetRejectedSpans(), nil
		}, func() { client.CloseIdleConnections() }, nil
	default:
		return nil, nil, fmt.Errorf("cannot push over %q: use grpc or http", protocol)
	}
}

// workerStats are one worker's counts, merged at the end.
type workerStats struct {
	latencies []time.Duration
	ids       [][16]byte
	errors    map[string]int
	bytesAck  int64
	seen      int // fully acknowledged traces seen, for reservoir sampling
	sample    []sampleRequest
	sampleLen int // bytes in sample
}

// runIngest pushes generated traces for o.Duration.
func runIngest(ctx context.Context, t *target, o ingestOptions, g genOptions) (*ingestResult, error) {
	push, closeFn, err := newPusher(t, o.Protocol)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	var sent, acked, refused, reqs, bytesSent atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	stats := make([]*workerStats, o.Workers)
	perWorkerRate := o.Rate / float64(o.Workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.Workers {
		ws := &workerStats{errors: map[string]int{}}
		stats[w] = ws
		wg.Go(func() {
			gen := newGenerator(g, w)
			if o.Backfill > 0 {
				gen.clock = backfillClock(start, o.Duration, o.Backfill)
			}
			rng := rand.New(rand.NewPCG(uint64(w), g.Seed)) // for sampling, apart from the generator's stream
			var spansDone float64
			for ctx.Err() == nil {
				req, ids, n := gen.next()
				body, err := proto.Marshal(req)
				if err != nil {
					ws.errors["cannot marshal"]++
					return
				}
				if perWorkerRate > 0 { // pace: this worker's spans so far at its share of the rate
					due := start.Add(time.Duration(spansDone / perWorkerRate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
				}
				spansDone += float64(n)
				if len(ws.sample) == 0 || ws.sampleLen+len(body) <= decodeSampleBytes/o.Workers {
					ws.sample = append(ws.sample, sampleRequest{body: body, spans: n})
					ws.sampleLen += len(body)
				}
				pctx, pcancel := context.WithTimeout(context.Background(), pushTimeout)
				t0 := time.Now()
				rejected, err := push(pctx, body, req)
				lat := time.Since(t0)
				pcancel()
				reqs.Add(1)
				sent.Add(int64(n))
				bytesSent.Add(int64(len(body)))
				ws.latencies = append(ws.latencies, lat)
				if err != nil {
					refused.Add(int64(n))
					ws.errors[err.Error()]++
					select { // back off a little, as an exporter would, rather than spin
					case <-ctx.Done():
					case <-time.After(refusedBackoff):
					}
					continue
				}
				refused.Add(rejected)
				acked.Add(int64(n) - rejected)
				if rejected > 0 {
					ws.errors["partial success"]++
					continue
				}
				ws.bytesAck += int64(len(body))
				for _, id := range ids { // reservoir sample of fully acknowledged traces
					ws.seen++
					if len(ws.ids) < o.Samples {
						ws.ids = append(ws.ids, id)
					} else if j := rng.IntN(ws.seen); j < o.Samples {
						ws.ids[j] = id
					}
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		last, lastT := int64(0), start
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				s := sent.Load()
				progress("ingest %5.0fs: %d spans sent, %d acked, %d refused, %.0f spans/s",
					now.Sub(start).Seconds(), s, acked.Load(), refused.Load(), float64(s-last)/now.Sub(lastT).Seconds())
				last, lastT = s, now
			}
		}
	}()
	wg.Wait()
	close(done)
	end := time.Now()
	r := &ingestResult{
		Elapsed: end.Sub(start), Requests: reqs.Load(), SpansSent: sent.Load(), SpansAcked: acked.Load(),
		SpansRefused: refused.Load(), BytesSent: bytesSent.Load(), Errors: map[string]int{},
		Start: start, End: end, SpansPerTrace: max(g.SpansPerTrace, 1),
	}
	var lats []time.Duration
	for _, ws := range stats {
		lats = append(lats, ws.latencies...)
		r.Sample = append(r.Sample, ws.sample...)
		r.BytesAcked += ws.bytesAck
		for k, v := range ws.errors {
			r.Errors[k] += v
		}
	}
	// Sample evenly over the workers' reservoirs.
	for i := 0; len(r.TraceIDs) < o.Samples; i++ {
		added := false
		for _, ws := range stats {
			if i < len(ws.ids) && len(r.TraceIDs) < o.Samples {
				r.TraceIDs = append(r.TraceIDs, ws.ids[i])
				added = true
			}
		}
		if !added {
			break
		}
	}
	r.LatencyP50, r.LatencyP99 = percentile(lats, 0.50), percentile(lats, 0.99)
	return r, nil
}
