package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weftdb/weft/cmd/weft/config"
	"github.com/weftdb/weft/internal/block"
	"github.com/weftdb/weft/internal/otlpwire"
	"github.com/weftdb/weft/internal/spangen"
	"github.com/weftdb/weft/internal/tenant"
	"github.com/weftdb/weft/query/streaming/tempopb"
)

// streamPacket is the max_grpc_streaming_packet_size of the streaming
// tests: small, so that the answers are cut in several messages.
const streamPacket = 16 << 10

// Blocks of the streaming tests: many row groups each, one search job per
// row group, so that a search over them with one job at a time reads for
// a few seconds.
const (
	streamBlocks = 24
	streamTraces = 400 // per block
)

// startStreamingWeft runs weft over streamBlocks blocks written before it
// starts, with one search job at a time, so that a search over them runs
// long enough to send progress, and the streaming API on the HTTP port too.
func startStreamingWeft(t *testing.T) *App {
	t.Helper()
	dir := t.TempDir()
	bkt := localBucketAt(t, dir+"/blocks")
	for i := range streamBlocks {
		buf := block.NewBuffer(nil)
		td := spangen.Generate(spangen.Options{Seed: uint64(1000 + i), Traces: streamTraces, SpansPerTrace: 6, Services: 3, Start: time.Now().Add(-time.Hour)})
		var b otlpwire.Batch
		if err := b.Parse(spangen.Marshal(td)); err != nil {
			t.Fatal(err)
		}
		if err := buf.Add(&b); err != nil {
			t.Fatal(err)
		}
		_, err := block.Write(context.Background(), bkt, tenant.Single, uuid.New(), block.Source{}, buf, block.WriteOptions{RowGroupBytes: 4 << 10, PageBytes: 4 << 10})
		buf.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	a := startWeft(t, func(c *config.Config) {
		c.Storage.Trace.Store.Local.Path = dir + "/blocks"
		c.StreamOverHTTPEnabled = true
		c.QueryFrontend.MaxGRPCStreamingPacketSize = streamPacket
		c.QueryFrontend.Search.ConcurrentJobs = 1
		c.QueryFrontend.Search.TargetBytesPerJob = 1 // a job per row group
		// No compaction: the blocks stay as written, the jobs the same
		// from search to search.
		c.BackendScheduler.Provider.Compaction.MinInputBlocks = 1000
		c.BackendScheduler.Provider.Compaction.MaxInputBlocks = 1000
		// The searches read for seconds, more on a loaded machine.
		c.QueryFrontend.Search.QueryTimeout = 2 * time.Minute
		c.Server.HTTPServerWriteTimeout = 2 * time.Minute
	})
	get(t, "http://"+a.HTTPAddr()+"/ready", "", http.StatusOK)
	return a
}

func streamClient(t *testing.T, addr string) tempopb.StreamingQuerierClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return tempopb.NewStreamingQuerierClient(conn)
}

// recvAll reads a stream to its end: every message, or the error.
func recvAll[T proto.Message](t *testing.T, s interface{ Recv() (T, error) }) ([]T, error) {
	t.Helper()
	var out []T
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n := proto.Size(m); n > streamPacket {
			t.Errorf("a message of %d bytes, over max_grpc_streaming_packet_size %d", n, streamPacket)
		}
		out = append(out, m)
	}
}

// httpProto answers a GET of the HTTP API as protobuf into m, and returns
// its size.
func httpProto(t *testing.T, a *App, path string, m proto.Message) int {
	t.Helper()
	code, body, _ := fetch(t, "http://"+a.HTTPAddr()+path, "application/protobuf", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := proto.Unmarshal(body, m); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return len(body)
}

// A search over the gRPC port and over the HTTP port
// (stream_over_http_enabled) sends its progress before the final answer,
// in messages within max_grpc_streaming_packet_size; the traces a client
// keeps (the last version of each trace received, as Grafana does) are
// /api/search's answer, trace for trace. Tag names, tag values and metrics
// over the stream are their HTTP answers.
func TestStreamingAPI(t *testing.T) {
	a := startStreamingWeft(t)
	now := time.Now()
	start, end := now.Add(-2*time.Hour), now.Add(time.Minute)
	q := `{ }`
	var want tempopb.SearchResponse
	wantBytes := httpProto(t, a, "/api/search?limit=10000&q="+url.QueryEscape(q)+"&start="+itoa(start.Unix())+"&end="+itoa(end.Unix()), &want)
	if len(want.Traces) != streamBlocks*streamTraces {
		t.Fatalf("/api/search found %d traces, want %d", len(want.Traces), streamBlocks*streamTraces)
	}
	if wantBytes <= 2*streamPacket {
		t.Fatalf("the answer is %d bytes: too small to be cut at %d", wantBytes, streamPacket)
	}
	for _, port := range []struct{ name, addr string }{{"grpc", a.GRPCAddr()}, {"http", a.HTTPAddr()}} {
		t.Run(port.name, func(t *testing.T) {
			c := streamClient(t, port.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			stream, err := c.Search(ctx, &tempopb.SearchRequest{Query: q, Limit: 10000, Start: uint32(start.Unix()), End: uint32(end.Unix())})
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := recvAll[*tempopb.SearchResponse](t, stream)
			if err != nil {
				t.Fatal(err)
			}
			total := msgs[len(msgs)-1].GetMetrics().GetTotalJobs()
			if first := msgs[0].GetMetrics(); first.GetCompletedJobs() >= total || len(msgs[0].Traces) == 0 {
				t.Fatalf("the first of %d messages has %d of %d jobs completed and %d traces: no progress before the final answer",
					len(msgs), first.GetCompletedJobs(), total, len(msgs[0].Traces))
			}
			kept := map[string]*tempopb.TraceSearchMetadata{}
			for _, m := range msgs {
				for _, tr := range m.Traces {
					kept[tr.TraceID] = tr
				}
			}
			if len(kept) != len(want.Traces) {
				t.Fatalf("the stream gave %d traces in %d messages, /api/search %d", len(kept), len(msgs), len(want.Traces))
			}
			for _, w := range want.Traces {
				if got := kept[w.TraceID]; !proto.Equal(got, w) {
					t.Fatalf("trace %s: stream %v, /api/search %v", w.TraceID, got, w)
				}
			}
			progress := 0
			for _, m := range msgs {
				if m.GetMetrics().GetCompletedJobs() < total {
					progress++
				}
			}
			t.Logf("%d messages (%d of them progress before all jobs completed), %d traces, %d jobs", len(msgs), progress, len(kept), total)
		})
	}

	c := streamClient(t, a.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	times := "&start=" + itoa(start.Unix()) + "&end=" + itoa(end.Unix())

	var wantTags tempopb.SearchTagsV2Response
	httpProto(t, a, "/api/v2/search/tags?"+times[1:], &wantTags)
	tagsStream, err := c.SearchTagsV2(ctx, &tempopb.SearchTagsRequest{Start: uint32(start.Unix()), End: uint32(end.Unix())})
	if err != nil {
		t.Fatal(err)
	}
	tagMsgs, err := recvAll[*tempopb.SearchTagsV2Response](t, tagsStream)
	if err != nil {
		t.Fatal(err)
	}
	gotScopes := map[string][]string{}
	for _, m := range tagMsgs {
		for _, sc := range m.Scopes {
			gotScopes[sc.Name] = append(gotScopes[sc.Name], sc.Tags...)
		}
	}
	for _, sc := range wantTags.Scopes {
		if !slices.Equal(gotScopes[sc.Name], sc.Tags) {
			t.Errorf("scope %s: stream %v, HTTP %v", sc.Name, gotScopes[sc.Name], sc.Tags)
		}
	}
	if len(gotScopes) != len(wantTags.Scopes) || len(wantTags.Scopes) == 0 {
		t.Errorf("stream scopes %v, HTTP %v", gotScopes, wantTags.Scopes)
	}

	var wantNames tempopb.SearchTagsResponse
	httpProto(t, a, "/api/search/tags?"+times[1:], &wantNames)
	namesStream, err := c.SearchTags(ctx, &tempopb.SearchTagsRequest{Start: uint32(start.Unix()), End: uint32(end.Unix())})
	if err != nil {
		t.Fatal(err)
	}
	nameMsgs, err := recvAll[*tempopb.SearchTagsResponse](t, namesStream)
	if err != nil {
		t.Fatal(err)
	}
	var gotNames []string
	for _, m := range nameMsgs {
		gotNames = append(gotNames, m.TagNames...)
	}
	if !slices.Equal(gotNames, wantNames.TagNames) || len(gotNames) == 0 {
		t.Errorf("tag names: stream %v, HTTP %v", gotNames, wantNames.TagNames)
	}

	var wantValues tempopb.SearchTagValuesV2Response
	httpProto(t, a, "/api/v2/search/tag/span:name/values?"+times[1:], &wantValues)
	valuesStream, err := c.SearchTagValuesV2(ctx, &tempopb.SearchTagValuesRequest{TagName: "span:name", Start: uint32(start.Unix()), End: uint32(end.Unix())})
	if err != nil {
		t.Fatal(err)
	}
	valueMsgs, err := recvAll[*tempopb.SearchTagValuesV2Response](t, valuesStream)
	if err != nil {
		t.Fatal(err)
	}
	var gotValues []*tempopb.TagValue
	for _, m := range valueMsgs {
		gotValues = append(gotValues, m.TagValues...)
	}
	if len(gotValues) != len(wantValues.TagValues) || len(gotValues) == 0 {
		t.Fatalf("tag values: stream %v, HTTP %v", gotValues, wantValues.TagValues)
	}
	for i := range gotValues {
		if !proto.Equal(gotValues[i], wantValues.TagValues[i]) {
			t.Errorf("tag value %d: stream %v, HTTP %v", i, gotValues[i], wantValues.TagValues[i])
		}
	}

	var wantV1 tempopb.SearchTagValuesResponse
	httpProto(t, a, "/api/search/tag/service.name/values?"+times[1:], &wantV1)
	v1Stream, err := c.SearchTagValues(ctx, &tempopb.SearchTagValuesRequest{TagName: "service.name", Start: uint32(start.Unix()), End: uint32(end.Unix())})
	if err != nil {
		t.Fatal(err)
	}
	v1Msgs, err := recvAll[*tempopb.SearchTagValuesResponse](t, v1Stream)
	if err != nil {
		t.Fatal(err)
	}
	var gotV1 []string
	for _, m := range v1Msgs {
		gotV1 = append(gotV1, m.TagValues...)
	}
	if !slices.Equal(gotV1, wantV1.TagValues) || len(gotV1) == 0 {
		t.Errorf("tag values v1: stream %v, HTTP %v", gotV1, wantV1.TagValues)
	}

	mq := `{ } | count_over_time() by (resource.service.name)`
	mstart, mend := now.Add(-90*time.Minute).Truncate(time.Minute), now.Truncate(time.Minute)
	var wantRange tempopb.QueryRangeResponse
	httpProto(t, a, "/api/metrics/query_range?q="+url.QueryEscape(mq)+"&start="+strconv.FormatInt(mstart.UnixNano(), 10)+
		"&end="+strconv.FormatInt(mend.UnixNano(), 10)+"&step=60s", &wantRange)
	rangeStream, err := c.MetricsQueryRange(ctx, &tempopb.QueryRangeRequest{Query: mq, Start: uint64(mstart.UnixNano()), End: uint64(mend.UnixNano()), Step: uint64(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	rangeMsgs, err := recvAll[*tempopb.QueryRangeResponse](t, rangeStream)
	if err != nil {
		t.Fatal(err)
	}
	var gotSeries []*tempopb.TimeSeries
	for _, m := range rangeMsgs {
		gotSeries = append(gotSeries, m.Series...)
	}
	if len(gotSeries) != len(wantRange.Series) || len(gotSeries) == 0 {
		t.Fatalf("metrics: stream %d series, HTTP %d", len(gotSeries), len(wantRange.Series))
	}
	for i := range gotSeries {
		// Which spans are exemplars, and how many, is not the same from
		// query to query.
		gotSeries[i].Exemplars, wantRange.Series[i].Exemplars = nil, nil
		if !proto.Equal(gotSeries[i], wantRange.Series[i]) {
			t.Errorf("series %d: stream %v, HTTP %v", i, gotSeries[i], wantRange.Series[i])
		}
	}

	var wantInstant tempopb.QueryInstantResponse
	httpProto(t, a, "/api/metrics/query?q="+url.QueryEscape(mq)+"&start="+strconv.FormatInt(mstart.UnixNano(), 10)+
		"&end="+strconv.FormatInt(mend.UnixNano(), 10), &wantInstant)
	instantStream, err := c.MetricsQueryInstant(ctx, &tempopb.QueryInstantRequest{Query: mq, Start: uint64(mstart.UnixNano()), End: uint64(mend.UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	instantMsgs, err := recvAll[*tempopb.QueryInstantResponse](t, instantStream)
	if err != nil {
		t.Fatal(err)
	}
	var gotInstant []*tempopb.InstantSeries
	for _, m := range instantMsgs {
		gotInstant = append(gotInstant, m.Series...)
	}
	if len(gotInstant) != len(wantInstant.Series) || len(gotInstant) == 0 {
		t.Fatalf("instant: stream %d series, HTTP %d", len(gotInstant), len(wantInstant.Series))
	}
	for i := range gotInstant {
		if !proto.Equal(gotInstant[i], wantInstant.Series[i]) {
			t.Errorf("instant series %d: stream %v, HTTP %v", i, gotInstant[i], wantInstant.Series[i])
		}
	}

	// A bad query is InvalidArgument with the HTTP API's wording.
	_, badBody, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/search?q=%7B", "", "")
	bad, err := c.Search(ctx, &tempopb.SearchRequest{Query: "{"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = recvAll[*tempopb.SearchResponse](t, bad)
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message()+"\n" != string(badBody) {
		t.Errorf("bad query: %v, want InvalidArgument %q", err, badBody)
	}
}

// With multi-tenancy on, a call without x-scope-orgid fails as the HTTP
// API's request does (Unauthenticated, "no org id"), and one with it is
// answered for that tenant.
func TestStreamingTenant(t *testing.T) {
	a := startWeft(t, func(c *config.Config) { c.MultitenancyEnabled = true })
	_, body, _ := fetch(t, "http://"+a.HTTPAddr()+"/api/search?q=%7B%7D", "", "")
	c := streamClient(t, a.GRPCAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Search(ctx, &tempopb.SearchRequest{Query: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = recvAll[*tempopb.SearchResponse](t, s)
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message()+"\n" != string(body) {
		t.Errorf("no org id: %v, want Unauthenticated %q", err, body)
	}
	s, err = c.Search(metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", "team-a"), &tempopb.SearchRequest{Query: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := recvAll[*tempopb.SearchResponse](t, s)
	if err != nil || len(msgs) == 0 {
		t.Errorf("with x-scope-orgid: %d messages, %v", len(msgs), err)
	}
	tags, err := c.SearchTags(ctx, &tempopb.SearchTagsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = recvAll[*tempopb.SearchTagsResponse](t, tags); status.Code(err) != codes.Unauthenticated {
		t.Errorf("tags without org id: %v, want Unauthenticated", err)
	}
}

// GET /status/config shows the effective configuration with the S3 secret
// key redacted and the rest as configured; ?mode=diff and ?mode=defaults
// as Tempo's.
func TestStatusConfig(t *testing.T) {
	a := startWeft(t, func(c *config.Config) {
		c.Storage.Trace.Store.S3.Bucket = "status-bucket"
		c.Storage.Trace.Store.S3.AccessKey = "AKIDSTATUS"
		c.Storage.Trace.Store.S3.SecretKey = "status-secret-value"
		c.QueryFrontend.Search.ConcurrentJobs = 3
	})
	body := string(get(t, "http://"+a.HTTPAddr()+"/status/config", "", http.StatusOK))
	if strings.Contains(body, "status-secret-value") {
		t.Errorf("/status/config shows the S3 secret key:\n%s", body)
	}
	for _, want := range []string{"bucket: status-bucket", "access_key: AKIDSTATUS", "secret_key: '" + config.Redacted + "'", "concurrent_jobs: 3", "stream_over_http_enabled: false"} {
		if !strings.Contains(body, want) {
			t.Errorf("/status/config lacks %q:\n%s", want, body)
		}
	}
	diff := string(get(t, "http://"+a.HTTPAddr()+"/status/config?mode=diff", "", http.StatusOK))
	if !strings.Contains(diff, "concurrent_jobs: 3") || strings.Contains(diff, "max_result_limit") || strings.Contains(diff, "status-secret-value") {
		t.Errorf("/status/config?mode=diff:\n%s", diff)
	}
	defaults := string(get(t, "http://"+a.HTTPAddr()+"/status/config?mode=defaults", "", http.StatusOK))
	if strings.Contains(defaults, "status-bucket") || !strings.Contains(defaults, "concurrent_jobs: 1000") {
		t.Errorf("/status/config?mode=defaults:\n%s", defaults)
	}
	get(t, "http://"+a.HTTPAddr()+"/status/config?mode=all", "", http.StatusBadRequest)
}
