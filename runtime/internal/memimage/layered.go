package memimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
)

// A layered image file holds only the pages in which an image differs from a base
// image, another file in the same folder that many layered images name: the pages
// they have in common are read from one file, and held in the page cache once.
//
//	magic, then uvarints: the page size, the length and bytes of the base's file name,
//	the image's size in bytes, the number of runs, and each run's first page and page
//	count; zero bytes up to a page boundary; then the pages of every run, in order.
//
// Every page outside the runs is the base's page at the same offset. The base must
// never change while a layered image names it: it is written once (atomicfile.Create)
// and removed only when no layered image names it.
const layeredMagic = "wasmwsgi layered image v1\n"

// maxImageSize bounds the size a layered header may give (a wasm32 memory is at most
// 4 GiB), and maxHeader the bytes of header readLayout reads.
const (
	maxImageSize = 4 << 30
	maxHeader    = 256 << 10
)

// baseNameRE is what a base's file name may be: a plain name in the layered image's
// folder.
var baseNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}$`)

// A layerRun is a run of pages that a layered image holds itself: pages [page,
// page+pages) of the image are the file's bytes at off.
type layerRun struct {
	page, pages int
	off         int64
}

// layout is a layered image file's header, decoded.
type layout struct {
	pageSize int
	base     string
	size     uint64
	runs     []layerRun
	baseSize int64 // the base file's size, once openBase checked it
}

// WriteLayered writes mem to f as a layered image on the base image whose content is
// base and whose file is baseName, in the same folder as f's final path: only the
// pages of mem that differ from base's, or lie past its end, are written. Like
// Write, it syncs f and leaves none of it in the page cache. It returns how many
// pages f holds.
func WriteLayered(f *os.File, mem, base []byte, baseName string) (int, error) {
	if !baseNameRE.MatchString(baseName) {
		return 0, fmt.Errorf("base image name %q is not a plain file name", baseName)
	}
	ps := os.Getpagesize()
	if len(mem)%ps != 0 {
		return 0, fmt.Errorf("image of %d bytes is not a whole number of %d-byte pages", len(mem), ps)
	}
	runs := diffRuns(mem, base, ps)
	hdr := []byte(layeredMagic)
	hdr = binary.AppendUvarint(hdr, uint64(ps))
	hdr = binary.AppendUvarint(hdr, uint64(len(baseName)))
	hdr = append(hdr, baseName...)
	hdr = binary.AppendUvarint(hdr, uint64(len(mem)))
	hdr = binary.AppendUvarint(hdr, uint64(len(runs)))
	held := 0
	for _, r := range runs {
		hdr = binary.AppendUvarint(hdr, uint64(r.page))
		hdr = binary.AppendUvarint(hdr, uint64(r.pages))
		held += r.pages
	}
	if len(hdr) > maxHeader {
		return 0, fmt.Errorf("the image differs from its base in %d runs of pages, too many for a layered image", len(runs))
	}
	hdr = append(hdr, make([]byte, (ps-len(hdr)%ps)%ps)...)
	if _, err := f.Write(hdr); err != nil {
		return 0, err
	}
	for _, r := range runs {
		if _, err := f.Write(mem[r.page*ps : (r.page+r.pages)*ps]); err != nil {
			return 0, err
		}
	}
	return held, finishWrite(f)
}

// inspect tells what the image file f holds: a layered image's layout, or nil for a
// plain image, whose size it checks. size is the file's.
func inspect(f *os.File) (size int64, l *layout, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	if l, err = readLayout(f, st.Size()); err == nil && l == nil {
		err = checkSize(st.Size())
	}
	return st.Size(), l, err
}

// diffRuns returns the runs of ps-byte pages in which mem differs from base, or lies
// past its end.
func diffRuns(mem, base []byte, ps int) []layerRun {
	var runs []layerRun
	for p := 0; p < len(mem)/ps; p++ {
		lo, hi := p*ps, (p+1)*ps
		if hi <= len(base) && bytes.Equal(mem[lo:hi], base[lo:hi]) {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].page+runs[n-1].pages == p {
			runs[n-1].pages++
		} else {
			runs = append(runs, layerRun{page: p, pages: 1})
		}
	}
	return runs
}

// Runs returns how many runs of pages a layered image of mem on base would hold:
// each costs an instance restored from it two memory mappings (WriteLayered).
func Runs(mem, base []byte) int { return len(diffRuns(mem, base, os.Getpagesize())) }

// readLayout decodes the header of a layered image file, or returns nil when f is not
// one (a plain image). It checks the header against the file's size fileSize.
func readLayout(f *os.File, fileSize int64) (*layout, error) {
	// Read without read-ahead, and leave nothing read in the page cache: the first
	// page of a plain image is an instance's memory, read when an instance touches it.
	readRandomly(f)
	head := make([]byte, len(layeredMagic))
	n, err := f.ReadAt(head, 0)
	if err == nil && string(head) == layeredMagic {
		head = make([]byte, min(fileSize, maxHeader))
		n, err = f.ReadAt(head, 0)
	}
	forget(f, int64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	head = head[:n]
	if !bytes.HasPrefix(head, []byte(layeredMagic)) {
		return nil, nil
	}
	bad := func(what string) error { return fmt.Errorf("layered image: %s", what) }
	rest := head[len(layeredMagic):]
	next := func() (uint64, bool) {
		v, used := binary.Uvarint(rest)
		if used <= 0 {
			return 0, false
		}
		rest = rest[used:]
		return v, true
	}
	ps, ok := next()
	if !ok || ps == 0 || ps > 1<<20 {
		return nil, bad("no page size")
	}
	nameLen, ok := next()
	if !ok || nameLen > uint64(len(rest)) {
		return nil, bad("no base name")
	}
	l := &layout{pageSize: int(ps), base: string(rest[:nameLen])}
	rest = rest[nameLen:]
	if !baseNameRE.MatchString(l.base) {
		return nil, bad(fmt.Sprintf("base name %q is not a plain file name", l.base))
	}
	if l.size, ok = next(); !ok || l.size > maxImageSize || checkSize(int64(l.size)) != nil || l.size%ps != 0 {
		return nil, bad("bad size")
	}
	count, ok := next()
	if !ok || count > l.size/ps {
		return nil, bad("bad run count")
	}
	pages := int(l.size / ps)
	end := 0
	for range count {
		first, ok1 := next()
		n, ok2 := next()
		if !ok1 || !ok2 || n == 0 || n > uint64(pages) || first < uint64(end) || first > uint64(pages)-n {
			return nil, bad("runs out of order or past the end")
		}
		l.runs = append(l.runs, layerRun{page: int(first), pages: int(n)})
		end = int(first + n)
	}
	used := int64(len(head) - len(rest))
	off := (used + int64(ps) - 1) / int64(ps) * int64(ps)
	for i := range l.runs {
		l.runs[i].off = off
		off += int64(l.runs[i].pages) * int64(ps)
	}
	if off != fileSize {
		return nil, bad(fmt.Sprintf("file of %d bytes, want %d", fileSize, off))
	}
	return l, nil
}

// segments calls fn with each stretch [lo, hi) of the image's bytes and where they
// are: in the layered file itself at off (own), or in the base at the same offset.
func (l *layout) segments(fn func(lo, hi int64, own bool, off int64) error) error {
	ps := int64(l.pageSize)
	at := int64(0)
	for _, r := range l.runs {
		lo, hi := int64(r.page)*ps, int64(r.page+r.pages)*ps
		if lo > at {
			if err := fn(at, lo, false, at); err != nil {
				return err
			}
		}
		if err := fn(lo, hi, true, r.off); err != nil {
			return err
		}
		at = hi
	}
	if at < int64(l.size) {
		return fn(at, int64(l.size), false, at)
	}
	return nil
}

// copyTo copies the image's bytes [lo, hi) to dst[lo:hi], each from the base's bytes
// base or the layered file's bytes own. A restore calls it for every run of pages a
// request wrote, so it finds the first run of own pages by binary search.
func (l *layout) copyTo(dst, base, own []byte, lo, hi int) {
	ps := l.pageSize
	i := sort.Search(len(l.runs), func(i int) bool { return (l.runs[i].page+l.runs[i].pages)*ps > lo })
	for at := lo; at < hi; {
		if i < len(l.runs) && l.runs[i].page*ps <= at {
			r := l.runs[i]
			end := min(hi, (r.page+r.pages)*ps)
			from := int(r.off) + at - r.page*ps
			copy(dst[at:end], own[from:from+end-at])
			at = end
			i++
			continue
		}
		end := hi
		if i < len(l.runs) {
			end = min(hi, l.runs[i].page*ps)
		}
		copy(dst[at:end], base[at:end])
		at = end
	}
}

// ReadImage returns the content of the image file at path (a base, to compare a new
// snapshot with) and leaves none of it in the page cache that was not there already
// in use: pages cached there would be mapped around every page an instance touches
// (the kernel's fault-around), and learned as pages requests use (Image.Prefetch).
func ReadImage(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	readRandomly(f)
	b := make([]byte, st.Size())
	_, err = f.ReadAt(b, 0)
	forget(f, st.Size())
	if err != nil {
		return nil, err
	}
	return b, nil
}

// BaseOf returns the file name of the base image that the image file at path is
// layered on, or "" for a plain image file; an error for a file that is neither.
func BaseOf(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, l, err := inspect(f)
	if err != nil || l == nil {
		return "", err
	}
	return l.base, nil
}

// openBase opens the base that l names, next to the layered file at path, and checks
// that it holds every page the layered image reads from it.
func openBase(path string, l *layout) (*os.File, error) {
	base, err := os.Open(filepath.Join(filepath.Dir(path), l.base))
	if err != nil {
		return nil, fmt.Errorf("the base image: %w", err)
	}
	st, err := base.Stat()
	if err != nil {
		base.Close()
		return nil, err
	}
	err = l.segments(func(_, hi int64, own bool, _ int64) error {
		if !own && hi > st.Size() {
			return fmt.Errorf("the base image %s is %d bytes, shorter than the %d it is read to", l.base, st.Size(), hi)
		}
		return nil
	})
	if err != nil {
		base.Close()
		return nil, err
	}
	l.baseSize = st.Size()
	return base, nil
}
