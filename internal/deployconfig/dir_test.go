package deployconfig

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func dirHarness() harness {
	return harness{open: func(t *testing.T, layout Layout) (Source, func(string, []byte)) {
		dir := t.TempDir()
		put := func(name string, data []byte) {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return NewDir(dir, layout), put
	}}
}

func TestDirSource(t *testing.T) {
	runSourceTests(t, dirHarness())
}

func TestDirSourceTraversal(t *testing.T) {
	// A valid config just outside the source directory must stay unreachable.
	root := t.TempDir()
	dir := filepath.Join(root, "configs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := configJSON("outside")
	if err := os.WriteFile(filepath.Join(root, ID(outside)+".json"), outside, 0o644); err != nil {
		t.Fatal(err)
	}
	src := NewDir(dir, LayoutNative)
	for _, id := range []string{"../" + ID(outside), "..%2f" + ID(outside)[:8], filepath.Join(root, ID(outside))} {
		if _, err := src.Fetch(context.Background(), id); !errors.Is(err, ErrInvalid) {
			t.Errorf("Fetch(%q) = %v, want ErrInvalid", id, err)
		}
	}
}

func TestDirSourceString(t *testing.T) {
	if got := NewDir("/srv/configs/", LayoutNative).String(); got != "dir:/srv/configs" {
		t.Errorf("String() = %q", got)
	}
}

func TestOpenDir(t *testing.T) {
	dir := t.TempDir()
	data := configJSON("app")
	if err := os.WriteFile(filepath.Join(dir, ID(data)+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{dir, "dir:" + dir} {
		src, err := Open(context.Background(), uri, OpenOptions{})
		if err != nil {
			t.Fatalf("Open(%s): %v", uri, err)
		}
		if c, err := src.Fetch(context.Background(), ID(data)[:8]); err != nil || c.Image != "app" {
			t.Errorf("Open(%s).Fetch: %v, %v", uri, c, err)
		}
	}
	for _, tc := range []struct{ uri, msg string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{file, "not a directory"},
		{"", "empty path"},
		{"s3://", "no bucket"},
		{"s3:///prefix", "no bucket"},
	} {
		if _, err := Open(context.Background(), tc.uri, OpenOptions{}); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("Open(%q) = %v, want %q", tc.uri, err, tc.msg)
		}
	}
}

func TestParseLayout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Layout
		ok   bool
	}{{"native", LayoutNative, true}, {"", LayoutNative, true}, {"Wunderproxy", LayoutWunderproxy, true}, {"v2", 0, false}} {
		got, err := ParseLayout(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLayout(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in != "" {
			if again, _ := ParseLayout(got.String()); again != got {
				t.Errorf("String() of %v does not parse back", got)
			}
		}
	}
}
