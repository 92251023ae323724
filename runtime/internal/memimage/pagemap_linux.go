//go:build linux

package memimage

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A PageMap reads /proc/self/pagemap to tell which pages of a copy-on-write mapping are
// the process's private copies: the pages written since the mapping was made. With
// Linux 6.7's PAGEMAP_SCAN ioctl the kernel returns just the runs of such pages;
// without it every page's 8-byte entry is read and tested here.
type PageMap struct {
	f    *os.File
	scan bool // PAGEMAP_SCAN works
}

// pageMapBufs is what a restore reuses from one to the next: the ioctl's run list, or
// the entries of a plain read.
type pageMapBufs struct {
	regions []pageRegion
	entries []byte
}

// OpenPageMap opens this process's page map, or returns nil where it is not readable
// (restores then drop every private page instead).
func OpenPageMap() *PageMap {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return nil
	}
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		f.Close()
		return nil
	}
	pm := &PageMap{f: f}
	// Probe the ioctl on a page of our own: a private page once written.
	probe, err := unix.Mmap(-1, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err == nil {
		probe[0] = 1
		pm.scan = true
		found := 0
		var bufs pageMapBufs
		if pm.scanRuns(probe, &bufs, true, func(lo, hi int) { found += hi - lo }) != nil || found != pageSize {
			pm.scan = false
		}
		unix.Munmap(probe)
	}
	return pm
}

// Close closes the page map file.
func (p *PageMap) Close() error { return p.f.Close() }

// privateRuns calls fn with the byte offsets [lo, hi) of each run of mem's pages that
// are private copies: present but not backed by the file (or shared memory) mapped
// there, or swapped out (only private pages are swapped; a page cache page is dropped
// instead). mem must start on a page boundary.
func (p *PageMap) privateRuns(mem []byte, bufs *pageMapBufs, fn func(lo, hi int)) error {
	if p.scan {
		return p.scanRuns(mem, bufs, true, fn)
	}
	return p.readRuns(mem, bufs, true, fn)
}

// touchedRuns calls fn with the byte offsets [lo, hi) of each run of mem's pages that
// are mapped, from the file or as private copies, or swapped out: the pages used
// since the mapping was made.
func (p *PageMap) touchedRuns(mem []byte, bufs *pageMapBufs, fn func(lo, hi int)) error {
	if p.scan {
		return p.scanRuns(mem, bufs, false, fn)
	}
	return p.readRuns(mem, bufs, false, fn)
}

// pmScanArg is struct pm_scan_arg of <linux/fs.h>.
type pmScanArg struct {
	size, flags, start, end, walkEnd, vec, vecLen, maxPages       uint64
	categoryInverted, categoryMask, categoryAnyofMask, returnMask uint64
}

// pageRegion is struct page_region of <linux/fs.h>: pages [start, end) that share the
// categories asked for.
type pageRegion struct{ start, end, categories uint64 }

const (
	pageIsPresent = 1 << 3
	pageIsFile    = 1 << 2
	pageIsSwapped = 1 << 4
	// pagemapScan is _IOWR('f', 16, struct pm_scan_arg).
	pagemapScan = 3<<30 | uint64(unsafe.Sizeof(pmScanArg{}))<<16 | 'f'<<8 | 16
)

func (p *PageMap) scanRuns(mem []byte, bufs *pageMapBufs, private bool, fn func(lo, hi int)) error {
	if len(bufs.regions) == 0 {
		bufs.regions = make([]pageRegion, 256)
	}
	regions := bufs.regions
	base := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
	arg := pmScanArg{
		start: base, end: base + uint64(len(mem)),
		vec: uint64(uintptr(unsafe.Pointer(unsafe.SliceData(regions)))), vecLen: uint64(len(regions)),
		// Present or swapped, and for private pages not file-backed.
		categoryAnyofMask: pageIsPresent | pageIsSwapped, returnMask: pageIsFile | pageIsPresent | pageIsSwapped,
	}
	if private {
		arg.categoryInverted, arg.categoryMask = pageIsFile, pageIsFile
	}
	arg.size = uint64(unsafe.Sizeof(arg))
	for {
		n, _, errno := unix.Syscall(unix.SYS_IOCTL, p.f.Fd(), uintptr(pagemapScan), uintptr(unsafe.Pointer(&arg)))
		runtime.KeepAlive(regions)
		if errno != 0 {
			return errno
		}
		if int(n) > len(regions) {
			return errors.New("PAGEMAP_SCAN returned more regions than asked for")
		}
		for _, r := range regions[:n] {
			fn(int(r.start-base), int(r.end-base))
		}
		// A full run list ends the walk early; go on from where it stopped.
		if arg.walkEnd >= arg.end || arg.walkEnd <= arg.start {
			return nil
		}
		arg.start = arg.walkEnd
	}
}

// Page map entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
	pmFile    = 1 << 61
)

func (p *PageMap) readRuns(mem []byte, bufs *pageMapBufs, private bool, fn func(lo, hi int)) error {
	pages := len(mem) / pageSize
	if len(bufs.entries) != 8*pages {
		bufs.entries = make([]byte, 8*pages)
	}
	buf := bufs.entries
	at := int64(uintptr(unsafe.Pointer(unsafe.SliceData(mem)))) / int64(pageSize) * 8
	if _, err := p.f.ReadAt(buf, at); err != nil {
		return err
	}
	run := -1
	for i := 0; i <= pages; i++ {
		in := false
		if i < pages {
			e := binary.LittleEndian.Uint64(buf[i*8:])
			in = e&(pmPresent|pmSwapped) != 0 && (!private || e&pmFile == 0)
		}
		switch {
		case in && run < 0:
			run = i
		case !in && run >= 0:
			fn(run*pageSize, i*pageSize)
			run = -1
		}
	}
	return nil
}

var pageSize = os.Getpagesize()
