//go:build linux

package memimage

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRestoredReadsOnlyTouchedPages maps an image file whose pages are out of the page
// cache, reads one byte of it through a Restored memory, and checks that the page cache
// now holds that page and no read-ahead around it.
func TestRestoredReadsOnlyTouchedPages(t *testing.T) {
	const size = 256 * WasmPage // 16 MiB, a Flask app's snapshot
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skipf("%s is on tmpfs, which is memory: nothing is read ahead from it", dir)
	}
	path := filepath.Join(dir, "app.mem")
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i / pageSize)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n := residentPages(t, path, size); n != 0 {
		t.Skipf("the page cache kept %d pages of the file after FADV_DONTNEED: cannot tell what is read", n)
	}

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
	if n := residentPages(t, path, size); n != 1 {
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
	if n := residentPages(t, path, size); n != 2 {
		t.Errorf("after restoring one written page, %d pages of the image are in the page cache, want 2", n)
	}
}

// residentPages counts the pages of the file at path that are in the page cache.
func residentPages(t *testing.T, path string, size int) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mapped, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mapped)
	vec := make([]byte, (size+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(mapped))), uintptr(size), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
