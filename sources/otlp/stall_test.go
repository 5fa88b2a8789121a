package otlp

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
)

// TestGRPCStalledMessage plays a client that starts an export call and
// stops in the middle of its message, over raw HTTP/2: once
// protocols.grpc.read_timeout has passed the call ends with
// DEADLINE_EXCEEDED naming the key, the admission is released, nothing is
// pushed, and the call is counted.
func TestGRPCStalledMessage(t *testing.T) {
	out := &fakeOutput{}
	adm := &switchAdmission{}
	s, _ := startAdmitting(t, out, adm, func(c *Config) { c.Protocols.GRPC.ReadTimeout = 300 * time.Millisecond })
	addr, _ := s.Addrs()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", exportMethod}, {":authority", addr},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// The gRPC message prefix announces 100 bytes; 5 follow, then nothing.
	if err := fr.WriteData(1, false, []byte{0, 0, 0, 0, 100, 1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	dec := hpack.NewDecoder(4096, nil)
	var grpcStatus, grpcMessage string
	for grpcStatus == "" {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %s, no grpc-status: %v", time.Since(start), err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				switch hf.Name {
				case "grpc-status":
					grpcStatus = hf.Value
				case "grpc-message":
					grpcMessage = hf.Value
				}
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset (%v) before a grpc-status", f.ErrCode)
		}
	}
	took := time.Since(start)
	if grpcStatus != "4" || !strings.Contains(grpcMessage, "read_timeout") || took < 250*time.Millisecond || took > 5*time.Second {
		t.Fatalf("after %s: grpc-status %q, message %q; want 4 (DEADLINE_EXCEEDED) naming read_timeout after 300ms", took, grpcStatus, grpcMessage)
	}
	if n := len(out.messages()); n != 0 {
		t.Errorf("%d messages pushed, want none", n)
	}
	if adm.asked.Load() != 1 || adm.doneCalls.Load() != 1 {
		t.Errorf("admission asked %d times and done %d times, want 1 and 1", adm.asked.Load(), adm.doneCalls.Load())
	}
	if got := testutil.ToFloat64(s.metrics.requests.WithLabelValues(protocolGRPC, codes.DeadlineExceeded.String())); got != 1 {
		t.Errorf("weft_otlp_requests_total{protocol=grpc,code=DeadlineExceeded} = %v, want 1", got)
	}
}
