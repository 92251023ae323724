package memimage

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPageMapPrivateRuns maps a file copy-on-write, reads every page, writes a few,
// and checks that both ways of reading the page map (PAGEMAP_SCAN where the kernel has
// it, and plain entries) report exactly the written pages, as runs.
func TestPageMapPrivateRuns(t *testing.T) {
	pm := OpenPageMap()
	if pm == nil {
		t.Skip("/proc/self/pagemap is not readable")
	}
	defer pm.Close()
	const pages = 64
	path := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(path, make([]byte, pages*pageSize), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, pages*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	sum := 0
	for i := 0; i < pages; i++ {
		sum += int(mem[i*pageSize]) // read-fault: mapped, still the file's page
	}
	for _, p := range []int{3, 4, 10, 63} {
		mem[p*pageSize+7] = 1
	}
	want := [][2]int{{3, 5}, {10, 11}, {63, 64}}

	modes := []bool{false}
	if pm.scan {
		modes = append(modes, true)
	} else {
		t.Log("PAGEMAP_SCAN is not available (Linux < 6.7): testing plain reads only")
	}
	for _, scan := range modes {
		pm.scan = scan
		// One region at a time: the scan must resume where a full list stopped it.
		bufs := pageMapBufs{regions: make([]pageRegion, 1)}
		var got [][2]int
		if err := pm.privateRuns(mem, &bufs, func(lo, hi int) {
			got = append(got, [2]int{lo / pageSize, hi / pageSize})
		}); err != nil {
			t.Fatalf("scan=%v: %v", scan, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("scan=%v: private runs %v, want %v", scan, got, want)
		}
	}
}
