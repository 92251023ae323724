package memimage

import (
	"bytes"
	"runtime/debug"
	"testing"
	"time"
	"unsafe"
)

// faults reports whether reading the byte at p faults.
func faults(p *byte) (fault bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { fault = recover() != nil }()
	guardSink = *p
	return false
}

var guardSink byte

// accessibleUpTo checks that the bytes of m's reservation below n read and those at n
// and at the far end of the reservation fault.
func accessibleUpTo(t *testing.T, m *Memory, n uint64) {
	t.Helper()
	base := unsafe.Pointer(unsafe.SliceData(m.mapped))
	at := func(off uint64) *byte { return (*byte)(unsafe.Add(base, off)) }
	if n > 0 && faults(at(n-1)) {
		t.Errorf("byte %d of a memory of %d bytes faults", n-1, n)
	}
	for _, off := range []uint64{n, n + WasmPage - 1, 1 << 32, guardReservation - 1} {
		if !faults(at(off)) {
			t.Errorf("byte %d of a memory of %d bytes does not fault", off, n)
		}
	}
}

// TestMemoryGuarded: a memory's reservation covers every address a guest's access can
// form, and only its current size is accessible, as it grows.
func TestMemoryGuarded(t *testing.T) {
	m := NewMemory(4 * WasmPage)
	m.Allocate(WasmPage, 1<<32)
	defer m.Release()
	if !m.Guarded() || uint64(len(m.mapped)) < guardReservation {
		t.Fatalf("Guarded() = %v with %d bytes reserved", m.Guarded(), len(m.mapped))
	}
	accessibleUpTo(t, m, 0)
	for _, pages := range []uint64{1, 2, 4} {
		b := m.Reallocate(pages * WasmPage)
		if uint64(len(b)) != pages*WasmPage {
			t.Fatalf("Reallocate(%d pages) returned %d bytes", pages, len(b))
		}
		accessibleUpTo(t, m, pages*WasmPage)
	}
	if m.Reallocate(5*WasmPage) != nil {
		t.Fatal("a memory grew past its limit")
	}
	accessibleUpTo(t, m, 4*WasmPage)
}

// TestRestoredGuarded: a restored memory starts at its image's size, whatever minimum
// wazero asks for, with the image's content and nothing past it accessible, and grows
// past it with zeros.
func TestRestoredGuarded(t *testing.T) {
	const pages = 4
	img, content := image(t, pages)
	m := NewRestored(img, 8*WasmPage)
	m.Allocate(WasmPage, 8*WasmPage)
	defer m.Release()
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
	if b := m.Reallocate(WasmPage); uint64(len(b)) != img.Size() {
		t.Fatalf("Reallocate(1 page) of a memory of a %d-byte image returned %d bytes", img.Size(), len(b))
	}
	accessibleUpTo(t, &m.Memory, img.Size())
	if !bytes.Equal(m.Bytes(), content) {
		t.Fatal("the restored memory does not hold its image")
	}
	m.Bytes()[3*WasmPage] = 0xEE
	m.Reallocate(img.Size() + WasmPage)
	accessibleUpTo(t, &m.Memory, img.Size()+WasmPage)
	if b := m.Bytes(); b[3*WasmPage] != 0xEE || !bytes.Equal(b[img.Size():], make([]byte, WasmPage)) {
		t.Fatal("growing past the image lost what was written or did not read as zero")
	}
}

// TestSpareGuarded: a spare taken for another image over the same base starts at that
// image's size, with nothing past it accessible, and reads as that image.
func TestSpareGuarded(t *testing.T) {
	pm := pageMap(t)
	base := make([]byte, 4*WasmPage)
	a, b := bytes.Repeat([]byte{1}, 4*WasmPage), bytes.Repeat([]byte{2}, 4*WasmPage)
	imgs := sharedBase(t, base, a, b)
	spares := NewSpares(4, time.Minute)
	defer spares.Close()
	m := allocated(imgs[0], 8*WasmPage)
	scribble(m, 0, 3*WasmPage)
	spares.Put(m)
	s := spares.Take(imgs[1], 8*WasmPage, pm)
	if s == nil {
		t.Fatal("no spare was taken")
	}
	defer s.Release()
	s.Allocate(WasmPage, 8*WasmPage)
	s.Reallocate(WasmPage)
	accessibleUpTo(t, &s.Memory, imgs[1].Size())
	if !bytes.Equal(s.Bytes(), b) {
		t.Fatal("the spare does not read as the image it was taken for")
	}
}

// TestMemoryNoGuard: a memory for code with bounds checks reserves only its limit, and
// says it is not guarded, so that code without them refuses it.
func TestMemoryNoGuard(t *testing.T) {
	m := NewMemory(4 * WasmPage)
	m.NoGuard()
	m.Allocate(WasmPage, 1<<32)
	defer m.Release()
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
	if m.Guarded() || len(m.mapped) != 4*WasmPage {
		t.Fatalf("Guarded() = %v with %d bytes reserved", m.Guarded(), len(m.mapped))
	}
	if b := m.Reallocate(2 * WasmPage); len(b) != 2*WasmPage {
		t.Fatalf("Reallocate(2 pages) returned %d bytes", len(b))
	}
}
