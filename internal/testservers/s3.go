package testservers

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a running versitygw (posix backend) on 127.0.0.1, for tests that need
// a real S3 server: real signatures, real errors, real ETags.
type S3 struct {
	// Endpoint is the server's URL, e.g. "http://127.0.0.1:41234"; clients
	// must use path-style addressing.
	Endpoint string
	// AccessKey and SecretKey are the root credentials the server accepts.
	AccessKey, SecretKey string
	// Region is what clients should sign for ("us-east-1").
	Region string

	mu   sync.Mutex
	cmd  *exec.Cmd // nil while stopped
	bin  string
	env  []string
	addr string
	dir  string
}

// s3StartAttempts retries a start whose port was taken between FreeAddr and
// the server's listen (the server then exits and never becomes healthy).
const s3StartAttempts = 3

// StartS3 starts versitygw on a free 127.0.0.1 port with its data in
// t.TempDir(), waits for its /health, and stops it when the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	bin, err := FindBinary("versitygw")
	if err != nil {
		Missing(t, "versitygw (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)", err)
		return nil
	}
	s := &S3{AccessKey: "testaccess", SecretKey: "testsecret123", Region: "us-east-1"}
	env := []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey}
	var lastErr error
	for range s3StartAttempts {
		s.bin, s.env, s.addr, s.dir = bin, env, FreeAddr(t), t.TempDir()
		cmd, err := s.run(t)
		if lastErr = err; err == nil {
			s.Endpoint, s.cmd = "http://"+s.addr, cmd
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("versitygw did not become healthy: %v", lastErr)
	return nil
}

// run starts the server on s.addr with its data in s.dir.
func (s *S3) run(t testing.TB) (*exec.Cmd, error) {
	cmd := StartProcess(t, s.env, s.bin, "--quiet", "--health", "/health", "--port", s.addr, "posix", s.dir)
	if err := WaitHTTP(context.Background(), "http://"+s.addr+"/health", http.StatusOK, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return cmd, nil
}

// Stop kills the server now, e.g. to test "S3 down"; it returns when the
// process is gone. Safe to call more than once and alongside the cleanup.
func (s *S3) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	// The cleanup from StartProcess also calls Wait; the second call only
	// returns an error, which it ignores.
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts a stopped server again, on the same address with the
// same data: S3 back after an outage. The server is stopped when t ends:
// pass the test that owns the server, not a subtest.
func (s *S3) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd, err := s.run(t)
	if err != nil {
		t.Fatalf("versitygw did not come back on %s: %v", s.addr, err)
	}
	s.cmd = cmd
}

// Env returns the variables a child process (or the SDK's standard chain)
// needs to reach this server: credentials, region and endpoint.
func (s *S3) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		// No instance-metadata lookups from a test: they only add delays.
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Client returns an SDK client for this server with its root credentials.
func (s *S3) Client() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       s.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// CreateBucket creates a bucket, failing the test on error.
func (s *S3) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Put writes an object, failing the test on error.
func (s *S3) Put(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
		Body:   bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}
