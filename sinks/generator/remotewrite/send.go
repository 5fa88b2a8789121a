package remotewrite

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of the remote-write protocol 1.0, as Prometheus sends them.
const (
	userAgent = "weft-metrics-generator"
	orgHeader = "X-Scope-OrgID"
)

type outcome int

const (
	outcomeDelivered outcome = iota
	outcomeRetry
	outcomeRejected
	outcomeDuplicate
)

// send sends e to ep until the endpoint accepts or refuses it, or e is
// dropped meanwhile. It returns false when the storage gave up (Close's
// deadline passed) before that.
func (q *Queue) send(ep *endpoint, e *entry, body []byte) bool {
	m := q.s.metrics
	backoff := minBackoff
	for attempt := 0; ; attempt++ {
		if q.s.ctx.Err() != nil {
			return false
		}
		if q.isRemoved(e) {
			return true
		}
		res, status, msg, retryAfter := q.post(ep, body, attempt)
		if res == outcomeRejected && status == http.StatusBadRequest && (attempt > 0 || e.fromDisk) && isDuplicateError(msg) {
			res = outcomeDuplicate
		}
		var result string
		switch res {
		case outcomeDelivered:
			result = ResultSuccess
		case outcomeDuplicate:
			result = ResultDuplicate
		case outcomeRejected:
			result = ResultRejected
		default:
			result = ResultRetried
		}
		m.requests.WithLabelValues(q.tenant, result).Inc()
		m.samples.WithLabelValues(q.tenant, result).Add(float64(e.samples))
		switch res {
		case outcomeDelivered, outcomeDuplicate:
			return true
		case outcomeRejected:
			m.droppedReqs.WithLabelValues(q.tenant, ReasonRejected).Inc()
			m.droppedSamples.WithLabelValues(q.tenant, ReasonRejected).Add(float64(e.samples))
			q.s.logRejected(q.tenant, ep.name, status, msg)
			return true
		}
		wait := backoff
		if retryAfter > wait {
			wait = min(retryAfter, maxBackoff)
		}
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.s.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// isDuplicateError tells the answer to samples the receiver already has:
// Prometheus's "out of order sample" and "duplicate sample for timestamp",
// Mimir's "out-of-order" and "duplicate timestamp" errors.
func isDuplicateError(msg string) bool {
	msg = strings.ReplaceAll(strings.ToLower(msg), "-", " ")
	return strings.Contains(msg, "out of order") || strings.Contains(msg, "duplicate sample") ||
		strings.Contains(msg, "duplicate timestamp")
}

// post sends body once; for a refusal it returns the status and the start
// of the response body.
func (q *Queue) post(ep *endpoint, body []byte, attempt int) (res outcome, status int, msg string, retryAfter time.Duration) {
	ctx, cancel := context.WithTimeout(q.s.ctx, ep.cfg.RemoteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return outcomeRejected, 0, err.Error(), 0
	}
	h := req.Header
	if ba := ep.cfg.BasicAuth; ba != nil {
		req.SetBasicAuth(ba.Username, ba.Password) // an Authorization in the headers wins
	}
	if q.s.cfg.AddOrgIDHeader {
		h.Set(orgHeader, q.tenant)
	}
	for k, v := range ep.cfg.Headers {
		h.Set(k, v)
	}
	if th := q.headers.Load(); th != nil {
		for k, v := range *th {
			h.Set(k, v)
		}
	}
	h.Set("Content-Encoding", "snappy")
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	h.Set("User-Agent", userAgent)
	if attempt > 0 {
		h.Set("Retry-Attempt", strconv.Itoa(attempt))
	}
	resp, err := ep.client.Do(req)
	if err != nil {
		return outcomeRetry, 0, err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode/100 == 2:
		return outcomeDelivered, resp.StatusCode, "", 0
	case resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests:
		return outcomeRetry, resp.StatusCode, string(b), parseRetryAfter(resp.Header.Get("Retry-After"))
	default:
		return outcomeRejected, resp.StatusCode, strings.TrimSpace(string(b)), 0
	}
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
