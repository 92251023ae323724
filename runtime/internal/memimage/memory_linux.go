//go:build linux

package memimage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// reserve maps limit bytes of anonymous memory, backed only once touched.
func reserve(limit uint64) []byte {
	mapped, err := unix.Mmap(-1, 0, int(limit), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		panic(fmt.Sprintf("reserving %d bytes of linear memory: %v", limit, err))
	}
	// Where transparent huge pages are "always" on, a guest's first write past its
	// snapshot would take 2 MiB of memory at once: an instance uses a few hundred
	// scattered 4 KiB pages, and thousands of them share the machine.
	_ = unix.Madvise(mapped, unix.MADV_NOHUGEPAGE)
	return mapped
}

func unreserve(mapped []byte) { _ = unix.Munmap(mapped) }
