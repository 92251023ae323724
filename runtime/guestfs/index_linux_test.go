package guestfs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readBytes returns how many bytes this process has read so far (/proc/self/io rchar).
func readBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skip("/proc/self/io is not readable:", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// indexLater returns x as if it had been taken later than racyWindow after the files
// it records last changed, which is when it vouches for them.
func indexLater(x *FileIndex) *FileIndex {
	later := *x
	later.Taken += (racyWindow + time.Second).Nanoseconds()
	return &later
}

// TestFileIndexSkipsUnchangedFiles reads a folder, then reads a copy of its index's
// folder again while the first tree still holds the content: the big file is not read
// a second time, and the new tree holds the same bytes.
func TestFileIndexSkipsUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("# a line of a big module\n"), 80_000) // 2 MB
	if err := os.WriteFile(filepath.Join(dir, "big.py"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	first, _, err := MemFSFromDir(dir, 1<<30, testCacheTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Index().Len() != 1 {
		t.Fatalf("index of one file: %+v", first.Index())
	}
	before := readBytes(t)
	known := indexLater(first.Index())
	second, _, err := MemFSFromDir(dir, 1<<30, testCacheTag, known)
	if err != nil {
		t.Fatal(err)
	}
	if second.Index() != known {
		t.Error("an index that vouched for every file was replaced by a new one, to be written again")
	}
	if read := readBytes(t) - before; read >= int64(len(content)) {
		t.Errorf("read %d bytes again for a %d-byte file the index vouches for", read, len(content))
	}
	got, err := fs.ReadFile(second, "big.py")
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the second tree holds %d bytes (%v), want the file's %d", len(got), err, len(content))
	}
	if &second.nodes["big.py"].data[0] != &first.nodes["big.py"].data[0] {
		t.Error("the second tree holds its own copy of the content")
	}
	runtime.KeepAlive(first)
}

// TestFileIndexNoticesChanges rewrites files behind an index in ways that keep size and
// modification time, and checks that each new content is read.
func TestFileIndexNoticesChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string, content []byte)
	}{
		{"written in place, mtime put back", func(t *testing.T, path string, content []byte) {
			info, _ := os.Stat(path)
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by a rename, mtime put back", func(t *testing.T, path string, content []byte) {
			info, _ := os.Stat(path)
			tmp := path + ".new"
			if err := os.WriteFile(tmp, content, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(tmp, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path, first := readModFolder(t)
			time.Sleep(20 * time.Millisecond) // past the file system's timestamp tick
			tc.change(t, path, []byte("x = 2\n"))
			known := indexLater(first.Index())
			second, _, err := MemFSFromDir(dir, 1<<20, testCacheTag, known)
			if err != nil {
				t.Fatal(err)
			}
			if second.Index() == known {
				t.Error("the index of a changed folder is the old one")
			}
			if got, _ := fs.ReadFile(second, "mod.py"); string(got) != "x = 2\n" {
				t.Errorf("after the change the tree holds %q, want %q", got, "x = 2\n")
			}
			runtime.KeepAlive(first)
		})
	}
}

// TestFileIndexRacyFiles checks that an index does not vouch for a file that changed
// within racyWindow of the read: its recorded times could hide a later write.
func TestFileIndexRacyFiles(t *testing.T) {
	_, path, first := readModFolder(t)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	var e walkEntry
	e.setInfo(info)
	if _, ok := first.Index().lookup("mod.py", &e); ok {
		t.Error("an index taken right after the file changed vouches for it")
	}
	if _, ok := indexLater(first.Index()).lookup("mod.py", &e); !ok {
		t.Error("an index taken well after the file changed does not vouch for it")
	}
}

// TestFileIndexFile writes an index and reads it back; a damaged one reads as none.
func TestFileIndexFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.py"), []byte("a = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := MemFSFromDir(dir, 1<<20, testCacheTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "index", "app.index")
	if err := WriteFileIndex(path, m.Index()); err != nil {
		t.Fatal(err)
	}
	got := ReadFileIndex(path)
	if got == nil || got.Taken != m.Index().Taken || !slices.Equal(got.files, m.Index().files) {
		t.Errorf("read back %+v, want %+v", got, m.Index())
	}
	if err := os.WriteFile(path, []byte("\x2a\xff\x81\x03\x01"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := ReadFileIndex(path); got != nil {
		t.Errorf("an index of another format reads as %+v, want none", got)
	}
	b := encodeFileIndex(m.Index())
	for n := range len(b) {
		if got, ok := decodeFileIndex(b[:n]); ok || got != nil {
			t.Fatalf("the first %d of %d bytes read as %+v, want none", n, len(b), got)
		}
	}
	if _, ok := decodeFileIndex(append(b, 0)); ok {
		t.Error("an index followed by another byte reads as one")
	}
}

// readModFolder makes a folder holding mod.py ("x = 1") and reads it into a tree: the
// folder, the file's path and the tree.
func readModFolder(t *testing.T) (dir, path string, m *MemFS) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "mod.py")
	if err := os.WriteFile(path, []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _, err := MemFSFromDir(dir, 1<<20, testCacheTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dir, path, m
}
