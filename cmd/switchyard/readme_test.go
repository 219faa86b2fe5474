package main

import (
	"os"
	"strings"
	"testing"
)

// The README's settings table must list every serve setting and its
// environment variables, so that the documentation cannot drift.
func TestREADMEListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, st := range serveSettings(&serveConfig{}).list {
		if !strings.Contains(readme, "`--"+st.flag+"`") {
			t.Errorf("README.md does not document --%s", st.flag)
		}
		for _, env := range st.envs {
			if !strings.Contains(readme, "`"+env+"`") {
				t.Errorf("README.md does not name %s (for --%s)", env, st.flag)
			}
		}
	}
}
