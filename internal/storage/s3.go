package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/thanos-io/objstore"
)

// s3Bucket mends two ways in which objstore's S3 provider breaks the contract
// (storagetest.RunContract):
//
//   - Get of an empty object fails with io.EOF (the provider reads nothing to
//     send the request, and an empty body answers EOF); it returns an empty
//     reader instead;
//   - a listing that is not recursive passes the objects of each page before
//     its "dir/" entries, not in the sorted order objstore.BucketReader
//     promises; it is sorted, which means holding the listing in memory.
//     Recursive listings have no "dir/" entries and come sorted from S3.
type s3Bucket struct {
	objstore.Bucket
}

// Get returns the object's content.
func (b s3Bucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return emptyOnEOF(b.Bucket.Get(ctx, name))
}

// GetRange returns length bytes (all the rest with -1) from offset off.
func (b s3Bucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	return emptyOnEOF(b.Bucket.GetRange(ctx, name, off, length))
}

func emptyOnEOF(rc io.ReadCloser, err error) (io.ReadCloser, error) {
	if errors.Is(err, io.EOF) {
		return objstore.ObjectSizerReadCloser{
			ReadCloser: io.NopCloser(bytes.NewReader(nil)),
			Size:       func() (int64, error) { return 0, nil },
		}, nil
	}
	return rc, err
}

// Iter calls f for each object and "dir/" in dir, in sorted order.
func (b s3Bucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	if objstore.ApplyIterOptions(opts...).Recursive {
		return b.Bucket.Iter(ctx, dir, f, opts...)
	}
	var names []string
	if err := b.Bucket.Iter(ctx, dir, func(name string) error {
		names = append(names, name)
		return nil
	}, opts...); err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		if err := f(name); err != nil {
			return err
		}
	}
	return nil
}

// IterWithAttributes is Iter with the attributes opts ask for.
func (b s3Bucket) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	if objstore.ApplyIterOptions(opts...).Recursive {
		return b.Bucket.IterWithAttributes(ctx, dir, f, opts...)
	}
	var entries []objstore.IterObjectAttributes
	if err := b.Bucket.IterWithAttributes(ctx, dir, func(a objstore.IterObjectAttributes) error {
		entries = append(entries, a)
		return nil
	}, opts...); err != nil {
		return err
	}
	slices.SortFunc(entries, func(x, y objstore.IterObjectAttributes) int { return strings.Compare(x.Name, y.Name) })
	for _, e := range entries {
		if err := f(e); err != nil {
			return err
		}
	}
	return nil
}
