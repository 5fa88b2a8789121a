package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/internal/tenant"
)

const (
	// TracesPath is the OTLP/HTTP path for traces.
	TracesPath = "/v1/traces"

	// maxRequestBodySizeKey is the setting to raise when a body is too large.
	maxRequestBodySizeKey = "distributor.receivers.otlp.protocols.http.max_request_body_size"
	// readTimeoutKey is the setting that bounds the time to send a request.
	readTimeoutKey = "distributor.receivers.otlp.protocols.http.read_timeout"

	// statusClientClosedRequest is the non-standard status of a request whose
	// client went away (nginx's 499).
	statusClientClosedRequest = 499

	// maxPrealloc bounds the buffer allocated up front for a body.
	maxPrealloc = 4 << 20
)

// Content types of OTLP/HTTP.
const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

func (s *Source) newHTTPServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc(TracesPath, s.handleTraces)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.cfg.Protocols.HTTP.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.Protocols.HTTP.ReadTimeout,
		IdleTimeout:       s.cfg.Protocols.HTTP.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
}

// codec is the encoding of a request, which its answer uses too.
type codec struct {
	contentType string
	json        bool
}

// requestCodec returns the codec for a Content-Type header, false if it is
// not one of OTLP/HTTP's.
func requestCodec(contentType string) (codec, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return codec{}, false
	}
	switch mt {
	case contentTypeProtobuf, "application/protobuf":
		return codec{contentType: mt}, true
	case contentTypeJSON:
		return codec{contentType: contentTypeJSON, json: true}, true
	}
	return codec{}, false
}

// marshal encodes an answer: ExportTraceServiceResponse or google.rpc.Status.
func (c codec) marshal(m proto.Message) ([]byte, error) {
	if !c.json {
		return proto.Marshal(m)
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	// protojson varies its whitespace on purpose: settle on compact JSON.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (s *Source) handleTraces(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := s.serveTraces(w, r)
	s.metrics.observe(protocolHTTP, code, start)
}

// serveTraces answers one request and returns the gRPC code of the answer.
func (s *Source) serveTraces(w http.ResponseWriter, r *http.Request) codes.Code {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeText(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s: use POST", r.Method, TracesPath))
		return codes.Unimplemented
	}
	c, ok := requestCodec(r.Header.Get("Content-Type"))
	if !ok {
		writeText(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported content type %q: use %s or %s", r.Header.Get("Content-Type"), contentTypeProtobuf, contentTypeJSON))
		return codes.InvalidArgument
	}
	done, st := s.admitted(protocolHTTP)
	if st != nil {
		s.writeStatus(w, c, httpStatus(st.Code()), st)
		return st.Code()
	}
	body, httpCode, st := readBody(r, s.cfg.Protocols.HTTP.MaxRequestBodySize)
	defer func() { done(len(body)) }()
	if st != nil {
		s.writeStatus(w, c, httpCode, st)
		return st.Code()
	}
	payload := body
	if c.json {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalJSON(body); err != nil {
			// The JSON decoder reports the end of input as a NUL byte.
			msg := strings.ReplaceAll(err.Error(), "\x00", "end of input")
			st := status.New(codes.InvalidArgument, "cannot decode the OTLP/JSON request: "+msg)
			s.writeStatus(w, c, http.StatusBadRequest, st)
			return st.Code()
		}
		var err error
		if payload, err = req.MarshalProto(); err != nil {
			st := status.Newf(codes.Internal, "cannot encode the OTLP/JSON request as protobuf: %v", err)
			s.writeStatus(w, c, http.StatusInternalServerError, st)
			return st.Code()
		}
	}

	res := s.push(r.Context(), r.Header.Get(tenant.Header), payload)
	if res.st != nil {
		s.writeStatus(w, c, httpStatus(res.st.Code()), res.st)
		return res.st.Code()
	}
	out, err := c.marshal(res.response())
	if err != nil {
		st := status.Newf(codes.Internal, "cannot encode the response: %v", err)
		writeText(w, http.StatusInternalServerError, st.Message())
		return st.Code()
	}
	w.Header().Set("Content-Type", c.contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
	return codes.OK
}

// readBody reads the request body, decompressing it if it is gzipped. A
// body over limit, before or after decompression, is refused with 413.
func readBody(r *http.Request, limit int64) ([]byte, int, *status.Status) {
	tooLarge := func(what string) (int, *status.Status) {
		return http.StatusRequestEntityTooLarge, status.Newf(codes.ResourceExhausted,
			"cannot read the request body: %s is larger than the limit of %d bytes (%s)", what, limit, maxRequestBodySizeKey)
	}
	if r.ContentLength > limit {
		code, st := tooLarge("it")
		return nil, code, st
	}
	// Read one byte past the limit to tell a body of exactly the limit from
	// a larger one.
	readLimit := limit
	if readLimit < math.MaxInt64 {
		readLimit++
	}
	raw := &countingReader{r: io.LimitReader(r.Body, readLimit)}
	var (
		reader     io.Reader = raw
		compressed bool
		buf        bytes.Buffer
	)
	switch ce := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
		if r.ContentLength > 0 {
			// Trust the announced length only so far.
			buf.Grow(int(min(r.ContentLength, maxPrealloc)))
		}
	case "gzip", "x-gzip":
		compressed = true
		gz, err := gzip.NewReader(raw)
		if err != nil {
			if r.Context().Err() != nil {
				return nil, statusClientClosedRequest, status.FromContextError(r.Context().Err())
			}
			return nil, http.StatusBadRequest, status.Newf(codes.InvalidArgument, "cannot decompress the gzip request body: %v", err)
		}
		defer func() { _ = gz.Close() }()
		reader = io.LimitReader(gz, readLimit)
	default:
		return nil, http.StatusUnsupportedMediaType, status.Newf(codes.InvalidArgument, "unsupported content encoding %q: use gzip or none", ce)
	}

	_, err := buf.ReadFrom(reader)
	switch {
	case raw.n > limit:
		code, st := tooLarge("it")
		return nil, code, st
	case int64(buf.Len()) > limit:
		code, st := tooLarge("its decompressed content")
		return nil, code, st
	case errors.Is(err, os.ErrDeadlineExceeded): // the server's read deadline, which also cancels the context
		return nil, http.StatusRequestTimeout, status.Newf(codes.DeadlineExceeded,
			"cannot read the request body: the client did not send it within %s", readTimeoutKey)
	case err != nil && r.Context().Err() != nil:
		return nil, statusClientClosedRequest, status.FromContextError(r.Context().Err())
	case err != nil && compressed:
		return nil, http.StatusBadRequest, status.Newf(codes.InvalidArgument, "cannot decompress the gzip request body: %v", err)
	case err != nil:
		return nil, http.StatusBadRequest, status.Newf(codes.InvalidArgument, "cannot read the request body: %v", err)
	}
	return buf.Bytes(), 0, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// httpStatus maps the gRPC code of a failed push to its HTTP status.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Canceled:
		return statusClientClosedRequest
	default:
		return http.StatusInternalServerError
	}
}

// writeStatus answers with st as a google.rpc.Status in the request's
// encoding, and Retry-After on 429 and 503.
func (s *Source) writeStatus(w http.ResponseWriter, c codec, httpCode int, st *status.Status) {
	if httpCode == http.StatusTooManyRequests || httpCode == http.StatusServiceUnavailable {
		delay, ok := retryDelay(st)
		if !ok {
			delay = s.cfg.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(delay), 10))
	}
	// Messages may quote the request, which need not be UTF-8; protobuf
	// strings must be.
	msg := strings.ToValidUTF8(st.Message(), "\uFFFD")
	out, err := c.marshal(&spb.Status{Code: int32(st.Code()), Message: msg})
	if err != nil {
		writeText(w, httpCode, st.Message())
		return
	}
	w.Header().Set("Content-Type", c.contentType)
	w.WriteHeader(httpCode)
	_, _ = w.Write(out)
}

// retryAfterSeconds rounds d up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	secs := int64(math.Ceil(d.Seconds()))
	if secs < 1 {
		return 1
	}
	return secs
}

func writeText(w http.ResponseWriter, httpCode int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpCode)
	_, _ = io.WriteString(w, msg+"\n")
}
