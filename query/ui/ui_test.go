package ui

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// apiStub stands for the query API: it answers every request with its path.
var apiStub = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-From", "api")
	_, _ = io.WriteString(w, "api "+r.Method+" "+r.URL.Path)
})

func serve(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, prefix := range []string{"", "/", "/explore/", "/explore", "/a/b/"} {
		t.Run("prefix "+prefix, func(t *testing.T) {
			h, err := Handler(Options{PathPrefix: prefix, API: apiStub, Version: "v9", Metrics: reg})
			if err != nil {
				t.Fatal(err)
			}
			p := normalize(prefix)
			// The page and its files.
			page := serve(h, "GET", p, nil)
			if page.Code != 200 || !strings.Contains(page.Body.String(), `<script type="module" src="ui/app.js">`) || page.Header().Get("X-From") != "" {
				t.Fatalf("GET %s: %d %q", p, page.Code, page.Body.String())
			}
			if csp := page.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Fatalf("the page has no content security policy restricting it to itself: %q", csp)
			}
			for _, f := range []string{"app.js", "api.js", "search.js", "trace.js", "map.js", "app.css", "favicon.svg"} {
				r := serve(h, "GET", p+"ui/"+f, nil)
				if r.Code != 200 || r.Body.Len() == 0 || r.Header().Get("ETag") == "" {
					t.Fatalf("GET %sui/%s: %d, %d bytes, etag %q", p, f, r.Code, r.Body.Len(), r.Header().Get("ETag"))
				}
				if strings.HasSuffix(f, ".js") && !strings.HasPrefix(r.Header().Get("Content-Type"), "text/javascript") {
					t.Fatalf("%s served as %q: a module script needs a JavaScript type", f, r.Header().Get("Content-Type"))
				}
				// Revalidation: the same ETag answers 304 without a body.
				again := serve(h, "GET", p+"ui/"+f, map[string]string{"If-None-Match": r.Header().Get("ETag")})
				if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
					t.Fatalf("If-None-Match on %s: %d with %d bytes", f, again.Code, again.Body.Len())
				}
			}
			var cfg struct {
				Multitenancy bool   `json:"multitenancy"`
				Version      string `json:"version"`
			}
			if err := json.Unmarshal(serve(h, "GET", p+"ui/config.json", nil).Body.Bytes(), &cfg); err != nil || cfg.Version != "v9" || cfg.Multitenancy {
				t.Fatalf("config.json: %+v, %v", cfg, err)
			}
			if r := serve(h, "GET", p+"ui/nope.js", nil); r.Code != 404 || !strings.Contains(r.Body.String(), "no such file of the UI") {
				t.Fatalf("unknown asset: %d %q", r.Code, r.Body.String())
			}
			if r := serve(h, "HEAD", p, nil); r.Code != 200 || r.Body.Len() != 0 || r.Header().Get("Content-Length") == "" {
				t.Fatalf("HEAD %s: %d, %d bytes", p, r.Code, r.Body.Len())
			}
			if r := serve(h, "POST", p, nil); r.Code != 405 || r.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("POST %s: %d, Allow %q", p, r.Code, r.Header().Get("Allow"))
			}
			if p != "/" {
				r := serve(h, "GET", strings.TrimSuffix(p, "/")+"?q=x", nil)
				if r.Code != http.StatusMovedPermanently || r.Header().Get("Location") != p+"?q=x" {
					t.Fatalf("GET %s without the slash: %d to %q", p, r.Code, r.Header().Get("Location"))
				}
			}
			// Nothing of the API is shadowed, whatever the prefix.
			for _, path := range []string{"/api/search", "/api/v2/traces/abc", "/ready", "/metrics", "/status/config", "/status/backendscheduler",
				"/debug/pprof/", "/api/echo", "/ui/app.js.map", "/favicon.ico", "/explorer"} {
				if path == "/ui/app.js.map" && p == "/" {
					continue // the UI's own file space
				}
				r := serve(h, "GET", path, nil)
				if r.Header().Get("X-From") != "api" || r.Body.String() != "api GET "+path {
					t.Fatalf("GET %s with prefix %q did not reach the API: %d %.120q", path, prefix, r.Code, r.Body.String())
				}
			}
			if r := serve(h, "POST", "/api/search", nil); r.Body.String() != "api POST /api/search" {
				t.Fatalf("POST /api/search did not reach the API: %q", r.Body.String())
			}
		})
	}
	if n := testutil.ToFloat64(mustCounter(t, reg, "404")); n == 0 {
		t.Fatal("weft_ui_requests_total{code=404} did not count the unknown assets")
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry, code string) prometheus.Collector {
	t.Helper()
	h, err := Handler(Options{API: apiStub, Metrics: reg}) // the same collector, registered once
	if err != nil {
		t.Fatal(err)
	}
	return h.(*handler).requests.WithLabelValues(code)
}

func TestMultitenancyShown(t *testing.T) {
	h, err := Handler(Options{API: apiStub, MultitenancyEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if body := serve(h, "GET", "/ui/config.json", nil).Body.String(); !strings.Contains(body, `"multitenancy":true`) {
		t.Fatalf("config.json %s does not tell the page that multitenancy is on", body)
	}
}

func TestPathPrefixRefused(t *testing.T) {
	for prefix, want := range map[string]string{
		"explore":     "must start with /",
		"/api/":       "under /api/",
		"/api/ui":     "under /api/",
		"/status/ui/": "under /status/",
		"/metrics":    "under /metrics",
		"/ready/":     "under /ready",
		"/debug/x":    "under /debug/",
		"/a?b":        "not a clean URL path",
		"/a//b":       "not a clean URL path",
		"/a/../api":   "not a clean URL path",
		"/a b":        "not a clean URL path",
	} {
		err := Config{Enabled: true, PathPrefix: prefix}.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "path_prefix: ") {
			t.Errorf("path_prefix %q: error %v, want one naming path_prefix and %q", prefix, err, want)
		}
		if _, err := Handler(Options{PathPrefix: prefix, API: apiStub}); err == nil {
			t.Errorf("Handler took the path prefix %q", prefix)
		}
	}
	for _, ok := range []string{"", "/", "/ui/", "/explore", "/apis/", "/metricsui/", "/tempo/ui/"} {
		if err := (Config{PathPrefix: ok}).Validate(); err != nil {
			t.Errorf("path_prefix %q refused: %v", ok, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil || !DefaultConfig().Enabled || DefaultConfig().PathPrefix != "/" {
		t.Fatalf("default config %+v: %v", DefaultConfig(), err)
	}
	if _, err := Handler(Options{}); err == nil || !strings.Contains(err.Error(), "Options.API is nil") {
		t.Fatalf("Handler without an API: %v", err)
	}
}
