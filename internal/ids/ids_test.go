package ids

import (
	"strings"
	"testing"
)

func TestCut(t *testing.T) {
	full := strings.Repeat("3fa4c2e1", 8)
	tests := []struct {
		id   string
		n    int
		want string
	}{
		{full, 12, "3fa4c2e1" + "3fa4"},
		{full, 8, "3fa4c2e1"},
		{"3fa4c2e1", 12, "3fa4c2e1"},                               // short already
		{"3fa4c2e1", 8, "3fa4c2e1"},                                // exactly n
		{"shop-3fa4c2e13fa4-1k2j3", 12, "shop-3fa4c2e13fa4-1k2j3"}, // a name
		{strings.ToUpper(full), 12, strings.ToUpper(full)},         // not an id we make
		{"", 12, ""},
	}
	for _, tt := range tests {
		if got := Cut(tt.id, tt.n); got != tt.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tt.id, tt.n, got, tt.want)
		}
	}
	if got := Short(full); got != full[:ShortLen] {
		t.Errorf("Short = %q", got)
	}
}
