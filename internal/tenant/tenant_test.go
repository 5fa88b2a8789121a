package tenant

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name   string
		multi  bool
		header string
		want   string
		code   codes.Code
	}{
		{"single tenant ignores header", false, "team-a", Single, codes.OK},
		{"multi uses header", true, "team-a", "team-a", codes.OK},
		{"multi allows Tempo punctuation", true, "a!b-c_d.e*f'g(h)", "a!b-c_d.e*f'g(h)", codes.OK},
		{"multi missing header", true, "", "", codes.Unauthenticated},
		{"dot", true, ".", "", codes.InvalidArgument},
		{"dotdot", true, "..", "", codes.InvalidArgument},
		{"slash", true, "a/b", "", codes.InvalidArgument},
		{"pipe is a read-side separator", true, "a|b", "", codes.InvalidArgument},
		{"too long", true, strings.Repeat("a", MaxLength+1), "", codes.InvalidArgument},
		{"longest", true, strings.Repeat("a", MaxLength), strings.Repeat("a", MaxLength), codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.multi, tc.header)
			if status.Code(err) != tc.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tc.code)
			}
			if got != tc.want {
				t.Fatalf("tenant = %q, want %q", got, tc.want)
			}
			if tc.code == codes.Unauthenticated && status.Convert(err).Message() != "no org id" {
				t.Fatalf("message = %q, want %q", status.Convert(err).Message(), "no org id")
			}
		})
	}
}

func TestResolveRead(t *testing.T) {
	tests := []struct {
		name         string
		multi, reads bool
		header       string
		want         []string
		code         codes.Code
	}{
		{"single tenant", false, true, "a|b", []string{Single}, codes.OK},
		{"one tenant", true, true, "a", []string{"a"}, codes.OK},
		{"several", true, true, "a|b|c", []string{"a", "b", "c"}, codes.OK},
		{"repeated", true, true, "a|b|a", []string{"a", "b"}, codes.OK},
		{"empty element", true, true, "a||b", nil, codes.InvalidArgument},
		{"path-like element", true, true, "a|..", nil, codes.InvalidArgument},
		{"slash element", true, true, "a|b/c", nil, codes.InvalidArgument},
		{"multi-tenant reads off", true, false, "a|b", nil, codes.InvalidArgument},
		{"missing", true, true, "", nil, codes.Unauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveRead(tc.multi, tc.reads, tc.header)
			if status.Code(err) != tc.code {
				t.Fatalf("code = %v (%v), want %v", status.Code(err), err, tc.code)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("tenants = %q, want %q", got, tc.want)
			}
		})
	}
}
