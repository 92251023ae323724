package guestfs

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestMemFSFromDirLeavesNoPageCache reads an app folder whose file is out of the page
// cache, and checks that the tree holds its content while the page cache does not.
func TestMemFSFromDirLeavesNoPageCache(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("x = 1\n"), 200_000) // 1.2 MB
	path := filepath.Join(dir, "site-packages", "big.py")
	testkit.WriteFile(t, path, string(content))
	testkit.EvictFromPageCache(t, path)
	m, skipped, err := MemFSFromDir(dir, 1<<30, "cpython-311", nil)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("MemFSFromDir: %v, skipped %v", err, skipped)
	}
	f, err := m.Open("site-packages/big.py")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the tree holds %d bytes (%v), want the file's %d", len(got), err, len(content))
	}
	if n := testkit.ResidentPages(t, path); n != 0 {
		t.Errorf("%d pages of the app's file stay in the page cache after it was copied into memory", n)
	}
}

// TestMemFSFromDirFileOverLimit checks that a file larger than what is left of the
// limit stops the load with an error naming the file.
func TestMemFSFromDirFileOverLimit(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{"a.py": "1234567890"})
	if _, _, err := MemFSFromDir(dir, 5, "cpython-311", nil); err == nil || !bytes.Contains([]byte(err.Error()), []byte("a.py")) {
		t.Errorf("a 10-byte file under a 5-byte limit: %v, want an error naming a.py", err)
	}
}
