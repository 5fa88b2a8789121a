package scheduler

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/backend/redaction"
	"github.com/weftdb/weft/internal/grpcjson"
)

// This file serves the scheduler to workers of other processes over gRPC,
// and is those workers' client. The service is internal (same weft
// version): weft.backend.v1.Scheduler/Next and /Update for workers, and
// /SubmitRedaction and /RedactionStatus for operators (weft redact),
// unary calls whose messages are the structs below as JSON
// (internal/grpcjson).

const (
	serviceName  = "weft.backend.v1.Scheduler"
	nextMethod   = "/" + serviceName + "/Next"
	updateMethod = "/" + serviceName + "/Update"
	submitMethod = "/" + serviceName + "/SubmitRedaction"
	statusMethod = "/" + serviceName + "/RedactionStatus"
)

// statusRequest asks for a redaction request's status.
type statusRequest struct {
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
}

type nextRequest struct {
	Worker string `json:"worker"`
}

type nextResponse struct {
	Job *Job `json:"job,omitempty"` // nil: no job within job_timeout
}

type updateRequest struct {
	Worker  string  `json:"worker"`
	Job     string  `json:"job"`
	Outcome Outcome `json:"outcome"`
	Error   string  `json:"error,omitempty"`
	// Result is what a redaction job reports with Done.
	Result *Result `json:"result,omitempty"`
}

type updateResponse struct{}

// server is what the gRPC service serves.
type server interface {
	Next(ctx context.Context, worker string) (*Job, error)
	Update(ctx context.Context, worker, id string, o Outcome, errMsg string, res ...*Result) error
	SubmitRedaction(ctx context.Context, spec redaction.Spec) (*RequestStatus, error)
	RedactionStatus(tenant, id string) (*RequestStatus, error)
}

// RegisterService serves s's Next and Update on gs.
func RegisterService(gs *grpc.Server, s *Scheduler) {
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName,
		HandlerType: (*server)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Next",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var req nextRequest
				if err := dec(&req); err != nil || req.Worker == "" {
					return nil, status.Errorf(codes.InvalidArgument, "cannot decode the request for a job (a worker name is needed): %v", err)
				}
				j, err := srv.(server).Next(ctx, req.Worker)
				if errors.Is(err, ErrNoJob) {
					return &nextResponse{}, nil
				}
				if err != nil {
					return nil, status.Errorf(codes.Unavailable, "cannot hand out a job: %v", err)
				}
				return &nextResponse{Job: j}, nil
			},
		}, {
			MethodName: "Update",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var req updateRequest
				if err := dec(&req); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "cannot decode a job update: %v", err)
				}
				err := srv.(server).Update(ctx, req.Worker, req.Job, req.Outcome, req.Error, req.Result)
				switch {
				case errors.Is(err, ErrNotYours):
					return nil, status.Error(codes.FailedPrecondition, err.Error())
				case err != nil:
					return nil, status.Errorf(codes.Unavailable, "cannot record the job update: %v", err)
				}
				return &updateResponse{}, nil
			},
		}, {
			MethodName: "SubmitRedaction",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var spec redaction.Spec
				if err := dec(&spec); err != nil {
					if s, ok := srv.(*Scheduler); ok {
						s.CountInvalidRedaction()
					}
					return nil, status.Errorf(codes.InvalidArgument, "cannot decode the redaction request: %v", err)
				}
				st, err := srv.(server).SubmitRedaction(ctx, spec)
				if err != nil {
					return nil, redactionStatusError(err)
				}
				return st, nil
			},
		}, {
			MethodName: "RedactionStatus",
			Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var req statusRequest
				if err := dec(&req); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "cannot decode the status request: %v", err)
				}
				st, err := srv.(server).RedactionStatus(req.Tenant, req.ID)
				if err != nil {
					return nil, redactionStatusError(err)
				}
				return st, nil
			},
		}},
		Metadata: "weft/backend/scheduler/grpc.go",
	}, s)
}

// redactionStatusError is the gRPC status of a redaction call's error.
func redactionStatusError(err error) error {
	switch {
	case errors.Is(err, redaction.ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrNoRequest):
		return status.Error(codes.NotFound, err.Error())
	default:
		return status.Error(codes.Unavailable, err.Error())
	}
}

// SubmitRedaction asks the scheduler to redact what spec names, and
// returns the queued request.
func (c *Client) SubmitRedaction(ctx context.Context, spec redaction.Spec) (*RequestStatus, error) {
	var st RequestStatus
	if err := c.conn.Invoke(ctx, submitMethod, &spec, &st, grpc.CallContentSubtype(grpcjson.Subtype)); err != nil {
		return nil, fmt.Errorf("cannot submit the redaction request: %w", err)
	}
	return &st, nil
}

// RedactionStatus returns request id of tenant with its counts.
func (c *Client) RedactionStatus(ctx context.Context, tenant, id string) (*RequestStatus, error) {
	var st RequestStatus
	if err := c.conn.Invoke(ctx, statusMethod, &statusRequest{Tenant: tenant, ID: id}, &st, grpc.CallContentSubtype(grpcjson.Subtype)); err != nil {
		return nil, fmt.Errorf("cannot read redaction request %s: %w", id, err)
	}
	return &st, nil
}

// Client is a worker's scheduler in another process (worker.Scheduler).
type Client struct {
	conn grpc.ClientConnInterface
}

// NewClient returns a client over conn (backend_worker.backend_scheduler_addr).
func NewClient(conn grpc.ClientConnInterface) *Client { return &Client{conn: conn} }

// Next asks the scheduler for a job; ErrNoJob when it had none.
func (c *Client) Next(ctx context.Context, worker string) (*Job, error) {
	var resp nextResponse
	if err := c.conn.Invoke(ctx, nextMethod, &nextRequest{Worker: worker}, &resp, grpc.CallContentSubtype(grpcjson.Subtype)); err != nil {
		return nil, fmt.Errorf("cannot ask the backend scheduler for a job: %w", err)
	}
	if resp.Job == nil {
		return nil, ErrNoJob
	}
	return resp.Job, nil
}

// Update reports on a job; ErrNotYours when the job is no longer the
// worker's.
func (c *Client) Update(ctx context.Context, worker, id string, o Outcome, errMsg string, res ...*Result) error {
	req := &updateRequest{Worker: worker, Job: id, Outcome: o, Error: errMsg}
	if len(res) > 0 {
		req.Result = res[0]
	}
	err := c.conn.Invoke(ctx, updateMethod, req, &updateResponse{}, grpc.CallContentSubtype(grpcjson.Subtype))
	if status.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("cannot update job %s: %w", id, ErrNotYours)
	}
	if err != nil {
		return fmt.Errorf("cannot report job %s to the backend scheduler: %w", id, err)
	}
	return nil
}
