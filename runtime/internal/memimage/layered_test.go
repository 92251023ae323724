package memimage

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layeredPair writes base (as a plain image file) and mem layered on it into a
// folder, and returns the layered file's path and how many pages it holds.
func layeredPair(t testing.TB, base, mem []byte) (string, int) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "base.mem"), base, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.mem")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	held, err := WriteLayered(f, mem, base, "base.mem")
	if err != nil {
		t.Fatal(err)
	}
	return path, held
}

// TestLayered writes an image that differs from its base in a few pages, one of them
// past the base's end, and checks that the file holds just those pages, that a memory
// restored from it reads as the image, and that Restore puts it back after writes
// to pages of both files.
func TestLayered(t *testing.T) {
	ps := os.Getpagesize()
	base := make([]byte, 2*WasmPage)
	for i := range base {
		base[i] = byte(i/ps + 1)
	}
	mem := make([]byte, 3*WasmPage) // its third wasm page is past the base's end
	copy(mem, base)
	mem[0] = 0xAA            // page 0
	mem[5*ps+7] = 0xBB       // page 5
	mem[6*ps] = 0xCC         // page 6, a run with page 5
	mem[2*WasmPage+1] = 0xDD // past the base
	path, held := layeredPair(t, base, mem)
	if want := 3 + WasmPage/ps; held != want {
		t.Errorf("the layered file holds %d pages, want %d", held, want)
	}
	if got, err := BaseOf(path); got != "base.mem" || err != nil {
		t.Errorf("BaseOf = %q, %v; want base.mem", got, err)
	}
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Size() != uint64(len(mem)) {
		t.Fatalf("Size = %d, want %d", img.Size(), len(mem))
	}
	m := restored(t, img, 4*WasmPage)
	if !bytes.Equal(m.Bytes(), mem) {
		t.Fatal("a memory restored from the layered image differs from the image")
	}
	b := m.Bytes()
	b[1] = 1        // a page of the layered file
	b[ps*3] = 2     // a page of the base
	b[len(b)-1] = 3 // past the base
	pm := OpenPageMap()
	if pm != nil {
		defer pm.Close()
	}
	if _, err := m.Restore(pm); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Bytes(), mem) {
		t.Error("after Restore the memory differs from the image")
	}
	// Without a page map too: dropping pages would fault the base's back in where
	// the image has its own.
	b[1], b[ps*3], b[len(b)-1] = 1, 2, 3
	if _, err := m.Restore(nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Bytes(), mem) {
		t.Error("after Restore without a page map the memory differs from the image")
	}
	img.Prefetch() // no hot set yet: nothing to do, and nothing breaks
}

// TestLayeredSameAsBase checks that an image equal to its base is a file of no page,
// and that it still reads as the image.
func TestLayeredSameAsBase(t *testing.T) {
	_, content := image(t, 2)
	path, held := layeredPair(t, content, content)
	if held != 0 {
		t.Errorf("the layered file holds %d pages, want 0", held)
	}
	if st, _ := os.Stat(path); st.Size() != int64(os.Getpagesize()) {
		t.Errorf("the layered file is %d bytes, want its header page alone", st.Size())
	}
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if m := restored(t, img, 2*WasmPage); !bytes.Equal(m.Bytes(), content) {
		t.Error("a memory restored from the layered image differs from the image")
	}
}

// TestLayeredUnusable checks that a layered image whose base is missing or too short,
// or whose file was cut short, is refused with an error that says why, and that a
// base name with a path in it is never written.
func TestLayeredUnusable(t *testing.T) {
	_, content := image(t, 2)
	changed := bytes.Clone(content)
	changed[len(changed)-1]++
	for _, tc := range []struct {
		name  string
		spoil func(path string)
		want  string
	}{
		{"base missing", func(path string) { os.Remove(filepath.Join(filepath.Dir(path), "base.mem")) }, "base image"},
		{"base too short", func(path string) { os.Truncate(filepath.Join(filepath.Dir(path), "base.mem"), WasmPage) }, "shorter"},
		{"file cut short", func(path string) {
			st, _ := os.Stat(path)
			os.Truncate(path, st.Size()-1)
		}, "want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := layeredPair(t, content, changed)
			tc.spoil(path)
			img, err := Open(path)
			if err == nil {
				img.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want it to mention %q", err, tc.want)
			}
		})
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "x.mem"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := WriteLayered(f, content, content, "../base.mem"); err == nil {
		t.Error("WriteLayered wrote a base name with a path in it")
	}
}

// TestLayeredHostileHeaders: headers whose runs or size overflow are refused, not
// turned into negative offsets.
func TestLayeredHostileHeaders(t *testing.T) {
	ps := os.Getpagesize()
	for _, tc := range []struct {
		name        string
		size, first uint64
		pages       uint64
	}{
		{"run past the end by wrapping", 4 * WasmPage, 1 << 63, 1 << 63},
		{"run of 2^64-1 pages", 4 * WasmPage, 1, ^uint64(0)},
		{"size past 2^63", 1 << 63, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "base.mem"), make([]byte, 4*WasmPage), 0o600)
			h := []byte(layeredMagic)
			for _, v := range []uint64{uint64(ps), 8} {
				h = binary.AppendUvarint(h, v)
			}
			h = append(h, "base.mem"...)
			for _, v := range []uint64{tc.size, 1, tc.first, tc.pages} {
				h = binary.AppendUvarint(h, v)
			}
			h = append(h, make([]byte, ps-len(h)+ps)...) // the header page and one "own" page
			path := filepath.Join(dir, "x.mem")
			os.WriteFile(path, h, 0o600)
			if img, err := Open(path); err == nil {
				img.Close()
				t.Fatal("Open accepted the header")
			}
		})
	}
}
