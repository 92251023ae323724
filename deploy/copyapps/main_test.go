package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func source(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "hello", "app.py"), "print('hi')\n", 0o444)
	writeFile(t, filepath.Join(src, "hello", "run.sh"), "#!/bin/sh\n", 0o555)
	writeFile(t, filepath.Join(src, "flask", "site-packages", "flask", "__init__.py"), "x = 1\n", 0o644)
	if err := os.MkdirAll(filepath.Join(src, "empty", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app.py", filepath.Join(src, "hello", "wsgi.py")); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestCopyTree(t *testing.T) {
	src, dst := source(t), t.TempDir()
	st, err := copyTree(src, dst, []string{".data", "x/y"})
	if err != nil {
		t.Fatal(err)
	}
	if st.files != 3 || st.links != 1 || st.bytes != int64(len("print('hi')\n#!/bin/sh\nx = 1\n")) {
		t.Errorf("stats %+v", st)
	}
	for rel, want := range map[string]string{
		"hello/app.py":                          "print('hi')\n",
		"hello/run.sh":                          "#!/bin/sh\n",
		"flask/site-packages/flask/__init__.py": "x = 1\n",
	} {
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", rel, got, err)
		}
	}
	// Permission bits are kept, with read for the owner added (0444 stays 0444).
	for rel, want := range map[string]os.FileMode{"hello/app.py": 0o444, "hello/run.sh": 0o555} {
		fi, err := os.Stat(filepath.Join(dst, rel))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v (%v)", rel, fi.Mode().Perm(), want, err)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "hello", "wsgi.py")); err != nil || l != "app.py" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	for _, dir := range []string{"empty/dir", ".data", "x/y"} {
		if fi, err := os.Stat(filepath.Join(dst, dir)); err != nil || !fi.IsDir() {
			t.Errorf("%s is not a folder: %v", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, stagingDir)); !os.IsNotExist(err) {
		t.Errorf("staging folder left behind: %v", err)
	}
}

// A restarted initContainer finds the volume half filled, with older content and a
// leftover staging folder, and copies again.
func TestCopyTreeAgain(t *testing.T) {
	src, dst := source(t), t.TempDir()
	writeFile(t, filepath.Join(dst, "hello", "app.py"), "stale and longer than the new one\n", 0o444)
	if err := os.Symlink("elsewhere", filepath.Join(dst, "hello", "run.sh")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dst, stagingDir, "file-123"), "half", 0o600)
	if _, err := copyTree(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "hello", "app.py")); string(got) != "print('hi')\n" {
		t.Errorf("app.py = %q", got)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "hello", "run.sh")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("run.sh is not a regular file again: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(dst, stagingDir)); !os.IsNotExist(err) {
		t.Errorf("staging folder left behind: %v", err)
	}
	if _, err := copyTree(src, dst, nil); err != nil {
		t.Errorf("third copy: %v", err)
	}
}

func TestCopyTreeErrors(t *testing.T) {
	src := source(t)
	if _, err := copyTree(src, filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("missing destination accepted")
	}
	if _, err := copyTree(filepath.Join(t.TempDir(), "missing"), t.TempDir(), nil); err == nil {
		t.Error("missing source accepted")
	}
	// A folder in the destination where the source has a file is not removed.
	dst := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dst, "hello", "app.py", "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := copyTree(src, dst, nil)
	if err == nil || !strings.Contains(err.Error(), "is a folder in the destination") {
		t.Errorf("folder over file: %v", err)
	}
}
