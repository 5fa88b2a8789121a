package traceql

import "testing"

func TestMinSpans(t *testing.T) {
	for q, want := range map[string]int{
		`{ status = error } | count() > 2`:                      3,
		`{ status = error } | count() >= 2`:                     2,
		`{ status = error } | count() = 4`:                      4,
		`{ status = error } | count() > 0`:                      0, // one: no bound
		`{ status = error } | count() < 2`:                      0,
		`{ status = error } | count() > 2.5`:                    0,
		`{ status = error } | avg(duration) > 2`:                0,
		`{ status = error } >> { kind = client } | count() > 2`: 0,
		`{ status = error } | by(name) | count() > 2`:           0,
		`{ status = error }`:                                    0,
		`{ status = error } | count() > 2 | by(name)`:           3,
	} {
		root, err := Parse(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := root.MinSpans(); got != want {
			t.Errorf("%s: MinSpans %d, want %d", q, got, want)
		}
	}
}
