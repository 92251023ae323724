package testkit

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ResidentPages counts the pages of the file at path that are in the page cache.
func ResidentPages(t testing.TB, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.Size() == 0 {
		return 0
	}
	mapped, err := unix.Mmap(int(f.Fd()), 0, int(info.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mapped)
	pageSize := os.Getpagesize()
	vec := make([]byte, (len(mapped)+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(mapped))),
		uintptr(len(mapped)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// SkipOnTmpfs skips the test when path is on tmpfs, whose files are memory: none of
// them is read from disk, and none can leave the page cache.
func SkipOnTmpfs(t testing.TB, path string) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skipf("%s is on tmpfs, whose files are memory: nothing is read from disk", path)
	}
}

// EvictFromPageCache writes the file at path to disk and drops it from the page cache,
// skipping the test where that cannot be done (SkipOnTmpfs).
func EvictFromPageCache(t testing.TB, path string) {
	t.Helper()
	SkipOnTmpfs(t, path)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if n := ResidentPages(t, path); n != 0 {
		t.Skipf("the page cache kept %d pages of %s after FADV_DONTNEED", n, path)
	}
}
