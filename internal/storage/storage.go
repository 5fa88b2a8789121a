// Package storage opens the object store that weft keeps its trace blocks in:
// the `storage.trace` block of the config file, in Grafana Tempo's key names,
// and the construction of a github.com/thanos-io/objstore bucket from it,
// either on the local filesystem (the default) or on an S3-compatible server.
//
// Every bucket returned by NewBucket is instrumented with objstore's metrics
// under the prefix "weft_objstore". The layout of objects inside the bucket
// belongs to the block package, not to this one.
//
// The subpackages hold what tests need: storagetest.RunContract is the
// behaviour every backend must show, and s3test starts a MinIO server on
// loopback to run it against S3.
//
// Two facts about the S3 provider that callers should know: Upload reads the
// object size from the reader when it can (objstore.TryToGetSize: *os.File,
// *bytes.Reader, *bytes.Buffer, *strings.Reader, *io.LimitedReader or an
// objstore.ObjectSizer); from a reader of unknown size the MinIO client
// buffers a whole part in memory, about 560 MiB. And a GetRange whose offset is
// at or past the end of an object fails on S3 (416) but reads nothing on the
// local backend; do not rely on either.
package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/s3"
)

// Backend names accepted in Config.Backend.
const (
	BackendLocal = "local"
	BackendS3    = "s3"
)

// MetricsPrefix starts the name of every metric of a bucket from NewBucket,
// e.g. weft_objstore_bucket_operations_total.
const MetricsPrefix = "weft_objstore"

// Config is the `storage.trace` block: where trace blocks are stored. Keys are
// Tempo's.
type Config struct {
	// Backend is the object store: "local" (the default) or "s3".
	Backend string `yaml:"backend"`
	// Local configures the local filesystem backend (`backend: local`).
	Local LocalConfig `yaml:"local"`
	// S3 configures the S3-compatible backend (`backend: s3`).
	S3 S3Config `yaml:"s3"`
}

// LocalConfig is `storage.trace.local`.
type LocalConfig struct {
	// Path is the directory the blocks are written under, created when
	// missing. Default "./data".
	Path string `yaml:"path"`
}

// S3Config is `storage.trace.s3`.
type S3Config struct {
	// Bucket is the name of the bucket, which must exist. Required.
	Bucket string `yaml:"bucket"`
	// Endpoint is the server as host[:port], without a scheme, e.g.
	// "s3.eu-west-1.amazonaws.com" or "127.0.0.1:9000". Required.
	Endpoint string `yaml:"endpoint"`
	// Region is the bucket's region; when empty the client asks the server.
	Region string `yaml:"region"`
	// AccessKey is the access key ID. With SecretKey empty too, credentials
	// come from the AWS environment variables, the AWS credentials file or the
	// instance's IAM role.
	AccessKey string `yaml:"access_key"`
	// SecretKey is the secret access key; required with AccessKey. It is never
	// logged or shown: S3Config's String, LogValue, MarshalYAML and
	// MarshalJSON redact it.
	SecretKey string `yaml:"secret_key"`
	// Insecure talks plain HTTP instead of HTTPS.
	Insecure bool `yaml:"insecure"`
	// ForcePathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint, as MinIO and most S3-compatible servers need.
	ForcePathStyle bool `yaml:"forcepathstyle"`
	// Prefix, when set, is prepended (with a "/") to every object name, so
	// that weft can share a bucket with other data.
	Prefix string `yaml:"prefix"`
}

// DefaultConfig is the local backend under ./data.
func DefaultConfig() Config {
	return Config{
		Backend: BackendLocal,
		Local:   LocalConfig{Path: "./data"},
	}
}

// Validate checks the configuration of the chosen backend. Errors name the
// key relative to `storage.trace`, e.g. "s3.bucket: required with backend s3";
// all problems are reported together.
func (c *Config) Validate() error {
	var errs []error
	switch c.Backend {
	case BackendLocal:
		if c.Local.Path == "" {
			errs = append(errs, errors.New("local.path: required with backend local"))
		}
	case BackendS3:
		s := c.S3
		if s.Bucket == "" {
			errs = append(errs, errors.New("s3.bucket: required with backend s3"))
		}
		switch {
		case s.Endpoint == "":
			errs = append(errs, errors.New("s3.endpoint: required with backend s3"))
		case strings.Contains(s.Endpoint, "://"):
			errs = append(errs, fmt.Errorf("s3.endpoint: %q must be host[:port] without a scheme (use s3.insecure for plain HTTP)", s.Endpoint))
		case strings.Contains(s.Endpoint, "/"):
			errs = append(errs, fmt.Errorf("s3.endpoint: %q must be host[:port] without a path", s.Endpoint))
		}
		if s.AccessKey != "" && s.SecretKey == "" {
			errs = append(errs, errors.New("s3.secret_key: required with s3.access_key"))
		}
		if s.AccessKey == "" && s.SecretKey != "" {
			errs = append(errs, errors.New("s3.access_key: required with s3.secret_key"))
		}
	case "":
		errs = append(errs, fmt.Errorf("backend: required (supported: %s, %s)", BackendLocal, BackendS3))
	default:
		errs = append(errs, fmt.Errorf("backend: %q is not supported (supported: %s, %s)", c.Backend, BackendLocal, BackendS3))
	}
	return errors.Join(errs...)
}

// String shows the configuration with the secret key redacted.
func (c S3Config) String() string {
	return fmt.Sprintf("{bucket:%s endpoint:%s region:%s access_key:%s secret_key:%s insecure:%t forcepathstyle:%t prefix:%s}",
		c.Bucket, c.Endpoint, c.Region, c.AccessKey, redact(c.SecretKey), c.Insecure, c.ForcePathStyle, c.Prefix)
}

// LogValue logs the configuration with the secret key redacted.
func (c S3Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("bucket", c.Bucket),
		slog.String("endpoint", c.Endpoint),
		slog.String("region", c.Region),
		slog.String("access_key", c.AccessKey),
		slog.String("secret_key", redact(c.SecretKey)),
		slog.Bool("insecure", c.Insecure),
		slog.Bool("forcepathstyle", c.ForcePathStyle),
		slog.String("prefix", c.Prefix),
	)
}

// MarshalYAML shows the configuration with the secret key redacted, as Tempo
// does in /status/config.
func (c S3Config) MarshalYAML() (any, error) { return c.shown(), nil }

// MarshalJSON shows the configuration, with the keys of the YAML file, with
// the secret key redacted.
func (c S3Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.shown()) }

// s3Shown is S3Config as it may be shown.
type s3Shown struct {
	Bucket         string `yaml:"bucket" json:"bucket"`
	Endpoint       string `yaml:"endpoint" json:"endpoint"`
	Region         string `yaml:"region" json:"region"`
	AccessKey      string `yaml:"access_key" json:"access_key"`
	SecretKey      string `yaml:"secret_key" json:"secret_key"`
	Insecure       bool   `yaml:"insecure" json:"insecure"`
	ForcePathStyle bool   `yaml:"forcepathstyle" json:"forcepathstyle"`
	Prefix         string `yaml:"prefix" json:"prefix"`
}

func (c S3Config) shown() s3Shown {
	return s3Shown{c.Bucket, c.Endpoint, c.Region, c.AccessKey, redact(c.SecretKey), c.Insecure, c.ForcePathStyle, c.Prefix}
}

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return "<redacted>"
}

// NewBucket opens the configured bucket, instrumented with objstore's metrics
// (prefix "weft_objstore", const label bucket="local" or "s3") on reg, with
// Prefix applied for s3. A nil reg records no metrics; registering twice on
// the same reg is an error. The S3 bucket is not contacted here: a wrong
// endpoint, bucket or credential shows on the first operation.
//
// The local backend differs from objstore's filesystem provider in ways that
// make it behave like S3 (storagetest.RunContract checks them): uploads are
// atomic (written under a temporary name in the reserved top-level directory
// ".weft~tmp", synced, then renamed into place), listings are in byte order,
// a "directory" is never an object (Get and Attributes say not found, Delete
// does nothing), and names that are empty, absolute or hold "." or ".."
// elements are refused. On S3, weft mends two faults of objstore's provider:
// an empty object reads as empty (not as an io.EOF error), and listings that
// are not recursive come in sorted order (they are held in memory for that).
func NewBucket(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (_ objstore.Bucket, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var bkt objstore.Bucket
	switch cfg.Backend {
	case BackendLocal:
		lb, err := newLocalBucket(cfg.Local.Path)
		if err != nil {
			return nil, fmt.Errorf("local.path: %w", err)
		}
		bkt = lb
		logger.Info("opened object storage", "backend", cfg.Backend, "path", lb.root)
	case BackendS3:
		sb, err := s3.NewBucketWithConfig(kitLogger{logger.With("component", "objstore")}, s3Config(cfg.S3), "weft", nil)
		if err != nil {
			return nil, fmt.Errorf("s3: %w", err)
		}
		bkt = s3Bucket{objstore.NewPrefixedBucket(sb, cfg.S3.Prefix)}
		logger.Info("opened object storage", "backend", cfg.Backend, "s3", cfg.S3)
	}

	if reg == nil {
		return objstore.WrapWith(bkt, objstore.BucketMetrics(nil, cfg.Backend)), nil
	}
	defer func() {
		// objstore registers with promauto, which panics on a duplicate.
		if r := recover(); r != nil {
			if are, ok := r.(prometheus.AlreadyRegisteredError); ok {
				err = fmt.Errorf("registering object storage metrics: %w", are)
				return
			}
			panic(r)
		}
	}()
	return objstore.WrapWithMetrics(bkt, prometheus.WrapRegistererWithPrefix("weft_", reg), cfg.Backend), nil
}

// s3Config builds objstore's S3 configuration from ours, on objstore's
// defaults.
func s3Config(c S3Config) s3.Config {
	sc := s3.DefaultConfig
	sc.PutUserMetadata = map[string]string{} // the default's map is shared
	sc.Bucket = c.Bucket
	sc.Endpoint = c.Endpoint
	sc.Region = c.Region
	sc.AccessKey = c.AccessKey
	sc.SecretKey = c.SecretKey
	sc.Insecure = c.Insecure
	if c.ForcePathStyle {
		sc.BucketLookupType = s3.PathLookup
	}
	return sc
}
