package wasmbin

import (
	"bytes"
	"errors"
	"fmt"
)

// A DataSegment is an active data segment: bytes that instantiation writes at Offset in
// memory 0.
type DataSegment struct {
	Offset uint32
	Bytes  []byte
}

// SplitDataSegments returns the module with an empty data section (and a data count of
// 0 when it has a data count section), and the segments it had. Only active segments
// of memory 0 with an i32.const offset are understood, which is what wasm-ld emits for
// a module built without bulk memory. The segments' bytes are copies, so they do not
// keep wasm alive.
func SplitDataSegments(wasm []byte) ([]byte, []DataSegment, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, nil, err
	}
	out := append(make([]byte, 0, len(wasm)), wasm[:8]...)
	var segs []DataSegment
	found := false
	for _, s := range secs {
		payload := s.payload
		switch s.id {
		case sectionData: // keep the section, with zero segments
			if segs, err = parseDataSegments(payload); err != nil {
				return nil, nil, err
			}
			payload, found = []byte{0}, true
		case sectionDataCount: // must agree with the data section
			payload = []byte{0}
		}
		out = appendSection(out, s.id, payload)
	}
	if !found {
		return nil, nil, errors.New("module has no data section")
	}
	return out, segs, nil
}

func parseDataSegments(payload []byte) ([]DataSegment, error) {
	r := &reader{b: payload}
	count := r.u32()
	if r.err != nil || uint64(count) > uint64(len(payload)) {
		return nil, errors.New("malformed data section")
	}
	segs := make([]DataSegment, 0, count)
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
		segs = append(segs, DataSegment{Offset: uint32(int32(offset)), Bytes: bytes.Clone(r.b[r.p : r.p+size])})
		r.skip(size)
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, errors.New("malformed data section")
	}
	return segs, nil
}
