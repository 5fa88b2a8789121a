package main

// The -dataset mode: block search over a large dataset without a long
// ingest. The bench writes the blocks once, directly with the block writer
// (internal/block, as the block-builder does) from the same generator as
// the ingest, into a directory it reuses on later runs; then it starts
// weft monolithic on those blocks and measures trace by ID and a fixed set
// of searches through the Tempo-compatible HTTP API.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/tenant"
)

// datasetOptions are the -dataset flags.
type datasetOptions struct {
	// Dir holds the blocks (Dir/data/blocks, weft's storage path), the
	// manifest (Dir/dataset.json), weft's config and log.
	Dir string
	// Spans is the dataset's size (rounded up to whole requests).
	Spans int64
	// BlockSpans is the size of a block (rounded up to whole requests).
	BlockSpans int
	// Rebuild writes the blocks again even if Dir holds a dataset of the
	// same parameters.
	Rebuild bool
	// BuildOnly stops once the dataset is written.
	BuildOnly bool
	// PageBytes is block.WriteOptions.PageBytes (0: the writer's default).
	PageBytes int
}

// datasetVersion changes when the manifest or what the mode writes does.
const datasetVersion = 1

// datasetSpan is how long the dataset's traces are spread over: their end
// times advance from −datasetSpan to −1m of the build's start.
const datasetSpan = time.Hour

// datasetManifest is Dir/dataset.json: what the blocks hold.
type datasetManifest struct {
	Version    int        `json:"version"`
	Spans      int64      `json:"spans"` // asked for (-dataset-spans)
	BlockSpans int        `json:"block_spans"`
	PageBytes  int        `json:"page_bytes,omitempty"`
	Generator  genOptions `json:"generator"`
	// Written is what was written: blocks, spans, traces, bytes.
	Blocks     int   `json:"blocks"`
	SpansOut   int64 `json:"spans_written"`
	Traces     int64 `json:"traces"`
	DataBytes  int64 `json:"data_bytes"`  // data.parquet of every block
	BloomBytes int64 `json:"bloom_bytes"` // bloom of every block
	ProtoBytes int64 `json:"proto_bytes"` // the OTLP requests the spans came in
	// Start and End bound the spans' times.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// RareValue is an app.request.id that one span has.
	RareValue string `json:"rare_value"`
	// TraceIDs are a sample of the traces, spread over the dataset.
	TraceIDs []string `json:"trace_ids"`
	// WriteSeconds is the wall time of block.Write (sort, encode, store)
	// over every block; BuildCPUSeconds the CPU of the whole build
	// (generation included).
	WriteSeconds    float64   `json:"write_seconds"`
	BuildCPUSeconds float64   `json:"build_cpu_seconds"`
	BuiltAt         time.Time `json:"built_at"`
	BuiltBy         string    `json:"built_by"` // git revision of the writer
}

// sameParams reports whether m was built with the same parameters.
func (m *datasetManifest) sameParams(o datasetOptions, gen genOptions) bool {
	return m.Version == datasetVersion && m.Spans == o.Spans && m.BlockSpans == o.BlockSpans && m.PageBytes == o.PageBytes && m.Generator == gen
}

// datasetGen is the generator options of a dataset: the flags', with
// request IDs.
func datasetGen(g genOptions) genOptions {
	g.RequestIDs = true
	return g
}

// runDataset is the -dataset mode.
func runDataset(ctx context.Context, f *flags) error {
	o := f.dataset
	gen := datasetGen(f.gen)
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", o.Dir, err)
	}
	manifestPath := filepath.Join(o.Dir, "dataset.json")
	var m datasetManifest
	reuse := false
	if b, err := os.ReadFile(manifestPath); err == nil && json.Unmarshal(b, &m) == nil && m.sameParams(o, gen) && !o.Rebuild {
		reuse = true
		progress("dataset: reusing %s (%d spans in %d blocks, built %s by %s)", o.Dir, m.SpansOut, m.Blocks, m.BuiltAt.Format(time.DateTime), m.BuiltBy)
	} else {
		if err := os.Remove(manifestPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot remove %s: %w", manifestPath, err)
		}
		if err := os.RemoveAll(filepath.Join(o.Dir, "data")); err != nil {
			return fmt.Errorf("cannot clear %s: %w", o.Dir, err)
		}
		built, err := buildDataset(ctx, o, gen, f.repo)
		if err != nil {
			return err
		}
		m = *built
		b, _ := json.MarshalIndent(&m, "", "  ")
		if err := os.WriteFile(manifestPath, b, 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", manifestPath, err)
		}
	}
	if o.BuildOnly {
		progress("dataset: %d spans in %d blocks in %s, %.1f bytes per span on disk", m.SpansOut, m.Blocks, o.Dir, float64(m.DataBytes+m.BloomBytes)/float64(max(m.SpansOut, 1)))
		return nil
	}
	cols, err := columnSizes(filepath.Join(o.Dir, "data", "blocks", tenant.Single))
	if err != nil {
		return err
	}

	bin := filepath.Join(o.Dir, "weft")
	progress("building ./cmd/weft")
	if err := goBuild(f.repo, "./cmd/weft", bin); err != nil {
		return err
	}
	t, err := runMonolithic(bin, o.Dir, f.blockDuration, nil, monoOptions{dataset: true})
	if err != nil {
		return err
	}
	defer func() {
		if err := t.close(); err != nil {
			progress("stopping weft: %v", err)
		}
	}()
	if err := waitBlocks(ctx, t.queryURL, m.Blocks, 3*time.Minute); err != nil {
		return err
	}
	var ids [][16]byte
	for _, s := range m.TraceIDs {
		var id [16]byte
		if _, err := hex.Decode(id[:], []byte(s)); err == nil {
			ids = append(ids, id)
		}
	}
	res := datasetResult{Command: "go run ./bench " + strings.Join(os.Args[1:], " "), Manifest: m, Reused: reuse, Columns: cols}
	before := measure(t.pids())
	progress("trace by ID: %d traces", len(ids))
	res.Lookups = lookupTraces(t.queryURL, "dataset", ids, gen.SpansPerTrace)
	start, end := m.Start.Add(-time.Minute), m.End.Add(time.Minute)
	for _, spec := range datasetSpecs(m, start, end) {
		if ctx.Err() != nil {
			break
		}
		progress("query %s", spec.Name)
		runQuery(t.queryURL, spec, 1, 0) // warm-up: block readers keep footers, as a running querier does
		q := runQuery(t.queryURL, spec, f.queries, f.queryTime)
		q.Phase = "dataset"
		res.Queries = append(res.Queries, q)
	}
	after := measure(t.pids())
	res.QueryCPUSeconds, res.PeakRSSBytes = after.cpuSeconds-before.cpuSeconds, after.peakRSS
	writeDatasetMarkdown(os.Stdout, &res)
	if f.jsonPath != "" {
		b, err := json.MarshalIndent(&res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.jsonPath, b, 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", f.jsonPath, err)
		}
	}
	return nil
}

// datasetSpecs are the measured searches: a resource attribute, a rare
// value of a high-cardinality span attribute, two searches that match
// nothing, a structural query, a count, and a numeric range.
func datasetSpecs(m datasetManifest, start, end time.Time) []querySpec {
	s := searchSpecs("", [16]byte{}, start, end)[0] // for its range parameters
	search := func(q string) querySpec {
		p := s.Params
		v := make(map[string][]string, len(p)+2)
		for k, vs := range p {
			v[k] = vs
		}
		v["q"], v["limit"] = []string{q}, []string{"20"}
		return querySpec{Name: "search `" + q + "`", Path: "/api/search", Params: v}
	}
	return []querySpec{
		search(`{ resource.service.name = "checkout" }`),
		search(fmt.Sprintf(`{ span.%s = "%s" }`, requestIDAttr, m.RareValue)),
		search(fmt.Sprintf(`{ span.%s = "0000000000000000" }`, requestIDAttr)),
		search(`{ resource.service.name = "no-such-service" }`),
		search(`{ status = error } >> { kind = client }`),
		search(`{ status = error } | count() > 2`),
		search(`{ span.http.response.status_code >= 500 && duration > 100ms }`),
	}
}

// waitBlocks waits until weft's block list holds n blocks.
func waitBlocks(ctx context.Context, queryURL string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	have := 0.0
	for time.Now().Before(deadline) {
		if body, ok := readMetrics(queryURL); ok {
			if have, _ = sumMetric(body, "weft_blocklist_blocks"); int(have) >= n {
				progress("weft lists the %d blocks", n)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("weft listed %.0f of the dataset's %d blocks after %s", have, n, timeout)
}

// buildDataset writes the blocks of o into o.Dir.
func buildDataset(ctx context.Context, o datasetOptions, gen genOptions, repo string) (*datasetManifest, error) {
	cfg := storage.DefaultConfig()
	cfg.Local.Path = filepath.Join(o.Dir, "data", "blocks")
	if err := os.MkdirAll(cfg.Local.Path, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", cfg.Local.Path, err)
	}
	bkt, err := storage.NewBucket(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		return nil, err
	}
	m := &datasetManifest{Version: datasetVersion, Spans: o.Spans, BlockSpans: o.BlockSpans, PageBytes: o.PageBytes, Generator: gen,
		BuiltAt: time.Now().UTC(), BuiltBy: machineFacts(repo).Revision}
	g := newGenerator(gen, 0)
	perReq := max(gen.Batch, gen.SpansPerTrace) // about
	requests := int(o.Spans/int64(perReq)) + 1
	step := datasetSpan / time.Duration(requests)
	base := time.Now().Add(-datasetSpan).Truncate(time.Second)
	var reqNo int
	g.clock = func() time.Time { return base.Add(time.Duration(reqNo) * step) }
	cpu0, _ := procCPU(os.Getpid())
	sampleEvery := max(requests/200, 1)
	m.Start = base.Add(-11 * time.Second) // roots last up to 10s
	progress("dataset: writing %d spans in blocks of %d into %s", o.Spans, o.BlockSpans, o.Dir)
	buf := block.NewBuffer(nil)
	defer buf.Release()
	var writeTime time.Duration
	flush := func() error {
		if buf.Spans() == 0 {
			return nil
		}
		t0 := time.Now()
		meta, err := block.Write(ctx, bkt, tenant.Single, uuid.New(), block.Source{Origin: "bench-dataset", LastOffset: int64(reqNo)}, buf, block.WriteOptions{PageBytes: o.PageBytes})
		if err != nil {
			return err
		}
		writeTime += time.Since(t0)
		m.Blocks++
		m.SpansOut += meta.TotalSpans
		m.Traces += meta.TotalTraces
		m.DataBytes += meta.Size
		m.BloomBytes += meta.BloomBytes
		if meta.EndTime.After(m.End) {
			m.End = meta.EndTime
		}
		buf.Release()
		buf = block.NewBuffer(nil)
		if m.Blocks%50 == 0 {
			progress("dataset: %d blocks, %d spans", m.Blocks, m.SpansOut)
		}
		return nil
	}
	var spans int64
	for ; spans < o.Spans; reqNo++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		req, ids, n := g.next()
		if reqNo == requests/2 {
			m.RareValue = firstAttr(req, requestIDAttr)
		}
		if reqNo%sampleEvery == 0 {
			m.TraceIDs = append(m.TraceIDs, hex.EncodeToString(ids[len(ids)/2][:]))
		}
		data, err := proto.Marshal(req)
		if err != nil {
			return nil, err
		}
		m.ProtoBytes += int64(len(data))
		var b otlpwire.Batch
		if err := b.Parse(data); err != nil {
			return nil, err
		}
		if err := buf.Add(&b); err != nil {
			return nil, err
		}
		spans += int64(n)
		if buf.Spans() >= o.BlockSpans {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	cpu1, _ := procCPU(os.Getpid())
	m.WriteSeconds, m.BuildCPUSeconds = writeTime.Seconds(), cpu1-cpu0
	progress("dataset: %d spans in %d blocks, %.1f bytes per span on disk", m.SpansOut, m.Blocks, float64(m.DataBytes+m.BloomBytes)/float64(m.SpansOut))
	return m, nil
}

// firstAttr is the string value of the first span attribute key in req.
func firstAttr(req *coltracepb.ExportTraceServiceRequest, key string) string {
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				for _, kv := range sp.Attributes {
					if kv.Key == key {
						return kv.Value.GetStringValue()
					}
				}
			}
		}
	}
	return ""
}

// columnSize is the bytes of one column over every block.
type columnSize struct {
	Column string `json:"column"`
	Bytes  int64  `json:"bytes"` // compressed, as stored
	Raw    int64  `json:"raw"`   // uncompressed
}

// columnSizes adds up the column chunks of every data.parquet under dir
// (one tenant), from their footers, largest first.
func columnSizes(dir string) ([]columnSize, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot list %s: %w", dir, err)
	}
	sizes := map[string]*columnSize{}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name(), block.DataName)
		fh, err := os.Open(p)
		if err != nil {
			continue
		}
		st, err := fh.Stat()
		if err == nil {
			var pf *parquet.File
			pf, err = parquet.OpenFile(fh, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
			if err == nil {
				md := pf.Metadata()
				for _, rg := range md.RowGroups {
					for _, c := range rg.Columns {
						name := strings.Join(c.MetaData.PathInSchema, ".")
						cs := sizes[name]
						if cs == nil {
							cs = &columnSize{Column: name}
							sizes[name] = cs
						}
						cs.Bytes += c.MetaData.TotalCompressedSize
						cs.Raw += c.MetaData.TotalUncompressedSize
					}
				}
				// What is not in a column chunk: footer, bloom filters.
				var inChunks int64
				for _, rg := range md.RowGroups {
					for _, c := range rg.Columns {
						inChunks += c.MetaData.TotalCompressedSize
					}
				}
				cs := sizes["(footer, filters, padding)"]
				if cs == nil {
					cs = &columnSize{Column: "(footer, filters, padding)"}
					sizes[cs.Column] = cs
				}
				cs.Bytes += st.Size() - inChunks
				cs.Raw += st.Size() - inChunks
			}
		}
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
	}
	out := make([]columnSize, 0, len(sizes))
	for _, cs := range sizes {
		out = append(out, *cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	return out, nil
}

// datasetResult is what the -dataset mode reports.
type datasetResult struct {
	Command         string          `json:"command"`
	Manifest        datasetManifest `json:"dataset"`
	Reused          bool            `json:"reused"`
	Columns         []columnSize    `json:"columns"`
	Lookups         lookupResult    `json:"trace_by_id"`
	Queries         []queryResult   `json:"queries"`
	QueryCPUSeconds float64         `json:"query_cpu_seconds"`
	PeakRSSBytes    int64           `json:"peak_rss_bytes"`
}

func writeDatasetMarkdown(w io.Writer, r *datasetResult) {
	m := &r.Manifest
	fmt.Fprintf(w, "## weft block search over a dataset\n\n    %s\n\n", r.Command)
	how := "built by this run"
	if r.Reused {
		how = "reused"
	}
	fmt.Fprintf(w, "Dataset (%s): %d spans, %d traces in %d blocks, written by %s at %s; spans from %s to %s.\n\n",
		how, m.SpansOut, m.Traces, m.Blocks, firstOf(m.BuiltBy, "?"), m.BuiltAt.Format(time.DateTime), m.Start.UTC().Format(time.DateTime), m.End.UTC().Format(time.DateTime))
	spans := float64(max(m.SpansOut, 1))
	fmt.Fprintf(w, "| bytes per span | |\n|---|---|\n")
	fmt.Fprintf(w, "| on disk (data.parquet + bloom) | %.1f |\n", float64(m.DataBytes+m.BloomBytes)/spans)
	fmt.Fprintf(w, "| data.parquet | %.1f |\n| bloom (trace IDs) | %.1f |\n| OTLP protobuf as sent | %.1f |\n\n", float64(m.DataBytes)/spans, float64(m.BloomBytes)/spans, float64(m.ProtoBytes)/spans)
	fmt.Fprintf(w, "Block writes: %.0f spans/s (block.Write wall time, %.1f s); whole build %.1f CPU-s.\n\n", spans/max(m.WriteSeconds, 1e-9), m.WriteSeconds, m.BuildCPUSeconds)
	fmt.Fprintf(w, "Columns by size (every block's footer):\n\n| column | bytes/span stored | bytes/span raw | share |\n|---|---|---|---|\n")
	var total int64
	for _, c := range r.Columns {
		total += c.Bytes
	}
	for i, c := range r.Columns {
		if i == 12 {
			var rest, restRaw int64
			for _, c := range r.Columns[i:] {
				rest += c.Bytes
				restRaw += c.Raw
			}
			fmt.Fprintf(w, "| (%d other columns) | %.1f | %.1f | %.1f%% |\n", len(r.Columns)-i, float64(rest)/spans, float64(restRaw)/spans, 100*float64(rest)/float64(max(total, 1)))
			break
		}
		fmt.Fprintf(w, "| `%s` | %.1f | %.1f | %.1f%% |\n", c.Column, float64(c.Bytes)/spans, float64(c.Raw)/spans, 100*float64(c.Bytes)/float64(max(total, 1)))
	}
	l := r.Lookups
	fmt.Fprintf(w, "\nTrace by ID: %d lookups, %d complete, %d not found, %d errors; p50 %s, p95 %s, p99 %s.\n\n",
		l.Requests, l.Complete, l.NotFound, l.Errors, ms(l.P50), ms(l.P95), ms(l.P99))
	fmt.Fprintf(w, "| query | runs | p50 | p95 | inspectedBytes | jobs completed | traces | failures |\n|---|---|---|---|---|---|---|---|\n")
	for _, q := range r.Queries {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %d | %d | %d |\n", strings.ReplaceAll(q.Name, "|", "\\|"), q.Runs, ms(q.P50), ms(q.P95), mb(q.InspectedBytes), q.CompletedJobs, q.Results, q.Failures)
		if q.FirstError != "" {
			fmt.Fprintf(w, "|  ↳ %s | | | | | | | |\n", strings.ReplaceAll(q.FirstError, "|", "\\|"))
		}
	}
	fmt.Fprintf(w, "\nServer during the query phase: %.1f CPU-s, peak RSS %.0f MiB. Each query ran once unmeasured first (warm block readers).\n",
		r.QueryCPUSeconds, float64(r.PeakRSSBytes)/(1<<20))
}

func mb(b uint64) string {
	if b < 1e6 {
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%.1f MB", float64(b)/1e6)
}
