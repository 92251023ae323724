package wasmbin

import (
	"bytes"

	"github.com/wasmwsgi/wasmwsgi/internal/leb128"
)

// A tiny assembler for the hand-written modules of the tests: each helper returns the
// encoding of one part of the binary format.

// module is a whole module: the header, then the sections in the order given.
func module(secs ...[]byte) []byte {
	return cat(append([][]byte{[]byte("\x00asm\x01\x00\x00\x00")}, secs...)...)
}

// sec is a section: its id, its size and its payload.
func sec(id byte, payload ...[]byte) []byte {
	p := cat(payload...)
	return cat([]byte{id}, u(uint64(len(p))), p)
}

// vec is a counted vector of entries.
func vec(entries ...[]byte) []byte {
	return cat(append([][]byte{u(uint64(len(entries)))}, entries...)...)
}

// name is a length-prefixed UTF-8 name.
func name(s string) []byte { return cat(u(uint64(len(s))), []byte(s)) }

func u(v uint64) []byte { return leb128.AppendUnsigned(nil, v) }
func s(v int64) []byte  { return leb128.AppendSigned(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Value and block types.
const (
	i32   = 0x7f
	empty = 0x40
)

// funcType is (params) -> (results).
func funcType(params, results []byte) []byte {
	return cat([]byte{0x60}, vec(split(params)...), vec(split(results)...))
}

func split(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// importFunc imports module.field as a function of type typ.
func importFunc(module, field string, typ uint32) []byte {
	return cat(name(module), name(field), []byte{0x00}, u(uint64(typ)))
}

// importGlobal imports module.field as an immutable i32 global.
func importGlobal(module, field string) []byte {
	return cat(name(module), name(field), []byte{0x03, i32, 0x00})
}

// global is a mutable i32 global initialised to v.
func global(v int32) []byte { return cat([]byte{i32, 0x01, 0x41}, s(int64(v)), []byte{0x0b}) }

// export exports index idx of kind (0 function, 3 global) as field.
func export(field string, kind byte, idx uint32) []byte {
	return cat(name(field), []byte{kind}, u(uint64(idx)))
}

// body is a function body: its local declarations and its code, ending with `end`.
func body(locals []byte, code ...[]byte) []byte {
	b := cat(append([][]byte{locals}, append(code, []byte{0x0b})...)...)
	return cat(u(uint64(len(b))), b)
}

// noLocals and oneLocal are local declarations: none, or one i32.
var (
	noLocals = []byte{0x00}
	oneLocal = []byte{0x01, 0x01, i32}
)

// activeData is a data segment of memory 0 written at i32.const offset.
func activeData(offset int32, data string) []byte {
	return cat([]byte{0x00, 0x41}, s(int64(offset)), []byte{0x0b}, name(data))
}
