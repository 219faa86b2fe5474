// Package atomicfile replaces a file so that a crash at any moment leaves
// either the old content or the new one, never a mix or an empty file: the
// state file, the history and the self-signed certificate are written so.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data and mode perm: a temporary file beside it,
// written and fsynced, renamed over path, then the directory fsynced so that
// the rename itself survives a power loss. The directory must exist.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := writeSynced(f, data, perm); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeSynced writes data to f with mode perm, fsyncs and closes it.
func writeSynced(f *os.File, data []byte, perm os.FileMode) error {
	err := f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
