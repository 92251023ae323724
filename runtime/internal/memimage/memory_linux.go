//go:build linux

package memimage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// guarded says a Memory's reservation is guarded (Memory.Guarded).
const guarded = true

// guardReservation is how much address space a memory reserves at least: every address a
// 32-bit load or store can reach from the memory's start (an index and a static offset
// each below 2^32, and 16 bytes), as wazero's experimental.GuardedReservationBytes
// (wazero-patches 0008) asks of a guarded memory; the test checks they agree. Code
// compiled for guard pages then faults wherever it reaches past the memory's length.
const guardReservation = 1<<33 + 1<<16

// reserve maps the address space of a memory that may grow up to limit bytes, none of
// it accessible yet (setAccessible): with guard, at least guardReservation. Only what
// the guest writes takes memory. It fails when the process may not map more (its
// address space, or vm.max_map_count).
func reserve(limit uint64, guard bool) ([]byte, error) {
	size := limit
	if guard {
		size = max(limit, guardReservation)
	}
	mapped, err := unix.Mmap(-1, 0, int(size), unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		err = fmt.Errorf("reserving %d bytes of address space for a linear memory: %w", size, err)
		if guard {
			err = fmt.Errorf("%w (each memory reserves 8 GiB for its guard pages: raise the process's "+
				"address-space limit, ulimit -v, or set guard_pages = false)", err)
		}
		return nil, err
	}
	// Where transparent huge pages are "always" on, a guest's first write past its
	// snapshot would take 2 MiB of memory at once: an instance uses a few hundred
	// scattered 4 KiB pages, and thousands of them share the machine.
	_ = unix.Madvise(mapped, unix.MADV_NOHUGEPAGE)
	return mapped, nil
}

func unreserve(mapped []byte) { _ = unix.Munmap(mapped) }

// setAccessible makes the memory's first size bytes readable and writable and the
// rest of its reservation fault. Bytes that stop being accessible are dropped, so that
// they read as zero if the memory grows over them again (wazero never shrinks a
// memory, and a Restored one starts at its Image's size).
func (m *Memory) setAccessible(size uint64) error {
	switch {
	case size > m.accessible:
		grown := m.mapped[m.accessible:size]
		if err := unix.Mprotect(grown, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			// The kernel may have changed part of the range before it failed (out of
			// mappings, at vm.max_map_count): take it back, so that nothing past the
			// length is accessible.
			_ = unix.Mprotect(grown, unix.PROT_NONE)
			return fmt.Errorf("making %d bytes of linear memory accessible: %w", size, err)
		}
	case size < m.accessible:
		tail := m.mapped[size:m.accessible]
		if err := unix.Mprotect(tail, unix.PROT_NONE); err != nil {
			return fmt.Errorf("making linear memory past %d bytes inaccessible: %w", size, err)
		}
		if err := unix.Madvise(tail, unix.MADV_DONTNEED); err != nil {
			return err
		}
	}
	m.accessible = size
	return nil
}
