package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	"gopkg.in/yaml.v3"

	"github.com/weftdb/weft/internal/storage"
	"github.com/weftdb/weft/internal/storage/s3test"
	"github.com/weftdb/weft/internal/storage/storagetest"
)

func TestDefaultConfig(t *testing.T) {
	c := storage.DefaultConfig()
	if c.Backend != "local" || c.Local.Path != "./data" {
		t.Fatalf("DefaultConfig() = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestValidate(t *testing.T) {
	s3 := func(f func(*storage.S3Config)) storage.Config {
		c := storage.Config{Backend: "s3", S3: storage.S3Config{Bucket: "traces", Endpoint: "s3.example.com"}}
		f(&c.S3)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  storage.Config
		want []string // substrings of the error; none means valid
	}{
		{"local", storage.Config{Backend: "local", Local: storage.LocalConfig{Path: "/var/weft"}}, nil},
		{"local without path", storage.Config{Backend: "local"}, []string{"local.path: required with backend local"}},
		{"no backend", storage.Config{}, []string{"backend: required"}},
		{"unknown backend", storage.Config{Backend: "gcs"}, []string{`backend: "gcs" is not supported`}},
		{"s3", s3(func(*storage.S3Config) {}), nil},
		{"s3 with keys", s3(func(c *storage.S3Config) { c.AccessKey, c.SecretKey = "a", "b" }), nil},
		{"s3 empty", storage.Config{Backend: "s3"}, []string{"s3.bucket: required with backend s3", "s3.endpoint: required with backend s3"}},
		{"s3 endpoint with scheme", s3(func(c *storage.S3Config) { c.Endpoint = "http://minio:9000" }), []string{"s3.endpoint:", "without a scheme"}},
		{"s3 endpoint with path", s3(func(c *storage.S3Config) { c.Endpoint = "minio:9000/traces" }), []string{"s3.endpoint:", "without a path"}},
		{"s3 access key alone", s3(func(c *storage.S3Config) { c.AccessKey = "a" }), []string{"s3.secret_key: required with s3.access_key"}},
		{"s3 secret key alone", s3(func(c *storage.S3Config) { c.SecretKey = "b" }), []string{"s3.access_key: required with s3.secret_key"}},
		// The other backend's keys do not matter.
		{"s3 ignores local", storage.Config{Backend: "s3", S3: storage.S3Config{Bucket: "b", Endpoint: "e"}, Local: storage.LocalConfig{}}, nil},
		{"local ignores s3", storage.Config{Backend: "local", Local: storage.LocalConfig{Path: "p"}, S3: storage.S3Config{AccessKey: "a"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

// The block decodes with Tempo's key names, strictly.
func TestConfigYAML(t *testing.T) {
	const doc = `
backend: s3
local:
  path: /var/tempo/traces
s3:
  bucket: tempo
  endpoint: minio:9000
  region: eu-west-1
  access_key: tempo
  secret_key: supersecret
  insecure: true
  forcepathstyle: true
  prefix: weft/traces
`
	c := storage.DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	want := storage.Config{
		Backend: "s3",
		Local:   storage.LocalConfig{Path: "/var/tempo/traces"},
		S3: storage.S3Config{
			Bucket: "tempo", Endpoint: "minio:9000", Region: "eu-west-1", AccessKey: "tempo", SecretKey: "supersecret",
			Insecure: true, ForcePathStyle: true, Prefix: "weft/traces",
		},
	}
	if c != want {
		t.Fatalf("decoded %#v\nwant %#v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}

	dec = yaml.NewDecoder(strings.NewReader("s3:\n  force_path_style: true\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err == nil {
		t.Fatalf("an unknown key decoded without error")
	}
}

func TestSecretKeyNotShown(t *testing.T) {
	c := storage.S3Config{Bucket: "b", Endpoint: "e", AccessKey: "AKIAEXAMPLE", SecretKey: "wJalrXUtnFEMI-secret"}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("config", "s3", c, "cfg", storage.Config{Backend: "s3", S3: c})
	y, err := yaml.Marshal(storage.Config{S3: c})
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(storage.Config{S3: c})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "access_key: AKIAEXAMPLE") || !strings.Contains(string(j), `"access_key":"AKIAEXAMPLE"`) {
		t.Errorf("YAML or JSON without Tempo's key names:\n%s\n%s", y, j)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%v", storage.Config{S3: c}), logs.String(), string(y), string(j)} {
		if strings.Contains(s, c.SecretKey) {
			t.Errorf("secret key shown in %s", s)
		}
		if !strings.Contains(s, "AKIAEXAMPLE") {
			t.Errorf("access key not shown in %s", s)
		}
	}

	// Opening an S3 bucket logs its configuration, without the secret.
	logs.Reset()
	bkt, err := storage.NewBucket(storage.Config{Backend: "s3", S3: c}, nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("NewBucket: %v", err)
	}
	bkt.Close()
	if !strings.Contains(logs.String(), "AKIAEXAMPLE") || strings.Contains(logs.String(), c.SecretKey) {
		t.Errorf("NewBucket logged %q", logs.String())
	}
}

func TestNewBucketInvalidConfig(t *testing.T) {
	_, err := storage.NewBucket(storage.Config{Backend: "s3"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "s3.bucket") {
		t.Fatalf("NewBucket(invalid) = %v; want the validation error", err)
	}
}

func TestNewBucketMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	bkt, err := storage.NewBucket(storage.Config{Backend: "local", Local: storage.LocalConfig{Path: t.TempDir()}}, reg, nil)
	if err != nil {
		t.Fatalf("NewBucket: %v", err)
	}
	ctx := context.Background()
	if err := bkt.Upload(ctx, "t/b/meta.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := bkt.Exists(ctx, "t/b/meta.json"); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP weft_objstore_bucket_operations_total Total number of all attempted operations against a bucket.
# TYPE weft_objstore_bucket_operations_total counter
weft_objstore_bucket_operations_total{bucket="local",operation="attributes"} 0
weft_objstore_bucket_operations_total{bucket="local",operation="delete"} 0
weft_objstore_bucket_operations_total{bucket="local",operation="exists"} 1
weft_objstore_bucket_operations_total{bucket="local",operation="get"} 0
weft_objstore_bucket_operations_total{bucket="local",operation="get_range"} 0
weft_objstore_bucket_operations_total{bucket="local",operation="iter"} 0
weft_objstore_bucket_operations_total{bucket="local",operation="upload"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "weft_objstore_bucket_operations_total"); err != nil {
		t.Error(err)
	}
	names, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range names {
		if !strings.HasPrefix(mf.GetName(), storage.MetricsPrefix+"_") {
			t.Errorf("metric %s lacks the prefix %s", mf.GetName(), storage.MetricsPrefix)
		}
	}

	// A second bucket on the same registry is an error, not a panic.
	if _, err := storage.NewBucket(storage.Config{Backend: "local", Local: storage.LocalConfig{Path: t.TempDir()}}, reg, nil); err == nil {
		t.Errorf("NewBucket twice on one registry succeeded")
	}
}

func TestLocalContract(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "there")
	bkt, err := storage.NewBucket(storage.Config{Backend: "local", Local: storage.LocalConfig{Path: dir}}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatalf("NewBucket: %v", err)
	}
	defer bkt.Close()
	storagetest.RunContract(t, bkt)
}

func TestLocalLayoutAndNames(t *testing.T) {
	dir := t.TempDir()
	bkt, err := storage.NewBucket(storage.Config{Backend: "local", Local: storage.LocalConfig{Path: dir}}, nil, nil)
	if err != nil {
		t.Fatalf("NewBucket: %v", err)
	}
	ctx := context.Background()
	if err := bkt.Upload(ctx, "single-tenant/b1/meta.json", strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	// Objects are plain files under the path, readable by others.
	info, err := os.Stat(filepath.Join(dir, "single-tenant", "b1", "meta.json"))
	if err != nil {
		t.Fatalf("the object is not a file under the path: %v", err)
	}
	if info.Mode().Perm() != 0o644 {
		t.Errorf("object file mode %v; want 0644", info.Mode().Perm())
	}
	// Nothing is left in the temporary directory.
	if entries, err := os.ReadDir(filepath.Join(dir, ".weft~tmp")); err != nil || len(entries) != 0 {
		t.Errorf("temporary directory: %v, %v; want it empty", entries, err)
	}

	for _, name := range []string{"", "/abs/meta.json", "../escape", "t/../../escape", "t/./b", "t//b", "t/b/", ".weft~tmp/x", "a\x00b"} {
		if err := bkt.Upload(ctx, name, strings.NewReader("x")); err == nil {
			t.Errorf("Upload(%q) succeeded", name)
		}
		if _, err := bkt.Get(ctx, name); err == nil || bkt.IsObjNotFoundErr(err) {
			t.Errorf("Get(%q) = %v; want an error that is not 'not found'", name, err)
		}
		if err := bkt.Delete(ctx, name); err == nil {
			t.Errorf("Delete(%q) succeeded", name)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
		t.Errorf("an upload escaped the bucket's directory")
	}
	if err := bkt.Iter(ctx, "../", func(string) error { return nil }); err == nil {
		t.Errorf("Iter(../) succeeded")
	}
	// Uploading over a directory of objects fails and keeps them.
	if err := bkt.Upload(ctx, "single-tenant/b1", strings.NewReader("x")); err == nil {
		t.Errorf("Upload over a directory succeeded")
	}
	if ok, _ := bkt.Exists(ctx, "single-tenant/b1/meta.json"); !ok {
		t.Errorf("Upload over a directory removed its objects")
	}
}

func TestLocalRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".weft~tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	stale, fresh := filepath.Join(tmp, "upload-stale"), filepath.Join(tmp, "upload-fresh")
	for _, f := range []string{stale, fresh} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	bkt, err := storage.NewBucket(storage.Config{Backend: "local", Local: storage.LocalConfig{Path: dir}}, nil, nil)
	if err != nil {
		t.Fatalf("NewBucket: %v", err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("a stale temporary upload was kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a recent temporary upload (maybe another process's) was removed: %v", err)
	}
	// And it is not listed.
	var names []string
	if err := bkt.Iter(context.Background(), "", func(n string) error { names = append(names, n); return nil }, objstore.WithRecursiveIter()); err != nil {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Errorf("Iter lists %q; want nothing", names)
	}
}

func TestS3Contract(t *testing.T) {
	srv := s3test.StartServer(t)

	t.Run("NoPrefix", func(t *testing.T) {
		cfg := storage.Config{Backend: "s3", S3: srv.NewBucket(t)}
		bkt, err := storage.NewBucket(cfg, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatalf("NewBucket: %v", err)
		}
		defer bkt.Close()
		storagetest.RunContract(t, bkt)
	})

	t.Run("Prefix", func(t *testing.T) {
		s3cfg := srv.NewBucket(t)
		s3cfg.Prefix = "/weft/traces/"
		bkt, err := storage.NewBucket(storage.Config{Backend: "s3", S3: s3cfg}, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatalf("NewBucket: %v", err)
		}
		defer bkt.Close()
		storagetest.RunContract(t, bkt)

		// The objects really are under the prefix.
		ctx := context.Background()
		if err := bkt.Upload(ctx, "t/b/meta.json", strings.NewReader("{}")); err != nil {
			t.Fatal(err)
		}
		var keys []string
		for obj := range srv.Client().ListObjects(ctx, s3cfg.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			keys = append(keys, obj.Key)
		}
		if len(keys) != 1 || keys[0] != "weft/traces/t/b/meta.json" {
			t.Errorf("keys in the bucket: %q; want [weft/traces/t/b/meta.json]", keys)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		ctx := context.Background()
		good := srv.NewBucket(t)

		missing := good
		missing.Bucket = "no-such-bucket"
		bkt, err := storage.NewBucket(storage.Config{Backend: "s3", S3: missing}, nil, nil)
		if err != nil {
			t.Fatalf("NewBucket: %v", err)
		}
		if err := bkt.Upload(ctx, "t/b/meta.json", strings.NewReader("{}")); err == nil {
			t.Errorf("Upload to a missing bucket succeeded")
		}

		wrong := good
		wrong.SecretKey = "not-the-secret"
		bkt, err = storage.NewBucket(storage.Config{Backend: "s3", S3: wrong}, nil, nil)
		if err != nil {
			t.Fatalf("NewBucket: %v", err)
		}
		_, err = bkt.Get(ctx, "t/b/meta.json")
		if err == nil || bkt.IsObjNotFoundErr(err) {
			t.Errorf("Get with a wrong secret key = %v; want an error that is not 'not found'", err)
		}
	})
}

// The contract can fail: objstore's own filesystem bucket, which weft wraps,
// breaks it (non-atomic uploads, directories as objects, listing order). It
// runs in a child process because a failing subtest cannot be undone.
func TestContractFailsOnRawFilesystem(t *testing.T) {
	if os.Getenv("WEFT_STORAGE_RAWFS") == "1" {
		bkt, err := filesystem.NewBucket(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		storagetest.RunContract(t, bkt)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestContractFailsOnRawFilesystem$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "WEFT_STORAGE_RAWFS=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("RunContract passed on objstore's raw filesystem bucket; output:\n%s", out)
	}
	for _, want := range []string{
		"--- FAIL: TestContractFailsOnRawFilesystem/UploadInvisibleUntilComplete",
		"--- FAIL: TestContractFailsOnRawFilesystem/DeleteDirectoryName",
		"--- FAIL: TestContractFailsOnRawFilesystem/Iter ",
		"--- FAIL: TestContractFailsOnRawFilesystem/FailedUploadLeavesNothing",
		"--- PASS: TestContractFailsOnRawFilesystem/GetRange",
		"--- PASS: TestContractFailsOnRawFilesystem/ConcurrentUploads",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("child output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("child output:\n%s", out)
	}
}
