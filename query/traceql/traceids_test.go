package traceql

import (
	"encoding/hex"
	"testing"
)

func TestTraceIDs(t *testing.T) {
	const a, b = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	for _, tc := range []struct {
		q    string
		ok   bool
		want []string
	}{
		{`{ trace:id = "` + a + `" }`, true, []string{a}},
		{`{ "` + a + `" = trace:id && span.x = 1 }`, true, []string{a}},
		{`{ trace:id = "` + a + `" } || { trace:id = "` + b + `" }`, true, []string{a, b}},
		{`{ trace:id = "` + a + `" } && { trace:id = "` + a + `" }`, true, []string{a}},
		{`{ trace:id = "` + a + `" } | count() > 1`, true, []string{a}},
		{`{ trace:id = "ABCDEF" }`, true, nil},                           // never a rendered trace ID
		{`{ trace:id = "0123456789ABCDEF0123456789ABCDEF" }`, true, nil}, // upper case never matches
		{`{ trace:id = "` + a + `" } >> { span.x = 1 }`, false, nil},     // the right side may be any trace
		{`{ trace:id = "` + a + `" || span.x = 1 }`, false, nil},         // || inside the filter
		{`{ trace:id != "` + a + `" }`, false, nil},
		{`{ span.x = 1 }`, false, nil},
		{`{}`, false, nil},
	} {
		root, err := Parse(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		ids, ok := root.TraceIDs()
		var got []string
		for _, id := range ids {
			got = append(got, hex.EncodeToString(id[:]))
		}
		if ok != tc.ok || len(got) != len(tc.want) {
			t.Errorf("%s: TraceIDs = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: TraceIDs = %v; want %v", tc.q, got, tc.want)
			}
		}
	}
}
