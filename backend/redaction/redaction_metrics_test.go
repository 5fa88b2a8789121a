package redaction

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQueryRefusesMetrics(t *testing.T) {
	_, err := ParseQuery(`{ resource.a = "x" } | rate()`)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "a metrics function is not allowed") {
		t.Fatalf("err = %v", err)
	}
}
