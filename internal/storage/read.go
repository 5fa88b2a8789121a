package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/thanos-io/objstore"
)

// DefaultReadTimeout is the default of storage.trace.read_timeout.
const DefaultReadTimeout = 5 * time.Second

// ReadTimeoutKey is the config key of the read timeout, for messages.
const ReadTimeoutKey = "storage.trace.read_timeout"

// ErrUnavailable marks the errors of a ReadBucket call that object storage
// caused: it failed, refused or did not answer within the read timeout.
// An object that is not there is not marked (the bucket's
// IsObjNotFoundErr still recognizes it), nor are the errors of a call
// whose caller's context ended.
var ErrUnavailable = errors.New("object storage unavailable")

// IsUnavailable reports whether err is marked ErrUnavailable.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// unavailableError is an error marked ErrUnavailable.
type unavailableError struct {
	err error
	msg string
}

func (e *unavailableError) Error() string   { return e.msg }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }

// ReadBucket bounds each call to a bucket by a timeout and marks the
// errors object storage caused with ErrUnavailable. It is what the query
// path reads blocks through: a hung object store makes a read fail within
// the timeout, not at the query's own timeout.
type ReadBucket struct {
	bkt     objstore.BucketReader
	timeout time.Duration
}

// NewReadBucket returns bkt with each call bounded by timeout (0: only by
// the caller's context). For Get and GetRange the bound covers reading the
// returned body too, until it is closed.
func NewReadBucket(bkt objstore.BucketReader, timeout time.Duration) *ReadBucket {
	return &ReadBucket{bkt: bkt, timeout: timeout}
}

var _ objstore.BucketReader = (*ReadBucket)(nil)

// call returns the context of one call and the function that turns its
// error into the one returned.
func (b *ReadBucket) call(parent context.Context, op, name string) (context.Context, context.CancelFunc, func(error) error) {
	ctx, cancel := parent, context.CancelFunc(func() {})
	if b.timeout > 0 {
		ctx, cancel = context.WithTimeout(parent, b.timeout)
	}
	mark := func(err error) error {
		if err == nil || parent.Err() != nil || b.bkt.IsObjNotFoundErr(err) || isBadRange(err) {
			return err
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &unavailableError{err: err, msg: fmt.Sprintf("cannot %s %s: object storage did not answer within %s (%s)", op, name, b.timeout, ReadTimeoutKey)}
		}
		return &unavailableError{err: err, msg: fmt.Sprintf("cannot %s %s: %v", op, name, err)}
	}
	return ctx, cancel, mark
}

// isBadRange reports whether err is S3's answer to a range past the end of
// an object: the object is shorter than its reader expects (damaged), the
// store works.
func isBadRange(err error) bool {
	var er minio.ErrorResponse
	return errors.As(err, &er) && (er.StatusCode == http.StatusRequestedRangeNotSatisfiable || er.Code == "InvalidRange")
}

// Get implements objstore.BucketReader.
func (b *ReadBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	cctx, cancel, mark := b.call(ctx, "read", name)
	rc, err := b.bkt.Get(cctx, name)
	if err != nil {
		cancel()
		return nil, mark(err)
	}
	return &readBody{rc: rc, cancel: cancel, mark: mark}, nil
}

// GetRange implements objstore.BucketReader.
func (b *ReadBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	cctx, cancel, mark := b.call(ctx, "read", name)
	rc, err := b.bkt.GetRange(cctx, name, off, length)
	if err != nil {
		cancel()
		return nil, mark(err)
	}
	return &readBody{rc: rc, cancel: cancel, mark: mark}, nil
}

// readBody is the body of a Get: its read errors are marked and closing it
// ends the call's context.
type readBody struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	mark   func(error) error
}

func (r *readBody) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.mark(err)
	}
	return n, err
}

func (r *readBody) Close() error {
	err := r.rc.Close()
	r.cancel()
	return err
}

// Iter implements objstore.BucketReader.
func (b *ReadBucket) Iter(ctx context.Context, dir string, f func(string) error, options ...objstore.IterOption) error {
	cctx, cancel, mark := b.call(ctx, "list", dir)
	defer cancel()
	return mark(b.bkt.Iter(cctx, dir, f, options...))
}

// IterWithAttributes implements objstore.BucketReader.
func (b *ReadBucket) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, options ...objstore.IterOption) error {
	cctx, cancel, mark := b.call(ctx, "list", dir)
	defer cancel()
	return mark(b.bkt.IterWithAttributes(cctx, dir, f, options...))
}

// SupportedIterOptions implements objstore.BucketReader.
func (b *ReadBucket) SupportedIterOptions() []objstore.IterOptionType {
	return b.bkt.SupportedIterOptions()
}

// Exists implements objstore.BucketReader.
func (b *ReadBucket) Exists(ctx context.Context, name string) (bool, error) {
	cctx, cancel, mark := b.call(ctx, "look up", name)
	defer cancel()
	ok, err := b.bkt.Exists(cctx, name)
	return ok, mark(err)
}

// Attributes implements objstore.BucketReader.
func (b *ReadBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	cctx, cancel, mark := b.call(ctx, "read the attributes of", name)
	defer cancel()
	attrs, err := b.bkt.Attributes(cctx, name)
	return attrs, mark(err)
}

// IsObjNotFoundErr implements objstore.BucketReader.
func (b *ReadBucket) IsObjNotFoundErr(err error) bool { return b.bkt.IsObjNotFoundErr(err) }

// IsAccessDeniedErr implements objstore.BucketReader.
func (b *ReadBucket) IsAccessDeniedErr(err error) bool {
	var ue *unavailableError
	if errors.As(err, &ue) {
		err = ue.err
	}
	return b.bkt.IsAccessDeniedErr(err)
}
