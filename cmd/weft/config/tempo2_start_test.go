package config_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/cmd/weft/app"
	"github.com/weftdb/weft/cmd/weft/config"
)

// Each Tempo 2.x example config of Tempo's repository starts weft: loaded
// as it is, then moved to loopback ports and a temporary directory (and an
// S3 endpoint that refuses connections: there is no MinIO here), weft starts
// and answers /api/search, asking for a tenant exactly where the config
// turns multitenancy on (multitenancy_enabled or auth_enabled).
func TestTempo2ExampleConfigsStartWeft(t *testing.T) {
	mt, err := os.ReadFile("testdata/tempo2/multitenant.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name         string
		data         []byte
		multitenancy bool
	}{
		{"auth_enabled (multitenant.yaml, renamed)", []byte(strings.Replace(string(mt), "\nmultitenancy_enabled: true\n", "\nauth_enabled: true\n", 1)), true},
	}
	for _, f := range []string{"local.yaml", "s3-minio.yaml", "distributed.yaml", "multitenant.yaml", "migrate-to-3-v2.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "tempo2", f))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct {
			name         string
			data         []byte
			multitenancy bool
		}{f, b, f == "multitenant.yaml"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := config.LoadReport(tc.name, tc.data, false)
			if err != nil {
				t.Fatal(err)
			}
			cfg.UseLoopback(t.TempDir())
			cfg.Storage.Trace.Store.S3.Endpoint = "127.0.0.1:1"
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a, err := app.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.BuildInfo{Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := a.Shutdown(ctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			}()
			get := func(tenant string) int {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.HTTPAddr()+"/api/search?limit=1", nil)
				if err != nil {
					t.Fatal(err)
				}
				if tenant != "" {
					req.Header.Set("X-Scope-OrgID", tenant)
				}
				resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			noTenant, want := get(""), http.StatusOK
			if tc.multitenancy {
				want = http.StatusUnauthorized
			}
			if noTenant != want {
				t.Errorf("/api/search without X-Scope-OrgID: %d, want %d (multitenancy %v)", noTenant, want, tc.multitenancy)
			}
			if code := get("tenant-1"); code != http.StatusOK {
				t.Errorf("/api/search of tenant-1: %d, want 200", code)
			}
		})
	}
}
