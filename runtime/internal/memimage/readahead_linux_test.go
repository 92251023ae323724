//go:build linux

package memimage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestRestoredReadsOnlyTouchedPages writes an image file (which leaves it out of the
// page cache), reads one byte of it through a Restored memory, and checks that the
// page cache now holds that page and no read-ahead around it.
func TestRestoredReadsOnlyTouchedPages(t *testing.T) {
	const size = 256 * WasmPage // 16 MiB, a Flask app's snapshot
	path := filepath.Join(t.TempDir(), "app.mem")
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i / pageSize)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = Write(f, content)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	testkit.SkipOnTmpfs(t, path)
	if n := testkit.ResidentPages(t, path); n != 0 {
		t.Errorf("Write left %d pages of the image in the page cache", n)
	}
	testkit.EvictFromPageCache(t, path)

	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	m := restored(t, img, 2*size)
	at := size / 2
	if got := m.Bytes()[at]; got != content[at] {
		t.Fatalf("byte %d of the restored memory is %d, want %d", at, got, content[at])
	}
	// The one page read, and none around it. The kernel may map pages already cached
	// around a fault, but it reads none for that.
	if n := testkit.ResidentPages(t, path); n != 1 {
		t.Errorf("touching one page of a restored memory put %d pages of its image in the page cache, want 1", n)
	}
	// Putting the memory back reads only the pages written.
	m.Bytes()[at+3*pageSize] = 1
	pm := OpenPageMap()
	if pm == nil {
		t.Skip("/proc/self/pagemap is not readable")
	}
	defer pm.Close()
	if _, err := m.Restore(pm); err != nil {
		t.Fatal(err)
	}
	if n := testkit.ResidentPages(t, path); n != 2 {
		t.Errorf("after restoring one written page, %d pages of the image are in the page cache, want 2", n)
	}
}
