//go:build linux

package memimage

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
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

// TestLayeredCopyTo: copying any range of a layered image out of its two files gives
// the image's bytes, whichever runs of own pages the range starts, ends or lies in.
func TestLayeredCopyTo(t *testing.T) {
	ps := os.Getpagesize()
	rng := rand.New(rand.NewPCG(1, 2))
	base := make([]byte, 8*WasmPage)
	for i := range base {
		base[i] = byte(i / ps)
	}
	mem := make([]byte, 10*WasmPage) // past the base's end too
	copy(mem, base)
	for range 60 {
		p := rng.IntN(len(mem) / ps)
		mem[p*ps+rng.IntN(ps)] ^= 0xFF
	}
	path, _ := layeredPair(t, base, mem)
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := img.views(); err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, len(mem))
	img.copyTo(dst, 0, len(mem))
	if !bytes.Equal(dst, mem) {
		t.Fatal("the whole image copied out differs from it")
	}
	for range 500 {
		lo := rng.IntN(len(mem)/ps) * ps
		hi := lo + (1+rng.IntN(40))*ps
		hi = min(hi, len(mem))
		clear(dst)
		img.copyTo(dst, lo, hi)
		if !bytes.Equal(dst[lo:hi], mem[lo:hi]) {
			t.Fatalf("bytes [%d, %d) copied out differ from the image's", lo, hi)
		}
	}
}

// TestLayeredReadsLittleOfTheBase: making a memory from a layered image reads no more
// of the base than the pages its own ones are copied over (no read-ahead), and
// ReadImage leaves nothing of a base in the page cache: pages cached there would be
// mapped around every fault and learned as hot.
func TestLayeredReadsLittleOfTheBase(t *testing.T) {
	ps := os.Getpagesize()
	const size = 64 * WasmPage
	base := make([]byte, size)
	mem := make([]byte, size)
	for _, p := range []int{100, 700, 900} {
		mem[p*ps] = 1
	}
	path, _ := layeredPair(t, base, mem)
	basePath := filepath.Join(filepath.Dir(path), "base.mem")
	testkit.SkipOnTmpfs(t, path)
	testkit.EvictFromPageCache(t, basePath) // written just now: its pages are dirty
	if _, err := ReadImage(basePath); err != nil {
		t.Fatal(err)
	}
	if n := testkit.ResidentPages(t, basePath); n != 0 {
		t.Errorf("ReadImage left %d pages of the base in the page cache", n)
	}
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	testkit.EvictFromPageCache(t, basePath)
	restored(t, img, size)
	if n := testkit.ResidentPages(t, basePath); n > 3 {
		t.Errorf("making a memory read %d pages of the base into the page cache, want at most the 3 under its own pages", n)
	}
}
