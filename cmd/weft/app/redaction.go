package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/backend/redaction"
	"github.com/weftdb/weft/backend/scheduler"
	"github.com/weftdb/weft/internal/tenant"
)

// RedactionsPath is the HTTP route of redaction requests on the backend
// scheduler's HTTP server: POST submits one (a JSON redaction.Spec
// without its tenant, which X-Scope-OrgID gives), GET
// RedactionsPath/{id} reads one.
const RedactionsPath = "/api/backend/redactions"

// maxRedactionBody bounds the body of a redaction request: 10,000 trace
// IDs of 35 bytes, and room.
const maxRedactionBody = 1 << 20

// redactionRoutes serves the redaction requests of s.
func (a *App) redactionRoutes(s *scheduler.Scheduler) {
	resolve := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		t, err := tenant.Resolve(a.cfg.MultitenancyEnabled, r.Header.Get(tenant.Header))
		if err != nil {
			code := http.StatusBadRequest
			if status.Code(err) == codes.Unauthenticated {
				code = http.StatusUnauthorized
			}
			http.Error(w, status.Convert(err).Message(), code)
			return "", false
		}
		return t, true
	}
	reply := func(w http.ResponseWriter, code int, st *scheduler.RequestStatus, err error) {
		switch {
		case errors.Is(err, redaction.ErrInvalid):
			http.Error(w, err.Error(), http.StatusBadRequest)
		case errors.Is(err, scheduler.ErrNoRequest):
			http.Error(w, err.Error(), http.StatusNotFound)
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(st)
		}
	}
	a.routes.HandleFunc("POST "+RedactionsPath, func(w http.ResponseWriter, r *http.Request) {
		ten, ok := resolve(w, r)
		if !ok {
			return
		}
		var spec redaction.Spec
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRedactionBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			s.CountInvalidRedaction()
			reply(w, 0, nil, fmt.Errorf("%w: cannot decode the body (JSON with traceIDs or query, start, end, dryRun): %v", redaction.ErrInvalid, err))
			return
		}
		if spec.Tenant != "" && spec.Tenant != ten {
			s.CountInvalidRedaction()
			reply(w, 0, nil, fmt.Errorf("%w: the body names tenant %q, the request's tenant is %q", redaction.ErrInvalid, spec.Tenant, ten))
			return
		}
		spec.Tenant = ten
		st, err := s.SubmitRedaction(r.Context(), spec)
		reply(w, http.StatusAccepted, st, err)
	})
	a.routes.HandleFunc("GET "+RedactionsPath+"/{id}", func(w http.ResponseWriter, r *http.Request) {
		ten, ok := resolve(w, r)
		if !ok {
			return
		}
		st, err := s.RedactionStatus(ten, r.PathValue("id"))
		reply(w, http.StatusOK, st, err)
	})
}
