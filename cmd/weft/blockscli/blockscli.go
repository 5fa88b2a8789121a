// Package blockscli is `weft blocks`, the operators' commands on the
// blocks of a bucket, as tempo-cli's: `list` shows a tenant's blocks (those
// let go too), `show` one block's meta, row groups and objects. They read
// the bucket named by the same configuration file the server uses
// (storage.trace), and never write to it.
package blockscli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/thanos-io/objstore"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/blocklist"
	"github.com/weftdb/weft/internal/storage"
)

// Timeout bounds a command's reads from the bucket.
const Timeout = 5 * time.Minute

// ErrUsage marks a command line the flag package has already reported.
var ErrUsage = errors.New("invalid command line")

const usage = `usage: weft blocks <command> [flags]

commands:
  list -tenant T         the tenant's blocks: ID, compaction level, time range, size, spans,
                         traces, row groups, and state (live, let go, invalid, incomplete)
  show -tenant T <id>    one block: its meta, row groups with their trace-ID ranges, objects

flags of both:
  -config.file F         the configuration file of the server (storage.trace); without it,
                         the embedded default (./data/blocks)
  -config.expand-env     expand ${VAR} in the configuration file
  -json                  JSON instead of a text table
`

// Run runs `weft blocks` with args (after "blocks"), writing its output to
// stdout and its errors and usage to stderr.
func Run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return fmt.Errorf("%w: weft blocks needs a command: list or show", ErrUsage)
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("weft blocks "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	configFile := fs.String("config.file", "", "configuration file of the server")
	expandEnv := fs.Bool("config.expand-env", false, "expand ${VAR} in the configuration file")
	tenant := fs.String("tenant", "", "tenant (required)")
	asJSON := fs.Bool("json", false, "JSON output")
	switch cmd {
	case "list", "show":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: unknown command %q of weft blocks (list, show)", ErrUsage, cmd)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if *tenant == "" {
		return fmt.Errorf("%w: weft blocks %s: -tenant is required", ErrUsage, cmd)
	}
	var id uuid.UUID
	switch {
	case cmd == "list" && fs.NArg() > 0:
		return fmt.Errorf("%w: weft blocks list: unexpected arguments %v", ErrUsage, fs.Args())
	case cmd == "show" && fs.NArg() != 1:
		return fmt.Errorf("%w: weft blocks show: needs one block ID, got %d arguments", ErrUsage, fs.NArg())
	case cmd == "show":
		var err error
		if id, err = uuid.Parse(fs.Arg(0)); err != nil {
			return fmt.Errorf("%w: weft blocks show: %q is not a block ID: %v", ErrUsage, fs.Arg(0), err)
		}
	}
	bkt, err := openBucket(*configFile, *expandEnv, stderr)
	if err != nil {
		return err
	}
	defer bkt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if cmd == "list" {
		return list(ctx, bkt, *tenant, *asJSON, stdout)
	}
	return show(ctx, bkt, *tenant, id, *asJSON, stdout)
}

// openBucket opens the bucket of storage.trace in the configuration file
// (the default configuration without one). A local path that does not
// exist is an error: it is not created.
func openBucket(file string, expandEnv bool, stderr io.Writer) (objstore.Bucket, error) {
	cfg := config.Default()
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("cannot read the config file: %w", err)
		}
		if cfg, _, err = config.Load(file, data, expandEnv); err != nil {
			return nil, fmt.Errorf("invalid configuration:\n%w", err)
		}
	}
	st := cfg.Storage.Trace.Store
	if st.Backend == storage.BackendLocal {
		if _, err := os.Stat(st.Local.Path); err != nil {
			return nil, fmt.Errorf("cannot open the bucket of storage.trace.local.path: %w", err)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bkt, err := storage.NewBucket(st, nil, logger)
	if err != nil {
		return nil, fmt.Errorf("cannot open the bucket of storage.trace: %w", err)
	}
	return bkt, nil
}

// State is what a block is, for `list`.
type State string

// The states of a block.
const (
	// Live: the block has a meta.json; queries read it.
	Live State = "live"
	// LetGo: compacted into another or past retention
	// (meta.compacted.json); deleted after compacted_block_retention.
	LetGo State = "let-go"
	// Invalid: its meta.json cannot be used (see Error); queries skip it.
	Invalid State = "invalid"
	// Incomplete: neither meta.json nor meta.compacted.json (a write in
	// progress, or abandoned).
	Incomplete State = "incomplete"
)

// Block is one block as `list` and `show` report it.
type Block struct {
	ID    uuid.UUID `json:"blockID"`
	State State     `json:"state"`
	// Meta is the block's meta.json, or of meta.compacted.json for a
	// block let go; nil when invalid or incomplete.
	Meta *block.Meta `json:"meta,omitempty"`
	// CompactedTime is when a block let go was let go.
	CompactedTime *time.Time `json:"compactedTime,omitempty"`
	// Error says why an invalid block's meta.json cannot be used.
	Error string `json:"error,omitempty"`
	// Files are the block's objects (show only).
	Files []File `json:"files,omitempty"`
}

// File is one object of a block.
type File struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Listing is the output of `list`.
type Listing struct {
	Tenant string  `json:"tenant"`
	Blocks []Block `json:"blocks"`
	// Index describes the tenant index, nil when there is none.
	Index *IndexInfo `json:"index,omitempty"`
}

// IndexInfo describes a tenant's index.json.gz.
type IndexInfo struct {
	CreatedAt time.Time `json:"createdAt,omitzero"`
	Blocks    int       `json:"blocks"`
	Compacted int       `json:"compacted"`
	// Error says why the index cannot be used.
	Error string `json:"error,omitempty"`
}

// readBlock reads what the bucket has of block id.
func readBlock(ctx context.Context, bkt objstore.Bucket, tenant string, id uuid.UUID) (Block, error) {
	b := Block{ID: id}
	m, err := block.ReadMeta(ctx, bkt, tenant, id)
	switch {
	case err == nil:
		b.State, b.Meta = Live, m
		return b, nil
	case errors.Is(err, block.ErrInvalidMeta):
		b.State, b.Error = Invalid, err.Error()
		return b, nil
	case !bkt.IsObjNotFoundErr(err):
		return b, fmt.Errorf("cannot read block %s/%s: %w", tenant, id, err)
	}
	mark, err := block.ReadCompactedMark(ctx, bkt, tenant, id)
	if err != nil {
		return b, fmt.Errorf("cannot read block %s/%s: %w", tenant, id, err)
	}
	if mark == nil {
		b.State = Incomplete
		return b, nil
	}
	t := mark.CompactedTime
	b.State, b.Meta, b.CompactedTime = LetGo, &mark.Meta, &t
	return b, nil
}

func list(ctx context.Context, bkt objstore.Bucket, tenant string, asJSON bool, w io.Writer) error {
	var ids []uuid.UUID
	err := bkt.Iter(ctx, tenant+"/", func(name string) error {
		if id, err := uuid.Parse(path.Base(strings.TrimSuffix(name, "/"))); err == nil && strings.HasSuffix(name, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot list the blocks of tenant %q: %w", tenant, err)
	}
	out := Listing{Tenant: tenant, Blocks: []Block{}}
	for _, id := range ids {
		b, err := readBlock(ctx, bkt, tenant, id)
		if err != nil {
			return err
		}
		out.Blocks = append(out.Blocks, b)
	}
	slices.SortFunc(out.Blocks, func(a, b Block) int {
		if a.Meta != nil && b.Meta != nil {
			if c := a.Meta.StartTime.Compare(b.Meta.StartTime); c != 0 {
				return c
			}
		} else if a.Meta != nil || b.Meta != nil {
			if a.Meta == nil {
				return 1 // without a meta last
			}
			return -1
		}
		return bytes.Compare(a.ID[:], b.ID[:])
	})
	idx, err := blocklist.ReadIndex(ctx, bkt, tenant)
	switch {
	case err == nil:
		out.Index = &IndexInfo{CreatedAt: idx.CreatedAt, Blocks: len(idx.Meta), Compacted: len(idx.Compacted)}
	case errors.Is(err, blocklist.ErrInvalidIndex):
		out.Index = &IndexInfo{Error: err.Error()}
	case !bkt.IsObjNotFoundErr(err):
		return fmt.Errorf("cannot read the index of tenant %q: %w", tenant, err)
	}
	if len(ids) == 0 && out.Index == nil {
		return fmt.Errorf("tenant %q has no blocks in this bucket", tenant)
	}
	if asJSON {
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLVL\tSTART\tEND\tSIZE\tSPANS\tTRACES\tRGS\tSTATE")
	for _, b := range out.Blocks {
		state := string(b.State)
		if b.CompactedTime != nil {
			state += " " + b.CompactedTime.UTC().Format(time.RFC3339)
		}
		if b.Meta == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t%s\n", b.ID, state)
			continue
		}
		m := b.Meta
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", b.ID, m.CompactionLevel,
			m.StartTime.UTC().Format(time.RFC3339), m.EndTime.UTC().Format(time.RFC3339),
			humanBytes(m.Size), m.TotalSpans, m.TotalTraces, len(m.RowGroups), state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	n := map[State]int{}
	for _, b := range out.Blocks {
		n[b.State]++
	}
	fmt.Fprintf(w, "\n%d blocks: %d live, %d let go, %d invalid, %d incomplete\n", len(out.Blocks), n[Live], n[LetGo], n[Invalid], n[Incomplete])
	for _, b := range out.Blocks {
		if b.Error != "" {
			fmt.Fprintf(w, "%s: %s\n", b.ID, b.Error)
		}
	}
	switch {
	case out.Index == nil:
		fmt.Fprintf(w, "tenant index: none (%s)\n", blocklist.IndexObject(tenant))
	case out.Index.Error != "":
		fmt.Fprintf(w, "tenant index: cannot be used: %s\n", out.Index.Error)
	default:
		fmt.Fprintf(w, "tenant index: created %s (%s ago), %d blocks, %d let go\n", out.Index.CreatedAt.UTC().Format(time.RFC3339),
			time.Since(out.Index.CreatedAt).Round(time.Second), out.Index.Blocks, out.Index.Compacted)
	}
	return nil
}

func show(ctx context.Context, bkt objstore.Bucket, tenant string, id uuid.UUID, asJSON bool, w io.Writer) error {
	b, err := readBlock(ctx, bkt, tenant, id)
	if err != nil {
		return err
	}
	prefix := tenant + "/" + id.String() + "/"
	err = bkt.Iter(ctx, prefix, func(name string) error {
		if strings.HasSuffix(name, "/") {
			return nil
		}
		attrs, err := bkt.Attributes(ctx, name)
		if err != nil {
			return fmt.Errorf("cannot read the size of %s: %w", name, err)
		}
		b.Files = append(b.Files, File{Name: strings.TrimPrefix(name, prefix), Size: attrs.Size})
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot list block %s/%s: %w", tenant, id, err)
	}
	if b.State == Incomplete && len(b.Files) == 0 {
		return fmt.Errorf("block %s/%s is not in this bucket", tenant, id)
	}
	if asJSON {
		return writeJSON(w, b)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("block", b.ID)
	row("tenant", tenant)
	state := string(b.State)
	if b.CompactedTime != nil {
		state += " at " + b.CompactedTime.UTC().Format(time.RFC3339)
	}
	row("state", state)
	if b.Error != "" {
		row("error", b.Error)
	}
	if m := b.Meta; m != nil {
		row("format", m.Format)
		row("start", m.StartTime.UTC().Format(time.RFC3339Nano))
		row("end", m.EndTime.UTC().Format(time.RFC3339Nano))
		row("spans", m.TotalSpans)
		row("traces", m.TotalTraces)
		row("size", fmt.Sprintf("%d (%s)", m.Size, humanBytes(m.Size)))
		row("bloom bytes", m.BloomBytes)
		row("compaction level", m.CompactionLevel)
		if len(m.CompactedFrom) > 0 {
			from := make([]string, len(m.CompactedFrom))
			for i, id := range m.CompactedFrom {
				from[i] = id.String()
			}
			row("compacted from", strings.Join(from, " "))
		}
		row("source", m.Source)
		row("created", m.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if m := b.Meta; m != nil {
		fmt.Fprintf(w, "\nrow groups (%d):\n", len(m.RowGroups))
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tMIN TRACE ID\tMAX TRACE ID\tROWS")
		for i, rg := range m.RowGroups {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\n", i, rg.MinTraceID, rg.MaxTraceID, rg.Rows)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nobjects (%d):\n", len(b.Files))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SIZE\tNAME\t")
	for _, f := range b.Files {
		fmt.Fprintf(tw, "%d\t%s\t\n", f.Size, f.Name)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanBytes is n in B, KiB, MiB or GiB, one decimal.
func humanBytes(n int64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%dB", n)
	case n < k*k:
		return fmt.Sprintf("%.1fKiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1fMiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1fGiB", float64(n)/(k*k*k))
}
