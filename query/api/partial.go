package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftdb/weft/query/partial"
)

// A query that could not read some blocks (a damaged file, object storage
// failing) answers with what it found, marked partial: trace by ID v2 with
// status PARTIAL and a message; search and tag answers in JSON with the
// extra top-level fields "status":"PARTIAL" and "message" (which Grafana
// ignores); every one of them, protobuf and trace by ID v1 included, with
// an HTTP Warning header "299 weft \"<message>\"".

// maxWarningBytes caps the message of a Warning header.
const maxWarningBytes = 2048

// skipLogEvery is how often a block skipped again and again is logged.
const skipLogEvery = 10 * time.Minute

// skipReporter counts and logs the blocks that queries skipped.
type skipReporter struct {
	skipped *prometheus.CounterVec
	logger  *slog.Logger

	// leftOut lists a tenant's blocks that the block list leaves out; nil
	// for none.
	leftOut func(tenant string) []partial.Skip

	mu     sync.Mutex
	logged map[[2]string]time.Time // block, reason → last logged
}

func newSkipReporter(reg prometheus.Registerer, logger *slog.Logger) *skipReporter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_query_blocks_skipped_total",
		Help: "Blocks a query could not read and answered without (answer marked partial), by reason: damaged (a file missing or undecodable), storage (object storage failed or did not answer within storage.trace.read_timeout).",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(skipped); err != nil {
			if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
				skipped = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	for _, r := range []string{partial.ReasonDamaged, partial.ReasonStorage} {
		skipped.WithLabelValues(r)
	}
	return &skipReporter{skipped: skipped, logger: logger, logged: map[[2]string]time.Time{}}
}

// withNotes returns the request's context carrying new partial notes.
func withNotes(r *http.Request) (context.Context, *partial.Notes) {
	return partial.NewContext(r.Context())
}

// report adds to notes the blocks of tenants that the block list leaves
// out, counts and logs the skips, sets the Warning header when there are
// any and returns the message saying the answer is partial ("" if it is
// not).
func (s *skipReporter) report(w http.ResponseWriter, route string, notes *partial.Notes, tenants []string) string {
	if s.leftOut != nil {
		for _, t := range tenants {
			for _, sk := range s.leftOut(t) {
				notes.Add(sk)
			}
		}
	}
	skips := notes.Skips()
	if len(skips) == 0 {
		return ""
	}
	now := time.Now()
	s.mu.Lock()
	for _, sk := range skips {
		s.skipped.WithLabelValues(sk.Reason).Inc()
		k := [2]string{sk.Tenant + "/" + sk.Block, sk.Reason}
		if last, ok := s.logged[k]; ok && now.Sub(last) < skipLogEvery {
			continue
		}
		if sk.Reason == partial.ReasonStorage && sk.Error == "" {
			continue // skipped after another block's storage failure, logged with it
		}
		s.logged[k] = now
		s.logger.Warn("query answered without a block it could not read", "route", route, "tenant", sk.Tenant, "block", sk.Block, "reason", sk.Reason, "err", sk.Error)
	}
	if len(s.logged) > 10000 {
		clear(s.logged)
	}
	s.mu.Unlock()
	msg := notes.Message()
	w.Header().Add("Warning", warningValue(msg))
	return msg
}

// warningValue is an HTTP Warning header value (RFC 7234 5.5) of code 299
// carrying msg.
func warningValue(msg string) string {
	if len(msg) > maxWarningBytes {
		msg = msg[:maxWarningBytes] + "…"
	}
	msg = strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\':
			return '/'
		case r < ' ' || r == 0x7f:
			return ' '
		}
		return r
	}, msg)
	return `299 weft "` + msg + `"`
}

// withPartialJSON adds "status":"PARTIAL" and "message" to the JSON object
// body.
func withPartialJSON(body []byte, msg string) []byte {
	body = bytes.TrimRight(body, " \n")
	if len(body) < 2 || body[len(body)-1] != '}' {
		return body
	}
	m, err := json.Marshal(msg)
	if err != nil {
		return body
	}
	out := make([]byte, 0, len(body)+len(m)+32)
	out = append(out, body[:len(body)-1]...)
	if len(bytes.TrimSpace(body[1:len(body)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"status":"PARTIAL","message":`...)
	out = append(out, m...)
	return append(out, '}')
}
