package redactcli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// weft redact refuses a bad command line before it dials anything, naming
// the problem.
func TestRedactFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-trace-id", "ab"}, "address"},
		{[]string{"-trace-id", "ab", "a:1", "b:2"}, "address"},
		{[]string{"127.0.0.1:1"}, "give trace IDs or a query"},
		{[]string{"-trace-id", "ab", "-query", `{ span.a = "b" }`, "127.0.0.1:1"}, "not both"},
		{[]string{"-query", `{ span.a != "b" }`, "127.0.0.1:1"}, "operator !="},
		{[]string{"-trace-id", "xyz", "127.0.0.1:1"}, "not hex"},
		{[]string{"-trace-id", "ab", "-start", "yesterday", "127.0.0.1:1"}, "-start"},
		{[]string{"-trace-id", "ab", "-start", "2026-12-02T00:00:00Z", "-end", "1764547200", "127.0.0.1:1"}, "after end"},
	} {
		var out, errOut bytes.Buffer
		err := Redact(context.Background(), tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}
