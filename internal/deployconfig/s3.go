package deployconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

const (
	// DefaultS3Region is used when neither s3Config.Region nor the
	// environment or shared config names one.
	DefaultS3Region = "us-east-1"
	// DefaultS3RequestTimeout bounds each S3 call, retries included, when
	// the caller's context has no deadline.
	DefaultS3RequestTimeout = 30 * time.Second
	// maxListKeys bounds a prefix listing: an 8+ hex char prefix matches a
	// handful of keys, so more means something else lives there.
	maxListKeys = 1000
)

// s3Config configures newS3.
type s3Config struct {
	// Bucket holds the configs. Required.
	Bucket string
	// Prefix is the key prefix, without leading or trailing "/"; objects are
	// <Prefix>/<id>.json. Default "" (the bucket's root).
	Prefix string
	// Endpoint is the S3 endpoint URL, e.g. "http://127.0.0.1:7070". Default:
	// AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) when set, else AWS.
	Endpoint string
	// Region is the bucket's region. Default: AWS_REGION or the shared
	// config's, else DefaultS3Region ("us-east-1").
	Region string
	// PathStyle addresses buckets as endpoint/bucket, which most
	// self-hosted S3 servers need. Default false (bucket.endpoint).
	PathStyle bool
	// Layout names and hashes the objects. Default LayoutNative.
	Layout Layout
	// Credentials overrides the SDK's standard chain (environment, shared
	// files, SSO, container and instance roles). Default nil: the chain.
	// Tests pass credentials.NewStaticCredentialsProvider here.
	Credentials aws.CredentialsProvider
	// MaxAttempts is how many times one S3 call is tried. Default 0: the
	// SDK's (3, with backoff).
	MaxAttempts int
	// RequestTimeout bounds each call when the context has no deadline.
	// Default DefaultS3RequestTimeout (30s).
	RequestTimeout time.Duration
}

// s3Source reads configs from an S3 bucket (AWS or any S3-compatible server).
type s3Source struct {
	client  *s3.Client
	bucket  string
	prefix  string
	timeout time.Duration
	f       fetcher
}

// newS3 returns a source reading o.Bucket under o.Prefix. It loads the AWS
// configuration (credentials, region) but does not contact S3, so a
// switchyard can start while S3 is down.
func newS3(ctx context.Context, o s3Config) (*s3Source, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3 config source: no bucket: set the bucket name")
	}
	if o.Endpoint != "" {
		if u, err := url.Parse(o.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3 endpoint %q: want a URL like https://s3.example.com or http://127.0.0.1:7070", o.Endpoint)
		}
	}
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(o.Credentials))
	}
	if o.MaxAttempts > 0 {
		opts = append(opts, config.WithRetryMaxAttempts(o.MaxAttempts))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3://%s: load the AWS configuration (AWS_* environment, ~/.aws): %w", o.Bucket, err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// We verify every object against its hash ourselves; the SDK's
		// response checksums would only add work (and warnings on servers
		// that send none).
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s := &s3Source{
		client:  client,
		bucket:  o.Bucket,
		prefix:  strings.Trim(o.Prefix, "/"),
		timeout: o.RequestTimeout,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultS3RequestTimeout
	}
	s.f = fetcher{store: s3Store{s}, layout: o.Layout}
	return s, nil
}

// Fetch returns the config whose id (or unambiguous prefix, found with
// ListObjectsV2) is id.
func (s *s3Source) Fetch(ctx context.Context, id string) (*Config, error) {
	return s.f.fetch(ctx, id)
}

// Current returns the id named by <prefix>/current.json and its ETag.
func (s *s3Source) Current(ctx context.Context) (string, string, error) {
	return s.f.current(ctx)
}

// String returns "s3://bucket/prefix".
func (s *s3Source) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// keyPrefix is what every key of this source starts with.
func (s *s3Source) keyPrefix() string {
	if s.prefix == "" {
		return ""
	}
	return s.prefix + "/"
}

// withTimeout applies the default timeout to a context without a deadline.
func (s *s3Source) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// s3Store is the objectStore of an s3Source.
type s3Store struct{ s *s3Source }

func (st s3Store) String() string { return st.s.String() }
func (st s3Store) where(name string) string {
	return "s3://" + st.s.bucket + "/" + st.s.keyPrefix() + name
}

func (st s3Store) get(ctx context.Context, name string) ([]byte, string, error) {
	ctx, cancel := st.s.withTimeout(ctx)
	defer cancel()
	out, err := st.s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(st.s.bucket),
		Key:    aws.String(st.s.keyPrefix() + name),
	})
	if err != nil {
		return nil, "", st.mapErr(st.where(name), err)
	}
	defer out.Body.Close()
	tooBig := fmt.Errorf("config %s: %w: larger than %d bytes; a config file is small JSON", st.where(name), ErrInvalid, maxObjectSize)
	if aws.ToInt64(out.ContentLength) > maxObjectSize {
		return nil, "", tooBig
	}
	data, err := io.ReadAll(io.LimitReader(out.Body, maxObjectSize+1))
	if err != nil {
		return nil, "", st.mapErr(st.where(name), err)
	}
	if len(data) > maxObjectSize {
		return nil, "", tooBig
	}
	return data, aws.ToString(out.ETag), nil
}

func (st s3Store) list(ctx context.Context, namePrefix string) ([]string, error) {
	ctx, cancel := st.s.withTimeout(ctx)
	defer cancel()
	kp := st.s.keyPrefix()
	pages := s3.NewListObjectsV2Paginator(st.s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(st.s.bucket),
		Prefix: aws.String(kp + namePrefix),
	})
	var names []string
	for pages.HasMorePages() && len(names) < maxListKeys {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, st.mapErr(st.where(namePrefix+"*"), err)
		}
		for _, obj := range page.Contents {
			names = append(names, strings.TrimPrefix(aws.ToString(obj.Key), kp))
		}
	}
	return names, nil
}

// mapErr sorts an SDK error into ErrNotFound or ErrUnavailable, keeping the
// SDK's error (status, code, request id) for the operator.
func (st s3Store) mapErr(what string, err error) error {
	var (
		noKey  *types.NoSuchKey
		apiErr interface{ ErrorCode() string }
		resp   interface{ HTTPStatusCode() int }
		code   string
		status int
	)
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	if errors.As(err, &resp) {
		status = resp.HTTPStatusCode()
	}
	reason := sdkError{sdkReason(err), err}
	switch {
	case errors.As(err, &noKey), code == "NoSuchKey", code == "NotFound", status == 404 && code != "NoSuchBucket":
		return fmt.Errorf("config %s: %w: upload it first, or check the id", what, ErrNotFound)
	case code == "NoSuchBucket":
		return fmt.Errorf("config %s: %w: bucket %q does not exist: check the bucket name, endpoint and region: %w", what, ErrUnavailable, st.s.bucket, reason)
	case status == 401 || status == 403:
		return fmt.Errorf("config %s: %w: access denied: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profile or instance role) and the bucket policy: %w", what, ErrUnavailable, reason)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("config %s: %w: no answer in time (is the endpoint reachable?)", what, ErrUnavailable)
	}
	return fmt.Errorf("config %s: %w: %w", what, ErrUnavailable, reason)
}

// sdkError is an SDK error said briefly: the SDK's own text repeats the
// operation and carries empty request ids ("StatusCode: 0, RequestID: ,
// HostID: ") that tell an operator nothing. It unwraps to the SDK's error.
type sdkError struct {
	msg string
	err error
}

func (e sdkError) Error() string { return e.msg }
func (e sdkError) Unwrap() error { return e.err }

// sdkReason is what went wrong in an SDK error: the service's code and
// message, or the network's error, or the SDK's text without its
// decorations.
func sdkReason(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		if m := apiErr.ErrorMessage(); m != "" {
			return apiErr.ErrorCode() + ": " + m
		}
		return apiErr.ErrorCode()
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	msg := sdkNoise.ReplaceAllString(err.Error(), "")
	return strings.TrimSpace(msg)
}

// sdkNoise are the parts of the SDK's error text that say nothing.
var sdkNoise = regexp.MustCompile(`operation error [^,]*, |exceeded maximum number of attempts, \d+, |https? response error StatusCode: \d+, RequestID: [^,]*, HostID: [^,]*, `)
