package runtime

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
)

// TestWriteSharedBases: a snapshot is layered on the base image it differs from in
// the fewest runs of pages; one that differs from every base in more than maxRuns runs
// becomes a base itself, up to maxBases of them, and past that is layered on the
// nearest base anyway.
func TestWriteSharedBases(t *testing.T) {
	dir := t.TempDir()
	a := &App{engine: &Engine{}}
	ps := os.Getpagesize()
	const pages = 4 * 65536 / 4096
	image := func(variant, flips int) []byte {
		mem := make([]byte, pages*ps)
		for i := 0; i < flips; i++ {
			mem[(2*i+1)*ps] = byte(variant) // every other page: one run each
		}
		return mem
	}
	write := func(name string, mem []byte) (string, int) {
		t.Helper()
		path := filepath.Join(dir, name+".mem")
		held, err := a.writeShared(path, "id", mem)
		if err != nil {
			t.Fatal(err)
		}
		return baseOfFile(t, path), held
	}
	bases := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, sharedPrefix+"id-*.mem"))
		return len(m)
	}
	far := maxRuns + 4
	if base, held := write("a", image(1, far)); base != sharedPrefix+"id-1.mem" || held != 0 {
		t.Errorf("the first snapshot: base %s, %d pages of its own; want base 1 and none", base, held)
	}
	near := image(1, far)
	near[0] = 9
	if base, held := write("b", near); base != sharedPrefix+"id-1.mem" || held != 1 {
		t.Errorf("a snapshot one page from base 1: base %s, %d pages; want base 1 and 1", base, held)
	}
	for v := 2; v <= maxBases; v++ {
		want := sharedPrefix + "id-" + string(rune('0'+v)) + ".mem"
		if base, held := write("c", image(v, far)); base != want || held != 0 {
			t.Errorf("a snapshot %d runs from every base: base %s, %d pages; want %s and none", far, base, held, want)
		}
	}
	if base, held := write("d", image(maxBases+1, far)); bases() != maxBases || held != far {
		t.Errorf("past %d bases: %d bases, layered on %s with %d pages; want %d bases and %d pages",
			maxBases, bases(), base, held, maxBases, far)
	}
}

// baseOfFile returns the base image the layered file at path names.
func baseOfFile(t *testing.T, path string) string {
	t.Helper()
	b := memimage.BaseOf(path)
	if b == "" {
		t.Fatalf("%s is not a layered image", path)
	}
	return b
}
