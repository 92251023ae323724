package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// A Snapshot is an app's linear memory once wasmwsgi_init, the warm-up requests and
// wasmwsgi_freeze have returned: the interpreter started, the app imported and its
// objects made immortal. At that point linear memory is the whole
// guest state: python.wasm's only global, __stack_pointer, is back at its initial value
// between export calls, the guest's stdio buffers were flushed by the shim, and the
// host-side WASI state (stdio and the mounts, in the same order) is rebuilt the same
// way for every instance.
//
// Each request maps the snapshot copy-on-write (MAP_PRIVATE over a memfd) into a fresh
// instance of the module with its data segments removed, so instantiation writes
// nothing and only the pages the request dirties are copied. Dropping the mapping
// discards every change.
type Snapshot struct {
	file *os.File // memfd holding the memory image
	size uint64   // bytes of linear memory captured (a multiple of the page size)

	viewOnce sync.Once
	viewMem  []byte // a read-only shared mapping of file, the source of restores
	viewErr  error
}

const wasmPage = 65536

// newSnapshot copies a memory image into a memfd.
func newSnapshot(name string, mem []byte) (*Snapshot, error) {
	fd, err := unix.MemfdCreate("wasmwsgi-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "wasmwsgi-snapshot-"+name)
	if _, err := f.Write(mem); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the snapshot: %w", err)
	}
	return &Snapshot{file: f, size: uint64(len(mem))}, nil
}

// Size returns the bytes of linear memory the snapshot holds.
func (s *Snapshot) Size() uint64 { return s.size }

// view returns the image mapped read-only, for copying pages back into a used instance.
func (s *Snapshot) view() ([]byte, error) {
	s.viewOnce.Do(func() {
		s.viewMem, s.viewErr = unix.Mmap(int(s.file.Fd()), 0, int(s.size), unix.PROT_READ, unix.MAP_SHARED)
	})
	return s.viewMem, s.viewErr
}

// Close releases the memfd; instances already mapped keep their pages. No instance may
// be restored from the snapshot afterwards.
func (s *Snapshot) Close() error {
	s.viewOnce.Do(func() {})
	if s.viewMem != nil {
		_ = unix.Munmap(s.viewMem)
	}
	return s.file.Close()
}

// snapshotMemory is the allocator of a restored instance: a reservation of the memory
// limit whose start is the snapshot mapped copy-on-write. Like cappedMemory it refuses
// growth past the limit and is unmapped only by release.
type snapshotMemory struct {
	cappedMemory
	snap *Snapshot
	err  error
	// pagemapBufs is what a restore reads the page map into, kept between requests.
	pagemapBufs pageMapBufs
}

func (m *snapshotMemory) Allocate(capacity, maxBytes uint64) experimental.LinearMemory {
	m.cappedMemory.Allocate(capacity, maxBytes)
	if m.snap.size > m.limit {
		m.err = fmt.Errorf("snapshot of %d bytes exceeds the memory limit of %d", m.snap.size, m.limit)
		return m
	}
	_, err := unix.MmapPtr(int(m.snap.file.Fd()), 0, unsafe.Pointer(unsafe.SliceData(m.mapped)),
		uintptr(m.snap.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		m.err = fmt.Errorf("mapping the snapshot: %w", err)
	}
	return m
}

// A dataSegment is an active data segment of python.wasm: bytes that instantiation
// writes at offset in memory 0.
type dataSegment struct {
	offset uint32
	bytes  []byte
}

// splitDataSegments returns the module with an empty data section, and the segments
// it had. A restored instance must not have the module's initial data written over its
// snapshot; a fresh one gets the segments from initMemory. Only active segments for
// memory 0 with an i32.const offset are understood, which is what wasm-ld emits for a
// module built without bulk memory.
func splitDataSegments(wasm []byte) ([]byte, []dataSegment, error) {
	sections, err := wasmSections(wasm)
	if err != nil {
		return nil, nil, err
	}
	out := append(make([]byte, 0, len(wasm)), wasm[:8]...)
	var segs []dataSegment
	found := false
	for _, s := range sections {
		payload := s.payload
		switch s.id {
		case 11: // data: keep the section, with zero segments
			if segs, err = parseDataSegments(payload); err != nil {
				return nil, nil, err
			}
			payload, found = []byte{0}, true
		case 12: // data count: must agree with the data section
			payload = []byte{0}
		}
		out = appendSection(out, s.id, payload)
	}
	if !found {
		return nil, nil, errors.New("module has no data section")
	}
	return out, segs, nil
}

func parseDataSegments(payload []byte) ([]dataSegment, error) {
	r := &reader{b: payload}
	count := r.u32()
	segs := make([]dataSegment, 0, count)
	for i := uint32(0); i < count && r.err == nil; i++ {
		// flags 0: active, memory 0, offset expression i32.const N; end.
		if flags := r.u32(); flags != 0 {
			return nil, fmt.Errorf("data segment %d: kind %d is not supported (only active segments of memory 0)", i, flags)
		}
		if op := r.byte(); op != 0x41 {
			return nil, fmt.Errorf("data segment %d: offset is not an i32.const", i)
		}
		offset, n := sleb128(r.b[min(r.p, len(r.b)):])
		if n == 0 {
			return nil, fmt.Errorf("data segment %d: bad offset", i)
		}
		r.skip(n)
		if r.byte() != 0x0b {
			return nil, fmt.Errorf("data segment %d: offset expression does not end", i)
		}
		size := int(r.u32())
		if r.err != nil || size > len(r.b)-r.p {
			return nil, fmt.Errorf("data segment %d: malformed", i)
		}
		// An i32 offset is unsigned in memory: i32.const -1 is the last byte.
		// A copy, so that the engine does not keep the whole module's bytes for these.
		segs = append(segs, dataSegment{offset: uint32(int32(offset)), bytes: bytes.Clone(r.b[r.p : r.p+size])})
		r.skip(size)
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, errors.New("malformed data section")
	}
	return segs, nil
}

// initMemory writes the module's data segments into a fresh instance's memory, which
// is what instantiating the module with its data section would have done.
func (e *Engine) initMemory(mem api.Memory) error {
	for _, s := range e.data {
		if !mem.Write(s.offset, s.bytes) {
			return fmt.Errorf("data segment at %d (%d bytes) does not fit in the initial memory", s.offset, len(s.bytes))
		}
	}
	return nil
}

// wasmSection is one section of a module: its id and its payload.
type wasmSection struct {
	id      byte
	payload []byte
}

// wasmSections splits a module (after checking its header) into its sections.
func wasmSections(wasm []byte) ([]wasmSection, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a wasm module")
	}
	var sections []wasmSection
	for p := 8; p < len(wasm); {
		size, n := uleb128(wasm[p+1:])
		end := p + 1 + n + int(size)
		if n == 0 || end > len(wasm) {
			return nil, fmt.Errorf("malformed section at byte %d", p)
		}
		sections = append(sections, wasmSection{id: wasm[p], payload: wasm[p+1+n : end]})
		p = end
	}
	return sections, nil
}

// sleb128 decodes a signed LEB128 value; n is 0 when b holds none.
func sleb128(b []byte) (v int64, n int) {
	var shift uint
	for i := 0; i < len(b) && i < 10; i++ {
		v |= int64(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			if shift < 64 && b[i]&0x40 != 0 {
				v |= -1 << shift
			}
			return v, i + 1
		}
	}
	return 0, 0
}

func uleb128(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}
