// Package s3test runs a real S3-compatible server, MinIO, for tests: started
// on 127.0.0.1 with a temporary data directory and stopped when the test
// ends. The minio binary is installed by `make tools`; tests fail, not skip,
// when it is missing.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/weftdb/weft/internal/storage"
)

// EnvMinioBin names the minio binary to use instead of the one `make tools`
// installs in $(go env GOBIN) or $(go env GOPATH)/bin.
const EnvMinioBin = "WEFT_MINIO_BIN"

// ReadyTimeout bounds the wait for a started server to answer ready.
const ReadyTimeout = 60 * time.Second

// Region is the region the server runs and the configs name.
const Region = "us-east-1"

// Server is a running MinIO server.
type Server struct {
	// Endpoint is 127.0.0.1:<port>, plain HTTP.
	Endpoint string
	// AccessKey and SecretKey are the root credentials, random per server.
	AccessKey, SecretKey string

	client  *minio.Client
	buckets atomic.Int64
	stop    func()
}

// Stop stops the server (an object storage outage); it is stopped anyway
// when the test ends.
func (s *Server) Stop() { s.stop() }

// Start starts a MinIO server for t, stopped when t ends, and returns the
// configuration of a new empty bucket on it.
func Start(t testing.TB) storage.S3Config {
	t.Helper()
	return StartServer(t).NewBucket(t)
}

// StartServer starts a MinIO server for t, stopped when t ends. Tests that
// need several buckets share one server through NewBucket.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := minioBinary(t)
	var lastErr error
	// A free port found by listening can be taken before minio binds it:
	// try again with other ports.
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		lastErr = err
		t.Logf("s3test: starting minio (attempt %d): %v", attempt+1, err)
	}
	t.Fatalf("s3test: could not start minio (%s): %v", bin, lastErr)
	return nil
}

// minioBinary finds the minio binary or fails t saying how to install it.
func minioBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(EnvMinioBin); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("s3test: %s=%s: %v", EnvMinioBin, bin, err)
		}
		return bin
	}
	bin := filepath.Join(goBinDir(), "minio")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("s3test: the MinIO server the S3 tests run against is not installed (%s: %v). "+
			"Run `make tools` (it builds github.com/minio/minio, about 5 minutes), or set %s to a minio binary.",
			bin, err, EnvMinioBin)
	}
	return bin
}

// goBinDir is where `go install` puts binaries: GOBIN, else the first
// GOPATH's bin.
func goBinDir() string {
	goEnv := func(name string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	if gobin := goEnv("GOBIN"); gobin != "" {
		return gobin
	}
	gopath := goEnv("GOPATH")
	if gopath == "" {
		gopath = build.Default.GOPATH
	}
	return filepath.Join(filepath.SplitList(gopath)[0], "bin")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func start(t testing.TB, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	consolePort, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	endpoint := fmt.Sprintf("127.0.0.1:%d", port)
	s := &Server{Endpoint: endpoint, AccessKey: "weft" + randomHex(6), SecretKey: randomHex(16)}

	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"),
		"--address", endpoint,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", consolePort),
		"--certs-dir", filepath.Join(dir, "certs"),
		"--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_REGION="+Region,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on",
	)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		select {
		case <-exited:
			return
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.Now().Add(ReadyTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get("http://" + endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("minio exited before it was ready (%v); its output:\n%s", waitErr, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("minio was not ready on %s within %s; its output:\n%s", endpoint, ReadyTimeout, out.String())
		}
	}
	s.stop = stop
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("s3test: minio output:\n%s", out.String())
		}
	})

	s.client, err = minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
		Region: Region,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// NewBucket creates an empty bucket on the server and returns its
// configuration: path-style, plain HTTP, the server's credentials.
func (s *Server) NewBucket(t testing.TB) storage.S3Config {
	t.Helper()
	name := fmt.Sprintf("weft-test-%d", s.buckets.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: Region}); err != nil {
		t.Fatalf("s3test: creating bucket %s: %v", name, err)
	}
	return storage.S3Config{
		Bucket:         name,
		Endpoint:       s.Endpoint,
		Region:         Region,
		AccessKey:      s.AccessKey,
		SecretKey:      s.SecretKey,
		Insecure:       true,
		ForcePathStyle: true,
	}
}

// Client is a MinIO client with the server's root credentials, for looking at
// a bucket behind the back of the code under test.
func (s *Server) Client() *minio.Client { return s.client }
