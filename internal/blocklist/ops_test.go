package blocklist

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/thanos-io/objstore"
)

// opsBucket counts the calls made to a bucket, the listings by
// prefix, and the bytes read by Get and GetRange.
type opsBucket struct {
	objstore.Bucket

	mu       sync.Mutex
	calls    map[string]int // by method
	listings []string       // prefixes listed (Iter, IterWithAttributes)
	gets     []string       // objects read
	bytes    atomic.Int64   // read by Get and GetRange
	keys     atomic.Int64   // names passed to the callbacks of listings
}

func newOps(b objstore.Bucket) *opsBucket {
	return &opsBucket{Bucket: b, calls: map[string]int{}}
}

func (c *opsBucket) count(method, list, get string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[method]++
	if list != "" || method == "Iter" || method == "IterWithAttributes" {
		c.listings = append(c.listings, list)
	}
	if get != "" {
		c.gets = append(c.gets, get)
	}
}

// reset forgets the counts.
func (c *opsBucket) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls, c.listings, c.gets = map[string]int{}, nil, nil
	c.bytes.Store(0)
	c.keys.Store(0)
}

// requests is the number of calls counted.
func (c *opsBucket) requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

// listed reports whether a listing of a prefix starting with prefix was
// made.
func (c *opsBucket) listed(prefix string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.listings {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// read reports how many objects whose name ends with suffix were read.
func (c *opsBucket) read(suffix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, g := range c.gets {
		if strings.HasSuffix(g, suffix) {
			n++
		}
	}
	return n
}

func (c *opsBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	c.count("Iter", dir, "")
	return c.Bucket.Iter(ctx, dir, func(name string) error { c.keys.Add(1); return f(name) }, opts...)
}

func (c *opsBucket) IterWithAttributes(ctx context.Context, dir string, f func(objstore.IterObjectAttributes) error, opts ...objstore.IterOption) error {
	c.count("IterWithAttributes", dir, "")
	return c.Bucket.IterWithAttributes(ctx, dir, func(a objstore.IterObjectAttributes) error { c.keys.Add(1); return f(a) }, opts...)
}

func (c *opsBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	c.count("Get", "", name)
	rc, err := c.Bucket.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return &opsReader{ReadCloser: rc, n: &c.bytes}, nil
}

func (c *opsBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	c.count("GetRange", "", name)
	rc, err := c.Bucket.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	return &opsReader{ReadCloser: rc, n: &c.bytes}, nil
}

func (c *opsBucket) Exists(ctx context.Context, name string) (bool, error) {
	c.count("Exists", "", "")
	return c.Bucket.Exists(ctx, name)
}

func (c *opsBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	c.count("Attributes", "", "")
	return c.Bucket.Attributes(ctx, name)
}

type opsReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *opsReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}
