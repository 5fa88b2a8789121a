package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// maxProfileSeconds keeps a CPU profile under weft's default
// server.http_server_write_timeout (30s), past which the server cuts the
// answer.
const maxProfileSeconds = 25

// captureCPUProfile asks baseURL's /debug/pprof/profile for a CPU profile
// that covers the ingest: it skips the first second (connections, warm-up)
// and lasts until a second before the ingest ends, at most
// maxProfileSeconds. The profile is written to path.
func captureCPUProfile(ctx context.Context, baseURL string, ingest time.Duration, path string) error {
	if baseURL == "" {
		return errors.New("the target has no /debug/pprof/ URL")
	}
	secs := min(int((ingest-2*time.Second)/time.Second), maxProfileSeconds)
	if secs < 1 {
		return fmt.Errorf("the ingest (%s) is too short to profile: it needs at least 3s", ingest)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", baseURL, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("cannot build the profile request: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot take the CPU profile: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("cannot take the CPU profile: GET %s answered %d: %s", url, res.StatusCode, body)
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot write the CPU profile: %w", err)
	}
	if _, err := io.Copy(out, res.Body); err != nil {
		out.Close()
		return fmt.Errorf("cannot write the CPU profile: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("cannot write the CPU profile: %w", err)
	}
	progress("server CPU profile (%ds) written to %s", secs, path)
	return nil
}
