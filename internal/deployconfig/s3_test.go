package deployconfig

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/switchyard/switchyard/internal/testservers"
)

const testBucket = "configs"

// s3Options points a source at srv with its credentials passed explicitly,
// so the tests do not depend on (or change) the environment.
func s3Options(srv *testservers.S3, prefix string, layout Layout) s3Config {
	return s3Config{
		Bucket:      testBucket,
		Prefix:      prefix,
		Endpoint:    srv.Endpoint,
		Region:      srv.Region,
		PathStyle:   true,
		Layout:      layout,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	}
}

func newS3Source(t *testing.T, o s3Config) *s3Source {
	t.Helper()
	src, err := newS3(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestS3Source(t *testing.T) {
	srv := testservers.StartS3(t)
	srv.CreateBucket(t, testBucket)
	var n atomic.Int32
	runSourceTests(t, harness{open: func(t *testing.T, layout Layout) (Source, func(string, []byte)) {
		// A fresh prefix per subtest is a fresh, empty source; a nested one
		// checks that keys are joined with the prefix correctly.
		prefix := fmt.Sprintf("apps/t%d", n.Add(1))
		put := func(name string, data []byte) { srv.Put(t, testBucket, prefix+"/"+name, data) }
		return newS3Source(t, s3Options(srv, "/"+prefix+"/", layout)), put
	}})

	t.Run("bucket root and String", func(t *testing.T) {
		data := configJSON("root")
		srv.Put(t, testBucket, ID(data)+".json", data)
		src := newS3Source(t, s3Options(srv, "", LayoutNative))
		if src.String() != "s3://"+testBucket {
			t.Errorf("String() = %q", src.String())
		}
		if c, err := src.Fetch(testCtx(t), ID(data)[:8]); err != nil || c.Image != "root" {
			t.Fatalf("Fetch: %v, %v", c, err)
		}
		if s := newS3Source(t, s3Options(srv, "a/b", LayoutNative)).String(); s != "s3://configs/a/b" {
			t.Errorf("String() = %q", s)
		}
	})

	t.Run("current version is the ETag", func(t *testing.T) {
		src := newS3Source(t, s3Options(srv, "etag", LayoutNative))
		id := ID(configJSON("x"))
		srv.Put(t, testBucket, "etag/current.json", []byte(id))
		_, version, err := src.Current(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		head, err := srv.Client().HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: aws.String(testBucket), Key: aws.String("etag/current.json")})
		if err != nil {
			t.Fatal(err)
		}
		if version != aws.ToString(head.ETag) {
			t.Errorf("version %q, ETag %q", version, aws.ToString(head.ETag))
		}
	})

	t.Run("missing bucket", func(t *testing.T) {
		o := s3Options(srv, "p", LayoutNative)
		o.Bucket = "no-such-bucket"
		_, err := newS3Source(t, o).Fetch(testCtx(t), ID(nil))
		wantErr(t, err, ErrUnavailable, "no-such-bucket", "does not exist")
	})

	t.Run("wrong secret", func(t *testing.T) {
		o := s3Options(srv, "p", LayoutNative)
		o.Credentials = credentials.NewStaticCredentialsProvider(srv.AccessKey, "wrong-secret", "")
		src := newS3Source(t, o)
		_, err := src.Fetch(testCtx(t), ID(nil))
		wantErr(t, err, ErrUnavailable, "access denied", "SignatureDoesNotMatch", "check the credentials")
		if strings.Contains(err.Error(), "RequestID") || strings.Contains(err.Error(), "operation error") {
			t.Errorf("message %q carries the SDK's decorations", err)
		}
		_, err = src.Fetch(testCtx(t), ID(nil)[:8]) // a listing fails the same way
		wantErr(t, err, ErrUnavailable, "access denied")
		_, _, err = src.Current(testCtx(t))
		wantErr(t, err, ErrUnavailable, "access denied")
	})
}

func TestS3SourceServerDown(t *testing.T) {
	srv := testservers.StartS3(t)
	srv.CreateBucket(t, testBucket)
	data := configJSON("app")
	srv.Put(t, testBucket, "p/"+ID(data)+".json", data)

	o := s3Options(srv, "p", LayoutNative)
	o.MaxAttempts = 2
	src := newS3Source(t, o)
	if _, err := src.Fetch(testCtx(t), ID(data)); err != nil {
		t.Fatalf("before stop: %v", err)
	}
	srv.Stop()

	for _, call := range []struct {
		name string
		do   func(ctx context.Context) error
	}{
		{"fetch", func(ctx context.Context) error { _, err := src.Fetch(ctx, ID(data)); return err }},
		{"fetch prefix", func(ctx context.Context) error { _, err := src.Fetch(ctx, ID(data)[:8]); return err }},
		{"current", func(ctx context.Context) error { _, _, err := src.Current(ctx); return err }},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		start := time.Now()
		err := call.do(ctx)
		cancel()
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrUnavailable", call.name, err)
		}
		// What failed, said once, without the SDK's empty request ids.
		if msg := err.Error(); !strings.Contains(msg, "connection refused") || strings.Contains(msg, "RequestID") ||
			strings.Contains(msg, "StatusCode") || strings.Contains(msg, "operation error") || strings.Count(msg, "config s3:") != 1 {
			t.Errorf("%s: message %q, want the network's error alone", call.name, msg)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("%s took %v", call.name, d)
		}
	}

	// With the SDK's default retries and no deadline from the caller, the
	// source's own RequestTimeout still bounds the call.
	o = s3Options(srv, "p", LayoutNative)
	o.RequestTimeout = 500 * time.Millisecond
	start := time.Now()
	_, err := newS3Source(t, o).Fetch(context.Background(), ID(data))
	wantErr(t, err, ErrUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("request timeout not applied: took %v", d)
	}
}

func TestOpenS3FromEnvironment(t *testing.T) {
	srv := testservers.StartS3(t)
	srv.CreateBucket(t, testBucket)
	data := configJSON("from-env")
	srv.Put(t, testBucket, "team/app/"+ID(data)+".json", data)
	srv.Put(t, testBucket, "team/app/current.json", []byte(`{"id": "`+ID(data)+`"}`))
	// The standard credential chain and AWS_ENDPOINT_URL, as in production.
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")

	src, err := Open(context.Background(), "s3://"+testBucket+"/team/app", OpenOptions{PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if src.String() != "s3://configs/team/app" {
		t.Errorf("String() = %q", src.String())
	}
	id, version, err := src.Current(testCtx(t))
	if err != nil || id != ID(data) || version == "" {
		t.Fatalf("Current = %q, %q, %v", id, version, err)
	}
	c, err := src.Fetch(testCtx(t), id)
	if err != nil || c.Image != "from-env" {
		t.Fatalf("Fetch = %+v, %v", c, err)
	}
}

func TestNewS3Options(t *testing.T) {
	for _, tc := range []struct {
		o   s3Config
		msg string
	}{
		{s3Config{}, "no bucket"},
		{s3Config{Bucket: "b", Endpoint: "127.0.0.1:7070"}, "want a URL"},
		{s3Config{Bucket: "b", Endpoint: "ftp://x"}, "want a URL"},
	} {
		if _, err := newS3(context.Background(), tc.o); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("NewS3(%+v) = %v, want %q", tc.o, err, tc.msg)
		}
	}
}
