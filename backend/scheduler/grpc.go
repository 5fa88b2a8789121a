package scheduler

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weftdb/weft/internal/grpcjson"
)

// This file serves the scheduler to workers of other processes over gRPC,
// and is those workers' client. The service is internal (same weft
// version): weft.backend.v1.Scheduler/Next and /Update, unary calls whose
// messages are the structs below as JSON (internal/grpcjson).

const (
	serviceName  = "weft.backend.v1.Scheduler"
	nextMethod   = "/" + serviceName + "/Next"
	updateMethod = "/" + serviceName + "/Update"
)

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
}

type updateResponse struct{}

// server is what the gRPC service serves.
type server interface {
	Next(ctx context.Context, worker string) (*Job, error)
	Update(ctx context.Context, worker, id string, o Outcome, errMsg string) error
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
				err := srv.(server).Update(ctx, req.Worker, req.Job, req.Outcome, req.Error)
				switch {
				case errors.Is(err, ErrNotYours):
					return nil, status.Error(codes.FailedPrecondition, err.Error())
				case err != nil:
					return nil, status.Errorf(codes.Unavailable, "cannot record the job update: %v", err)
				}
				return &updateResponse{}, nil
			},
		}},
		Metadata: "weft/backend/scheduler/grpc.go",
	}, s)
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
func (c *Client) Update(ctx context.Context, worker, id string, o Outcome, errMsg string) error {
	err := c.conn.Invoke(ctx, updateMethod, &updateRequest{Worker: worker, Job: id, Outcome: o, Error: errMsg}, &updateResponse{}, grpc.CallContentSubtype(grpcjson.Subtype))
	if status.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("cannot update job %s: %w", id, ErrNotYours)
	}
	if err != nil {
		return fmt.Errorf("cannot report job %s to the backend scheduler: %w", id, err)
	}
	return nil
}
