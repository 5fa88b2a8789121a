package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
)

// localTmpDir is the top-level directory of a local bucket that uploads are
// written in before they are renamed into place. "~" cannot occur in a tenant
// ID, so it cannot clash with a tenant's directory. It is hidden from listings.
const localTmpDir = ".weft~tmp"

// staleTempAge is how old a leftover temporary upload (from a crash) must be
// for newLocalBucket to remove it.
const staleTempAge = time.Hour

// errInvalidName is returned for object names the local backend refuses.
var errInvalidName = errors.New("invalid object name")

// localBucket is objstore's filesystem bucket made to behave like S3 where
// weft depends on it: atomic uploads, byte-ordered listings, directories that
// are not objects, and no names that escape the root.
type localBucket struct {
	*filesystem.Bucket
	root string // absolute
	tmp  string // root/localTmpDir
}

func newLocalBucket(path string) (*localBucket, error) {
	root, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(root, localTmpDir)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	removeStaleTemp(tmp, time.Now().Add(-staleTempAge))
	fsb, err := filesystem.NewBucket(root)
	if err != nil {
		return nil, err
	}
	return &localBucket{Bucket: fsb, root: root, tmp: tmp}, nil
}

// removeStaleTemp removes temporary uploads last written before cutoff: those
// of a process that crashed. Errors are ignored; the files are harmless.
func removeStaleTemp(dir string, cutoff time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// checkName refuses names that are empty, absolute, hold empty, "." or ".."
// elements or a NUL, end in "/" (unless dir), or lie in the temporary
// directory. A dir may be "" (the whole bucket) and may end in "/".
func checkName(name string, dir bool) error {
	n := name
	if dir {
		if n == "" {
			return nil
		}
		n = strings.TrimSuffix(n, objstore.DirDelim)
	}
	if n == "" {
		return fmt.Errorf("%w %q: empty", errInvalidName, name)
	}
	if strings.ContainsRune(n, 0) {
		return fmt.Errorf("%w %q: contains NUL", errInvalidName, name)
	}
	for i, elem := range strings.Split(n, objstore.DirDelim) {
		switch {
		case elem == "" || elem == "." || elem == "..":
			return fmt.Errorf("%w %q: empty, \".\" or \"..\" path element", errInvalidName, name)
		case i == 0 && elem == localTmpDir:
			return fmt.Errorf("%w %q: %s is reserved by the local backend", errInvalidName, name, localTmpDir)
		}
	}
	return nil
}

func (b *localBucket) path(name string) string {
	return filepath.Join(b.root, filepath.FromSlash(name))
}

func notFound(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
}

// isDir reports whether name is a directory; a name that does not exist is
// left for the filesystem bucket to report.
func (b *localBucket) isDir(name string) bool {
	info, err := os.Stat(b.path(name))
	return err == nil && info.IsDir()
}

// Upload writes the object under a temporary name, syncs it and renames it
// into place, so that readers see either the old object or the whole new one,
// and a failed or cancelled upload leaves nothing behind.
func (b *localBucket) Upload(ctx context.Context, name string, r io.Reader, _ ...objstore.ObjectUploadOption) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName(name, false); err != nil {
		return err
	}
	f, err := os.CreateTemp(b.tmp, "upload-*")
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	tmpName := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}

	dst := b.path(name)
	if b.isDir(name) {
		return fmt.Errorf("upload %s: %w: a directory of objects has that name", name, errInvalidName)
	}
	// A concurrent Delete removes directories it leaves empty, possibly
	// between MkdirAll and Rename: retry then.
	for attempt := 0; ; attempt++ {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			if err = os.Rename(tmpName, dst); err == nil {
				break
			}
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 4 {
			return fmt.Errorf("upload %s: %w", name, err)
		}
	}
	// Make the rename durable. Some filesystems cannot sync a directory; the
	// object is in place either way, so that is not an error.
	if d, err := os.Open(filepath.Dir(dst)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get returns the object's content; a directory is not found.
func (b *localBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	return b.GetRange(ctx, name, 0, -1)
}

// GetRange returns length bytes (all the rest with -1) from offset off; a
// directory is not found.
func (b *localBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := checkName(name, false); err != nil {
		return nil, err
	}
	if off < 0 || length < -1 {
		return nil, fmt.Errorf("get range %s: invalid range: offset %d, length %d", name, off, length)
	}
	if b.isDir(name) {
		return nil, notFound("get", name)
	}
	return b.Bucket.GetRange(ctx, name, off, length)
}

// Attributes returns the object's size and modification time; a directory is
// not found.
func (b *localBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	if err := checkName(name, false); err != nil {
		return objstore.ObjectAttributes{}, err
	}
	if b.isDir(name) {
		return objstore.ObjectAttributes{}, notFound("attributes", name)
	}
	return b.Bucket.Attributes(ctx, name)
}

// Exists reports whether the object exists; a directory does not.
func (b *localBucket) Exists(ctx context.Context, name string) (bool, error) {
	if err := checkName(name, false); err != nil {
		return false, err
	}
	return b.Bucket.Exists(ctx, name)
}

// Delete removes the object and the directories it leaves empty. As on S3, a
// missing object is not an error and a directory name deletes nothing.
func (b *localBucket) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkName(name, false); err != nil {
		return err
	}
	if b.isDir(name) {
		return nil
	}
	return b.Bucket.Delete(ctx, name)
}

// Iter calls f with the name of each object and "directory/" in dir (all
// objects below it with objstore.WithRecursiveIter), in byte order as on S3.
func (b *localBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	var filtered []objstore.IterOption
	for _, o := range opts {
		if o.Type == objstore.Recursive {
			filtered = append(filtered, o)
		}
	}
	return b.IterWithAttributes(ctx, dir, func(a objstore.IterObjectAttributes) error { return f(a.Name) }, filtered...)
}

// IterWithAttributes is Iter with the attributes opts ask for.
func (b *localBucket) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	if err := checkName(dir, true); err != nil {
		return err
	}
	var entries []objstore.IterObjectAttributes
	err := b.Bucket.IterWithAttributes(ctx, dir, func(a objstore.IterObjectAttributes) error {
		if !strings.HasPrefix(a.Name, localTmpDir+objstore.DirDelim) {
			entries = append(entries, a)
		}
		return nil
	}, opts...)
	if err != nil {
		return err
	}
	// The filesystem lists "a/" before "a.b"; S3 lists keys in byte order.
	slices.SortFunc(entries, func(x, y objstore.IterObjectAttributes) int { return strings.Compare(x.Name, y.Name) })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f(e); err != nil {
			return err
		}
	}
	return nil
}

// IsObjNotFoundErr reports whether err says an object does not exist.
func (b *localBucket) IsObjNotFoundErr(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || b.Bucket.IsObjNotFoundErr(err)
}
