package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weftdb/weft/query/search"
)

// slowTagger answers after stop is closed or its context is done,
// whichever comes first (then with the context's error, as the searcher
// does).
type slowTagger struct {
	fakeTagger
	stop chan struct{}
}

func (s *slowTagger) wait(ctx context.Context) error {
	select {
	case <-s.stop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slowTagger) TagNames(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagNamesResponse, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.fakeTagger.TagNames(ctx, req, tenant)
}

func (s *slowTagger) TagNamesV2(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagNamesV2Response, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.fakeTagger.TagNamesV2(ctx, req, tenant)
}

func (s *slowTagger) TagValues(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagValuesResponse, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.fakeTagger.TagValues(ctx, req, tenant)
}

func (s *slowTagger) TagValuesV2(ctx context.Context, req search.TagsRequest, tenant string) (*search.TagValuesV2Response, error) {
	if err := s.wait(ctx); err != nil {
		return nil, err
	}
	return s.fakeTagger.TagValuesV2(ctx, req, tenant)
}

// Every tag route is bounded by the tag query timeout: past it the client
// gets 504 naming query_frontend.search.query_timeout (they had no bound:
// a tag-values request read 817 MB for 22 s).
func TestTagRoutesTimeout(t *testing.T) {
	tg := &slowTagger{stop: make(chan struct{})}
	// The tagger answers by itself after 3 s: without a timeout the
	// routes answer 200 then.
	timer := time.AfterFunc(3*time.Second, func() { close(tg.stop) })
	defer timer.Stop()
	h, err := New(Options{Finder: &fakeFinder{}, Tagger: tg, TagQueryTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/search/tags", "/api/v2/search/tags", "/api/search/tag/service.name/values", "/api/v2/search/tag/.service.name/values"} {
		res := do(t, h, "GET", target)
		if res.code != 504 || !strings.Contains(string(res.body), "tag look-up did not finish within 50ms (query_frontend.search.query_timeout)") {
			t.Errorf("%s: %d %s, want 504 naming query_frontend.search.query_timeout", target, res.code, res.body)
		}
	}
	// With no timeout, a slow tagger is waited for.
	h, err = New(Options{Finder: &fakeFinder{}, Tagger: &slowTagger{stop: closed()}})
	if err != nil {
		t.Fatal(err)
	}
	if res := do(t, h, "GET", "/api/search/tags"); res.code != 200 {
		t.Errorf("no timeout: %d %s", res.code, res.body)
	}
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// The tag routes pass query_frontend.search.max_tag_read_bytes on to the
// tagger.
func TestTagRoutesReadBytes(t *testing.T) {
	f := &fakeTagger{}
	h, err := New(Options{Finder: &fakeFinder{}, Tagger: f, MaxTagReadBytes: 77})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/api/search/tags", "/api/v2/search/tags", "/api/search/tag/a/values", "/api/v2/search/tag/.a/values"} {
		if res := do(t, h, "GET", target); res.code != 200 || f.req.MaxReadBytes != 77 {
			t.Errorf("%s: %d, MaxReadBytes %d", target, res.code, f.req.MaxReadBytes)
		}
	}
}
