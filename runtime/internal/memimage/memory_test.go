package memimage

import (
	"bytes"
	"testing"
)

// TestMemory drives a Memory as wazero does: Allocate, then Reallocate to each size the
// guest grows to.
func TestMemory(t *testing.T) {
	const limit = 4 * WasmPage
	for _, tc := range []struct {
		name     string
		maxBytes uint64   // what the module declares as its maximum
		sizes    []uint64 // Reallocate calls, in order
		wantSize uint64
		wantPeak uint64
		wantHit  bool
	}{
		{"initial size", limit, []uint64{WasmPage}, WasmPage, WasmPage, false},
		{"grown to the limit", limit, []uint64{WasmPage, 2 * WasmPage, limit}, limit, limit, false},
		{"past the limit", limit, []uint64{WasmPage, limit + WasmPage}, WasmPage, WasmPage, true},
		{"module maximum under the limit", 2 * WasmPage, []uint64{WasmPage, 3 * WasmPage}, WasmPage, WasmPage, true},
		{"no memory", limit, []uint64{0}, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemory(limit)
			m.Allocate(0, tc.maxBytes)
			defer m.Release()
			var last []byte
			for i, size := range tc.sizes {
				b := m.Reallocate(size)
				if size > min(limit, tc.maxBytes) {
					if b != nil {
						t.Fatalf("Reallocate(%d) past the limit returned %d bytes", size, len(b))
					}
					continue
				}
				if uint64(len(b)) != size || uint64(cap(b)) != size {
					t.Fatalf("Reallocate(%d) returned len %d cap %d", size, len(b), cap(b))
				}
				// What the guest wrote survives growth; new bytes are zero.
				if !bytes.Equal(b[:len(last)], last) || bytes.Count(b[len(last):], []byte{0}) != len(b)-len(last) {
					t.Fatalf("Reallocate(%d) lost the content or is not zero past it", size)
				}
				for j := range b {
					b[j] = byte(i + 1)
				}
				last = bytes.Clone(b)
			}
			if m.Size() != tc.wantSize || m.Peak() != tc.wantPeak || m.LimitHit() != tc.wantHit {
				t.Errorf("size %d peak %d hit %v, want %d %d %v", m.Size(), m.Peak(), m.LimitHit(),
					tc.wantSize, tc.wantPeak, tc.wantHit)
			}
			if !bytes.Equal(m.Bytes(), last) {
				t.Error("Bytes is not what the guest wrote")
			}
		})
	}
}

func TestMemoryPeak(t *testing.T) {
	m := NewMemory(8 * WasmPage)
	m.Allocate(0, 8*WasmPage)
	defer m.Release()
	m.Reallocate(4 * WasmPage)
	m.Reallocate(2 * WasmPage)
	if m.Peak() != 4*WasmPage {
		t.Errorf("peak %d after shrinking, want %d", m.Peak(), 4*WasmPage)
	}
	m.ResetPeak()
	if m.Peak() != 2*WasmPage {
		t.Errorf("peak %d after ResetPeak, want the size %d", m.Peak(), 2*WasmPage)
	}
	m.Release()
	m.Release() // a second Release does nothing
}

func TestGrow(t *testing.T) {
	for _, tc := range []struct {
		name              string
		have, size, limit uint64
		want              uint64
	}{
		{"from nothing", 0, 100, 1000, 100},
		{"doubles", 100, 101, 1000, 200},
		{"to the size asked when more than double", 100, 300, 1000, 300},
		{"never past the limit", 600, 700, 1000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Repeat([]byte{7}, int(tc.have))
			got := grow(b, tc.size, tc.limit)
			if uint64(len(got)) != tc.want || !bytes.Equal(got[:tc.have], b) ||
				bytes.Count(got[tc.have:], []byte{0}) != len(got)-int(tc.have) {
				t.Errorf("grow to %d: %d bytes, want %d with the old content first and zeros after", tc.size, len(got), tc.want)
			}
		})
	}
}
