package config

import (
	"strings"
	"testing"
)

// The keys bounding the cost of a query decode, and bad values are
// refused naming them.
func TestQueryCostKeys(t *testing.T) {
	c, _, err := Load("weft.yaml", []byte(`query_frontend:
  max_query_pipeline_stages: 10
  max_query_regex_size: 5000
  search:
    max_result_bytes: 1048576
    max_tag_read_bytes: 2097152
`), false)
	if err != nil {
		t.Fatal(err)
	}
	q := c.QueryFrontend
	if q.MaxQueryPipelineStages != 10 || q.MaxQueryRegexSize != 5000 || q.Search.MaxResultBytes != 1<<20 || q.Search.MaxTagReadBytes != 2<<20 {
		t.Fatalf("decoded %+v", q)
	}
	d := Default().QueryFrontend
	if d.MaxQueryPipelineStages != 64 || d.MaxQueryRegexSize != 20000 || d.Search.MaxResultBytes != 256<<20 || d.Search.MaxTagReadBytes != 256<<20 {
		t.Fatalf("defaults %+v", d)
	}
	_, _, err = Load("weft.yaml", []byte(`query_frontend:
  max_query_pipeline_stages: 0
  max_query_regex_size: -1
  search:
    max_result_bytes: -1
    max_tag_read_bytes: -1
`), false)
	for _, want := range []string{"max_query_pipeline_stages: must be positive", "max_query_regex_size: must be positive", "search.max_result_bytes: must not be negative", "search.max_tag_read_bytes: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to contain %q", err, want)
		}
	}
}
