//go:build !linux

package memimage

import (
	"bytes"
	"errors"
	"os"

	"github.com/tetratelabs/wazero/experimental"
)

// An Image is the content of a linear memory, held in memory.
type Image struct {
	data  []byte
	size  uint64     // a multiple of WasmPage
	under mappedFile // always zero: no memory maps a file (Spares keeps none)
}

// New copies mem.
func New(_ string, mem []byte) (*Image, error) {
	return &Image{data: bytes.Clone(mem), size: uint64(len(mem))}, nil
}

// Open reads the file at path (and, for a layered image, its base).
func Open(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, l, err := inspect(f)
	if err != nil {
		return nil, err
	}
	if l == nil {
		data := make([]byte, size)
		if _, err := f.ReadAt(data, 0); err != nil {
			return nil, err
		}
		return &Image{data: data, size: uint64(len(data))}, nil
	}
	base, err := openBase(path, l)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	data := make([]byte, l.size)
	err = l.segments(func(lo, hi int64, own bool, off int64) error {
		from := base
		if own {
			from = f
		}
		_, err := from.ReadAt(data[lo:hi], off)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Image{data: data, size: l.size}, nil
}

// Write writes mem to f as an image file for Open, durably: a file cut short by a
// crash would become an instance's memory.
func Write(f *os.File, mem []byte) error {
	if _, err := f.Write(mem); err != nil {
		return err
	}
	return finishWrite(f)
}

func readRandomly(*os.File) {}

func forget(*os.File, int64) {}

// finishWrite makes what was written to f durable.
func finishWrite(f *os.File) error { return f.Sync() }

// Close drops the image.
func (img *Image) Close() error {
	img.data = nil
	return nil
}

// Allocate implements experimental.MemoryAllocator: the memory starts as a copy of the
// Image.
func (m *Restored) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	m.Memory.Allocate(capacity, maxBytes)
	if m.err != nil {
		return m
	}
	if m.img.size > m.limit {
		m.err = errTooLarge(m.img.size, m.limit)
		return m
	}
	m.mapped = bytes.Clone(m.img.data)
	return m
}

// Restore copies the whole Image back into the memory; dirty is -1, as the pages
// written are not known.
func (m *Restored) Restore(*PageMap) (dirty int, err error) {
	copy(m.mapped[:m.img.size], m.img.data)
	return -1, nil
}

// views has nothing to map: an Image is held in memory.
func (img *Image) views() error { return nil }

// rebase fails: there is no page map, and a memory is a copy, not a mapping.
func (m *Restored) rebase(*Image, *PageMap) error {
	return errors.New("spare memories need a page map")
}

// Learn does nothing: there is no page map, and an Image is held in memory.
func (m *Restored) Learn(*PageMap) bool { return false }

// Prefetch does nothing: an Image is held in memory.
func (img *Image) Prefetch() {}

// HotPages returns nil: no hot set is kept.
func (img *Image) HotPages() []byte { return nil }

// SetHotPages ignores b.
func (img *Image) SetHotPages([]byte) error { return nil }
