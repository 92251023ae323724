package runtime

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/runtime/guestfs"
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
	first, held := write("a", image(1, far))
	if bases() != 1 || held != 0 {
		t.Errorf("the first snapshot: %d bases, %d pages of its own; want 1 base and none", bases(), held)
	}
	near := image(1, far)
	near[0] = 9
	if base, held := write("b", near); base != first || held != 1 {
		t.Errorf("a snapshot one page from the first base: base %s, %d pages; want %s and 1", base, held, first)
	}
	seen := map[string]bool{first: true}
	for v := 2; v <= maxBases; v++ {
		base, held := write("c", image(v, far))
		if seen[base] || held != 0 || bases() != v {
			t.Errorf("a snapshot %d runs from every base: base %s (seen before: %v), %d pages, %d bases; want a new base",
				far, base, seen[base], held, bases())
		}
		seen[base] = true
	}
	if base, held := write("d", image(maxBases+1, far)); bases() != maxBases || held != far || !seen[base] {
		t.Errorf("past %d bases: %d bases, layered on %s with %d pages; want %d bases and %d pages on one of them",
			maxBases, bases(), base, held, maxBases, far)
	}
}

// baseOfFile returns the base image the layered file at path names.
func baseOfFile(t *testing.T, path string) string {
	t.Helper()
	b, err := memimage.BaseOf(path)
	if err != nil || b == "" {
		t.Fatalf("%s is not a layered image", path)
	}
	return b
}

// TestSharingNeedsADrawnHashSecret: an app whose environment sets PYTHONHASHSEED
// never shares, since its interpreter would draw no hash secret and the first entropy
// it reads would be the app's own.
func TestSharingNeedsADrawnHashSecret(t *testing.T) {
	a := &App{engine: &Engine{snapshotDir: t.TempDir()}, cachePath: "x.mem", log: slog.Default()}
	a.Spec.ShareSnapshot = true
	a.Spec.Env = []string{"PYTHONHASHSEED=0"}
	if _, ok := a.sharing(); ok {
		t.Error("an app with PYTHONHASHSEED in its environment shares its snapshot")
	}
}

// TestShareKeyCoversTheCAFile: copies granted different CA files see different
// certificates at GuestCerts, so they neither share pages nor take each other's import.
func TestShareKeyCoversTheCAFile(t *testing.T) {
	files, _, err := guestfs.MemFSFromDir(t.TempDir(), 1<<20, GuestCacheTag, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := func(caFile string) string {
		a := &App{engine: &Engine{}, files: files}
		a.Spec.CAFile = caFile
		return a.shareKey()
	}
	if key("") == key("/etc/ssl/extra.pem") {
		t.Error("copies granted different CA files have one share key")
	}
}
