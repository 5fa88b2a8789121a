package s3test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// ProxyMode is what a Proxy does with connections.
type ProxyMode int32

const (
	// ProxyPass forwards connections to the target.
	ProxyPass ProxyMode = iota
	// ProxyRefuse resets every connection at once, as a stopped server.
	ProxyRefuse
	// ProxyBlackhole accepts connections and never answers, as a hung
	// server.
	ProxyBlackhole
)

// Proxy is a TCP proxy on loopback in front of a server, to make it fail
// or hang and come back.
type Proxy struct {
	// Addr is the proxy's 127.0.0.1:<port>, to use as the endpoint.
	Addr string

	target string
	ln     net.Listener
	mode   atomic.Int32

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port) in mode ProxyPass, closed
// when t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// SetMode switches the mode; the connections open are closed, so that a
// client's pooled connections see the change too.
func (p *Proxy) SetMode(m ProxyMode) {
	p.mode.Store(int32(m))
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		switch ProxyMode(p.mode.Load()) {
		case ProxyRefuse:
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // reset, not a clean close
			}
			_ = c.Close()
		case ProxyBlackhole:
			if !p.track(c) {
				_ = c.Close()
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer p.untrack(c)
				_, _ = io.Copy(io.Discard, c)
			}()
		default:
			if !p.track(c) {
				_ = c.Close()
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer p.untrack(c)
				up, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				if !p.track(up) {
					_ = up.Close()
					return
				}
				defer p.untrack(up)
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
