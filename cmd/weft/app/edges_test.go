package app

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/cmd/weft/config"
)

// TestHTTPEdges checks the limits of both HTTP servers (OTLP and the query
// API) against hostile clients: headers over 1 MiB get 431, and a client
// that does not finish its headers within the read-header timeout
// (distributor.receivers.otlp.protocols.http.read_header_timeout,
// server.http_server_read_header_timeout) is disconnected, while the
// servers keep answering others. Both refusals are counted in
// weft_http_connections_refused_total by server, and a keep-alive
// connection closed by the idle timeout is not.
func TestHTTPEdges(t *testing.T) {
	a := startWeft(t, func(c *config.Config) {
		c.Distributor.Receivers.OTLP.Protocols.HTTP.ReadHeaderTimeout = 200 * time.Millisecond
		c.Distributor.Receivers.OTLP.Protocols.HTTP.ReadTimeout = 500 * time.Millisecond
		c.Server.HTTPServerReadHeaderTimeout = 200 * time.Millisecond
		c.Distributor.Receivers.OTLP.Protocols.HTTP.IdleTimeout = 100 * time.Millisecond
		c.Server.HTTPServerIdleTimeout = 100 * time.Millisecond
	})
	_, otlpAddr := a.OTLPAddrs()
	for name, addr := range map[string]string{"otlp": otlpAddr, "api": a.HTTPAddr()} {
		t.Run(name+" header too large", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/ready", nil)
			req.Header.Set("X-Junk", strings.Repeat("x", 2<<20))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d, want 431", resp.StatusCode)
			}
		})
		t.Run(name+" slow headers", func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, "POST /v1/traces HTTP/1.1\r\nHost: weft\r\nX-Slow: "); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			took := time.Since(start)
			// Closed (EOF), or a 408 before closing: either way within the
			// timeout, not at the test's 5s deadline.
			if took > 3*time.Second || (err == nil && !strings.Contains(line, "408")) {
				t.Fatalf("after %s: line %q, err %v; want the connection closed after 200ms", took, line, err)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept a slow client %s", took)
			}
		})
		if name == "otlp" {
			// Headers in time, then a body that stops halfway: 408 once
			// protocols.http.read_timeout has passed.
			t.Run(name+" slow body", func(t *testing.T) {
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				req := "POST /v1/traces HTTP/1.1\r\nHost: weft\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\n0123456789"
				if _, err := io.WriteString(conn, req); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(conn)
				line, err := br.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "HTTP/1.1 408") || time.Since(start) > 3*time.Second {
					t.Fatalf("after %s: %q, %v; want 408 after the 500ms read timeout", time.Since(start), line, err)
				}
				rest, _ := io.ReadAll(io.LimitReader(br, 4096))
				if !strings.Contains(string(rest), "protocols.http.read_timeout") {
					t.Fatalf("answer %q does not name the limit", rest)
				}
			})
		}
		t.Run(name+" still serves", func(t *testing.T) {
			resp, err := http.Get("http://" + addr + "/ready")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if name == "api" && resp.StatusCode != http.StatusOK {
				t.Fatalf("/ready: %d", resp.StatusCode)
			}
			// The client keeps the connection; the idle timeout closes it.
			time.Sleep(300 * time.Millisecond)
		})
	}
	metrics := string(get(t, "http://"+a.HTTPAddr()+"/metrics", "", http.StatusOK))
	for _, server := range []string{"api", "otlp"} {
		for _, reason := range []string{"header_too_large", "read_timeout"} {
			n := "1"
			if server == "otlp" && reason == "read_timeout" {
				n = "2" // slow headers and slow body
			}
			want := `weft_http_connections_refused_total{reason="` + reason + `",server="` + server + `"} ` + n + "\n"
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s:\n%s", strings.TrimSpace(want), grep(metrics, "connections_refused"))
			}
		}
	}
}
