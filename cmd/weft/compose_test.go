package main

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/cmd/weft/app"
	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/membership"
)

// No Docker engine runs on the machines weft is developed and tested on,
// so the Dockerfile and the compose files of examples/docker-compose are
// checked here instead of built: every port, path, flag and config key
// they name is checked against weft's code, and the monolithic example's
// config is run by the real binary.

const repoRoot = "../.."

// dockerfile is what the test reads of the Dockerfile.
type dockerfile struct {
	args       map[string]string // ARG defaults
	from       []string          // FROM images, in order
	runs       []string          // RUN commands (continuations joined)
	copies     [][]string        // COPY arguments, flags included
	expose     []int
	workdir    string
	user       string
	entrypoint []string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := dockerfile{args: map[string]string{}}
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if strings.HasSuffix(text, "\\") {
			line += strings.TrimSuffix(text, "\\") + " "
			continue
		}
		line += text
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		line = ""
		switch strings.ToUpper(instr) {
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			d.args[k] = v
		case "FROM":
			d.from = append(d.from, strings.Fields(rest)[0])
		case "RUN":
			d.runs = append(d.runs, rest)
		case "COPY":
			d.copies = append(d.copies, strings.Fields(rest))
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Fatalf("Dockerfile: EXPOSE %q is not a port", p)
				}
				d.expose = append(d.expose, n)
			}
		case "WORKDIR":
			d.workdir = rest
		case "USER":
			d.user = rest
		case "ENTRYPOINT":
			if err := yaml.Unmarshal([]byte(rest), &d.entrypoint); err != nil {
				t.Fatalf("Dockerfile: ENTRYPOINT %s is not an exec-form list: %v", rest, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// goDirective is go.mod's go line, as major.minor.
func goDirective(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return m[1]
}

// defaultPorts are the ports of the embedded default config: HTTP, gRPC,
// OTLP gRPC, OTLP HTTP.
func defaultPorts(t *testing.T) []int {
	t.Helper()
	cfg := config.Default()
	o := cfg.OTLPNode()
	return []int{cfg.Server.HTTPListenPort, cfg.Server.GRPCListenPort,
		endpointPort(t, o.Protocols.GRPC.Endpoint), endpointPort(t, o.Protocols.HTTP.Endpoint)}
}

func endpointPort(t *testing.T, endpoint string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(endpoint)
	if err != nil {
		t.Fatalf("endpoint %q: %v", endpoint, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("endpoint %q: %v", endpoint, err)
	}
	return n
}

// TestDockerfile checks the Dockerfile against the code: the Go release
// of go.mod, a static build of ./cmd/weft, the binary it copies being the
// entrypoint, the ports of the default config exposed, and a working
// directory (where the default config's ./data goes) owned by the user it
// runs as. It also builds weft as the Dockerfile does and checks that the
// binary is static.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	d := readDockerfile(t)
	if got, want := d.args["GO_VERSION"], goDirective(t); got != want {
		t.Errorf("Dockerfile: ARG GO_VERSION=%s, go.mod's go line is %s", got, want)
	}
	if len(d.from) != 2 || !strings.HasPrefix(d.from[0], "golang:${GO_VERSION}") || !strings.Contains(d.from[1], "static") {
		t.Errorf("Dockerfile: want a golang:${GO_VERSION} build stage and a static base, got FROM %v", d.from)
	}
	var build string
	for _, r := range d.runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	out := regexp.MustCompile(`-o (\S+) (\./\S+)`).FindStringSubmatch(build)
	if !strings.Contains(build, "CGO_ENABLED=0") || out == nil {
		t.Fatalf("Dockerfile: want a RUN of CGO_ENABLED=0 go build -o <bin> ./<pkg>, got %q", build)
	}
	if _, err := os.Stat(filepath.Join(repoRoot, out[2], "main.go")); err != nil {
		t.Errorf("Dockerfile builds %s: %v", out[2], err)
	}
	for _, x := range regexp.MustCompile(`-X (main\.\w+)=`).FindAllStringSubmatch(build, -1) {
		if !slices.Contains([]string{"main.version", "main.revision", "main.branch", "main.buildUser", "main.buildDate"}, x[1]) {
			t.Errorf("Dockerfile: -X %s sets no variable of cmd/weft/main.go", x[1])
		}
	}
	// The binary built is the one copied, and the one run.
	var bin, dataOwner string
	for _, c := range d.copies {
		if slices.Contains(c, "--from=build") && c[len(c)-2] == out[1] {
			bin = c[len(c)-1]
		}
		if c[len(c)-1] == d.workdir {
			for _, f := range c {
				if o, ok := strings.CutPrefix(f, "--chown="); ok {
					dataOwner = o
				}
			}
		}
	}
	if bin == "" || len(d.entrypoint) == 0 || d.entrypoint[0] != bin {
		t.Errorf("Dockerfile: ENTRYPOINT %v does not run the binary built at %s (copied to %q)", d.entrypoint, out[1], bin)
	}
	if d.workdir == "" || dataOwner != d.user {
		t.Errorf("Dockerfile: WORKDIR %q must be owned by the USER %q (--chown=%s): the default config writes ./data there", d.workdir, d.user, dataOwner)
	}
	want := defaultPorts(t)
	if !equalSets(d.expose, want) {
		t.Errorf("Dockerfile: EXPOSE %v, the default config listens on %v", d.expose, want)
	}
	// What the build copies is not left out of the context.
	ignored, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(ignored), "\n") {
		l = strings.Trim(strings.TrimSpace(l), "/")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "internal", "pipelines", "query", "sinks", "sources", "stages", "backend"} {
			if l == needed || strings.HasPrefix(needed, l+"/") {
				t.Errorf(".dockerignore leaves out %s, which the build needs", needed)
			}
		}
	}

	// The build as the Dockerfile runs it: a static binary.
	if testing.Short() {
		return
	}
	binPath := filepath.Join(t.TempDir(), "weft-static")
	cmd := execGo(t, "build", "-trimpath", "-o", binPath, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, b)
	}
	requireStatic(t, binPath)
}

func equalSets(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// composeFile is what the test reads of a compose file.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string   `yaml:"image"`
	Build       any      `yaml:"build"`
	Command     []string `yaml:"command"`
	Entrypoint  []string `yaml:"entrypoint"`
	Environment []string `yaml:"environment"`
	Volumes     []string `yaml:"volumes"`
	Ports       []string `yaml:"ports"`
	DependsOn   []string `yaml:"depends_on"`
}

// flag returns the value of -name=value in the command, or "".
func (s composeService) flag(name string) string {
	for _, a := range s.Command {
		if v, ok := strings.CutPrefix(a, "-"+name+"="); ok {
			return v
		}
	}
	return ""
}

// mounted returns the file of dir that the service mounts at path.
func (s composeService) mounted(t *testing.T, dir, path string) string {
	t.Helper()
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.TrimSuffix(parts[1], "/") == strings.TrimSuffix(path, "/") && strings.HasPrefix(parts[0], ".") {
			return filepath.Join(dir, parts[0])
		}
	}
	t.Fatalf("no volume mounts a file of %s at %s: %v", dir, path, s.Volumes)
	return ""
}

func (s composeService) env(name string) string {
	for _, e := range s.Environment {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return ""
}

// weftService is a service of a compose file that runs weft.
type weftService struct {
	name    string
	targets []string
	cfg     config.Config
	file    string
}

func (w weftService) runs(component string) bool {
	return slices.Contains(w.targets, component) || slices.Contains(w.targets, app.TargetAll)
}

// listens returns the TCP and UDP ports the process opens: HTTP, gRPC,
// memberlist when it joins, and the receivers with a distributor.
func (w weftService) listens(t *testing.T) (tcp, udp []int) {
	tcp = []int{w.cfg.Server.HTTPListenPort, w.cfg.Server.GRPCListenPort}
	if len(w.cfg.Memberlist.JoinMembers) > 0 {
		tcp = append(tcp, w.cfg.Memberlist.BindPort)
	}
	if w.runs("distributor") {
		o := w.cfg.OTLPNode()
		tcp = append(tcp, endpointPort(t, o.Protocols.GRPC.Endpoint), endpointPort(t, o.Protocols.HTTP.Endpoint))
		if w.cfg.Distributor.Receivers.Jaeger != nil {
			p := w.cfg.JaegerNode().Protocols
			if p.GRPC != nil {
				tcp = append(tcp, endpointPort(t, p.GRPC.Endpoint))
			}
			if p.ThriftHTTP != nil {
				tcp = append(tcp, endpointPort(t, p.ThriftHTTP.Endpoint))
			}
			if p.ThriftCompact != nil {
				udp = append(udp, endpointPort(t, p.ThriftCompact.Endpoint))
			}
			if p.ThriftBinary != nil {
				udp = append(udp, endpointPort(t, p.ThriftBinary.Endpoint))
			}
		}
		if w.cfg.Distributor.Receivers.Zipkin != nil {
			tcp = append(tcp, endpointPort(t, w.cfg.ZipkinNode().Endpoint))
		}
	}
	return tcp, udp
}

// loadCompose reads a compose file and the weft config of each of its weft
// services, checking each against weft's code.
func loadCompose(t *testing.T, dir string) (composeFile, []weftService) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil { // merge keys (<<) are resolved
		t.Fatalf("%s: %v", dir, err)
	}
	var weft []weftService
	for _, name := range sortedKeys(c.Services) {
		s := c.Services[name]
		for _, dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s: service %s depends on %s, which is not a service", dir, name, dep)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("%s: service %s mounts %s: %v", dir, name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s: service %s mounts the volume %s, which volumes: does not declare", dir, name, src)
			}
		}
		if s.Image != "weft:local" {
			continue
		}
		build, _ := s.Build.(map[string]any)
		ctx, _ := build["context"].(string)
		if _, err := os.Stat(filepath.Join(dir, ctx, fmt.Sprint(build["dockerfile"]))); err != nil || ctx == "" {
			t.Errorf("%s: service %s builds %v: %v", dir, name, s.Build, err)
		}
		w := weftService{name: name, targets: app.SplitTargets(s.flag("target"))}
		for _, tg := range w.targets {
			if !slices.Contains(app.Targets(), tg) {
				t.Errorf("%s: service %s: -target=%s is not one of %v", dir, name, tg, app.Targets())
			}
		}
		for _, a := range s.Command {
			f, _, _ := strings.Cut(strings.TrimPrefix(a, "-"), "=")
			if !slices.Contains([]string{"config.file", "target", "config.expand-env"}, f) {
				t.Errorf("%s: service %s: %s is not a flag of weft", dir, name, a)
			}
		}
		w.file = s.mounted(t, dir, s.flag("config.file"))
		data, err := os.ReadFile(w.file)
		if err != nil {
			t.Fatal(err)
		}
		cfg, report, err := config.LoadReport(w.file, data, false)
		if err != nil {
			t.Fatalf("%s: %v", w.file, err)
		}
		if len(report.Ignored) > 0 || len(report.Tempo2) > 0 {
			t.Errorf("%s: keys weft does not use: %v %v", w.file, report.Ignored, report.Tempo2)
		}
		cfg.Target = s.flag("target")
		w.cfg = cfg
		tcp, udp := w.listens(t)
		for _, p := range s.Ports {
			hostPort, containerPort, _ := strings.Cut(p, ":")
			listens := tcp
			if cp, ok := strings.CutSuffix(containerPort, "/udp"); ok {
				containerPort, listens = cp, udp
				hostPort = strings.TrimSuffix(hostPort, "/udp")
			}
			n, err := strconv.Atoi(containerPort)
			if err != nil || !slices.Contains(listens, n) || hostPort != containerPort {
				t.Errorf("%s: service %s publishes %s; the process listens on TCP %v, UDP %v (the same port on the host is expected)", dir, name, p, tcp, udp)
			}
		}
		weft = append(weft, w)
	}
	if len(weft) == 0 {
		t.Fatalf("%s: no service runs weft (image weft:local)", dir)
	}
	return c, weft
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkReferences checks what the weft configs and the other services
// say of each other: Grafana's data sources, Prometheus's scrape targets
// and remote write, Kafka, S3 and memberlist addresses.
func checkReferences(t *testing.T, dir string, c composeFile, weft []weftService) {
	t.Helper()
	byName := map[string]weftService{}
	for _, w := range weft {
		byName[w.name] = w
	}
	hostPort := func(what, addr string) (string, int) {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: %s %q: %v", dir, what, addr, err)
			return "", 0
		}
		n, _ := strconv.Atoi(p)
		if _, ok := c.Services[h]; !ok {
			t.Errorf("%s: %s %q names no service", dir, what, addr)
		}
		return h, n
	}

	// Grafana: the Tempo data source is a query-frontend's HTTP port, with
	// streaming on where the process serves it over HTTP.
	grafana, ok := c.Services["grafana"]
	if !ok {
		t.Fatalf("%s: no grafana service", dir)
	}
	var ds struct {
		Datasources []struct {
			Type     string `yaml:"type"`
			UID      string `yaml:"uid"`
			URL      string `yaml:"url"`
			JSONData struct {
				StreamingEnabled map[string]bool `yaml:"streamingEnabled"`
				ServiceMap       struct {
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"serviceMap"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	dsFile := grafana.mounted(t, dir, "/etc/grafana/provisioning/datasources/datasources.yaml")
	if b, err := os.ReadFile(dsFile); err != nil || yaml.Unmarshal(b, &ds) != nil {
		t.Fatalf("%s: cannot read %s: %v", dir, dsFile, err)
	}
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		uids[d.UID] = d.Type
	}
	tempo := 0
	for _, d := range ds.Datasources {
		u, err := url.Parse(d.URL)
		if err != nil {
			t.Errorf("%s: data source url %q: %v", dsFile, d.URL, err)
			continue
		}
		host, port := hostPort("data source "+d.UID, u.Host)
		if d.Type != "tempo" {
			continue
		}
		tempo++
		w, ok := byName[host]
		if !ok || !w.runs("query-frontend") || w.cfg.Server.HTTPListenPort != port {
			t.Errorf("%s: the Tempo data source %s is not the HTTP port of a weft service with a query-frontend", dsFile, d.URL)
		}
		if !d.JSONData.StreamingEnabled["search"] || !d.JSONData.StreamingEnabled["metrics"] || !w.cfg.StreamOverHTTPEnabled {
			t.Errorf("%s: streaming: data source %v, %s stream_over_http_enabled %v; want both on", dsFile, d.JSONData.StreamingEnabled, w.file, w.cfg.StreamOverHTTPEnabled)
		}
		if m := d.JSONData.ServiceMap.DatasourceUID; uids[m] != "prometheus" {
			t.Errorf("%s: the service map reads data source %q, not a Prometheus data source", dsFile, m)
		}
	}
	if tempo != 1 {
		t.Errorf("%s: %d Tempo data sources, want 1", dsFile, tempo)
	}

	// Grafana's dashboards: the provider reads the folder where
	// operations/dashboards is mounted.
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	provFile := grafana.mounted(t, dir, "/etc/grafana/provisioning/dashboards/weft.yaml")
	if b, err := os.ReadFile(provFile); err != nil || yaml.Unmarshal(b, &prov) != nil || len(prov.Providers) != 1 {
		t.Fatalf("%s: cannot read %s: %v", dir, provFile, err)
	}
	dashDir := grafana.mounted(t, dir, prov.Providers[0].Options.Path)
	if abs, _ := filepath.Abs(dashDir); abs != mustAbs(t, filepath.Join(repoRoot, "operations", "dashboards")) {
		t.Errorf("%s: Grafana's dashboards come from %s, not operations/dashboards", dir, dashDir)
	}
	if jsons, _ := filepath.Glob(filepath.Join(dashDir, "*.json")); len(jsons) == 0 {
		t.Errorf("%s: no dashboard in %s", dir, dashDir)
	}

	// Prometheus: scrapes every weft process's HTTP port, loads the rules
	// of operations/ and takes the metrics-generator's remote write.
	prom := c.Services["prometheus"]
	if !slices.Contains(prom.Command, "--web.enable-remote-write-receiver") {
		t.Errorf("%s: prometheus does not take remote write (--web.enable-remote-write-receiver)", dir)
	}
	var pc struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	promFile := prom.mounted(t, dir, "/etc/prometheus/prometheus.yaml")
	if b, err := os.ReadFile(promFile); err != nil || yaml.Unmarshal(b, &pc) != nil {
		t.Fatalf("%s: cannot read %s: %v", dir, promFile, err)
	}
	if len(pc.RuleFiles) == 0 {
		t.Errorf("%s: no rule_files", promFile)
	}
	for _, rf := range pc.RuleFiles {
		if got := mustAbs(t, prom.mounted(t, dir, rf)); got != mustAbs(t, filepath.Join(repoRoot, "operations", "weft-rules.yaml")) {
			t.Errorf("%s: rule file %s is mounted from %s, not operations/weft-rules.yaml", promFile, rf, got)
		}
	}
	scraped := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				h, p := hostPort("scrape target", tg)
				if w, ok := byName[h]; !ok || w.cfg.Server.HTTPListenPort != p {
					t.Errorf("%s: scrape target %s is not a weft HTTP port", promFile, tg)
				}
				scraped[h] = true
			}
		}
	}
	for _, w := range weft {
		if !scraped[w.name] {
			t.Errorf("%s: %s is not scraped", promFile, w.name)
		}
		if !w.runs("metrics-generator") {
			continue
		}
		rw := w.cfg.MetricsGenerator.Storage.RemoteWrite
		if len(rw) == 0 {
			t.Errorf("%s: the metrics-generator of %s has no remote_write", w.file, w.name)
		}
		for _, e := range rw {
			u, err := url.Parse(e.URL)
			if err != nil {
				t.Errorf("%s: remote_write url: %v", w.file, err)
				continue
			}
			if h, p := hostPort("remote_write", u.Host); h != "prometheus" || p != 9090 || u.Path != "/api/v1/write" {
				t.Errorf("%s: remote_write %s is not prometheus:9090/api/v1/write", w.file, e.URL)
			}
		}
	}

	// Microservices: Kafka, S3 and memberlist.
	if len(weft) == 1 {
		return
	}
	checked := map[string]bool{} // each config file once
	for _, w := range weft {
		if checked[w.file] {
			continue
		}
		checked[w.file] = true
		for _, b := range w.cfg.Ingest.Kafka.Address {
			h, p := hostPort("ingest.kafka.address", b)
			cmd := strings.Join(c.Services[h].Command, " ")
			if !strings.Contains(cmd, fmt.Sprintf("--advertise-kafka-addr=PLAINTEXT://%s:%d", h, p)) {
				t.Errorf("%s: ingest.kafka.address %s: service %s does not advertise it (%s)", w.file, b, h, cmd)
			}
		}
		s3 := w.cfg.Storage.Trace.Store.S3
		if w.cfg.Storage.Trace.Store.Backend != "s3" {
			t.Errorf("%s: microservices share blocks through S3, backend is %q", w.file, w.cfg.Storage.Trace.Store.Backend)
		}
		h, p := hostPort("storage.trace.s3.endpoint", s3.Endpoint)
		minio := c.Services[h]
		if p != 9000 || minio.env("MINIO_ROOT_USER") != s3.AccessKey || minio.env("MINIO_ROOT_PASSWORD") != s3.SecretKey ||
			!strings.Contains(strings.Join(minio.Entrypoint, " "), "mkdir -p /data/"+s3.Bucket) {
			t.Errorf("%s: S3 %s bucket %s with key %s: service %s serves no such bucket on 9000 with those keys", w.file, s3.Endpoint, s3.Bucket, s3.AccessKey, h)
		}
		var members []string
		for _, m := range w.cfg.Memberlist.JoinMembers {
			h, p := hostPort("memberlist.join_members", m)
			if o, ok := byName[h]; !ok || p != o.cfg.Memberlist.BindPort {
				t.Errorf("%s: memberlist member %s is not a weft service's gossip port", w.file, m)
			}
			members = append(members, h)
		}
		for _, o := range weft {
			if !slices.Contains(members, o.name) {
				t.Errorf("%s: memberlist.join_members leaves out %s", w.file, o.name)
			}
		}
		if w.cfg.Memberlist.BindPort != membership.DefaultBindPort {
			t.Errorf("%s: memberlist.bind_port %d", w.file, w.cfg.Memberlist.BindPort)
		}
	}
	var all []string
	for _, w := range weft {
		all = append(all, w.targets...)
	}
	for _, tg := range app.Targets() {
		if tg != app.TargetAll && !slices.Contains(all, tg) {
			t.Errorf("%s: no service runs %s", dir, tg)
		}
	}
}

// TestComposeExamples checks both compose files of
// examples/docker-compose against weft's code and against each other.
func TestComposeExamples(t *testing.T) {
	t.Parallel()
	for _, layout := range []string{"monolithic", "microservices"} {
		t.Run(layout, func(t *testing.T) {
			dir := filepath.Join(repoRoot, "examples", "docker-compose", layout)
			c, weft := loadCompose(t, dir)
			checkReferences(t, dir, c, weft)
			if layout == "monolithic" && (len(weft) != 1 || !slices.Equal(weft[0].targets, []string{app.TargetAll})) {
				t.Errorf("monolithic: want one weft service with -target=all, got %d", len(weft))
			}
		})
	}
}

// TestComposeMonolithicConfigRuns runs the monolithic example's config
// with the real binary, its paths moved under a temporary directory and
// its ports to free loopback ones: the process gets ready, takes a push
// and finds the trace, as the container would.
func TestComposeMonolithicConfigRuns(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "docker-compose", "monolithic", "weft.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ps := newPorts(t)
	extra := freePorts(t, 6) // Prometheus (nothing listens there), then Jaeger and Zipkin
	dead := extra[0]
	text := strings.NewReplacer(
		"0.0.0.0:14250", loopback(extra[1]),
		"0.0.0.0:14268", loopback(extra[2]),
		"0.0.0.0:6831", loopback(extra[3]),
		"0.0.0.0:6832", loopback(extra[4]),
		"0.0.0.0:9411", loopback(extra[5]),
		"/var/weft", t.TempDir(),
		"http_listen_port: 3200", "http_listen_port: "+strconv.Itoa(ps.http),
		"grpc_listen_port: 9095", "grpc_listen_port: "+strconv.Itoa(ps.grpc),
		"0.0.0.0:4317", loopback(ps.otlpGRPC),
		"0.0.0.0:4318", loopback(ps.otlpHTTP),
		"prometheus:9090", loopback(dead),
	).Replace(string(b))
	text = strings.Replace(text, "\nserver:\n", "\nserver:\n  http_listen_address: 127.0.0.1\n  grpc_listen_address: 127.0.0.1\n", 1)
	settings := regexp.MustCompile(`(?m)\s*#.*$`).ReplaceAllString(text, "")
	for _, port := range []string{"3200", "9095", "4317", "4318", "prometheus", "0.0.0.0"} {
		if strings.Contains(settings, port) {
			t.Fatalf("the config still names %s after the rewrite:\n%s", port, text)
		}
	}
	if !strings.Contains(settings, "grpc_listen_address: 127.0.0.1") {
		t.Fatalf("the rewrite found no server block:\n%s", text)
	}
	p := startWeft(t, nil, "-config.file="+writeFile(t, "weft.yaml", text))
	p.waitReady(t, loopback(ps.http))
	id := pushTrace(t, loopback(ps.otlpHTTP), "", "compose-span")
	waitTrace(t, loopback(ps.http), id, "", "compose-span")
	resp, err := http.Get("http://" + loopback(ps.http) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics (Prometheus's scrape target): %d", resp.StatusCode)
	}
}

// execGo is the go command, run in this package's directory.
func execGo(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	t.Cleanup(cancel)
	return exec.CommandContext(ctx, "go", args...)
}

// requireStatic fails unless the ELF binary at path needs no dynamic
// loader and no shared library: it runs on an image with nothing else.
func requireStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a dynamic loader (PT_INTERP): not static", path)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v (%v): not static", path, libs, err)
	}
}
