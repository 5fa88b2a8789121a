package readiness

import (
	"errors"
	"strings"
	"testing"
)

func TestSet(t *testing.T) {
	var nilSet *Set
	nilSet.Add("x", func() error { return errors.New("never seen") })
	if err := nilSet.Err(); err != nil {
		t.Fatalf("nil set: %v", err)
	}
	var s Set
	if err := s.Err(); err != nil {
		t.Fatalf("empty set: %v", err)
	}
	walErr := errors.New("no space left on device")
	var failing error = walErr
	s.Add("wal", func() error { return failing })
	s.Add("storage", func() error { return nil })
	err := s.Err()
	if err == nil || !errors.Is(err, walErr) || !strings.Contains(err.Error(), "wal: no space left on device") {
		t.Fatalf("failing check: got %v", err)
	}
	s.Add("storage", func() error { return errors.New("unreachable") })
	if got := s.Err().Error(); strings.Index(got, "storage:") > strings.Index(got, "wal:") {
		t.Fatalf("checks not in name order: %q", got)
	}
	failing = nil
	s.Add("storage", func() error { return nil })
	if err := s.Err(); err != nil {
		t.Fatalf("recovered: %v", err)
	}
}
