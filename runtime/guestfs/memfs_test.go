package guestfs

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// testCacheTag is the cache tag of the bytecode a tree keeps.
const testCacheTag = "cpython-311"

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
	write("pkg/__pycache__/mod.cpython-312.pyc", "another interpreter's")
	write("pkg/__pycache__/notes.txt", "x")
	write(".git/config", "x")
	for link, target := range map[string]string{
		"escape.txt": secret, // absolute link out of the folder
		"up.txt":     "../" + filepath.Base(outside) + "/secret.txt",
		"inside.py":  "app.py",    // relative link that stays inside
		"pkg/up.py":  "../app.py", // leaves its own folder, stays inside the app's
		"dirlink":    outside,     // directory link out of the folder
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}

	m, skipped, err := MemFSFromDir(dir, 1<<20, testCacheTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(m, "app.py", "pkg/mod.py", "inside.py", "pkg/up.py", "pkg/__pycache__/mod.cpython-311.pyc"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"escape.txt", "up.txt", "dirlink", "dirlink/secret.txt", "pkg/__pycache__/mod.cpython-312.pyc",
		"pkg/__pycache__/notes.txt", ".git/config"} {
		if _, err := fs.Stat(m, name); err == nil {
			t.Errorf("%s is visible in the app tree", name)
		}
	}
	if len(skipped) != 3 {
		t.Errorf("skipped = %v, want the three escaping links", skipped)
	}
	for _, name := range []string{"inside.py", "pkg/up.py"} {
		if b, _ := fs.ReadFile(m, name); string(b) != "application = None\n" {
			t.Errorf("%s = %q", name, b)
		}
	}
	for _, bad := range []string{"../secret.txt", "/etc/passwd", "pkg/../../x", ""} {
		if _, err := m.Open(bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
	if _, _, err := MemFSFromDir(dir, 10, testCacheTag, nil); err == nil || !strings.Contains(err.Error(), "exceed") {
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

// TestMemFSSharesContent checks that two app trees holding the same file hold its bytes
// once, and that different content stays apart.
func TestMemFSSharesContent(t *testing.T) {
	load := func(content string) *MemFS {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "lib.py"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		m, _, err := MemFSFromDir(dir, 1<<20, testCacheTag, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b, c := load("x = 1\n"), load("x = 1\n"), load("x = 2\n")
	first := func(m *MemFS) *byte { return &m.nodes["lib.py"].data[0] }
	if first(a) != first(b) {
		t.Error("identical files of two apps are held twice")
	}
	if first(a) == first(c) {
		t.Error("different files share their bytes")
	}
	if got, _ := fs.ReadFile(c, "lib.py"); string(got) != "x = 2\n" {
		t.Errorf("read %q", got)
	}
	// Trees made from bytes in memory share the same way.
	d := MemFSFromFiles(map[string][]byte{"lib.py": []byte("x = 1\n")})
	if first(d) != first(a) {
		t.Error("a tree made from files in memory holds its own copy of content another tree has")
	}
	if got, _ := fs.ReadFile(d, "lib.py"); string(got) != "x = 1\n" {
		t.Errorf("read %q", got)
	}
}

// TestMemFSFromZip checks a zip-backed tree: files are inflated on first open, with
// the sizes and contents of the archive, and opened twice they read the same.
func TestMemFSFromZip(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := map[string]string{"os.py": "import sys\n", "json/__init__.py": strings.Repeat("x = 1\n", 1000)}
	for name, content := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := MemFSFromZip(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(m, "os.py", "json/__init__.py"); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		for range 2 {
			got, err := fs.ReadFile(m, name)
			if err != nil || string(got) != content {
				t.Fatalf("%s: %q, %v", name, got, err)
			}
		}
		if info, _ := fs.Stat(m, name); info.Size() != int64(len(content)) {
			t.Errorf("%s: size %d, want %d", name, info.Size(), len(content))
		}
	}
}

// TestMemFSHoldsNoSpareCapacity: a tree keeps file content for as long as it lives, so
// each file's bytes are allocated at their size.
func TestMemFSHoldsNoSpareCapacity(t *testing.T) {
	content := strings.Repeat("x = 1\n", 10_000)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := MemFSFromDir(dir, 1<<20, testCacheTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := m.nodes["app.py"].data; string(d) != content || cap(d) > len(d)+1 {
		t.Errorf("folder: %d bytes held in a buffer of %d", len(d), cap(d))
	}
}

// TestMemFSFromDirDepthAndFIFOs: a tenant's folder nested past maxFolderDepth is left
// out with a reason rather than walked with a file descriptor per level, and a FIFO
// reached by name (as when a file is swapped for one after its Stat) fails at once
// instead of waiting for a writer.
func TestMemFSFromDirDepthAndFIFOs(t *testing.T) {
	dir := t.TempDir()
	deep := dir
	for i := range maxFolderDepth + 5 {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
		if i == 10 {
			if err := os.MkdirAll(deep, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(deep, "kept.py"), []byte("x = 1\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deep, "lost.py"), []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, skipped, err := MemFSFromDir(dir, 1<<20, testCacheTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for name := range m.nodes {
		if strings.HasSuffix(name, "/kept.py") {
			kept++
		}
		if strings.HasSuffix(name, "/lost.py") {
			t.Errorf("%s, past the depth limit, is in the tree", name)
		}
	}
	if kept != 1 || len(skipped) != 1 || !strings.Contains(skipped[0], fmt.Sprintf("nested more than %d deep", maxFolderDepth)) {
		t.Errorf("kept.py found %d times; skipped: %q", kept, skipped)
	}

	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	// As the walk opens a file it found regular: through the folder that holds it.
	done := make(chan error, 1)
	go func() {
		done <- walkFolder(root, dir, func(name string, e *walkEntry, err error) error {
			if errors.Is(err, errTooDeep) {
				return nil // the nested folders above
			}
			if name != "fifo" || err != nil {
				return err
			}
			_, err = readOnce(func() (*os.File, error) { return e.in.open(e.base) }, 1<<20)
			return err
		})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("reading a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a FIFO waited for a writer")
	}
}

// TestWriteDigestTellsTreesApart: trees that differ in a file's content, a name, or a
// file against an empty folder write different digests, and the same tree the same.
func TestWriteDigestTellsTreesApart(t *testing.T) {
	digest := func(files map[string]string, dirs ...string) string {
		m := newMemFS()
		for name, content := range files {
			m.add(name, []byte(content), false, time.Time{})
		}
		for _, d := range dirs {
			m.add(d, nil, true, time.Time{})
		}
		m.finish()
		h := sha256.New()
		m.WriteDigest(h)
		return fmt.Sprintf("%x", h.Sum(nil))
	}
	base := digest(map[string]string{"a/b.py": "x = 1\n", "c.py": ""})
	if again := digest(map[string]string{"c.py": "", "a/b.py": "x = 1\n"}); again != base {
		t.Error("the same tree wrote two digests")
	}
	for what, other := range map[string]string{
		"content":          digest(map[string]string{"a/b.py": "x = 2\n", "c.py": ""}),
		"a name":           digest(map[string]string{"a/b.py": "x = 1\n", "d.py": ""}),
		"a folder":         digest(map[string]string{"a/b.py": "x = 1\n"}, "c.py"),
		"a name's split":   digest(map[string]string{"a/b.py": "x = 1\n", "c.p": "y"}),
		"one file missing": digest(map[string]string{"a/b.py": "x = 1\n"}),
	} {
		if other == base {
			t.Errorf("trees that differ in %s wrote the same digest", what)
		}
	}
}
