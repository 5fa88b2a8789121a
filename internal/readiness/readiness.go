// Package readiness gathers the conditions under which a process is not
// ready to do its work. A component that can lose that ability while it
// runs (a write-ahead log that cannot be written, object storage that
// cannot be reached) adds a named check; /ready answers 503 and lists every
// failing check by name while any fails, and 200 again once all pass.
package readiness

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Check reports nil while its component can do its work, else why not. It
// is called on every /ready request, so it must be cheap and must not block:
// return a state the component keeps, never probe a remote service here.
type Check func() error

// Set is the checks of one process. The zero value is empty and ready; a
// nil *Set is always ready and ignores Add. It is safe for concurrent use.
type Set struct {
	mu     sync.RWMutex
	checks map[string]Check
}

// Add registers check under name, replacing a check of the same name.
func (s *Set) Add(name string, check Check) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.checks == nil {
		s.checks = map[string]Check{}
	}
	s.checks[name] = check
}

// Err runs every check and returns nil when all pass, else one error that
// names each failing check, in name order.
func (s *Set) Err() error {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	names := make([]string, 0, len(s.checks))
	for name := range s.checks {
		names = append(names, name)
	}
	s.mu.RUnlock()
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		s.mu.RLock()
		check := s.checks[name]
		s.mu.RUnlock()
		if err := check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
