package guestfs

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCached asks the kernel to drop the page cache it holds for f, a file read
// whole.
func dropCached(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }
