//go:build linux

package memimage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// reserve maps limit bytes of anonymous memory, backed only once touched. It fails
// when the process may not map more (its address space, or vm.max_map_count).
func reserve(limit uint64) ([]byte, error) {
	mapped, err := unix.Mmap(-1, 0, int(limit), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("reserving %d bytes of linear memory: %w", limit, err)
	}
	// Where transparent huge pages are "always" on, a guest's first write past its
	// snapshot would take 2 MiB of memory at once: an instance uses a few hundred
	// scattered 4 KiB pages, and thousands of them share the machine.
	_ = unix.Madvise(mapped, unix.MADV_NOHUGEPAGE)
	return mapped, nil
}

func unreserve(mapped []byte) { _ = unix.Munmap(mapped) }
