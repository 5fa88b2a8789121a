// Package storagetest holds the contract every weft object-storage backend
// must meet: what the block, compaction and query code may rely on, whatever
// bucket (local filesystem or S3) they are given.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thanos-io/objstore"
)

// RunContract checks that bkt behaves as weft needs, in subtests that each
// start from and leave an empty bucket (the bucket must be empty on entry):
//
//   - missing objects: Get, GetRange and Attributes fail with an error
//     IsObjNotFoundErr recognises; Exists says false; deleting one is not an
//     error (or a not-found one); an empty name is an error;
//   - Upload then Get, Exists, Attributes (size, modification time) and the
//     size a reader reports, for names shaped <tenant>/<blockID>/meta.json;
//   - GetRange inside the object, with length -1, with a length past the end
//     (reads to the end), and with an offset at or past the end (an error that
//     is not "not found", or no bytes);
//   - uploading over an existing name replaces the object, also with a shorter
//     one; empty objects (they read as empty, not as an error); readers of
//     unknown size; a 9 MiB object;
//   - an upload is invisible until it completes: during it the old object is
//     still read whole; a failed or cancelled upload leaves the old object, or
//     nothing;
//   - Iter and IterWithAttributes, with and without objstore.WithRecursiveIter,
//     from the top, from "tenant/" and "tenant" (same result), from missing
//     and partial prefixes and from an object's name (nothing): objects and
//     "dir/" entries, no duplicates, sorted in byte order as
//     objstore.BucketReader promises (so "a.b" comes before "a/");
//     directories vanish once their last object is deleted; an error from the
//     callback stops the iteration and is returned;
//   - Delete removes the object only: a "directory" name is not an object, and
//     deleting it removes nothing;
//   - concurrent uploads of different objects all land; concurrent uploads of
//     one name leave one of them whole;
//   - a cancelled context fails operations.
func RunContract(t *testing.T, bkt objstore.Bucket) {
	t.Helper()
	ctx := context.Background()
	if names := list(t, bkt, "", true); len(names) != 0 {
		t.Fatalf("RunContract needs an empty bucket; it holds %q", names)
	}
	c := &contract{bkt: bkt}
	for _, tc := range []struct {
		name string
		f    func(*testing.T, context.Context)
	}{
		{"MissingObjects", c.missingObjects},
		{"UploadAndRead", c.uploadAndRead},
		{"GetRange", c.getRange},
		{"Overwrite", c.overwrite},
		{"EmptyObject", c.emptyObject},
		{"UnknownSizeReader", c.unknownSizeReader},
		{"LargeObject", c.largeObject},
		{"UploadInvisibleUntilComplete", c.uploadInvisibleUntilComplete},
		{"FailedUploadLeavesNothing", c.failedUpload},
		{"Iter", c.iter},
		{"IterAfterDeletes", c.iterAfterDeletes},
		{"IterWithAttributes", c.iterWithAttributes},
		{"IterCallbackError", c.iterCallbackError},
		{"DeleteDirectoryName", c.deleteDirectoryName},
		{"ConcurrentUploads", c.concurrentUploads},
		{"ConcurrentOverwrites", c.concurrentOverwrites},
		{"CancelledContext", c.cancelledContext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Cleanup(func() { empty(t, bkt) })
			tc.f(t, ctx)
		})
	}
}

type contract struct{ bkt objstore.Bucket }

// Names shaped like weft's block layout: <tenant>/<blockID>/<file>.
const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
	blockID = "0a0c7b1e-5f4d-4c3b-9a8e-2f1d0c9b8a7e"
	meta    = tenantA + "/" + blockID + "/meta.json"
)

func (c *contract) missingObjects(t *testing.T, ctx context.Context) {
	b := c.bkt
	name := tenantA + "/" + blockID + "/missing.json"

	_, err := b.Get(ctx, name)
	wantNotFound(t, b, "Get", err)
	_, err = b.GetRange(ctx, name, 0, 10)
	wantNotFound(t, b, "GetRange", err)
	_, err = b.Attributes(ctx, name)
	wantNotFound(t, b, "Attributes", err)
	if ok, err := b.Exists(ctx, name); err != nil || ok {
		t.Errorf("Exists(missing) = %v, %v; want false, nil", ok, err)
	}
	if err := b.Delete(ctx, name); err != nil && !b.IsObjNotFoundErr(err) {
		t.Errorf("Delete(missing) = %v; want nil or a not-found error", err)
	}
	if rc, err := b.Get(ctx, ""); err == nil {
		rc.Close()
		t.Errorf("Get(\"\") succeeded; want an error")
	}
	if b.IsObjNotFoundErr(nil) {
		t.Errorf("IsObjNotFoundErr(nil) = true")
	}
	if b.IsObjNotFoundErr(errors.New("connection refused")) {
		t.Errorf("IsObjNotFoundErr(other error) = true")
	}
	// Something in the bucket does not make other names exist.
	upload(t, b, meta, "{}")
	_, err = b.Get(ctx, name)
	wantNotFound(t, b, "Get next to an existing object", err)
}

func (c *contract) uploadAndRead(t *testing.T, ctx context.Context) {
	b := c.bkt
	const content = `{"format":"vParquet4","blockID":"0a0c7b1e"}`
	before := time.Now()
	upload(t, b, meta, content)

	if got := get(t, b, meta); got != content {
		t.Errorf("Get = %q; want %q", got, content)
	}
	rc, err := b.Get(ctx, meta)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if size, err := objstore.TryToGetSize(rc); err != nil || size != int64(len(content)) {
		t.Errorf("size of Get's reader = %d, %v; want %d", size, err, len(content))
	}
	rc.Close()

	if ok, err := b.Exists(ctx, meta); err != nil || !ok {
		t.Errorf("Exists = %v, %v; want true", ok, err)
	}
	attrs, err := b.Attributes(ctx, meta)
	if err != nil {
		t.Fatalf("Attributes: %v", err)
	}
	if attrs.Size != int64(len(content)) {
		t.Errorf("Attributes.Size = %d; want %d", attrs.Size, len(content))
	}
	// Allow for clock skew with a server and for coarse timestamps.
	if lm := attrs.LastModified; lm.Before(before.Add(-time.Hour)) || lm.After(time.Now().Add(time.Hour)) {
		t.Errorf("Attributes.LastModified = %v; want about %v", lm, before)
	}

	// The "directories" on the way are not objects.
	for _, dir := range []string{tenantA, tenantA + "/", tenantA + "/" + blockID, tenantA + "/" + blockID + "/"} {
		if ok, err := b.Exists(ctx, dir); err == nil && ok {
			t.Errorf("Exists(%q) = true for a directory", dir)
		}
		if rc, err := b.Get(ctx, dir); err == nil {
			rc.Close()
			t.Errorf("Get(%q) succeeded for a directory", dir)
		} else if strings.HasSuffix(dir, "/") {
			// Names ending in "/" may be refused outright.
		} else if !b.IsObjNotFoundErr(err) {
			t.Errorf("Get(%q) for a directory: %v; want a not-found error", dir, err)
		}
		if _, err := b.Attributes(ctx, dir); err == nil {
			t.Errorf("Attributes(%q) succeeded for a directory", dir)
		}
	}
}

func (c *contract) getRange(t *testing.T, ctx context.Context) {
	b := c.bkt
	const content = "0123456789abcdef"
	name := tenantA + "/" + blockID + "/data.parquet"
	upload(t, b, name, content)

	for _, tc := range []struct {
		off, length int64
		want        string
	}{
		{0, 4, "0123"},
		{5, 3, "567"},
		{15, 1, "f"},
		{0, 16, content},
		{0, -1, content},
		{10, -1, "abcdef"},
		{15, -1, "f"},
		{12, 100, "cdef"}, // length past the end: read to the end
		{0, 1 << 40, content},
	} {
		rc, err := b.GetRange(ctx, name, tc.off, tc.length)
		if err != nil {
			t.Errorf("GetRange(%d, %d): %v", tc.off, tc.length, err)
			continue
		}
		size, sizeErr := objstore.TryToGetSize(rc)
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("GetRange(%d, %d): reading: %v", tc.off, tc.length, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("GetRange(%d, %d) = %q; want %q", tc.off, tc.length, got, tc.want)
		}
		if sizeErr != nil || size != int64(len(tc.want)) {
			t.Errorf("GetRange(%d, %d): reader's size = %d, %v; want %d", tc.off, tc.length, size, sizeErr, len(tc.want))
		}
	}

	// At or past the end: S3 answers 416, a file reads nothing. Either way it
	// is not "not found" and returns no bytes.
	for _, r := range [][2]int64{{16, -1}, {16, 4}, {100, 4}, {100, -1}} {
		rc, err := b.GetRange(ctx, name, r[0], r[1])
		if err != nil {
			if b.IsObjNotFoundErr(err) {
				t.Errorf("GetRange(%d, %d) past the end: %v; a not-found error for an object that exists", r[0], r[1], err)
			}
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err == nil && len(got) != 0 {
			t.Errorf("GetRange(%d, %d) past the end = %q; want no bytes", r[0], r[1], got)
		}
	}
}

func (c *contract) overwrite(t *testing.T, ctx context.Context) {
	b := c.bkt
	upload(t, b, meta, "first version, the longer one")
	upload(t, b, meta, "second")
	if got := get(t, b, meta); got != "second" {
		t.Errorf("after overwrite Get = %q; want %q", got, "second")
	}
	if attrs, err := b.Attributes(ctx, meta); err != nil || attrs.Size != 6 {
		t.Errorf("after overwrite Attributes = %+v, %v; want size 6", attrs, err)
	}
	upload(t, b, meta, "third, longer than the second")
	if got := get(t, b, meta); got != "third, longer than the second" {
		t.Errorf("after second overwrite Get = %q", got)
	}
	if got := list(t, b, "", true); !slices.Equal(got, []string{meta}) {
		t.Errorf("after overwrites the bucket lists %q; want only %q", got, meta)
	}
}

func (c *contract) emptyObject(t *testing.T, ctx context.Context) {
	b := c.bkt
	name := tenantA + "/" + blockID + "/empty"
	if err := b.Upload(ctx, name, bytes.NewReader(nil)); err != nil {
		t.Fatalf("Upload(empty): %v", err)
	}
	if ok, err := b.Exists(ctx, name); err != nil || !ok {
		t.Errorf("Exists(empty object) = %v, %v; want true", ok, err)
	}
	if attrs, err := b.Attributes(ctx, name); err != nil || attrs.Size != 0 {
		t.Errorf("Attributes(empty object) = %+v, %v; want size 0", attrs, err)
	}
	if got := get(t, b, name); got != "" {
		t.Errorf("Get(empty object) = %q", got)
	}
	if got := list(t, b, tenantA+"/"+blockID+"/", false); !slices.Equal(got, []string{name}) {
		t.Errorf("Iter lists %q; want the empty object %q", got, name)
	}
	// Overwriting with something and back with nothing.
	upload(t, b, name, "x")
	if err := b.Upload(ctx, name, strings.NewReader("")); err != nil {
		t.Fatalf("Upload(empty) over an object: %v", err)
	}
	if got := get(t, b, name); got != "" {
		t.Errorf("Get after emptying = %q", got)
	}
}

// onlyReader hides every method but Read, so the size cannot be known.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func (c *contract) unknownSizeReader(t *testing.T, ctx context.Context) {
	b := c.bkt
	content := strings.Repeat("span ", 1000)
	if err := b.Upload(ctx, meta, onlyReader{strings.NewReader(content)}); err != nil {
		t.Fatalf("Upload(reader of unknown size): %v", err)
	}
	if got := get(t, b, meta); got != content {
		t.Errorf("Get = %d bytes; want %d", len(got), len(content))
	}
}

func (c *contract) largeObject(t *testing.T, ctx context.Context) {
	b := c.bkt
	content := make([]byte, 9<<20+123) // more than one buffer anywhere
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	name := tenantA + "/" + blockID + "/data.parquet"
	if err := b.Upload(ctx, name, bytes.NewReader(content)); err != nil {
		t.Fatalf("Upload(9 MiB): %v", err)
	}
	if got := get(t, b, name); got != string(content) {
		t.Fatalf("Get returned %d bytes, not the %d uploaded", len(got), len(content))
	}
	off, n := int64(5<<20-7), int64(1<<20)
	rc, err := b.GetRange(ctx, name, off, n)
	if err != nil {
		t.Fatalf("GetRange: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content[off:off+n]) {
		t.Errorf("GetRange(%d, %d): %d bytes, %v; not the uploaded bytes", off, n, len(got), err)
	}
}

// gateReader returns head, signals started, then waits for release before
// returning tail (or err, if set).
type gateReader struct {
	head, tail []byte
	started    chan struct{}
	release    chan struct{}
	err        error
	state      int
}

func (g *gateReader) Read(p []byte) (int, error) {
	switch g.state {
	case 0:
		g.state = 1
		close(g.started)
		return copy(p, g.head), nil
	case 1:
		<-g.release
		g.state = 2
		if g.err != nil {
			return 0, g.err
		}
		return copy(p, g.tail), nil
	}
	return 0, io.EOF
}

func (c *contract) uploadInvisibleUntilComplete(t *testing.T, ctx context.Context) {
	b := c.bkt
	const old = "old meta.json, complete"
	upload(t, b, meta, old)
	fresh := tenantA + "/" + blockID + "/data.parquet"

	for _, name := range []string{meta, fresh} {
		head, tail := bytes.Repeat([]byte("h"), 100), bytes.Repeat([]byte("t"), 100)
		g := &gateReader{head: head, tail: tail, started: make(chan struct{}), release: make(chan struct{})}
		// A sized reader: S3 streams it in one PUT while the test looks.
		r := &io.LimitedReader{R: g, N: 200}
		done := make(chan error, 1)
		go func() { done <- b.Upload(ctx, name, r) }()
		select {
		case <-g.started:
		case err := <-done:
			t.Fatalf("Upload(%s) returned before reading the whole reader: %v", name, err)
		case <-time.After(30 * time.Second):
			close(g.release)
			t.Fatalf("Upload(%s) did not read from the reader within 30s", name)
		}
		// Give the upload time to reach the store with its first bytes.
		time.Sleep(100 * time.Millisecond)
		if name == meta {
			if got := get(t, b, meta); got != old {
				t.Errorf("during an upload over %s, Get = %q; want the old object whole", meta, got)
			}
		} else if ok, err := b.Exists(ctx, fresh); err != nil || ok {
			t.Errorf("during an upload of new %s, Exists = %v, %v; want false", fresh, ok, err)
		}
		if got := list(t, b, "", true); !slices.Equal(got, []string{meta}) {
			t.Errorf("during an upload of %s the bucket lists %q; want only %q", name, got, meta)
		}
		close(g.release)
		if err := <-done; err != nil {
			t.Fatalf("Upload(%s): %v", name, err)
		}
		if got := get(t, b, name); got != string(head)+string(tail) {
			t.Errorf("after the upload Get(%s) = %q", name, got)
		}
	}
}

func (c *contract) failedUpload(t *testing.T, ctx context.Context) {
	b := c.bkt
	const old = "old meta.json, complete"
	readErr := errors.New("disk on fire")
	fresh := tenantA + "/" + blockID + "/data.parquet"

	for _, sized := range []bool{true, false} {
		upload(t, b, meta, old)
		for _, name := range []string{meta, fresh} {
			g := &gateReader{head: bytes.Repeat([]byte("h"), 100), started: make(chan struct{}), release: make(chan struct{}), err: readErr}
			close(g.release)
			var r io.Reader = onlyReader{g}
			if sized {
				r = &io.LimitedReader{R: g, N: 200}
			}
			if err := b.Upload(ctx, name, r); err == nil {
				t.Errorf("Upload(%s, sized %v) with a failing reader succeeded", name, sized)
			}
		}
		if got := get(t, b, meta); got != old {
			t.Errorf("after a failed upload over it (sized %v), Get(%s) = %q; want the old object", sized, meta, got)
		}
		if ok, err := b.Exists(ctx, fresh); err != nil || ok {
			t.Errorf("after a failed upload (sized %v), Exists(%s) = %v, %v; want false", sized, fresh, ok, err)
		}
		if got := list(t, b, "", true); !slices.Equal(got, []string{meta}) {
			t.Errorf("after failed uploads (sized %v) the bucket lists %q; want only %q", sized, got, meta)
		}
	}

	// A cancelled upload.
	cctx, cancel := context.WithCancel(ctx)
	g := &gateReader{head: []byte("h"), tail: []byte("t"), started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- b.Upload(cctx, fresh, &io.LimitedReader{R: g, N: 2}) }()
	select {
	case <-g.started:
	case err := <-done:
		t.Fatalf("Upload returned before reading the whole reader: %v", err)
	}
	cancel()
	close(g.release)
	if err := <-done; err == nil {
		// The last byte may have gone before the cancellation was seen;
		// then the object must be whole.
		if got := get(t, b, fresh); got != "ht" {
			t.Errorf("a cancelled upload that reported success left %q", got)
		}
	} else if ok, err := b.Exists(ctx, fresh); err != nil || ok {
		t.Errorf("after a cancelled upload Exists(%s) = %v, %v; want false", fresh, ok, err)
	}
}

// iterObjects are the objects of the Iter tests. block-1.json sorts before
// block-1/ in byte order ('.' < '/'), block-10/ after it.
var iterObjects = []string{
	"top.txt",
	tenantA + "/block-1.json",
	tenantA + "/block-1/data.parquet",
	tenantA + "/block-1/meta.json",
	tenantA + "/block-10/meta.json",
	tenantA + "/block-2/bloom-0",
	tenantA + "/block-2/meta.json",
	tenantA + "/block-2/sub/deep.bin",
	tenantA + "/index.json.gz",
	tenantB + "/" + blockID + "/meta.json",
}

func (c *contract) uploadIterObjects(t *testing.T) {
	// In an order that is not the listing order.
	for _, i := range []int{9, 3, 0, 7, 1, 5, 8, 2, 6, 4} {
		upload(t, c.bkt, iterObjects[i], iterObjects[i])
	}
}

func (c *contract) iter(t *testing.T, ctx context.Context) {
	b := c.bkt
	c.uploadIterObjects(t)

	if !slices.Contains(b.SupportedIterOptions(), objstore.Recursive) {
		t.Errorf("SupportedIterOptions = %v; want Recursive among them", b.SupportedIterOptions())
	}
	for _, tc := range []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"", false, []string{tenantA + "/", tenantB + "/", "top.txt"}},
		{"", true, sorted(iterObjects)},
		{tenantA + "/", false, []string{
			tenantA + "/block-1.json", tenantA + "/block-1/", tenantA + "/block-10/",
			tenantA + "/block-2/", tenantA + "/index.json.gz",
		}},
		{tenantA, false, []string{
			tenantA + "/block-1.json", tenantA + "/block-1/", tenantA + "/block-10/",
			tenantA + "/block-2/", tenantA + "/index.json.gz",
		}},
		{tenantA + "/", true, []string{
			tenantA + "/block-1.json", tenantA + "/block-1/data.parquet", tenantA + "/block-1/meta.json",
			tenantA + "/block-10/meta.json", tenantA + "/block-2/bloom-0", tenantA + "/block-2/meta.json",
			tenantA + "/block-2/sub/deep.bin", tenantA + "/index.json.gz",
		}},
		{tenantA + "/block-2", false, []string{tenantA + "/block-2/bloom-0", tenantA + "/block-2/meta.json", tenantA + "/block-2/sub/"}},
		{tenantA + "/block-2/", true, []string{tenantA + "/block-2/bloom-0", tenantA + "/block-2/meta.json", tenantA + "/block-2/sub/deep.bin"}},
		{tenantB + "/", false, []string{tenantB + "/" + blockID + "/"}},
		{tenantB + "/" + blockID + "/", false, []string{tenantB + "/" + blockID + "/meta.json"}},
		// Nothing: a missing tenant, a partial name, an object's name.
		{"tenant-c/", false, nil},
		{"tenant-c/", true, nil},
		{"tenant", false, nil},
		{"tenant", true, nil},
		{tenantA + "/block-1/meta.json", false, nil},
		{"top.txt", true, nil},
	} {
		got := list(t, b, tc.dir, tc.recursive)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Iter(%q, recursive %v) =\n\t%q\nwant\n\t%q", tc.dir, tc.recursive, got, tc.want)
		}
	}
}

func (c *contract) iterAfterDeletes(t *testing.T, ctx context.Context) {
	b := c.bkt
	c.uploadIterObjects(t)
	del := func(name string) {
		t.Helper()
		if err := b.Delete(ctx, name); err != nil {
			t.Fatalf("Delete(%s): %v", name, err)
		}
		if ok, err := b.Exists(ctx, name); err != nil || ok {
			t.Errorf("after Delete, Exists(%s) = %v, %v", name, ok, err)
		}
		_, err := b.Get(ctx, name)
		wantNotFound(t, b, "Get after Delete", err)
	}

	del(tenantB + "/" + blockID + "/meta.json")
	if got, want := list(t, b, "", false), []string{tenantA + "/", "top.txt"}; !slices.Equal(got, want) {
		t.Errorf("after deleting tenant-b's only object, Iter(\"\") = %q; want %q", got, want)
	}
	if got := list(t, b, tenantB+"/", true); len(got) != 0 {
		t.Errorf("after deleting tenant-b's only object, Iter(tenant-b/) = %q", got)
	}

	del(tenantA + "/block-1/meta.json")
	if got, want := list(t, b, tenantA+"/block-1/", false), []string{tenantA + "/block-1/data.parquet"}; !slices.Equal(got, want) {
		t.Errorf("Iter(block-1/) = %q; want %q", got, want)
	}
	del(tenantA + "/block-1/data.parquet")
	del(tenantA + "/block-2/sub/deep.bin")
	want := []string{tenantA + "/block-1.json", tenantA + "/block-10/", tenantA + "/block-2/", tenantA + "/index.json.gz"}
	if got := list(t, b, tenantA+"/", false); !slices.Equal(got, want) {
		t.Errorf("after deletes Iter(tenant-a/) = %q; want %q", got, want)
	}
	if got, want := list(t, b, tenantA+"/block-2/", false), []string{tenantA + "/block-2/bloom-0", tenantA + "/block-2/meta.json"}; !slices.Equal(got, want) {
		t.Errorf("after deleting sub/'s only object Iter(block-2/) = %q; want %q", got, want)
	}
	for _, o := range iterObjects {
		if err := b.Delete(ctx, o); err != nil && !b.IsObjNotFoundErr(err) {
			t.Errorf("Delete(%s): %v", o, err)
		}
	}
	if got := list(t, b, "", false); len(got) != 0 {
		t.Errorf("after deleting everything Iter(\"\") = %q", got)
	}
}

func (c *contract) iterWithAttributes(t *testing.T, ctx context.Context) {
	b := c.bkt
	c.uploadIterObjects(t)
	if !slices.Contains(b.SupportedIterOptions(), objstore.UpdatedAt) {
		t.Skipf("the backend does not support objstore.UpdatedAt")
	}
	var got []string
	err := b.IterWithAttributes(ctx, tenantA+"/", func(a objstore.IterObjectAttributes) error {
		got = append(got, a.Name)
		lm, ok := a.LastModified()
		if !ok || lm.IsZero() {
			t.Errorf("IterWithAttributes(WithUpdatedAt): %s has no modification time", a.Name)
		}
		return nil
	}, objstore.WithRecursiveIter(), objstore.WithUpdatedAt())
	if err != nil {
		t.Fatalf("IterWithAttributes: %v", err)
	}
	if want := sorted(iterObjects[1:9]); !slices.Equal(got, want) {
		t.Errorf("IterWithAttributes(tenant-a/, recursive) = %q; want %q", got, want)
	}
}

func (c *contract) iterCallbackError(t *testing.T, ctx context.Context) {
	b := c.bkt
	c.uploadIterObjects(t)
	stop := errors.New("stop here")
	for _, recursive := range []bool{false, true} {
		calls := 0
		var opts []objstore.IterOption
		if recursive {
			opts = append(opts, objstore.WithRecursiveIter())
		}
		err := b.Iter(ctx, "", func(string) error { calls++; return stop }, opts...)
		if !errors.Is(err, stop) {
			t.Errorf("Iter(recursive %v) with a failing callback = %v; want its error", recursive, err)
		}
		if calls != 1 {
			t.Errorf("Iter(recursive %v) called the callback %d times after it failed; want 1", recursive, calls)
		}
	}
}

func (c *contract) deleteDirectoryName(t *testing.T, ctx context.Context) {
	b := c.bkt
	upload(t, b, meta, "{}")
	for _, dir := range []string{tenantA + "/" + blockID, tenantA} {
		if err := b.Delete(ctx, dir); err != nil && !b.IsObjNotFoundErr(err) {
			t.Errorf("Delete(%q), a directory name: %v; want nil or a not-found error", dir, err)
		}
		if ok, err := b.Exists(ctx, meta); err != nil || !ok {
			t.Errorf("Delete(%q), a directory name, removed the objects under it", dir)
			upload(t, b, meta, "{}")
		}
	}
}

func (c *contract) concurrentUploads(t *testing.T, ctx context.Context) {
	b := c.bkt
	const n = 24
	var wg sync.WaitGroup
	errs := make([]error, n)
	want := make([]string, n)
	for i := range n {
		// Two tenants, each block in its own directory, created concurrently.
		name := fmt.Sprintf("tenant-%d/block-%02d/meta.json", i%2, i)
		want[i] = name
		wg.Go(func() {
			errs[i] = b.Upload(ctx, name, strings.NewReader(strings.Repeat(name, i+1)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Upload(%s): %v", want[i], err)
		}
	}
	for i, name := range want {
		if got := get(t, b, name); got != strings.Repeat(name, i+1) {
			t.Errorf("after concurrent uploads Get(%s) = %d bytes; want %d", name, len(got), len(name)*(i+1))
		}
	}
	if got := list(t, b, "", true); !slices.Equal(got, sorted(want)) {
		t.Errorf("after concurrent uploads the bucket lists %q; want %q", got, sorted(want))
	}
}

func (c *contract) concurrentOverwrites(t *testing.T, ctx context.Context) {
	b := c.bkt
	const n = 8
	contents := make([]string, n)
	for i := range contents {
		contents[i] = strings.Repeat(string(rune('a'+i)), 64<<10*(n-i)) // different lengths
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = b.Upload(ctx, meta, strings.NewReader(contents[i])) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Upload %d of one name: %v", i, err)
		}
	}
	if got := get(t, b, meta); !slices.Contains(contents, got) {
		t.Errorf("after concurrent uploads of one name Get = %d bytes that are none of the uploads", len(got))
	}
}

func (c *contract) cancelledContext(t *testing.T, ctx context.Context) {
	b := c.bkt
	upload(t, b, meta, "{}")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if rc, err := b.Get(cctx, meta); err == nil {
		rc.Close()
		t.Errorf("Get with a cancelled context succeeded")
	}
	if err := b.Upload(cctx, meta, strings.NewReader("new")); err == nil {
		t.Errorf("Upload with a cancelled context succeeded")
	}
	if err := b.Iter(cctx, "", func(string) error { return nil }); err == nil {
		t.Errorf("Iter with a cancelled context succeeded")
	}
	if got := get(t, b, meta); got != "{}" {
		t.Errorf("after an Upload with a cancelled context Get = %q; want the old object", got)
	}
}

// Helpers.

func upload(t *testing.T, b objstore.Bucket, name, content string) {
	t.Helper()
	if err := b.Upload(context.Background(), name, strings.NewReader(content)); err != nil {
		t.Fatalf("Upload(%s): %v", name, err)
	}
}

func get(t *testing.T, b objstore.Bucket, name string) string {
	t.Helper()
	rc, err := b.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%s): reading: %v", name, err)
	}
	return string(data)
}

// list returns what Iter passes, in its order, failing on duplicates.
func list(t testing.TB, b objstore.Bucket, dir string, recursive bool) []string {
	t.Helper()
	var opts []objstore.IterOption
	if recursive {
		opts = append(opts, objstore.WithRecursiveIter())
	}
	var names []string
	seen := map[string]bool{}
	err := b.Iter(context.Background(), dir, func(name string) error {
		if seen[name] {
			t.Errorf("Iter(%q, recursive %v) passed %q twice", dir, recursive, name)
		}
		seen[name] = true
		names = append(names, name)
		return nil
	}, opts...)
	if err != nil {
		t.Fatalf("Iter(%q, recursive %v): %v", dir, recursive, err)
	}
	return names
}

func wantNotFound(t *testing.T, b objstore.Bucket, op string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s of a missing object succeeded", op)
	case !b.IsObjNotFoundErr(err):
		t.Errorf("%s of a missing object: %v; IsObjNotFoundErr says it is not a not-found error", op, err)
	}
}

// empty deletes every object, so that the next subtest starts clean.
func empty(t *testing.T, b objstore.Bucket) {
	var names []string
	err := b.Iter(context.Background(), "", func(name string) error {
		names = append(names, name)
		return nil
	}, objstore.WithRecursiveIter())
	if err != nil {
		t.Errorf("emptying the bucket: %v", err)
		return
	}
	for _, name := range names {
		if err := b.Delete(context.Background(), name); err != nil && !b.IsObjNotFoundErr(err) {
			t.Errorf("emptying the bucket: Delete(%s): %v", name, err)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
