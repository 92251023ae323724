package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestWrite replaces a file, then fails a write and checks that the file keeps its
// content and no temporary file is left.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	put := func(s string) func(*os.File) error {
		return func(f *os.File) error { _, err := f.WriteString(s); return err }
	}
	if err := Write(path, put("one")); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, put("two")); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("failed")
	if err := Write(path, func(f *os.File) error { f.WriteString("three"); return failed }); !errors.Is(err, failed) {
		t.Errorf("a failing write returned %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("the file holds %q, want %q", b, "two")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want the file alone", len(entries))
	}
}

// TestCreate makes a file once, then checks that a second Create leaves it as it was,
// says so with fs.ErrExist, and leaves no temporary file.
func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	put := func(s string) func(*os.File) error {
		return func(f *os.File) error { _, err := f.WriteString(s); return err }
	}
	if err := Create(path, put("one")); err != nil {
		t.Fatal(err)
	}
	if err := Create(path, put("two")); !errors.Is(err, fs.ErrExist) {
		t.Errorf("a second Create returned %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("the file holds %q, want %q", b, "one")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want the file alone", len(entries))
	}
}
