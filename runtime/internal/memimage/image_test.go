package memimage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// image returns an image of pages wasm pages, each byte its page's number plus one.
func image(t *testing.T, pages int) (*Image, []byte) {
	t.Helper()
	content := make([]byte, pages*WasmPage)
	for i := range content {
		content[i] = byte(i/WasmPage + 1)
	}
	img, err := New("test", content)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img, content
}

// restored allocates a Restored memory of img and grows it to the image's size, as the
// runtime does with a new instance.
func restored(t *testing.T, img *Image, limit uint64) *Restored {
	t.Helper()
	m := NewRestored(img, limit)
	m.Allocate(WasmPage, limit)
	t.Cleanup(m.Release)
	if m.Err() != nil {
		t.Fatal(m.Err())
	}
	m.Reallocate(WasmPage) // the module's initial memory
	m.Reallocate(img.Size())
	return m
}

// TestRestore writes into a memory restored from an image, restores it, and checks it
// equals the image again, with and without the page map.
func TestRestore(t *testing.T) {
	const pages = 4
	osPagesPerWasmPage := WasmPage / os.Getpagesize()
	pm := OpenPageMap()
	if pm != nil {
		defer pm.Close()
	}
	for _, tc := range []struct {
		name   string
		writes []int // byte offsets written
		// wantDirty is how many OS pages the page map finds written.
		wantDirty int
	}{
		{"nothing written", nil, 0},
		{"one byte", []int{WasmPage + 5}, 1},
		{"the first and the last byte", []int{0, pages*WasmPage - 1}, 2},
		{"two bytes of one page", []int{10, 20}, 1},
		{"a byte of every wasm page", []int{0, WasmPage, 2 * WasmPage, 3 * WasmPage}, 4},
		{"a whole wasm page", wholePage(2), osPagesPerWasmPage},
		{"the value it had", []int{-3 * WasmPage}, 1},
	} {
		for _, withMap := range []bool{true, false} {
			if withMap && pm == nil {
				continue
			}
			name := tc.name + map[bool]string{true: ", page map", false: ", no page map"}[withMap]
			t.Run(name, func(t *testing.T) {
				img, content := image(t, pages)
				m := restored(t, img, 8*WasmPage)
				if !bytes.Equal(m.Bytes(), content) {
					t.Fatal("the restored memory does not start as the image")
				}
				for _, off := range tc.writes {
					if off < 0 { // write the byte it already holds
						m.Bytes()[-off] = content[-off]
						continue
					}
					m.Bytes()[off] ^= 0xff
				}
				var usePM *PageMap
				if withMap {
					usePM = pm
				}
				dirty, err := m.Restore(usePM)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(m.Bytes(), content) {
					t.Error("the memory differs from the image after Restore")
				}
				if want := tc.wantDirty; withMap && dirty != want {
					t.Errorf("Restore copied %d pages, want %d", dirty, want)
				}
				if !withMap && dirty != -1 {
					t.Errorf("Restore without a page map counted %d pages, want -1", dirty)
				}
				// Restored pages stay private copies, so that the next use does not
				// fault on them: the next Restore copies them again.
				if again, _ := m.Restore(usePM); again != dirty {
					t.Errorf("a second Restore copied %d pages, the first %d", again, dirty)
				}
			})
		}
	}
}

func wholePage(n int) []int {
	offs := make([]int, WasmPage)
	for i := range offs {
		offs[i] = n*WasmPage + i
	}
	return offs
}

func TestRestoredMemoryOverItsLimit(t *testing.T) {
	img, _ := image(t, 4)
	m := NewRestored(img, 2*WasmPage)
	m.Allocate(WasmPage, 2*WasmPage)
	defer m.Release()
	if m.Err() == nil || !strings.Contains(m.Err().Error(), "exceeds the memory limit") {
		t.Errorf("Err() = %v, want the image exceeding the limit", m.Err())
	}
}

// TestRestoredMemoriesAreIndependent maps one image into two memories: what one writes,
// the other and the image never see.
func TestRestoredMemoriesAreIndependent(t *testing.T) {
	img, content := image(t, 2)
	a, b := restored(t, img, 4*WasmPage), restored(t, img, 4*WasmPage)
	a.Bytes()[100] = 0xaa
	if b.Bytes()[100] != content[100] {
		t.Error("a write to one memory shows in another mapping the same image")
	}
	c := restored(t, img, 4*WasmPage)
	if !bytes.Equal(c.Bytes(), content) {
		t.Error("a write to one memory reached the image")
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		size    int
		wantErr string
	}{
		{"two wasm pages", 2 * WasmPage, ""},
		{"empty", 0, "not a whole number of wasm pages"},
		{"part of a page", WasmPage + 1, "not a whole number of wasm pages"},
		{"missing", -1, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			content := bytes.Repeat([]byte{9}, max(tc.size, 0))
			if tc.size >= 0 {
				if err := os.WriteFile(path, content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			img, err := Open(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Open: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Size() != uint64(tc.size) {
				t.Errorf("size %d, want %d", img.Size(), tc.size)
			}
			// The file may go once open: memories still map it.
			os.Remove(path)
			m := restored(t, img, 4*WasmPage)
			if !bytes.Equal(m.Bytes(), content) {
				t.Error("a memory restored from the file does not hold its content")
			}
		})
	}
}
