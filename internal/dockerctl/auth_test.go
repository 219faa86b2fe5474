package dockerctl

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/authconfig"
)

func TestCredsFor(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	config := `{
	  "auths": {
	    "127.0.0.1:5000": {"auth": "` + b64("local:pw1") + `"},
	    "https://registry.example.com/v2/": {"username": "ex", "password": "pw2"},
	    "https://index.docker.io/v1/": {"auth": "` + b64("hub:pw3") + `"},
	    "helped.example.com": {},
	    "broken.example.com": {"auth": "not base64!"}
	  },
	  "credHelpers": {"helped.example.com": "ecr-login"},
	  "credsStore": "desktop"
	}`
	tests := []struct {
		name, ref  string
		wantUser   string // "" for anonymous
		wantHelper string
		wantErr    string
	}{
		{name: "host with port", ref: "127.0.0.1:5000/app:v1", wantUser: "local"},
		{name: "key with scheme and path", ref: "registry.example.com/team/app@sha256:" + strings.Repeat("a", 64), wantUser: "ex"},
		{name: "docker hub short name", ref: "nginx:1.27", wantUser: "hub"},
		{name: "docker hub long name", ref: "docker.io/library/nginx", wantUser: "hub"},
		{name: "credential helper only", ref: "helped.example.com/app", wantHelper: "ecr-login"},
		{name: "no entry falls back to credsStore", ref: "other.example.com/app", wantHelper: "desktop"},
		{name: "port is part of the host", ref: "127.0.0.1:5001/app", wantHelper: "desktop"},
		{name: "bad auth entry", ref: "broken.example.com/app", wantErr: "not base64"},
		{name: "bad reference", ref: "Bad:v1", wantErr: "parse image reference"},
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, err := credsFor(tt.ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("credsFor(%q) error = %v, want one containing %q", tt.ref, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("credsFor(%q): %v", tt.ref, err)
			}
			var user string
			if creds.header != "" {
				ac, err := authconfig.Decode(creds.header)
				if err != nil {
					t.Fatalf("decode header: %v", err)
				}
				user = ac.Username
				if ac.Password == "" {
					t.Errorf("credsFor(%q): empty password", tt.ref)
				}
			}
			if user != tt.wantUser || creds.helper != tt.wantHelper {
				t.Errorf("credsFor(%q) = user %q helper %q, want user %q helper %q", tt.ref, user, creds.helper, tt.wantUser, tt.wantHelper)
			}
		})
	}
}

func TestCredsForWithoutConfigFile(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	creds, err := credsFor("127.0.0.1:5000/app:v1")
	if err != nil || creds != (registryCreds{}) {
		t.Fatalf("credsFor without config = %+v, %v; want anonymous, nil", creds, err)
	}
}

func TestReadPullStream(t *testing.T) {
	tests := []struct {
		name, stream string
		wantLines    []string
		wantMsg      string
	}{
		{
			name: "status changes only",
			stream: `{"status":"Pulling from app","id":"v1"}
{"status":"Pulling fs layer","id":"abc"}
{"status":"Downloading","progressDetail":{"current":1,"total":9},"id":"abc"}
{"status":"Downloading","progressDetail":{"current":5,"total":9},"id":"abc"}
{"status":"Pull complete","id":"abc"}
{"status":"Status: Downloaded newer image for 127.0.0.1:5000/app:v1"}
`,
			wantLines: []string{"v1: Pulling from app", "abc: Pulling fs layer", "abc: Downloading", "abc: Pull complete", "Status: Downloaded newer image for 127.0.0.1:5000/app:v1"},
		},
		{
			name: "error in the stream",
			stream: `{"status":"Pulling from app","id":"v1"}
{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}
`,
			wantLines: []string{"v1: Pulling from app"},
			wantMsg:   "manifest unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var lines []string
			msg, err := readPullStream(strings.NewReader(tt.stream), func(s string) { lines = append(lines, s) })
			if err != nil {
				t.Fatal(err)
			}
			if msg != tt.wantMsg || strings.Join(lines, "|") != strings.Join(tt.wantLines, "|") {
				t.Errorf("got msg %q lines %q, want %q %q", msg, lines, tt.wantMsg, tt.wantLines)
			}
		})
	}
}
