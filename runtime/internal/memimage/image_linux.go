//go:build linux

package memimage

import (
	"errors"
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
	// layout and base are set for a layered image (WriteLayered): file holds the
	// pages of layout's runs, base the others.
	layout *layout
	base   *os.File

	viewMu   sync.Mutex
	closed   bool
	viewMem  []byte // a read-only shared mapping of file, a source of restores
	baseView []byte // the same of base, for a layered image

	// under is the file a memory restored from the image maps at its start (the
	// base of a layered image, the image's own file otherwise), as it was when the
	// image was opened: a memory mapping it may become another image over the same
	// file (Restored.rebase).
	under mappedFile

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
	// A memfd is told apart by the Image that holds it, not by its inode number: on
	// kernels before 5.9 a memfd's comes from a counter that wraps and that sockets and
	// pipes draw from too, so two memfds may share one.
	img := &Image{file: f, size: uint64(len(mem)), memfd: true}
	img.under = mappedFile{memfd: img, size: int64(len(mem))}
	return img, nil
}

// Open uses the file at path as an Image, without reading it: its pages are read
// into the page cache as instances first touch them. The file must not change while
// the Image is open (unlinking it is fine). A layered image file (WriteLayered) opens
// its base too, which must not change either.
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	img, err := open(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return img, nil
}

func open(path string, f *os.File) (*Image, error) {
	size, l, err := inspect(f)
	if err != nil {
		return nil, err
	}
	if l == nil {
		under, err := identify(f)
		if err != nil {
			return nil, err
		}
		return &Image{file: f, size: uint64(size), under: under}, nil
	}
	if l.pageSize != pageSize {
		return nil, fmt.Errorf("layered image of %d-byte pages on a system of %d-byte pages", l.pageSize, pageSize)
	}
	base, err := openBase(path, l)
	if err != nil {
		return nil, err
	}
	under, err := identify(base)
	if err != nil {
		base.Close()
		return nil, err
	}
	under.layered = true
	return &Image{file: f, size: l.size, layout: l, base: base, under: under}, nil
}

// segments calls fn with each stretch [lo, hi) of the image and the file and offset
// that hold it.
func (img *Image) segments(fn func(lo, hi int64, f *os.File, off int64) error) error {
	if img.layout == nil {
		return fn(0, int64(img.size), img.file, 0)
	}
	return img.layout.segments(func(lo, hi int64, own bool, off int64) error {
		if own {
			return fn(lo, hi, img.file, off)
		}
		return fn(lo, hi, img.base, off)
	})
}

// placeLayered puts a layered image into mem, the start of a memory's reservation:
// the base mapped copy-on-write over as much of it as the base holds, in one mapping,
// and the image's own pages copied over it, which makes them the memory's private
// pages from the start. Mapping each run of them instead would cost two mappings a
// run for as long as the instance lives (docs/design.md, "Shared snapshot pages").
func (img *Image) placeLayered(mem []byte) error {
	n := min(int64(len(mem)), img.layout.baseSize/int64(pageSize)*int64(pageSize))
	if n > 0 {
		if _, err := unix.MmapPtr(int(img.base.Fd()), 0, unsafe.Pointer(unsafe.SliceData(mem)), uintptr(n),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED); err != nil {
			return err
		}
		// Before the copies below fault on it: with read-ahead, their faults would read
		// most of the base into the page cache.
		readOnlyWhatIsTouched(mem[:n])
	}
	if err := img.views(); err != nil {
		return err
	}
	img.copyOwn(mem)
	return nil
}

// copyOwn copies the pages a layered image holds itself into mem; views must have
// succeeded.
func (img *Image) copyOwn(mem []byte) {
	_ = img.layout.segments(func(lo, hi int64, own bool, off int64) error {
		if own {
			copy(mem[lo:hi], img.viewMem[off:off+hi-lo])
		}
		return nil
	})
}

// Write writes mem to f as an image file for Open: durably, since a file cut short
// by a crash would be mapped as an instance's memory, and leaving none of it in the
// page cache, where instances will read back only the pages they touch.
func Write(f *os.File, mem []byte) error {
	if _, err := f.Write(mem); err != nil {
		return err
	}
	return finishWrite(f)
}

// readRandomly turns read-ahead off for reads through f.
func readRandomly(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM) }

// forget drops f's first n bytes from the page cache, unless something maps them.
func forget(f *os.File, n int64) {
	// The kernel drops only the whole pages inside the range it is given.
	n = (n + int64(pageSize) - 1) / int64(pageSize) * int64(pageSize)
	_ = unix.Fadvise(int(f.Fd()), 0, n, unix.FADV_DONTNEED)
}

// finishWrite makes what was written to f durable and drops it from the page cache.
func finishWrite(f *os.File) error {
	if err := f.Sync(); err != nil {
		return err
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return nil
}

// views maps the image's files read-only, whole, for copying pages back into a used
// memory and asking the page cache what it holds: the image file, and a layered
// image's base. One mapping a file, rather than one a stretch of the image, so that a
// thousand layered images hold two thousand mappings, well within vm.max_map_count.
func (img *Image) views() error {
	img.viewMu.Lock()
	defer img.viewMu.Unlock()
	if img.viewMem != nil {
		return nil
	}
	if img.closed {
		return errors.New("the image is closed")
	}
	// A failure (the process at vm.max_map_count, say) is not kept: the next call
	// tries again.
	mapFile := func(f *os.File) ([]byte, error) {
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil, err
		}
		readOnlyWhatIsTouched(b)
		return b, nil
	}
	own, err := mapFile(img.file)
	if err != nil {
		return err
	}
	if img.base != nil {
		base, err := mapFile(img.base)
		if err != nil {
			_ = unix.Munmap(own)
			return err
		}
		img.baseView = base
	}
	img.viewMem = own
	return nil
}

// copyTo copies the image's bytes [lo, hi) to dst[lo:hi]; views must have succeeded.
func (img *Image) copyTo(dst []byte, lo, hi int) {
	if img.layout == nil {
		copy(dst[lo:hi], img.viewMem[lo:hi])
		return
	}
	img.layout.copyTo(dst, img.baseView, img.viewMem, lo, hi)
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
	img.viewMu.Lock()
	img.closed = true
	for _, v := range [][]byte{img.viewMem, img.baseView} {
		if v != nil {
			_ = unix.Munmap(v)
		}
	}
	img.viewMem, img.baseView = nil, nil
	img.viewMu.Unlock()
	if img.base != nil {
		img.base.Close()
	}
	return img.file.Close()
}

// Allocate implements experimental.MemoryAllocator: it reserves the limit and maps the
// Image copy-on-write at its start.
func (m *Restored) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	if m.placed {
		// A spare memory made equal to the Image already (Spares.Take).
		m.placed = false
		return m
	}
	m.Memory.Allocate(capacity, maxBytes)
	if m.err != nil {
		return m
	}
	if m.img.size > m.limit {
		m.err = errTooLarge(m.img.size, m.limit)
		return m
	}
	// The Image's bytes are accessible from the start: the memory starts at the
	// Image's size (Restored.Reallocate).
	err := m.setAccessible(m.img.size)
	if err != nil {
		m.err = err
		return m
	}
	if m.img.layout != nil {
		err = m.img.placeLayered(m.mapped[:m.img.size])
	} else {
		_, err = unix.MmapPtr(int(m.img.file.Fd()), 0, unsafe.Pointer(unsafe.SliceData(m.mapped)),
			uintptr(m.img.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	}
	if err != nil {
		m.err = fmt.Errorf("mapping the snapshot: %w", err)
		return m
	}
	readOnlyWhatIsTouched(m.mapped[:m.img.size])
	m.under = m.img.under
	return m
}

// rebase makes m, a memory that maps the same file at its start as img's memories do
// (img.under), equal to img, whatever image it was restored from and whatever its
// guests wrote: every page that is a private copy (written since the mapping, by
// anyone) gets img's content, and so does every page a layered img holds itself. The
// pages left are the shared file's, unwritten, which is what img has there too. It
// relies on the page map as Restore does; on any failure the memory must be released.
func (m *Restored) rebase(img *Image, pm *PageMap) error {
	if pm == nil {
		return errors.New("no page map")
	}
	if !m.spareable() || !m.fits(img, m.limitAsked) {
		return errors.New("the memory is not over the image's file")
	}
	if err := img.views(); err != nil {
		return err
	}
	mem := m.mapped[:img.size]
	err := pm.privateRuns(mem, &m.bufs, func(lo, hi int) { img.copyTo(mem, lo, hi) })
	if err != nil {
		return err
	}
	if img.layout != nil {
		img.copyOwn(mem)
	}
	m.img, m.placed, m.rebased = img, true, true
	m.peak = m.size
	return nil
}

// Restore makes the memory's first Image.Size bytes equal to the Image again and
// returns how many pages it copied back. With pm, only the pages written since the
// mapping (private copies) are copied, run by run, and stay mapped. Without pm, or when
// reading it fails, every page is put back (putBack) and dirty is -1.
func (m *Restored) Restore(pm *PageMap) (dirty int, err error) {
	mem := m.mapped[:m.img.size]
	var views error
	if pm != nil || m.img.layout != nil { // a plain image put back whole needs none
		views = m.img.views()
	}
	if views != nil && m.img.layout != nil {
		// A layered image's memory cannot be put back at all without them (putBack).
		return -1, fmt.Errorf("restoring a layered image: %w", views)
	}
	if pm == nil || views != nil {
		return -1, m.putBack(mem)
	}
	err = pm.privateRuns(mem, &m.bufs, func(lo, hi int) {
		m.img.copyTo(mem, lo, hi)
		dirty += (hi - lo) / pageSize
	})
	if err != nil {
		// Some runs may be restored already; putting every page back is right either way.
		return -1, m.putBack(mem)
	}
	return dirty, nil
}

// putBack makes every page of mem the Image's again. A plain image's private pages
// are dropped (madvise): the next use faults the Image's in. A layered image's are
// copied back from the views, since dropping a page would fault the base's back in
// where the image has its own (another copy's); the views must have succeeded.
func (m *Restored) putBack(mem []byte) error {
	if m.img.layout != nil {
		m.img.copyTo(mem, 0, len(mem))
		return nil
	}
	return unix.Madvise(mem, unix.MADV_DONTNEED)
}

// identify returns what tells f apart as the file a memory maps (mappedFile).
func identify(f *os.File) (mappedFile, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return mappedFile{}, err
	}
	return mappedFile{dev: st.Dev, ino: st.Ino, size: st.Size}, nil
}
