// Package wasmbin rewrites python.wasm before the engine compiles it: it inserts an
// interrupt check at every loop head (InstrumentLoops) and takes the data segments out
// of the module (SplitDataSegments). It decodes only the parts of the WebAssembly
// binary format those two rewrites touch; wazero validates whatever comes out.
package wasmbin

import (
	"errors"
	"fmt"
	"math"

	"github.com/wasmwsgi/wasmwsgi/internal/leb128"
)

// Section ids of the binary format.
const (
	sectionImport    = 2
	sectionGlobal    = 6
	sectionExport    = 7
	sectionCode      = 10
	sectionData      = 11
	sectionDataCount = 12
)

// section is one section of a module: its id and its payload.
type section struct {
	id      byte
	payload []byte
}

// sections splits a module (after checking its header) into its sections.
func sections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a wasm module")
	}
	var out []section
	for p := 8; p < len(wasm); {
		size, n := uleb128(wasm[p+1:])
		end := p + 1 + n + int(size)
		if n == 0 || size > uint64(len(wasm)) || end > len(wasm) {
			return nil, fmt.Errorf("malformed section at byte %d", p)
		}
		out = append(out, section{id: wasm[p], payload: wasm[p+1+n : end]})
		p = end
	}
	return out, nil
}

func appendSection(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = leb128.AppendUnsigned(out, uint64(len(payload)))
	return append(out, payload...)
}

// appendToVector adds one entry to a section whose payload is a counted vector.
func appendToVector(payload, entry []byte) []byte {
	count, n := uleb128(payload)
	out := leb128.AppendUnsigned(nil, count+1)
	out = append(out, payload[n:]...)
	return append(out, entry...)
}

// reader decodes a payload; the first error sticks and every later read returns zero.
type reader struct {
	b   []byte
	p   int
	err error
}

func (r *reader) byte() byte {
	if r.p >= len(r.b) {
		r.err = errors.New("unexpected end")
		return 0
	}
	r.p++
	return r.b[r.p-1]
}

func (r *reader) skip(n int) {
	if n < 0 || r.p+n > len(r.b) {
		r.err = errors.New("unexpected end")
		return
	}
	r.p += n
}

func (r *reader) name() string {
	n := int(r.u32())
	start := r.p
	r.skip(n)
	if r.err != nil {
		return ""
	}
	return string(r.b[start:r.p])
}

// leb skips one LEB128 number of at most 10 bytes.
func (r *reader) leb() {
	for i := 0; i < 10; i++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.err = errors.New("LEB128 too long")
}

func (r *reader) u32() uint32 {
	v, n := uleb128(r.b[min(r.p, len(r.b)):])
	if n == 0 || v > math.MaxUint32 {
		r.err = errors.New("bad u32")
		return 0
	}
	r.p += n
	return uint32(v)
}

func (r *reader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
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

// uleb128 decodes an unsigned LEB128 value; n is 0 when b holds none.
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
