// Package atomicfile replaces a file at once: readers see the old content or the new,
// never a part of it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write makes path hold what write puts in the file it is given: a new file beside
// path, renamed over it once write and closing it succeed, removed otherwise. The
// folder must exist.
func Write(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	err = write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Create is Write for a file that must never change once it exists: path is made to
// hold what write puts in the file only when path does not exist yet, and otherwise
// left as it is, with an error for which errors.Is(err, fs.ErrExist) holds. Two
// writers racing for the same path both see one complete file there afterwards.
func Create(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = write(tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	return err
}

// Link makes path another name of the file src names (a hard link), replacing at once
// whatever path named before. Both must be in one file system.
func Link(src, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	tmp.Close()
	os.Remove(name)
	if err := os.Link(src, name); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		os.Remove(name)
		return err
	}
	return nil
}
