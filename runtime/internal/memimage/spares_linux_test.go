package memimage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"
)

// sharedBase writes base and one layered image of each of mems over it into one
// folder, and opens the images.
func sharedBase(t *testing.T, base []byte, mems ...[]byte) []*Image {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "base.mem"), base, 0o600); err != nil {
		t.Fatal(err)
	}
	var imgs []*Image
	for i, mem := range mems {
		path := filepath.Join(dir, string(rune('a'+i))+".mem")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := WriteLayered(f, mem, base, "base.mem"); err != nil {
			t.Fatal(err)
		}
		f.Close()
		img, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { img.Close() })
		imgs = append(imgs, img)
	}
	return imgs
}

// scribble writes over pages of m the way a guest would: pages its image holds itself,
// pages of the base, and pages past the base's end.
func scribble(m *Restored, at ...int) {
	b := m.Bytes()
	for _, off := range at {
		b[off] = 0xEE
		b[off+1] = 0xEF
	}
}

// allocated makes a memory of img as the runtime does for a new instance. Unlike
// restored, it leaves the memory to whoever ends up holding it: the spares release
// what they keep, and a second Release at cleanup could race the spares' own.
func allocated(img *Image, limit uint64) *Restored {
	m := NewRestored(img, limit)
	m.Allocate(WasmPage, limit)
	m.Reallocate(WasmPage)
	m.Reallocate(img.Size())
	return m
}

func pageMap(t *testing.T) *PageMap {
	t.Helper()
	pm := OpenPageMap()
	if pm == nil {
		t.Skip("/proc/self/pagemap cannot be read: no spares without it")
	}
	t.Cleanup(func() { pm.Close() })
	return pm
}

// TestSparesTakeAnotherImage restores a memory from one layered image, writes into it,
// and has a memory of another image over the same base take it: it must be the same
// mapping, and read exactly as the other image, whatever was written.
func TestSparesTakeAnotherImage(t *testing.T) {
	pm := pageMap(t)
	ps := os.Getpagesize()
	base := make([]byte, 2*WasmPage)
	for i := range base {
		base[i] = byte(i/ps + 1)
	}
	first := make([]byte, 3*WasmPage)
	copy(first, base)
	first[0], first[3*ps] = 0xA1, 0xA2 // its own pages
	first[2*WasmPage+5] = 0xA3         // past the base
	second := make([]byte, 3*WasmPage)
	copy(second, base)
	second[ps] = 0xB1 // own pages elsewhere, written to by the first's guest
	second[2*WasmPage+ps] = 0xB2
	second[9*ps] = 0xB3 // and one it leaves alone
	second[2*WasmPage+3*ps] = 0xB4
	imgs := sharedBase(t, base, first, second)

	const limit = 8 * WasmPage
	spares := NewSpares(4, time.Minute)
	defer spares.Close()
	m := allocated(imgs[0], limit)
	if !bytes.Equal(m.Bytes(), first) {
		t.Fatal("the memory does not read as its image")
	}
	// The first image's own pages, the second's, pages of the base neither holds,
	// and a page past the base's end that neither touched before.
	scribble(m, 0, ps, 3*ps, 7*ps, 2*WasmPage+5, 2*WasmPage+ps, 3*WasmPage-ps)
	mapping := unsafe.SliceData(m.Bytes())
	spares.Put(m)
	if spares.Len() != 1 {
		t.Fatalf("spares keeps %d memories, want 1", spares.Len())
	}

	got := spares.Take(imgs[1], limit, pm)
	if got == nil {
		t.Fatal("no spare was taken for an image over the same base")
	}
	defer got.Release()
	if got.Allocate(WasmPage, limit) != got || unsafe.SliceData(got.mapped) != mapping {
		t.Fatal("the spare was not used as it was mapped")
	}
	got.Reallocate(WasmPage)
	got.Reallocate(imgs[1].Size())
	if !bytes.Equal(got.Bytes(), second) {
		for i := range second {
			if got.Bytes()[i] != second[i] {
				t.Fatalf("the taken memory differs from its image first at byte %d (page %d): %#x, want %#x",
					i, i/ps, got.Bytes()[i], second[i])
			}
		}
	}
	if spares.Len() != 0 {
		t.Errorf("spares keeps %d memories after the take, want 0", spares.Len())
	}
	// Its guests' pages are not learned as its image's hot pages.
	if got.Learn(pm) {
		t.Error("a rebased memory's pages were learned as hot")
	}

	// Restore puts it back to the second image, not the first.
	scribble(got, 0, 5*ps)
	if _, err := got.Restore(pm); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), second) {
		t.Error("after Restore the memory differs from the image it was taken for")
	}
}

// TestSparesSameFile has a memory of an image taken by another Image opened on the
// same file (copies of an app share one snapshot file).
func TestSparesSameFile(t *testing.T) {
	pm := pageMap(t)
	content := make([]byte, 2*WasmPage)
	for i := range content {
		content[i] = byte(i / 4096)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "app.mem")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(path, filepath.Join(dir, "copy.mem")); err != nil {
		t.Fatal(err)
	}
	var imgs []*Image
	for _, name := range []string{"app.mem", "copy.mem"} {
		img, err := Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		imgs = append(imgs, img)
	}
	const limit = 4 * WasmPage
	spares := NewSpares(4, time.Minute)
	defer spares.Close()
	m := allocated(imgs[0], limit)
	scribble(m, 0, WasmPage+100)
	spares.Put(m)
	got := spares.Take(imgs[1], limit, pm)
	if got == nil {
		t.Fatal("no spare was taken for an image of the same file")
	}
	defer got.Release()
	got.Allocate(WasmPage, limit)
	got.Reallocate(imgs[1].Size())
	if !bytes.Equal(got.Bytes(), content) {
		t.Error("the taken memory differs from its image")
	}
}

// TestSparesRefuse checks what is never kept or never taken: a memory that grew past
// its image or hit its limit, a memory over another file, of another limit, and
// anything once the spares are closed; and that a spare goes after its time, and the
// oldest when there are too many.
func TestSparesRefuse(t *testing.T) {
	pm := pageMap(t)
	const limit = 8 * WasmPage
	img, _ := image(t, 2)
	other, _ := image(t, 2) // same size and content, another file
	fresh := func(img *Image) *Restored { return allocated(img, limit) }

	spares := NewSpares(4, time.Minute)
	grown := fresh(img)
	grown.Reallocate(img.Size() + WasmPage)
	spares.Put(grown)
	hit := fresh(img)
	hit.Reallocate(2 * limit)
	spares.Put(hit)
	if spares.Len() != 0 {
		t.Errorf("spares kept %d memories that grew or hit their limit", spares.Len())
	}

	spares.Put(fresh(img))
	if m := spares.Take(other, limit, pm); m != nil {
		m.Release()
		t.Error("a memory over one file was taken for an image of another")
	}
	if m := spares.Take(img, limit/2, pm); m != nil {
		m.Release()
		t.Error("a memory of one limit was taken for another")
	}
	if m := spares.Take(img, limit, nil); m != nil {
		m.Release()
		t.Error("a memory was taken without a page map")
	}
	if m := spares.Take(img, limit, pm); m == nil {
		t.Error("the memory was not taken for its own image")
	} else {
		m.Release()
	}

	for range 6 {
		spares.Put(fresh(img))
	}
	if spares.Len() != 4 {
		t.Errorf("spares keeps %d memories, want its maximum of 4", spares.Len())
	}
	spares.Close()
	if spares.Len() != 0 {
		t.Errorf("closed spares keep %d memories", spares.Len())
	}
	spares.Put(fresh(img))
	if spares.Len() != 0 {
		t.Error("closed spares kept a memory")
	}

	brief := NewSpares(4, 20*time.Millisecond)
	defer brief.Close()
	brief.Put(fresh(img))
	deadline := time.Now().Add(5 * time.Second)
	for brief.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if brief.Len() != 0 {
		t.Error("a spare outlived its time")
	}
}
