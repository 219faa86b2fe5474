package deployconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Errors of Bucket's conditional calls.
var (
	// ErrNotModified: a Get with IfNoneMatch found the object unchanged.
	ErrNotModified = errors.New("not modified")
	// ErrPrecondition: a conditional Put lost: the object exists (Create)
	// or changed since it was read (IfMatch).
	ErrPrecondition = errors.New("precondition failed")
)

// maxBucketObject bounds what Bucket.Get reads: heartbeats and
// current.json are small.
const maxBucketObject = 1 << 20

// Bucket reads and writes the objects beside the configs in S3:
// current.json, the configs themselves (publish) and the fleet's
// heartbeats under hosts/. Names are relative to the source's prefix. It
// shares the source's client, credentials (the SDK's standard chain) and
// timeouts.
type Bucket struct{ s *s3Source }

// OpenBucket opens the s3:// URI for reading and writing; a directory is
// refused: a fleet needs one store all hosts share.
func OpenBucket(ctx context.Context, uri string, o OpenOptions) (*Bucket, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return nil, fmt.Errorf("configs %q: a fleet needs an S3 bucket all hosts share: use s3://bucket/prefix", uri)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	s, err := newS3(ctx, s3Config{Bucket: bucket, Prefix: prefix, Endpoint: o.Endpoint, Region: o.Region,
		PathStyle: o.PathStyle, Layout: o.Layout})
	if err != nil {
		return nil, err
	}
	return &Bucket{s}, nil
}

// String is "s3://bucket/prefix".
func (b *Bucket) String() string { return b.s.String() }

// Where is the full s3:// name of object name.
func (b *Bucket) Where(name string) string { return s3Store{b.s}.where(name) }

// Get reads object name and its ETag. With ifNoneMatch set (an ETag read
// before), an unchanged object is ErrNotModified; a missing one is
// ErrNotFound; S3 failing is ErrUnavailable.
func (b *Bucket) Get(ctx context.Context, name, ifNoneMatch string) ([]byte, string, error) {
	ctx, cancel := b.s.withTimeout(ctx)
	defer cancel()
	in := &s3.GetObjectInput{Bucket: aws.String(b.s.bucket), Key: aws.String(b.s.keyPrefix() + name)}
	if ifNoneMatch != "" {
		in.IfNoneMatch = aws.String(ifNoneMatch)
	}
	out, err := b.s.client.GetObject(ctx, in)
	if err != nil {
		if httpStatus(err) == 304 {
			return nil, ifNoneMatch, ErrNotModified
		}
		return nil, "", s3Store{b.s}.mapErr(b.Where(name), err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxBucketObject+1))
	if err != nil {
		return nil, "", s3Store{b.s}.mapErr(b.Where(name), err)
	}
	if len(data) > maxBucketObject {
		return nil, "", fmt.Errorf("%s: %w: larger than %d bytes", b.Where(name), ErrInvalid, maxBucketObject)
	}
	return data, aws.ToString(out.ETag), nil
}

// PutCondition makes a Put conditional.
type PutCondition struct {
	// Create writes only when the object does not exist yet.
	Create bool
	// IfMatch writes only when the object's ETag is still this one.
	IfMatch string
}

// Put writes object name and returns its new ETag. A condition that does
// not hold is ErrPrecondition.
func (b *Bucket) Put(ctx context.Context, name string, data []byte, cond PutCondition) (string, error) {
	ctx, cancel := b.s.withTimeout(ctx)
	defer cancel()
	in := &s3.PutObjectInput{Bucket: aws.String(b.s.bucket), Key: aws.String(b.s.keyPrefix() + name),
		Body: strings.NewReader(string(data)), ContentType: aws.String("application/json")}
	switch {
	case cond.Create:
		in.IfNoneMatch = aws.String("*")
	case cond.IfMatch != "":
		in.IfMatch = aws.String(cond.IfMatch)
	}
	out, err := b.s.client.PutObject(ctx, in)
	if err != nil {
		if s := httpStatus(err); s == 412 || s == 409 {
			return "", fmt.Errorf("%s: %w", b.Where(name), ErrPrecondition)
		}
		return "", s3Store{b.s}.mapErr(b.Where(name), err)
	}
	return aws.ToString(out.ETag), nil
}

// List names the objects whose names start with prefix (at most 1000).
func (b *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	return s3Store{b.s}.list(ctx, prefix)
}

// httpStatus is the HTTP status of an SDK error, 0 without one.
func httpStatus(err error) int {
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) {
		return resp.HTTPStatusCode()
	}
	return 0
}

// ParseRelease reads current.json's content in the bucket's layout: the
// id it names, and the release's other fields when it has them.
func (b *Bucket) ParseRelease(data []byte) (Release, error) {
	id, err := b.s.f.parseCurrent(data)
	if err != nil {
		return Release{}, fmt.Errorf("%s: %w", b.Where(currentName), err)
	}
	var r Release
	if t := strings.TrimSpace(string(data)); strings.HasPrefix(t, "{") {
		_ = decodeStrict([]byte(t), &r, false) // parseCurrent accepted it, or it is a whole wunderproxy config
	}
	r.ID = id
	return r, nil
}

// CurrentName is the name of the object that names the release.
const CurrentName = currentName
