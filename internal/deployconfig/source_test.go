package deployconfig

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// This file holds the behaviour every Source shares, run against each
// implementation by dir_test.go and s3_test.go.

// harness makes a fresh, empty source for one subtest, and writes objects
// into it by name relative to the prefix.
type harness struct {
	open func(t *testing.T, layout Layout) (src Source, put func(name string, data []byte))
}

func configJSON(image string) []byte {
	return []byte(fmt.Sprintf(`{"image": %q, "port": 8000}`+"\n", image))
}

func md5Hex(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantErr checks that err wraps sentinel and mentions each of subs.
func wantErr(t *testing.T, err, sentinel error, subs ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v: want %v", err, sentinel)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func runSourceTests(t *testing.T, h harness) {
	t.Run("fetch by id and prefix", func(t *testing.T) {
		src, put := h.open(t, LayoutNative)
		data := configJSON("app:1")
		id := ID(data)
		put(id+".json", data)
		put(ID(configJSON("app:2"))+".json", configJSON("app:2"))
		put("notes.txt", []byte("other files may live here"))
		for _, q := range []string{id, id[:8], id[:33]} {
			c, err := src.Fetch(testCtx(t), q)
			if err != nil {
				t.Fatalf("Fetch(%s): %v", q, err)
			}
			if c.ID != id || c.Image != "app:1" || c.Workers != DefaultWorkers {
				t.Errorf("Fetch(%s) = %+v", q, c)
			}
		}
	})
	t.Run("ambiguous prefix", func(t *testing.T) {
		src, put := h.open(t, LayoutNative)
		a, b := "abcdef01"+strings.Repeat("0", 56), "abcdef01"+strings.Repeat("1", 56)
		put(a+".json", configJSON("a"))
		put(b+".json", configJSON("b"))
		_, err := src.Fetch(testCtx(t), "abcdef01")
		wantErr(t, err, ErrAmbiguous, a, b, "give more characters")
		// One more character picks one: then its content fails the hash.
		_, err = src.Fetch(testCtx(t), "abcdef010")
		wantErr(t, err, ErrHashMismatch, a)
	})
	t.Run("missing", func(t *testing.T) {
		src, _ := h.open(t, LayoutNative)
		id := ID([]byte("nothing"))
		_, err := src.Fetch(testCtx(t), id)
		wantErr(t, err, ErrNotFound, id+".json")
		_, err = src.Fetch(testCtx(t), id[:10])
		wantErr(t, err, ErrNotFound, id[:10])
	})
	t.Run("tampered", func(t *testing.T) {
		src, put := h.open(t, LayoutNative)
		orig, changed := configJSON("app:1"), configJSON("evil:1")
		id := ID(orig)
		put(id+".json", changed)
		_, err := src.Fetch(testCtx(t), id)
		wantErr(t, err, ErrHashMismatch,
			fmt.Sprintf("sha256 is %s, not the id %s: the object was changed after upload", ID(changed), id))
	})
	t.Run("invalid content", func(t *testing.T) {
		src, put := h.open(t, LayoutNative)
		for _, tc := range []struct{ data, msg string }{
			{`{"image": "a", "port": 1,`, "invalid JSON"},
			{`{"image": "a"}`, "port: required"},
			{`{"image": "a", "port": 1, "extra": true}`, "extra: unknown field"},
		} {
			id := ID([]byte(tc.data))
			put(id+".json", []byte(tc.data))
			_, err := src.Fetch(testCtx(t), id)
			wantErr(t, err, ErrInvalid, tc.msg, id+".json")
		}
	})
	t.Run("too large", func(t *testing.T) {
		src, put := h.open(t, LayoutNative)
		big := []byte(`{"image": "a", "port": 1, "labels": {"x": "` + strings.Repeat("y", maxObjectSize) + `"}}`)
		id := ID(big)
		put(id+".json", big)
		_, err := src.Fetch(testCtx(t), id)
		wantErr(t, err, ErrInvalid, "larger than")
	})
	t.Run("bad ids", func(t *testing.T) {
		src, put := h.open(t, LayoutNative)
		put(currentName, []byte(ID(nil)))
		for _, id := range []string{"", "abc", "../../etc/passwd", "/etc/passwd", "abcdef01/../current",
			"ABCDEF0123", "abcdefgh", "current", "abcdef01.json", " abcdef01", strings.Repeat("a", 65), "abcdef01\x00"} {
			_, err := src.Fetch(testCtx(t), id)
			if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) {
				t.Errorf("Fetch(%q): %v, want ErrInvalid", id, err)
			}
		}
	})
	t.Run("current", func(t *testing.T) {
		src, put := h.open(t, LayoutNative)
		ctx := testCtx(t)
		_, _, err := src.Current(ctx)
		wantErr(t, err, ErrNotFound, currentName)

		id1, id2 := ID(configJSON("one")), ID(configJSON("two"))
		put(currentName, []byte(`{"id": "`+id1+`"}`))
		got, v1, err := src.Current(ctx)
		if err != nil || got != id1 || v1 == "" {
			t.Fatalf("Current = %q, %q, %v; want %s", got, v1, err, id1)
		}
		if _, again, _ := src.Current(ctx); again != v1 {
			t.Errorf("version changed without a write: %q then %q", v1, again)
		}
		put(currentName, []byte(id2+"\n"))
		got, v2, err := src.Current(ctx)
		if err != nil || got != id2 || v2 == v1 {
			t.Fatalf("bare id: Current = %q, %q, %v; want %s and a new version", got, v2, err, id2)
		}
		// What switchyard release writes.
		put(currentName, []byte(`{"id": "`+id1+`", "previous": "`+id2+`", "released_at": "2026-12-04T09:00:00Z", "by": "ci"}`))
		if got, _, err := src.Current(ctx); err != nil || got != id1 {
			t.Fatalf("a release: Current = %q, %v", got, err)
		}
		for _, bad := range []struct{ content, msg string }{
			{`{"id": "` + id1[:8] + `"}`, "not a full lowercase hex sha256"},
			{strings.ToUpper(id1), "bare lowercase hex id"},
			{`{"id": "` + id1 + `", "note": "ci"}`, `want {"id": "<sha256>"}`},
			{`{"image": "a", "port": 1}`, `want {"id": "<sha256>"}`},
			{``, "bare lowercase hex id"},
		} {
			put(currentName, []byte(bad.content))
			_, _, err := src.Current(ctx)
			wantErr(t, err, ErrInvalid, bad.msg, currentName)
		}
	})
	t.Run("wunderproxy layout", func(t *testing.T) {
		src, put := h.open(t, LayoutWunderproxy)
		ctx := testCtx(t)
		wp := []byte(wunderproxyExample)
		wpID := md5Hex(wp)
		put("container."+wpID+".json", wp)
		ours := configJSON("ours:1")
		oursMD5 := md5Hex(ours)
		put("container."+oursMD5+".json", ours)
		native := configJSON("native:1")
		put(ID(native)+".json", native)

		for _, tc := range []struct{ id, full, image string }{
			{wpID, wpID, "localhost:5000/phrase:abc123"},
			{wpID[:9], wpID, "localhost:5000/phrase:abc123"},
			{oursMD5, oursMD5, "ours:1"},
			{ID(native), ID(native), "native:1"},
			{ID(native)[:40], ID(native), "native:1"},
		} {
			c, err := src.Fetch(ctx, tc.id)
			if err != nil {
				t.Fatalf("Fetch(%s): %v", tc.id, err)
			}
			if c.ID != tc.full || c.Image != tc.image {
				t.Errorf("Fetch(%s) = id %s image %s", tc.id, c.ID, c.Image)
			}
		}

		// wunderproxy copied the deployed config to current.json.
		put(currentName, wp)
		if got, _, err := src.Current(ctx); err != nil || got != wpID {
			t.Errorf("current.json as a copy: %q, %v; want %s", got, err, wpID)
		}
		put(currentName, []byte(`{"id": "`+oursMD5+`"}`))
		if got, _, err := src.Current(ctx); err != nil || got != oursMD5 {
			t.Errorf("current.json pointer: %q, %v; want %s", got, err, oursMD5)
		}
		put(currentName, []byte(`{"ContainerConfig": {}}`))
		_, _, err := src.Current(ctx)
		wantErr(t, err, ErrInvalid, "ContainerConfig.Image: required")

		tampered := md5Hex([]byte("original"))
		put("container."+tampered+".json", wp)
		_, err = src.Fetch(ctx, tampered)
		wantErr(t, err, ErrHashMismatch, "md5 is "+wpID+", not the id "+tampered)

		put("container.1234abcd"+strings.Repeat("0", 24)+".json", wp)
		put("container.1234abcd"+strings.Repeat("1", 24)+".json", wp)
		_, err = src.Fetch(ctx, "1234abcd")
		wantErr(t, err, ErrAmbiguous)
	})
}
