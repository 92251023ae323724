//go:build linux

package memimage

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestLayeredMappings: a memory restored from a layered image holds the same few
// mappings however many runs of its own pages the image has, so that thousands of
// instances stay within vm.max_map_count; and it reads as the image.
func TestLayeredMappings(t *testing.T) {
	ps := os.Getpagesize()
	const size = 16 * WasmPage
	base := make([]byte, size)
	mem := make([]byte, size)
	for p := 1; p < size/ps; p += 4 {
		mem[p*ps] = byte(p) // a run every fourth page
	}
	path, held := layeredPair(t, base, mem)
	if held < 60 {
		t.Fatalf("the layered file holds %d pages, want a run every fourth page", held)
	}
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.views(); err != nil { // the image's own two, made once
		t.Fatal(err)
	}
	maps := func() int {
		b, err := os.ReadFile("/proc/self/maps")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "\n")
	}
	before := maps()
	m := restored(t, img, 2*size)
	if n := maps() - before; n > 3 {
		t.Errorf("a memory restored from an image of %d own pages added %d mappings, want at most 3", held, n)
	}
	if !bytes.Equal(m.Bytes(), mem) {
		t.Error("the memory differs from the image")
	}
}
