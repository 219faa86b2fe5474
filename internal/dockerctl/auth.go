package dockerctl

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
)

// dockerConfig is the part of ~/.docker/config.json that pulls need.
type dockerConfig struct {
	Auths       map[string]dockerAuth `json:"auths"`
	CredsStore  string                `json:"credsStore"`
	CredHelpers map[string]string     `json:"credHelpers"`
}

type dockerAuth struct {
	Auth          string `json:"auth"` // base64 of "user:password"
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// registryCreds is what a pull of one image sends to the daemon.
type registryCreds struct {
	header string // X-Registry-Auth value; "" pulls anonymously
	// helper is set when the config names a credential helper or store for
	// the registry, which this package does not run: a failed pull says so.
	helper string
	file   string
}

// dockerConfigPath is $DOCKER_CONFIG/config.json, else ~/.docker/config.json,
// as for the docker CLI.
func dockerConfigPath() string {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// credsFor finds the credentials for ref's registry in the docker config
// file. Only "auths" entries are used; credential helpers (credsStore,
// credHelpers) are not run. A missing file means anonymous pulls.
func credsFor(ref string) (registryCreds, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return registryCreds{}, fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	host := reference.Domain(named)
	path := dockerConfigPath()
	if path == "" {
		return registryCreds{}, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return registryCreds{}, nil
	}
	if err != nil {
		return registryCreds{}, fmt.Errorf("read docker credentials for %s: %w", host, err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return registryCreds{}, fmt.Errorf("read docker credentials for %s: parse %s: %w", host, path, err)
	}
	creds := registryCreds{file: path}
	for key, a := range cfg.Auths {
		if !sameRegistry(key, host) {
			continue
		}
		ac, err := authConfig(key, a)
		if err != nil {
			return registryCreds{}, fmt.Errorf("read docker credentials for %s: entry %q in %s: %w", host, key, path, err)
		}
		if ac == nil {
			continue // an empty entry, as `docker login` with a helper leaves
		}
		creds.header, err = authconfig.Encode(*ac)
		if err != nil {
			return registryCreds{}, fmt.Errorf("encode docker credentials for %s: %w", host, err)
		}
		return creds, nil
	}
	for key, h := range cfg.CredHelpers {
		if sameRegistry(key, host) {
			creds.helper = h
		}
	}
	if creds.helper == "" {
		creds.helper = cfg.CredsStore
	}
	return creds, nil
}

// authConfig decodes one "auths" entry; nil when it holds no credentials.
func authConfig(server string, a dockerAuth) (*registry.AuthConfig, error) {
	ac := registry.AuthConfig{
		Username:      a.Username,
		Password:      a.Password,
		IdentityToken: a.IdentityToken,
		ServerAddress: server,
	}
	if a.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return nil, fmt.Errorf("auth is not base64: %w", err)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, errors.New(`auth is not base64 of "user:password"`)
		}
		ac.Username, ac.Password = user, pass
	}
	if ac.Username == "" && ac.Password == "" && ac.IdentityToken == "" {
		return nil, nil
	}
	return &ac, nil
}

// sameRegistry reports whether a config key ("https://host:port/v1/",
// "host:port") names the registry host of a reference (reference.Domain),
// with Docker Hub's several names treated as one.
func sameRegistry(key, host string) bool {
	key = strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	key, _, _ = strings.Cut(key, "/")
	return canonicalHost(key) == canonicalHost(host)
}

func canonicalHost(h string) string {
	switch h = strings.ToLower(h); h {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}
