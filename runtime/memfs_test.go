package runtime

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestMemFSFromDirConfinement(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app.py", "application = None\n")
	write("pkg/mod.py", "x = 1\n")
	write("pkg/__pycache__/mod.cpython-311.pyc", "stale")
	write(".git/config", "x")
	for link, target := range map[string]string{
		"escape.txt": secret, // absolute link out of the folder
		"up.txt":     "../" + filepath.Base(outside) + "/secret.txt",
		"inside.py":  "app.py", // relative link that stays inside
		"dirlink":    outside,  // directory link out of the folder
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}

	m, skipped, err := MemFSFromDir(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(m, "app.py", "pkg/mod.py", "inside.py"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"escape.txt", "up.txt", "dirlink", "dirlink/secret.txt", "pkg/__pycache__/mod.cpython-311.pyc", ".git/config"} {
		if _, err := fs.Stat(m, name); err == nil {
			t.Errorf("%s is visible in the app tree", name)
		}
	}
	if len(skipped) != 3 {
		t.Errorf("skipped = %v, want the three escaping links", skipped)
	}
	b, _ := fs.ReadFile(m, "inside.py")
	if string(b) != "application = None\n" {
		t.Errorf("inside.py = %q", b)
	}
	for _, bad := range []string{"../secret.txt", "/etc/passwd", "pkg/../../x", ""} {
		if _, err := m.Open(bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	if _, _, err := MemFSFromDir(dir, 10); err == nil || !strings.Contains(err.Error(), "exceed") {
		t.Errorf("size cap not enforced: %v", err)
	}
}

func TestMemFSReadSeek(t *testing.T) {
	m := newMemFS()
	m.add("a/b.txt", []byte("hello world"), false, time.Time{})
	m.finish()
	f, err := m.Open("a/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	rs := f.(io.ReadSeeker)
	if _, err := rs.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rs)
	if string(b) != "world" {
		t.Errorf("read after seek = %q", b)
	}
}
