package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// runVersion is `switchyard version` (and --version): the version it was
// built as, the Go that built it, and the commit when the build knows it.
func runVersion(w io.Writer) {
	fmt.Fprintf(w, "switchyard %s (%s, %s/%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				fmt.Fprintf(w, ", commit %s", s.Value[:12])
			}
		}
	}
	fmt.Fprintln(w, ")")
}
