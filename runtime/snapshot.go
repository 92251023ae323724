package runtime

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// A Snapshot is an app's linear memory once wasmwsgi_init, the warm-up requests and
// wasmwsgi_freeze have returned: the interpreter started, the app imported and its
// objects made immortal. At that point linear memory is the whole
// guest state: python.wasm's only global, __stack_pointer, is back at its initial value
// between export calls, the guest's stdio buffers were flushed by the shim, and the
// host-side WASI state (stdio and the mounts, in the same order) is rebuilt the same
// way for every instance.
//
// Each request maps the snapshot copy-on-write (MAP_PRIVATE over a memfd) into a fresh
// instance of the module with its data segments removed, so instantiation writes
// nothing and only the pages the request dirties are copied. Dropping the mapping
// discards every change.
type Snapshot struct {
	file *os.File // memfd holding the memory image
	size uint64   // bytes of linear memory captured (a multiple of the page size)

	viewOnce sync.Once
	viewMem  []byte // a read-only shared mapping of file, the source of restores
	viewErr  error
}

const wasmPage = 65536

// newSnapshot copies a memory image into a memfd.
func newSnapshot(name string, mem []byte) (*Snapshot, error) {
	fd, err := unix.MemfdCreate("wasmwsgi-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "wasmwsgi-snapshot-"+name)
	if _, err := f.Write(mem); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the snapshot: %w", err)
	}
	return &Snapshot{file: f, size: uint64(len(mem))}, nil
}

// Size returns the bytes of linear memory the snapshot holds.
func (s *Snapshot) Size() uint64 { return s.size }

// view returns the image mapped read-only, for copying pages back into a used instance.
func (s *Snapshot) view() ([]byte, error) {
	s.viewOnce.Do(func() {
		s.viewMem, s.viewErr = unix.Mmap(int(s.file.Fd()), 0, int(s.size), unix.PROT_READ, unix.MAP_SHARED)
	})
	return s.viewMem, s.viewErr
}

// Close releases the memfd; instances already mapped keep their pages. No instance may
// be restored from the snapshot afterwards.
func (s *Snapshot) Close() error {
	s.viewOnce.Do(func() {})
	if s.viewMem != nil {
		_ = unix.Munmap(s.viewMem)
	}
	return s.file.Close()
}

// snapshotMemory is the allocator of a restored instance: a reservation of the memory
// limit whose start is the snapshot mapped copy-on-write. Like cappedMemory it refuses
// growth past the limit and is unmapped only by release.
type snapshotMemory struct {
	cappedMemory
	snap *Snapshot
	err  error
	// pagemapBufs is what a restore reads the page map into, kept between requests.
	pagemapBufs pageMapBufs
}

func (m *snapshotMemory) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	m.cappedMemory.Allocate(capacity, maxBytes)
	if m.snap.size > m.limit {
		m.err = fmt.Errorf("snapshot of %d bytes exceeds the memory limit of %d", m.snap.size, m.limit)
		return m
	}
	_, err := unix.MmapPtr(int(m.snap.file.Fd()), 0, unsafe.Pointer(unsafe.SliceData(m.mapped)),
		uintptr(m.snap.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		m.err = fmt.Errorf("mapping the snapshot: %w", err)
	}
	return m
}

// initMemory writes the module's data segments into a fresh instance's memory, which
// is what instantiating the module with its data section would have done.
func (e *Engine) initMemory(mem api.Memory) error {
	for _, s := range e.data {
		if !mem.Write(s.Offset, s.Bytes) {
			return fmt.Errorf("data segment at %d (%d bytes) does not fit in the initial memory", s.Offset, len(s.Bytes))
		}
	}
	return nil
}
