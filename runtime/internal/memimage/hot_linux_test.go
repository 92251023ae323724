//go:build linux

package memimage

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestPrefetchReadsTheHotPages: the pages requests used, learned from the memories
// that served them, are read back into the page cache by Prefetch once evicted, and
// only they; the set survives HotPages and
// SetHotPages on the image opened again, and nothing is read before a request.
func TestPrefetchReadsTheHotPages(t *testing.T) {
	const size = 64 * WasmPage
	path := writeImage(t, size)
	testkit.SkipOnTmpfs(t, path)
	pm := OpenPageMap()
	if pm == nil {
		t.Skip("/proc/self/pagemap is not readable")
	}
	defer pm.Close()
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}

	// Requests read pages 3, 4 and 9 and write page 700.
	hot := []int{3, 4, 9, 700}
	if img.HotPages() != nil {
		t.Fatal("a hot set before any request")
	}
	for i := range learnRequests {
		m := restored(t, img, size)
		for _, p := range []int{3, 4, 9} {
			readSink += m.Bytes()[p*pageSize]
		}
		m.Bytes()[700*pageSize] = 1
		if save := m.Learn(pm); save != (i == 0 || i == learnRequests-1) {
			t.Fatalf("request %d: Learn said save=%v", i, save)
		}
		if _, err := m.Restore(pm); err != nil {
			t.Fatal(err)
		}
		m.Release()
	}
	encoded := img.HotPages()
	if encoded == nil {
		t.Fatal("no hot set after learnRequests requests")
	}
	img.Close() // its view of the file holds the page restores copied from

	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	again.Prefetch() // nothing learned yet: reads nothing
	testkit.EvictFromPageCache(t, path)
	if err := again.SetHotPages(encoded); err != nil {
		t.Fatal(err)
	}
	again.Prefetch()
	// The reads are asynchronous.
	var n int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n = testkit.ResidentPages(t, path); n >= len(hot) {
			break
		}
	}
	if n != len(hot) {
		t.Errorf("Prefetch left %d pages of the image in the page cache, want the %d hot ones", n, len(hot))
	}

	small, err := New("small", make([]byte, WasmPage))
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if err := small.SetHotPages(encoded); err == nil {
		t.Error("a hot set was accepted for an image of another size")
	}
	if err := again.SetHotPages(encoded[:len(encoded)-1]); err == nil {
		t.Error("a hot set cut short was accepted")
	}
}

// readSink keeps the compiler from dropping the test's reads of memory.
var readSink byte

// TestHotPagesPastTheEnd: a kept hot set is the cache folder's, so a damaged one is
// trusted no further than the image's size: bits past its last page are dropped, and
// prefetching it reads within the image.
func TestHotPagesPastTheEnd(t *testing.T) {
	img, err := Open(writeImage(t, WasmPage))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	pages := WasmPage / pageSize
	b := binary.AppendUvarint([]byte(hotFormat), uint64(pages))
	b = binary.AppendUvarint(b, 1)
	b = binary.LittleEndian.AppendUint64(b, ^uint64(0)) // every bit of the word
	if err := img.SetHotPages(b); err != nil {
		t.Fatal(err)
	}
	img.Prefetch() // indexes the image's pages only
	n := 0
	img.hot.runs(func(first, end int) { n += end - first })
	if n != pages {
		t.Errorf("the set holds %d pages of a %d-page image", n, pages)
	}
}

// writeImage writes an image file of size zero bytes, as a cached snapshot is written
// (out of the page cache), and returns its path.
func writeImage(t *testing.T, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.mem")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = Write(f, make([]byte, size))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrefetchLayered: a layered image's hot pages are read from the file that holds
// each of them, the base's or the layered file's own, and no other page of either.
func TestPrefetchLayered(t *testing.T) {
	const size = 64 * WasmPage
	base := make([]byte, size)
	mem := make([]byte, size)
	mem[9*pageSize] = 1   // the layered file's own pages: 9 and 700
	mem[700*pageSize] = 1 //
	path, held := layeredPair(t, base, mem)
	testkit.SkipOnTmpfs(t, path)
	if held != 2 {
		t.Fatalf("the layered file holds %d pages, want 2", held)
	}
	basePath := filepath.Join(filepath.Dir(path), "base.mem")
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	pages := size / pageSize
	bits := make([]uint64, (pages+63)/64)
	for _, p := range []int{3, 9, 700} {
		bits[p/64] |= 1 << (p % 64)
	}
	b := binary.AppendUvarint([]byte(hotFormat), uint64(pages))
	b = binary.AppendUvarint(b, learnRequests)
	for _, w := range bits {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	if err := img.SetHotPages(b); err != nil {
		t.Fatal(err)
	}
	testkit.EvictFromPageCache(t, path)
	testkit.EvictFromPageCache(t, basePath)
	img.Prefetch()
	var own, fromBase int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if own, fromBase = testkit.ResidentPages(t, path), testkit.ResidentPages(t, basePath); own >= 2 && fromBase >= 1 {
			break
		}
	}
	if own != 2 || fromBase != 1 {
		t.Errorf("Prefetch left %d pages of the layered file and %d of the base in the page cache, want 2 and 1",
			own, fromBase)
	}
}
