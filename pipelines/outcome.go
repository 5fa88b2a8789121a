package pipelines

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Outcome collects what happened to one push as it flows through the
// in-process part of the graph: spans refused by stages (partial success) and
// the first error that failed the push. It also counts the deliveries still
// pending, so the source knows when every node has handled the push.
//
// Outcome travels in the message context (watermill gochannel with
// PreserveContext), so only in-process edges see it; a stage downstream of a
// Kafka edge has none, and its errors become redeliveries instead.
type Outcome struct {
	mu        sync.Mutex
	pending   int
	done      chan struct{}
	rejected  int64
	messages  []string
	err       error
	onSettled []func(bool) // run once every delivery is handled (OnSettled)
	abandoned bool         // the source stopped waiting: the push was refused
}

type outcomeKey struct{}

// maxMessages bounds how many rejection messages an Outcome keeps.
const maxMessages = 5

func newOutcome() *Outcome { return &Outcome{done: make(chan struct{})} }

// OutcomeFrom returns the Outcome in ctx, or nil.
func OutcomeFrom(ctx context.Context) *Outcome {
	o, _ := ctx.Value(outcomeKey{}).(*Outcome)
	return o
}

// RejectSpans records that a stage refused n spans of the push in ctx for the
// reason given by err, while the rest goes on (OTLP partial success). Without
// an Outcome in ctx it does nothing; counting the refusal in a metric is the
// caller's job either way.
func RejectSpans(ctx context.Context, n int, err error) {
	o := OutcomeFrom(ctx)
	if o == nil || n == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rejected += int64(n)
	if err != nil && len(o.messages) < maxMessages {
		o.messages = append(o.messages, err.Error())
	}
}

// OnSettled runs fn once the push in ctx is settled, with acknowledged
// true if every node of this process that it reaches handled it without
// error, and false if it was refused (a node failed it, or the source
// stopped waiting). fn runs before the push returns to its client. A sink
// can so keep something visible only once the push is acknowledged: the
// live-store serves no span of a push that the block-builder could not
// make durable. Without an Outcome in ctx (input read from another
// process, which acknowledged it already) fn(true) runs at once.
func OnSettled(ctx context.Context, fn func(acknowledged bool)) {
	o := OutcomeFrom(ctx)
	if o == nil {
		fn(true)
		return
	}
	o.mu.Lock()
	o.onSettled = append(o.onSettled, fn)
	o.mu.Unlock()
}

// Rejected is the number of spans refused by stages.
func (o *Outcome) Rejected() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rejected
}

// RejectionMessage joins the first few rejection messages.
func (o *Outcome) RejectionMessage() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.messages, "; ")
}

// Err is the error that failed the push, nil if none. It carries a gRPC
// status code.
func (o *Outcome) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *Outcome) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

// add registers n more deliveries to wait for.
func (o *Outcome) add(n int) {
	if n <= 0 {
		return
	}
	o.mu.Lock()
	o.pending += n
	o.mu.Unlock()
}

// deliveryDone marks one delivery handled. The last one runs the
// OnSettled functions, then lets the push return.
func (o *Outcome) deliveryDone() {
	o.mu.Lock()
	o.pending--
	if o.pending > 0 {
		o.mu.Unlock()
		return
	}
	run, ok := o.onSettled, o.err == nil && !o.abandoned
	o.onSettled = nil
	o.mu.Unlock()
	for _, fn := range run {
		fn(ok)
	}
	close(o.done)
}

// wait blocks until all deliveries are handled or ctx ends.
func (o *Outcome) wait(ctx context.Context) error {
	o.mu.Lock()
	if o.pending == 0 {
		o.mu.Unlock()
		<-o.done // its OnSettled functions may still run
		return nil
	}
	o.mu.Unlock()
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		o.mu.Lock()
		if o.pending == 0 { // just done: it is acknowledged
			o.mu.Unlock()
			<-o.done
			return nil
		}
		o.abandoned = true
		o.mu.Unlock()
		return status.Errorf(codes.Unavailable, "cannot complete the push: the pipeline did not handle it in time: %v", ctx.Err())
	}
}

// statusOf returns err as a status error, keeping its code when it has one
// and using Internal otherwise.
func statusOf(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Err()
	}
	return status.Error(codes.Internal, fmt.Sprintf("cannot process the push: %v", err))
}
