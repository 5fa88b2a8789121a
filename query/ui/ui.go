// Package ui serves weft's built-in trace explorer: a search page (TraceQL
// with completion of tag names and values), a trace view (a virtualised
// waterfall of the spans, their details, search within the trace, download
// as OTLP JSON) and a service map with request, error and latency figures
// from TraceQL metrics. Every asset is plain HTML, CSS and JavaScript
// embedded in the binary: the page loads nothing from elsewhere and talks
// only to the query API of the same server (/api/...).
//
// Handler puts the explorer in front of the query API: it answers its own
// few paths under a prefix (the page itself and <prefix>ui/...) and hands
// every other request to the API unchanged, so that no API route
// (/api/*, /ready, /metrics, /status/*, /debug/pprof/...) is ever shadowed.
package ui

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
)

//go:embed assets
var assets embed.FS

// AssetsPath is where the explorer's files are served, below the prefix.
const AssetsPath = "ui/"

// Options configures Handler.
type Options struct {
	// PathPrefix is where the explorer's page is served: "/" (the
	// default when empty) or a path such as "/explore/". It must start
	// with "/" and must not be under a path of the API (see Reserved).
	PathPrefix string
	// API serves every request that is not the explorer's. Required.
	API http.Handler
	// MultitenancyEnabled shows the tenant selector; the page then sends
	// the chosen tenant as X-Scope-OrgID with every API request.
	MultitenancyEnabled bool
	// Version is shown in the page's footer.
	Version string
	// Metrics registers weft_ui_requests_total. Nil keeps it unregistered.
	Metrics prometheus.Registerer
}

// Reserved lists the paths of the query API (and of the HTTP server around
// it) that the explorer's prefix may not be under, nor equal to.
var Reserved = []string{"/api/", "/ready", "/metrics", "/status/", "/debug/", "/flush", "/shutdown", "/v1/", "/memberlist", "/distributor/", "/ingester/", "/querier/"}

// CheckPathPrefix reports why prefix cannot be the explorer's path prefix,
// or nil. The error names the value; the caller adds the config key.
func CheckPathPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if !strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("%q must start with /", prefix)
	}
	if strings.ContainsAny(prefix, "?#%{} \t\r\n\\") || strings.Contains(prefix, "//") || strings.Contains(prefix, "/../") || strings.Contains(prefix, "/./") || strings.HasSuffix(prefix, "/..") || strings.HasSuffix(prefix, "/.") {
		return fmt.Errorf("%q is not a clean URL path (no ?, #, %%, braces, spaces, backslashes, empty, . or .. segments)", prefix)
	}
	p := normalize(prefix)
	for _, r := range Reserved {
		rr := strings.TrimSuffix(r, "/") + "/"
		if strings.HasPrefix(p, rr) {
			return fmt.Errorf("%q is under %s, a path of the query API", prefix, r)
		}
	}
	return nil
}

// normalize gives prefix one leading and one trailing slash.
func normalize(prefix string) string {
	if prefix == "" || prefix == "/" {
		return "/"
	}
	return "/" + strings.Trim(prefix, "/") + "/"
}

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

type handler struct {
	prefix   string
	api      http.Handler
	files    map[string]asset // by path below prefix+AssetsPath
	index    asset
	requests *prometheus.CounterVec
}

// Handler returns the explorer in front of opts.API: GET and HEAD of the
// prefix itself answer the page, GET and HEAD of <prefix>ui/<file> its
// assets (404 for an unknown file), <prefix>ui/config.json tells the page
// whether multitenancy is on, and the prefix without its trailing slash
// redirects to it. Every other request goes to opts.API as it came. The
// handler is safe for concurrent use and counts its answers in
// weft_ui_requests_total{code}.
func Handler(opts Options) (http.Handler, error) {
	if opts.API == nil {
		return nil, errors.New("cannot create the UI: Options.API is nil")
	}
	if err := CheckPathPrefix(opts.PathPrefix); err != nil {
		return nil, fmt.Errorf("cannot create the UI: path prefix %w", err)
	}
	h := &handler{prefix: normalize(opts.PathPrefix), api: opts.API, files: map[string]asset{}}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		h.files[strings.TrimPrefix(p, "assets/")] = newAsset(p, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the UI: cannot read the embedded assets: %w", err)
	}
	idx, ok := h.files["index.html"]
	if !ok {
		return nil, errors.New("cannot create the UI: index.html is not embedded")
	}
	h.index = idx
	delete(h.files, "index.html")
	cfg, err := json.Marshal(struct {
		Multitenancy bool   `json:"multitenancy"`
		Version      string `json:"version"`
		Prefix       string `json:"prefix"`
	}{opts.MultitenancyEnabled, opts.Version, h.prefix})
	if err != nil {
		return nil, fmt.Errorf("cannot create the UI: cannot encode its config: %w", err)
	}
	h.files["config.json"] = newAsset("config.json", cfg)
	h.requests = metrics.Register(opts.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_ui_requests_total",
		Help: "Requests answered by the built-in trace explorer (its page and assets, not the API), by status code.",
	}, []string{"code"}))
	return h, nil
}

func newAsset(name string, body []byte) asset {
	sum := sha256.Sum256(body)
	ct := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".html":
		ct = "text/html; charset=utf-8"
	case ".json":
		ct = "application/json"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	return asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == h.prefix:
		h.serve(w, r, h.index, true)
	case h.prefix != "/" && p == strings.TrimSuffix(h.prefix, "/"):
		h.count(http.StatusMovedPermanently)
		to := h.prefix
		if r.URL.RawQuery != "" {
			to += "?" + r.URL.RawQuery // a shared link keeps its query
		}
		http.Redirect(w, r, to, http.StatusMovedPermanently)
	case strings.HasPrefix(p, h.prefix+AssetsPath):
		a, ok := h.files[strings.TrimPrefix(p, h.prefix+AssetsPath)]
		if !ok {
			h.count(http.StatusNotFound)
			http.Error(w, "no such file of the UI: "+p, http.StatusNotFound)
			return
		}
		h.serve(w, r, a, false)
	default:
		h.api.ServeHTTP(w, r)
	}
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request, a asset, page bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.count(http.StatusMethodNotAllowed)
		http.Error(w, "method "+r.Method+" not allowed on the UI's "+r.URL.Path+": GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// Revalidated on each load: a new binary's assets are seen at once,
	// an unchanged one answers 304 without a body.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	if page {
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("Referrer-Policy", "no-referrer")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		h.count(http.StatusNotModified)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(a.body)))
	h.count(http.StatusOK)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// A failed write means the client is gone: nothing left to tell it.
	_, _ = w.Write(a.body)
}

func (h *handler) count(code int) { h.requests.WithLabelValues(strconv.Itoa(code)).Inc() }
