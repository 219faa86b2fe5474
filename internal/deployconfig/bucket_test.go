package deployconfig

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testservers"
)

// The conditional reads and writes a fleet relies on, against a real S3
// server.
func TestBucket(t *testing.T) {
	srv := testservers.StartS3(t)
	srv.CreateBucket(t, testBucket)
	b := &Bucket{newS3Source(t, s3Options(srv, "fleet", LayoutNative))}
	ctx := context.Background()
	if _, _, err := b.Get(ctx, currentName, ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing current.json: %v", err)
	}
	rel := `{"id": "` + strings.Repeat("a", 64) + `", "by": "ci"}`
	tag, err := b.Put(ctx, currentName, []byte(rel), PutCondition{Create: true})
	if err != nil || tag == "" {
		t.Fatalf("create: %q %v", tag, err)
	}
	for _, tc := range []struct {
		name string
		cond PutCondition
	}{
		{"create-only over an existing object", PutCondition{Create: true}},
		{"if-match on a stale ETag", PutCondition{IfMatch: `"0123456789abcdef0123456789abcdef"`}},
	} {
		if _, err := b.Put(ctx, currentName, []byte(`{"id":"x"}`), tc.cond); !errors.Is(err, ErrPrecondition) {
			t.Errorf("%s: %v, want ErrPrecondition", tc.name, err)
		}
	}
	data, got, err := b.Get(ctx, currentName, "")
	if err != nil || string(data) != rel || strings.Trim(got, `"`) != strings.Trim(tag, `"`) {
		t.Fatalf("get: %q %q %v (put gave %q)", data, got, err, tag)
	}
	if _, _, err := b.Get(ctx, currentName, got); !errors.Is(err, ErrNotModified) {
		t.Fatalf("conditional get of an unchanged object: %v", err)
	}
	tag2, err := b.Put(ctx, currentName, []byte(rel+" "), PutCondition{IfMatch: got})
	if err != nil || tag2 == tag {
		t.Fatalf("if-match on the current ETag: %q %v", tag2, err)
	}
	if _, _, err := b.Get(ctx, currentName, got); err != nil {
		t.Fatalf("conditional get of a changed object: %v", err)
	}
	r, err := b.ParseRelease(data)
	if err != nil || r.ID != strings.Repeat("a", 64) || r.By != "ci" {
		t.Fatalf("parse: %+v %v", r, err)
	}
	b.Put(ctx, "hosts/h1.json", []byte("{}"), PutCondition{})
	if names, err := b.List(ctx, "hosts/"); err != nil || len(names) != 1 || names[0] != "hosts/h1.json" {
		t.Fatalf("list: %v %v", names, err)
	}
	if _, err := OpenBucket(ctx, "./dir", OpenOptions{}); err == nil || !strings.Contains(err.Error(), "s3://bucket/prefix") {
		t.Fatalf("a directory as a fleet's bucket: %v", err)
	}
	srv.Stop()
	if _, _, err := b.Get(ctx, currentName, got); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("S3 down: %v", err)
	}
}
