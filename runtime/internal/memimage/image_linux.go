//go:build linux

package memimage

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// An Image is the content of a linear memory, held in a memfd or a file that
// Restored memories map copy-on-write.
type Image struct {
	file *os.File
	size uint64 // a multiple of WasmPage

	viewOnce sync.Once
	viewMem  []byte // a read-only shared mapping of file, the source of restores
	viewErr  error

	hot hotSet // the pages requests use (hot.go)
	// memfd is set for an image held in memory (New): its pages are never read from a
	// disk, so it keeps no hot set.
	memfd bool
}

// New copies mem into a memfd named after name.
func New(name string, mem []byte) (*Image, error) {
	fd, err := unix.MemfdCreate("wasmwsgi-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "wasmwsgi-snapshot-"+name)
	if _, err := f.Write(mem); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the snapshot: %w", err)
	}
	return &Image{file: f, size: uint64(len(mem)), memfd: true}, nil
}

// Open uses the file at path as an Image, without reading it: its pages are read
// into the page cache as instances first touch them. The file must not change while
// the Image is open (unlinking it is fine).
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		err = checkSize(st.Size())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Image{file: f, size: uint64(st.Size())}, nil
}

// Write writes mem to f as an image file for Open: durably, since a file cut short
// by a crash would be mapped as an instance's memory, and leaving none of it in the
// page cache, where instances will read back only the pages they touch.
func Write(f *os.File, mem []byte) error {
	if _, err := f.Write(mem); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return nil
}

// view returns the image mapped read-only, for copying pages back into a used memory.
func (img *Image) view() ([]byte, error) {
	img.viewOnce.Do(func() {
		img.viewMem, img.viewErr = unix.Mmap(int(img.file.Fd()), 0, int(img.size), unix.PROT_READ, unix.MAP_SHARED)
		if img.viewErr == nil {
			readOnlyWhatIsTouched(img.viewMem)
		}
	})
	return img.viewMem, img.viewErr
}

// readOnlyWhatIsTouched turns read-ahead off for a mapping of an Image. An instance
// touches a few hundred scattered pages of its snapshot; with the kernel's read-ahead
// (read_ahead_kb, often 128 KiB and up to several MiB on virtual disks) its page faults
// read most of the file into the page cache, so every tenant that served one request
// held its whole snapshot in memory. A restored Flask app's request reads about 2 MiB
// of its 17 MiB image this way, against all of it with read-ahead
// (docs/design.md, "Snapshots on disk").
func readOnlyWhatIsTouched(mapping []byte) { _ = unix.Madvise(mapping, unix.MADV_RANDOM) }

// Close releases the image; memories already mapping it keep their pages. No memory
// may be restored from it afterwards.
func (img *Image) Close() error {
	img.viewOnce.Do(func() {})
	if img.viewMem != nil {
		_ = unix.Munmap(img.viewMem)
	}
	return img.file.Close()
}

// Allocate implements experimental.MemoryAllocator: it reserves the limit and maps the
// Image copy-on-write at its start.
func (m *Restored) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	m.Memory.Allocate(capacity, maxBytes)
	if m.img.size > m.limit {
		m.err = errTooLarge(m.img.size, m.limit)
		return m
	}
	_, err := unix.MmapPtr(int(m.img.file.Fd()), 0, unsafe.Pointer(unsafe.SliceData(m.mapped)),
		uintptr(m.img.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		m.err = fmt.Errorf("mapping the snapshot: %w", err)
		return m
	}
	readOnlyWhatIsTouched(m.mapped[:m.img.size])
	return m
}

// Restore makes the memory's first Image.Size bytes equal to the Image again and
// returns how many pages it copied back. With pm, only the pages written since the
// mapping (private copies) are copied, run by run, and stay mapped. Without pm, or when
// reading it fails, every private page is dropped (madvise) and dirty is -1: the next
// use faults the Image's pages in again.
func (m *Restored) Restore(pm *PageMap) (dirty int, err error) {
	mem := m.mapped[:m.img.size]
	view, err := m.img.view()
	if pm == nil || err != nil {
		return -1, unix.Madvise(mem, unix.MADV_DONTNEED)
	}
	err = pm.privateRuns(mem, &m.bufs, func(lo, hi int) {
		copy(mem[lo:hi], view[lo:hi])
		dirty += (hi - lo) / pageSize
	})
	if err != nil {
		// Some runs may be restored already; dropping every page is right either way.
		return -1, unix.Madvise(mem, unix.MADV_DONTNEED)
	}
	return dirty, nil
}
