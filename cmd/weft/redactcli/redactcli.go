// Package redactcli is `weft redact`: it submits a redaction request to the
// backend scheduler (gRPC or HTTP) and can follow it until it is done.
package redactcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftdb/weft/backend/redaction"
	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/internal/tenant"
)

// RedactPath is the backend scheduler's HTTP route of redaction requests
// (app.RedactionsPath).
const RedactPath = "/api/backend/redactions"

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// redactClient is the scheduler as weft redact reaches it.
type redactClient interface {
	submit(ctx context.Context, spec redaction.Spec) (*scheduler.RequestStatus, error)
	status(ctx context.Context, tenant, id string) (*scheduler.RequestStatus, error)
}

// Redact is `weft redact [flags] <scheduler address>`: it submits a
// redaction request to the backend scheduler, over gRPC (host:port) or
// HTTP (http://host:port), and with -follow waits until it is done,
// printing its progress and counts to stdout. A request that fails, or
// does not finish within -timeout, is an error.
func Redact(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("weft redact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weft redact -tenant T (-trace-id ID ... | -query '{ resource.k = \"v\" && span.k = \"v\" }') [-start T] [-end T] [-dry-run] [-follow] <scheduler address: host:port (gRPC) or http://host:port>")
		fs.PrintDefaults()
	}
	ten := fs.String("tenant", tenant.Single, "tenant whose blocks are rewritten")
	var ids stringList
	fs.Var(&ids, "trace-id", "trace ID (hex) to remove; repeat for more")
	query := fs.String("query", "", "TraceQL query naming the traces to remove: only = on resource. and span. attributes, joined by && and ||")
	start := fs.String("start", "", "read only blocks that end at or after this time (RFC 3339 or Unix seconds)")
	end := fs.String("end", "", "read only blocks that start at or before this time (RFC 3339 or Unix seconds)")
	dryRun := fs.Bool("dry-run", false, "count what would be removed; change nothing")
	follow := fs.Bool("follow", false, "wait until the request is done, printing its progress")
	poll := fs.Duration("poll", time.Second, "with -follow, how often the request's status is read")
	timeout := fs.Duration("timeout", 30*time.Minute, "with -follow, how long to wait")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("weft redact: give the backend scheduler's address, once")
	}
	spec := redaction.Spec{Tenant: *ten, TraceIDs: ids, Query: *query, DryRun: *dryRun}
	var err error
	if spec.Start, err = parseTime(*start); err != nil {
		return fmt.Errorf("weft redact: -start: %w", err)
	}
	if spec.End, err = parseTime(*end); err != nil {
		return fmt.Errorf("weft redact: -end: %w", err)
	}
	if _, err := redaction.Check(&spec); err != nil {
		return fmt.Errorf("weft redact: %w", err)
	}
	c, closeFn, err := dialScheduler(fs.Arg(0))
	if err != nil {
		return err
	}
	defer closeFn()
	return runRedact(ctx, c, spec, *follow, *poll, *timeout, stdout)
}

func runRedact(ctx context.Context, c redactClient, spec redaction.Spec, follow bool, poll, timeout time.Duration, stdout io.Writer) error {
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := c.submit(sctx, spec)
	cancel()
	if err != nil {
		return fmt.Errorf("weft redact: %w", err)
	}
	fmt.Fprintf(stdout, "redaction request %s of tenant %s: %s\n", st.ID, st.Tenant, st.State)
	if !follow {
		return nil
	}
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		line := progress(st)
		if line != last {
			fmt.Fprintln(stdout, line)
			last = line
		}
		switch st.State {
		case scheduler.RequestDone:
			fmt.Fprintln(stdout, summary(st))
			return nil
		case scheduler.RequestFailed:
			return fmt.Errorf("weft redact: request %s failed: %s", st.ID, st.Error)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("weft redact: request %s not done after %s (it goes on; read it with GET %s/%s)", st.ID, timeout, RedactPath, st.ID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		next, err := c.status(sctx, spec.Tenant, st.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("weft redact: %w", err)
		}
		st = next
	}
}

func progress(st *scheduler.RequestStatus) string {
	c := st.Counts
	return fmt.Sprintf("%s (generation %d): jobs %d pending, %d running, %d done, %d failed", st.State, st.Generation, c.Pending, c.Running, c.Succeeded, c.Failed)
}

// summary is the last line of a request done.
func summary(st *scheduler.RequestStatus) string {
	c := st.Counts
	if st.DryRun {
		return fmt.Sprintf("dry run: would remove %d traces (%d spans) from %d blocks", c.Traces, c.Spans, c.BlocksMatched)
	}
	return fmt.Sprintf("removed %d traces (%d spans): %d blocks rewritten, %d emptied", c.Traces, c.Spans, c.BlocksRewritten, c.BlocksEmptied)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix seconds", s)
	}
	return t, nil
}

// dialScheduler returns a client of the scheduler at addr: HTTP for an
// http:// or https:// URL, gRPC otherwise.
func dialScheduler(addr string) (redactClient, func(), error) {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return &httpRedactClient{base: strings.TrimRight(addr, "/"), hc: &http.Client{Timeout: 30 * time.Second}}, func() {}, nil
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("weft redact: scheduler address %q: %w", addr, err)
	}
	return grpcRedactClient{scheduler.NewClient(conn)}, func() { _ = conn.Close() }, nil
}

type grpcRedactClient struct{ c *scheduler.Client }

func (g grpcRedactClient) submit(ctx context.Context, spec redaction.Spec) (*scheduler.RequestStatus, error) {
	return g.c.SubmitRedaction(ctx, spec)
}

func (g grpcRedactClient) status(ctx context.Context, tenant, id string) (*scheduler.RequestStatus, error) {
	return g.c.RedactionStatus(ctx, tenant, id)
}

type httpRedactClient struct {
	base string
	hc   *http.Client
}

func (h *httpRedactClient) submit(ctx context.Context, spec redaction.Spec) (*scheduler.RequestStatus, error) {
	ten := spec.Tenant
	spec.Tenant = ""
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	return h.do(ctx, http.MethodPost, h.base+RedactPath, ten, body)
}

func (h *httpRedactClient) status(ctx context.Context, tenant, id string) (*scheduler.RequestStatus, error) {
	return h.do(ctx, http.MethodGet, h.base+RedactPath+"/"+id, tenant, nil)
}

func (h *httpRedactClient) do(ctx context.Context, method, url, ten string, body []byte) (*scheduler.RequestStatus, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set(tenant.Header, ten)
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the backend scheduler: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot read the backend scheduler's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(data)))
	}
	var st scheduler.RequestStatus
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("cannot decode the backend scheduler's answer: %w", err)
	}
	return &st, nil
}
