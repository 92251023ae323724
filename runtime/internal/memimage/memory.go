// Package memimage holds the linear memory of guest instances outside the Go heap, and
// images of it that instances start from and are put back to.
//
// A Memory is a wazero memory allocator capped at a limit. An Image is a memory's
// content kept to start other instances from. A Restored memory starts as an Image
// mapped copy-on-write, and Restore puts it back to the Image by copying only the
// pages written since, which a PageMap finds.
//
// On Linux an Image is a memfd or a file, mapped with MAP_PRIVATE|MAP_FIXED at the start
// of the memory's reservation, and the PageMap reads /proc/self/pagemap. Elsewhere the
// memory is Go memory, an Image is a copy held in memory, and Restore copies the whole
// Image back.
package memimage

import "github.com/tetratelabs/wazero/experimental"

// WasmPage is the size of a WebAssembly page: an Image holds a whole number of them.
const WasmPage = 65536

// Memory is a linear memory allocator (experimental.MemoryAllocator) that refuses to
// grow past a limit, so memory.grow fails in the guest instead of the host growing
// without bound. It records the peak size and whether the limit was hit. On Linux the
// whole limit is reserved at once, outside the Go heap; pages are backed only once
// touched and go back to the OS at Release.
type Memory struct {
	limit  uint64
	mapped []byte
	// accessible is how many bytes from the start of a guarded reservation may be read
	// and written (setAccessible); the rest of it faults.
	accessible uint64
	// noGuard reserves only the limit, for code that checks its bounds (NoGuard).
	noGuard bool
	size    uint64
	peak    uint64
	hit     bool
	err     error // why the memory could not be made, if it could not (Err)
}

// NewMemory returns an allocator whose memory may grow up to limit bytes.
func NewMemory(limit uint64) *Memory { return &Memory{limit: limit} }

// Allocate implements experimental.MemoryAllocator: it reserves the memory, up to the
// smaller of the limit and maxBytes.
func (m *Memory) Allocate(_, maxBytes uint64) experimental.LinearMemory {
	m.limit = min(m.limit, maxBytes)
	m.mapped, m.err = reserve(m.limit, !m.noGuard)
	return m
}

// Reallocate implements experimental.LinearMemory: it returns the memory's first size
// bytes, or nil past the limit.
func (m *Memory) Reallocate(size uint64) []byte {
	if m.err != nil {
		return nil
	}
	if size > m.limit {
		m.hit = true
		return nil
	}
	if size > uint64(len(m.mapped)) {
		m.mapped = grow(m.mapped, size, m.limit)
	}
	if err := m.setAccessible(size); err != nil {
		m.err = err
		return nil
	}
	m.size = size
	m.peak = max(m.peak, size)
	return m.mapped[:size:size]
}

// Guarded implements experimental.GuardedLinearMemory: on Linux the memory's reservation
// covers every address a guest's load or store can form, and only its first Size bytes
// may be read or written, so that code compiled without bounds checks faults past
// them (docs/design.md, "Guard pages").
func (m *Memory) Guarded() bool { return guarded && !m.noGuard && m.err == nil && m.mapped != nil }

// NoGuard has the memory reserve only its limit, not the guard pages' 8 GiB of address
// space: for code compiled with bounds checks (runtime.EngineConfig.BoundsChecks), which
// then must not run on it unchecked. Call it before Allocate.
func (m *Memory) NoGuard() { m.noGuard = true }

// Free implements experimental.LinearMemory and does nothing: wazero calls it when the
// module closes, which may happen on another goroutine while guest code still runs.
// Release frees the memory.
func (m *Memory) Free() {}

// Release frees the memory. Only call it once no guest code can run on it.
func (m *Memory) Release() {
	if m.mapped != nil {
		unreserve(m.mapped)
		m.mapped = nil
	}
}

// Size returns the memory's size in bytes.
func (m *Memory) Size() uint64 { return m.size }

// Peak returns the largest size the memory had since it was made or ResetPeak.
func (m *Memory) Peak() uint64 { return m.peak }

// ResetPeak makes the current size the peak.
func (m *Memory) ResetPeak() { m.peak = m.size }

// LimitHit reports whether the guest asked for more than the limit.
func (m *Memory) LimitHit() bool { return m.hit }

// Bytes returns the memory's content: its first Size bytes.
func (m *Memory) Bytes() []byte { return m.mapped[:m.size] }

// grow returns b grown to at least size bytes (and at most limit), its content kept
// and the new bytes zero.
func grow(b []byte, size, limit uint64) []byte {
	n := make([]byte, min(max(size, 2*uint64(len(b))), limit))
	copy(n, b)
	return n
}

// Restored is a Memory that starts as an Image: a reservation of the limit whose start
// is the Image mapped copy-on-write (on Linux) or copied.
type Restored struct {
	Memory
	img  *Image
	bufs pageMapBufs // what Restore reads the page map into, kept between restores
	// under is the file mapped at the memory's start (Image.under), once Allocate
	// mapped it.
	under mappedFile
	// placed is set on a spare memory made equal to its Image (Spares.Take): Allocate
	// then uses it as it is. rebased says it was, so the pages it has mapped are not
	// all its own guests' (Learn).
	placed, rebased bool
	// limitAsked is the limit it was made with, before Allocate lowered it to the
	// module's maximum: a spare serves a memory asked for with the same.
	limitAsked uint64
}

// NewRestored returns an allocator of a memory that starts as img and may grow up to
// limit bytes. An Image larger than limit fails the allocation: see Err.
func NewRestored(img *Image, limit uint64) *Restored {
	return &Restored{Memory: Memory{limit: limit}, img: img, limitAsked: limit}
}

// Reallocate implements experimental.LinearMemory: a restored memory is never smaller
// than its Image. At instantiation wazero asks for the module's declared minimum, and
// gets the Image's size, which the Image's bytes fill and Allocate made accessible:
// the memory starts as the snapshot was, with nothing past it accessible, and no
// protection changes back and forth.
func (m *Restored) Reallocate(size uint64) []byte {
	return m.Memory.Reallocate(max(size, m.img.size))
}

// Err returns why the memory could not be made at Allocate (for a Restored memory,
// with its Image in it), if it could not: the guest then fails to instantiate. It also
// returns why a later Reallocate could not make the memory's new length accessible;
// such a memory serves no further request.
func (m *Memory) Err() error { return m.err }

// Size returns the bytes of linear memory the Image holds.
func (img *Image) Size() uint64 { return img.size }
