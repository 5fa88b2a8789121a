// Package tenant resolves and checks tenant IDs the way Grafana Tempo does:
// from the X-Scope-OrgID header (x-scope-orgid in gRPC metadata) when
// multi-tenancy is on, and the fixed "single-tenant" otherwise. Reads may
// name several tenants, "a|b|c" (ResolveRead).
package tenant

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const (
	// Header is the HTTP header that names the tenant.
	Header = "X-Scope-OrgID"
	// MetadataKey is the gRPC metadata key that names the tenant.
	MetadataKey = "x-scope-orgid"
	// Single is the tenant every request belongs to when multi-tenancy is off.
	Single = "single-tenant"
	// MaxLength is the longest tenant ID accepted, as in Tempo.
	MaxLength = 150
)

// Resolve returns the tenant of a request that carried orgID in its tenant
// header. With multi-tenancy off the header is ignored. Errors carry a gRPC
// status: Unauthenticated ("no org id") when the header is missing,
// InvalidArgument when the ID is not valid.
func Resolve(multitenancy bool, orgID string) (string, error) {
	if !multitenancy {
		return Single, nil
	}
	if orgID == "" {
		return "", status.Error(codes.Unauthenticated, "no org id")
	}
	if err := Validate(orgID); err != nil {
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	return orgID, nil
}

// ReadSeparator separates the tenants of a multi-tenant read, as in
// "X-Scope-OrgID: a|b|c".
const ReadSeparator = "|"

// ResolveRead is Resolve for queries: with multi-tenancy on and multi true,
// orgID may name several tenants separated by "|", and the query covers
// them all. Each is checked as by Validate; repeated ones are dropped. The
// result has at least one tenant.
func ResolveRead(multitenancy, multi bool, orgID string) ([]string, error) {
	if !multitenancy || !multi || !strings.Contains(orgID, ReadSeparator) {
		t, err := Resolve(multitenancy, orgID)
		if err != nil {
			return nil, err
		}
		return []string{t}, nil
	}
	var out []string
	for id := range strings.SplitSeq(orgID, ReadSeparator) {
		if err := Validate(id); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%v (in the multi-tenant read %q)", err, orgID)
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// Validate checks a tenant ID: 1 to 150 characters among ASCII letters,
// digits and ! - _ . * ' ( ), and neither "." nor "..", so that it is safe as
// a path element in object storage.
func Validate(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("invalid tenant ID: empty")
	case len(id) > MaxLength:
		return fmt.Errorf("invalid tenant ID: longer than %d characters", MaxLength)
	case id == "." || id == "..":
		return fmt.Errorf("invalid tenant ID %q: not allowed", id)
	}
	for i := 0; i < len(id); i++ {
		if !allowed(id[i]) {
			return fmt.Errorf("invalid tenant ID %q: character %q at position %d is not allowed (letters, digits and !-_.*'() only)", id, id[i], i)
		}
	}
	return nil
}

func allowed(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}
