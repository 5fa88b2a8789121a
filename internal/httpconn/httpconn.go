// Package httpconn counts what Go's HTTP server does to a client before any
// handler of weft sees the request: a 431 for a request line and headers
// over MaxHeaderBytes, and a connection closed because the client was too
// slow to send a request (read-header or read timeout). Those never reach a
// handler, so the per-request metrics cannot count them; a listener wrapper
// watching the connections can.
package httpconn

import (
	"bytes"
	"errors"
	"net"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/internal/metrics"
)

// Reasons of weft_http_connections_refused_total.
const (
	// ReasonHeaderTooLarge is a 431 from Go's server.
	ReasonHeaderTooLarge = "header_too_large"
	// ReasonReadTimeout is a connection closed by a read deadline while a
	// request was expected or partly read: before its first request, or in
	// the middle of one. A keep-alive connection that stays idle between
	// requests until the idle timeout is not counted.
	ReasonReadTimeout = "read_timeout"
)

// Refused counts, by server and reason, what Go's HTTP server refused
// before weft's handlers.
func Refused(reg prometheus.Registerer) *prometheus.CounterVec {
	return metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_http_connections_refused_total",
		Help: "Requests and connections Go's HTTP server refused before weft's handlers, by server (otlp, api) and reason (header_too_large: 431; read_timeout: a client too slow to send its request).",
	}, []string{"server", "reason"}))
}

// Listener wraps ln so that the connections it accepts count, in refused
// under the label server, the 431 answers written on them and the read
// timeouts that close them.
func Listener(ln net.Listener, server string, refused *prometheus.CounterVec) net.Listener {
	return &listener{
		Listener: ln,
		header:   refused.WithLabelValues(server, ReasonHeaderTooLarge),
		timeout:  refused.WithLabelValues(server, ReasonReadTimeout),
	}
}

type listener struct {
	net.Listener
	header, timeout prometheus.Counter
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, l: l}, nil
}

// conn watches one connection. Go's server reads and writes a connection
// from one goroutine at a time, except that a background read may run while
// a handler writes; the fields are atomic for that.
type conn struct {
	net.Conn
	l *listener
	// pending is true while bytes of a request have been read and its
	// answer not yet written.
	pending atomic.Bool
	// served is true once an answer has been written.
	served atomic.Bool
	// counted is true once the connection's timeout has been counted.
	counted atomic.Bool
}

var status431 = []byte("HTTP/1.1 431 ")

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.pending.Store(true)
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		// Idle between requests is the idle timeout doing its job; before
		// the first request or within one it is a slow client.
		if (c.pending.Load() || !c.served.Load()) && c.counted.CompareAndSwap(false, true) {
			c.l.timeout.Inc()
		}
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, status431) {
		c.l.header.Inc()
	}
	c.pending.Store(false)
	c.served.Store(true)
	return c.Conn.Write(p)
}
