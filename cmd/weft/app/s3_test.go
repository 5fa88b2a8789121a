package app

import (
	"context"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
)

// Spans pushed to a weft whose blocks go to S3 (MinIO on loopback) are read
// back from S3 by a new process that has nothing in memory and an empty WAL.
func TestBlocksInS3(t *testing.T) {
	s3cfg := s3test.Start(t)
	useS3 := func(c *config.Config) {
		c.Storage.Trace.Store.Backend = storage.BackendS3
		c.Storage.Trace.Store.S3 = s3cfg
	}
	a := startWeft(t, useS3)
	_, exp := exporters(t, a)
	sent := sendTraces(t, exp, "to-s3", 30)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil { // uploads every open block
		t.Fatal(err)
	}

	b := startWeft(t, useS3) // new WAL directory, empty live-store
	byTrace := map[trace.TraceID][]tracetest.SpanStub{}
	for _, s := range sent {
		byTrace[s.SpanContext.TraceID()] = append(byTrace[s.SpanContext.TraceID()], s)
	}
	for tid, want := range byTrace {
		body := get(t, "http://"+b.HTTPAddr()+"/api/traces/"+hex.EncodeToString(tid[:]), "application/protobuf", http.StatusOK)
		compareTrace(t, "from S3", want, decodeV1Proto(t, body))
	}
}
