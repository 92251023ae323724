//go:build linux

package memimage

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// learnRequests is how many requests on memories restored from an Image are recorded
// in its hot set; past them the set stays as it is. The set is in use from the first.
const learnRequests = 8

// prefetchGap is how many cold pages between two runs of hot ones are read along with
// them. None: every page read ahead is held in the page cache, which is what a
// thousand tenants are short of, and a gap of 8 would read 2.4 times the hot set of a
// Flask app's snapshot.
const prefetchGap = 0

// A hotSet is the set of an Image's pages that requests use: those that restored
// memories mapped or copied while they served requests (Restored.Learn). A new memory
// restored from the Image asks for them to be read into the page cache at once
// (Image.Prefetch), so that a tenant whose snapshot pages were evicted pays for one
// batch of reads rather than a disk wait at each of a few hundred page faults.
//
// The set is host-side metadata: it decides only what the page cache reads ahead,
// never what a guest sees.
type hotSet struct {
	mu      sync.Mutex
	bits    []uint64 // bit i: page i is hot
	learned int
}

// learn adds the pages [lo, hi) of each run to the set; runs reports them. save
// reports that the set is worth writing down again: after the first request and after
// the last one learned.
func (h *hotSet) learn(pages int, runs func(add func(lo, hi int)) error) (save bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.learned >= learnRequests {
		return false, nil
	}
	if h.bits == nil {
		h.bits = make([]uint64, (pages+63)/64)
	}
	err = runs(func(lo, hi int) {
		for p := lo / pageSize; p < (hi+pageSize-1)/pageSize && p < pages; p++ {
			h.bits[p/64] |= 1 << (p % 64)
		}
	})
	if err != nil {
		return false, err
	}
	h.learned++
	return h.learned == 1 || h.learned == learnRequests, nil
}

// empty reports whether no request was learned yet.
func (h *hotSet) empty() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.learned == 0
}

// runs calls fn with each run [first, end) of hot pages, runs that are at most
// prefetchGap cold pages apart merged.
func (h *hotSet) runs(fn func(first, end int)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	start, last := -1, -1
	for w, word := range h.bits {
		for word != 0 {
			b := bits.TrailingZeros64(word)
			word &^= 1 << b
			p := w*64 + b
			switch {
			case start < 0:
				start = p
			case p-last-1 > prefetchGap:
				fn(start, last+1)
				start = p
			}
			last = p
		}
	}
	if start >= 0 {
		fn(start, last+1)
	}
}

// hotFormat begins an encoded hot set: a version, then the page count it covers and
// how many requests it was learned from.
const hotFormat = "wasmwsgi hot pages v2\n"

// HotPages encodes the Image's hot set, for SetHotPages on the same Image opened
// again; nil before a request was learned.
func (img *Image) HotPages() []byte {
	h := &img.hot
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.learned == 0 {
		return nil
	}
	b := append([]byte(hotFormat), binary.AppendUvarint(nil, img.size/uint64(pageSize))...)
	b = binary.AppendUvarint(b, uint64(h.learned))
	for _, w := range h.bits {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return b
}

// SetHotPages restores a hot set that HotPages encoded for an Image of the same size,
// in place of one learned from fewer requests; learning goes on from there.
func (img *Image) SetHotPages(b []byte) error {
	pages := int(img.size / uint64(pageSize))
	rest, ok := cutPrefix(b, hotFormat)
	n, used := binary.Uvarint(rest)
	if ok && used > 0 {
		rest = rest[used:]
	}
	learned, used2 := binary.Uvarint(rest)
	if !ok || used <= 0 || n != uint64(pages) || used2 <= 0 || learned == 0 || learned > learnRequests ||
		len(rest)-used2 != 8*((pages+63)/64) {
		return fmt.Errorf("not a hot page set of this %d-page image", pages)
	}
	rest = rest[used2:]
	h := &img.hot
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.learned >= int(learned) {
		return nil
	}
	h.bits = make([]uint64, (pages+63)/64)
	for i := range h.bits {
		h.bits[i] = binary.LittleEndian.Uint64(rest[8*i:])
	}
	if tail := pages % 64; tail != 0 {
		h.bits[len(h.bits)-1] &= 1<<tail - 1 // no page past the image's end
	}
	h.learned = int(learned)
	return nil
}

func cutPrefix(b []byte, prefix string) ([]byte, bool) {
	if len(b) < len(prefix) || string(b[:len(prefix)]) != prefix {
		return nil, false
	}
	return b[len(prefix):], true
}

// Learn records in the Image's hot set the pages this memory used since it was mapped,
// for the first learnRequests requests; save reports that the set is worth writing
// down again (HotPages): after the first request and the last one learned. Call it
// after a request, before Restore.
func (m *Restored) Learn(pm *PageMap) (save bool) {
	if pm == nil || m.err != nil || m.img.memfd || m.rebased {
		// A rebased memory's pages were touched by the guests of other images too.
		return false
	}
	mem := m.mapped[:m.img.size]
	save, _ = m.img.hot.learn(len(mem)/pageSize, func(add func(lo, hi int)) error {
		return pm.touchedRuns(mem, &m.bufs, add)
	})
	return save
}

// Prefetch asks the kernel to read the Image's hot pages that are not in the page
// cache and returns at once: the pages a memory then touches are found there, or are
// on their way. When they are all cached it costs one mincore call. Nothing happens
// before the first request was learned.
func (img *Image) Prefetch() {
	if img.memfd || img.hot.empty() {
		return
	}
	cached, ok := img.resident()
	if !ok {
		return
	}
	img.hot.runs(func(first, end int) {
		lo := -1
		for p := first; p <= end; p++ {
			missing := p < end && cached[p]&1 == 0
			switch {
			case missing && lo < 0:
				lo = p
			case !missing && lo >= 0:
				img.willNeed(int64(lo*pageSize), int64(p*pageSize))
				lo = -1
			}
		}
	})
}

// resident returns, for each page of the image, whether the page cache holds it
// (bit 0), or false when that cannot be told.
func (img *Image) resident() ([]byte, bool) {
	if img.views() != nil {
		return nil, false
	}
	mincore := func(view []byte) ([]byte, bool) {
		vec := make([]byte, len(view)/pageSize)
		if len(view) == 0 {
			return vec, true
		}
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(view))),
			uintptr(len(view)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
		return vec, errno == 0
	}
	own, ok := mincore(img.viewMem)
	if !ok || img.layout == nil {
		return own, ok
	}
	base, ok := mincore(img.baseView)
	if !ok {
		return nil, false
	}
	cached := make([]byte, img.size/uint64(pageSize))
	_ = img.layout.segments(func(lo, hi int64, isOwn bool, off int64) error {
		from := base
		if isOwn {
			from = own
		}
		copy(cached[lo/int64(pageSize):hi/int64(pageSize)], from[off/int64(pageSize):])
		return nil
	})
	return cached, true
}

// willNeed asks the kernel to read the image's bytes [lo, hi) from the files that hold
// them.
func (img *Image) willNeed(lo, hi int64) {
	_ = img.segments(func(slo, shi int64, f *os.File, off int64) error {
		if a, b := max(lo, slo), min(hi, shi); a < b {
			_ = unix.Fadvise(int(f.Fd()), off+(a-slo), b-a, unix.FADV_WILLNEED)
		}
		return nil
	})
}
