package deployconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeEnvFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadEnvFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    map[string]string
		wantErr string // substring; the path:line prefix is checked separately
		line    int
	}{
		{name: "empty", content: "", want: map[string]string{}},
		{name: "plain", content: "A=1\nB = two words \n", want: map[string]string{"A": "1", "B": "two words"}},
		{name: "comments and blanks", content: "# secrets\n\n  # indented comment\nA=1\n\n", want: map[string]string{"A": "1"}},
		{name: "export prefix", content: "export A=1\nexport   B=2\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "double quotes", content: `A="  spaced # not a comment "` + "\n", want: map[string]string{"A": "  spaced # not a comment "}},
		{name: "single quotes", content: `A='it''s'` + "\n", want: map[string]string{"A": "it''s"}},
		{name: "empty value", content: "A=\nB=\"\"\n", want: map[string]string{"A": "", "B": ""}},
		{name: "equals in value", content: "URL=postgres://u:p@h/db?x=1\n", want: map[string]string{"URL": "postgres://u:p@h/db?x=1"}},
		{name: "CRLF", content: "A=1\r\nB=2\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "no equals", content: "A=1\nJUSTAKEY\n", wantErr: `want KEY=VALUE, got "JUSTAKEY"`, line: 2},
		{name: "empty key", content: "=1\n", wantErr: "empty variable name", line: 1},
		{name: "space in key", content: "\n\nMY KEY=1\n", wantErr: "variable names cannot contain", line: 3},
		{name: "unclosed quote", content: "A=\"abc\n", wantErr: "quote is not closed", line: 1},
		{name: "mismatched quotes", content: "A='abc\"\n", wantErr: "quote is not closed", line: 1},
		{name: "duplicate", content: "A=1\nB=2\nA=3\n", wantErr: "A is already set on line 1", line: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeEnvFile(t, tt.content)
			got, err := LoadEnvFile(p)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("no error, got %v", got)
				}
				prefix := p + ":" + string(rune('0'+tt.line)) + ":"
				if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want prefix %q and %q", err, prefix, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := LoadEnvFile(filepath.Join(t.TempDir(), "missing.env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestResolveEnv(t *testing.T) {
	static := map[string]string{"DB_PASSWORD": "s3cret", "API_KEY": "k", "MODE": "static", "UNUSED": "x"}
	tests := []struct {
		name    string
		cfg     Config
		want    []string
		wantErr string
	}{
		{name: "nothing", cfg: Config{}, want: []string{}},
		{name: "env only", cfg: Config{Env: map[string]string{"B": "2", "A": "1"}}, want: []string{"A=1", "B=2"}},
		{name: "env_file only", cfg: Config{EnvFile: []string{"DB_PASSWORD", "API_KEY"}}, want: []string{"API_KEY=k", "DB_PASSWORD=s3cret"}},
		{name: "config env wins", cfg: Config{EnvFile: []string{"MODE"}, Env: map[string]string{"MODE": "config"}}, want: []string{"MODE=config"}},
		{name: "sorted by key", cfg: Config{Env: map[string]string{"A.B": "1", "A": "2"}}, want: []string{"A=2", "A.B=1"}},
		{name: "missing keys named", cfg: Config{ID: "abcdef0123456789", EnvFile: []string{"DB_PASSWORD", "NOPE", "ALSO_NOPE"}}, wantErr: "env_file: NOPE, ALSO_NOPE not in the operator's env file"},
		{name: "wunderproxy takes all", cfg: Config{envFileAll: true, Env: map[string]string{"MODE": "config"}},
			want: []string{"API_KEY=k", "DB_PASSWORD=s3cret", "MODE=config", "UNUSED=x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.ResolveEnv(static)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v, want %q wrapping ErrInvalid", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
