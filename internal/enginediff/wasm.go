// Package enginediff runs the same WebAssembly modules on wazero as this repo builds it
// (with third_party/wazero-patches) and on wazero as released, and compares what every
// exported function returns or how it traps. Its modules aim at the edges of the patches'
// code generation changes: loads and stores at constant addresses around a memory's
// declared minimum, before and after memory.grow, with large static offsets and
// address+offset sums past 2^32, plus randomly generated ones. The runner (runner/)
// is built twice; enginediff_test.go compares the two.
package enginediff

import (
	"encoding/binary"

	"github.com/wasmwsgi/wasmwsgi/internal/leb128"
)

func name(b []byte, s string) []byte { return append(leb128.AppendUnsigned(b, uint64(len(s))), s...) }

func section(b []byte, id byte, payload []byte) []byte {
	b = append(b, id)
	return append(leb128.AppendUnsigned(b, uint64(len(payload))), payload...)
}

// limits encodes a memory's limits; max < 0 means none.
func limits(b []byte, min, max int64) []byte {
	if max < 0 {
		return leb128.AppendUnsigned(append(b, 0), uint64(min))
	}
	return leb128.AppendUnsigned(leb128.AppendUnsigned(append(b, 1), uint64(min)), uint64(max))
}

// Module is a module of functions of type () -> i64, exported in order as f0000, f0001,
// ..., and an exported "grow" that grows the memory by one page and returns the old size
// in pages, or -1.
type Module struct {
	// MinPages and MaxPages are the memory's declared limits.
	MinPages, MaxPages int64
	// Imported makes the module import its memory as env.memory instead of defining it;
	// the runner provides one of ActualPages pages (at least MinPages) and MaxPages.
	Imported    bool
	ActualPages int64
	// Bodies are the functions' instructions, without locals or the final end. Each has
	// an i64 local (index 0), whose value the function returns, and an i32 local
	// (index 1) that holds an address.
	Bodies [][]byte
	// Data, if not empty, is written at address 0.
	Data []byte
	// ExtraLocals adds that many i64 locals after the two, from index 2.
	ExtraLocals int
}

// Encode returns the module's binary form.
func (m *Module) Encode() []byte {
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	// Types: 0 is () -> i64.
	out = section(out, 1, []byte{1, 0x60, 0, 1, 0x7e})
	if m.Imported {
		imp := leb128.AppendUnsigned(nil, 1)
		imp = name(name(imp, "env"), "memory")
		imp = limits(append(imp, 2), m.MinPages, m.MaxPages)
		out = section(out, 2, imp)
	}
	n := len(m.Bodies) + 1 // + grow
	fn := leb128.AppendUnsigned(nil, uint64(n))
	for i := 0; i < n; i++ {
		fn = append(fn, 0)
	}
	out = section(out, 3, fn)
	if !m.Imported {
		out = section(out, 5, limits(leb128.AppendUnsigned(nil, 1), m.MinPages, m.MaxPages))
	}
	exp := leb128.AppendUnsigned(nil, uint64(n+1))
	for i := range m.Bodies {
		exp = leb128.AppendUnsigned(append(name(exp, FuncName(i)), 0), uint64(i))
	}
	exp = leb128.AppendUnsigned(append(name(exp, "grow"), 0), uint64(len(m.Bodies)))
	exp = leb128.AppendUnsigned(append(name(exp, "memory"), 2), 0)
	out = section(out, 7, exp)
	code := leb128.AppendUnsigned(nil, uint64(n))
	grow := []byte{0x41, 1, 0x40, 0, 0xac} // i32.const 1; memory.grow; i64.extend_i32_s
	for i := 0; i < n; i++ {
		body := grow
		if i < len(m.Bodies) {
			// local.get 0 returns the accumulator.
			body = append(append([]byte(nil), m.Bodies[i]...), 0x20, 0)
		}
		f := []byte{2, 1, 0x7e, 1, 0x7f} // an i64 local and an i32 local
		if m.ExtraLocals > 0 {
			f = append([]byte{3, 1, 0x7e, 1, 0x7f}, leb128.AppendUnsigned(nil, uint64(m.ExtraLocals))...)
			f = append(f, 0x7e)
		}
		f = append(f, body...)
		f = append(f, 0x0b)
		code = append(leb128.AppendUnsigned(code, uint64(len(f))), f...)
	}
	out = section(out, 10, code)
	if len(m.Data) > 0 {
		d := []byte{1, 0, 0x41, 0, 0x0b}
		d = append(leb128.AppendUnsigned(d, uint64(len(m.Data))), m.Data...)
		out = section(out, 11, d)
	}
	return out
}

// FuncName is the export name of function i.
func FuncName(i int) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(i))
	const hex = "0123456789abcdef"
	s := []byte("f")
	for _, c := range b[2:] {
		s = append(s, hex[c>>4], hex[c&15])
	}
	return string(s)
}

// memOp is a load or store instruction.
type memOp struct {
	name   string
	prefix byte // 0, or 0xfd (SIMD) or 0xfe (atomics)
	code   uint32
	size   uint64 // bytes accessed
	align  uint32 // log2 of the natural alignment
	store  bool
	typ    byte // value type: 0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64, 0x7b v128
	atomic bool // traps when the address is not a multiple of size
}

var memOps = []memOp{
	{"i32.load", 0, 0x28, 4, 2, false, 0x7f, false},
	{"i64.load", 0, 0x29, 8, 3, false, 0x7e, false},
	{"f32.load", 0, 0x2a, 4, 2, false, 0x7d, false},
	{"f64.load", 0, 0x2b, 8, 3, false, 0x7c, false},
	{"i32.load8_s", 0, 0x2c, 1, 0, false, 0x7f, false},
	{"i32.load8_u", 0, 0x2d, 1, 0, false, 0x7f, false},
	{"i32.load16_s", 0, 0x2e, 2, 1, false, 0x7f, false},
	{"i32.load16_u", 0, 0x2f, 2, 1, false, 0x7f, false},
	{"i64.load8_s", 0, 0x30, 1, 0, false, 0x7e, false},
	{"i64.load8_u", 0, 0x31, 1, 0, false, 0x7e, false},
	{"i64.load16_s", 0, 0x32, 2, 1, false, 0x7e, false},
	{"i64.load16_u", 0, 0x33, 2, 1, false, 0x7e, false},
	{"i64.load32_s", 0, 0x34, 4, 2, false, 0x7e, false},
	{"i64.load32_u", 0, 0x35, 4, 2, false, 0x7e, false},
	{"i32.store", 0, 0x36, 4, 2, true, 0x7f, false},
	{"i64.store", 0, 0x37, 8, 3, true, 0x7e, false},
	{"f32.store", 0, 0x38, 4, 2, true, 0x7d, false},
	{"f64.store", 0, 0x39, 8, 3, true, 0x7c, false},
	{"i32.store8", 0, 0x3a, 1, 0, true, 0x7f, false},
	{"i32.store16", 0, 0x3b, 2, 1, true, 0x7f, false},
	{"i64.store8", 0, 0x3c, 1, 0, true, 0x7e, false},
	{"i64.store16", 0, 0x3d, 2, 1, true, 0x7e, false},
	{"i64.store32", 0, 0x3e, 4, 2, true, 0x7e, false},
	{"v128.load", 0xfd, 0x00, 16, 4, false, 0x7b, false},
	{"v128.store", 0xfd, 0x0b, 16, 4, true, 0x7b, false},
	{"i32.atomic.load", 0xfe, 0x10, 4, 2, false, 0x7f, true},
	{"i64.atomic.load", 0xfe, 0x11, 8, 3, false, 0x7e, true},
	{"i32.atomic.store", 0xfe, 0x17, 4, 2, true, 0x7f, true},
	{"i64.atomic.store", 0xfe, 0x18, 8, 3, true, 0x7e, true},
	{"i64.atomic.rmw.add", 0xfe, 0x1f, 8, 3, false, 0x7e, true}, // reads and writes
}

// access appends `i32.const addr; op offset` and folds the result into local 0 (a load)
// or stores local 0 converted to the op's type (a store).
func access(b []byte, op memOp, addr uint32, offset uint32) []byte {
	b = leb128.AppendSigned(append(b, 0x41), int64(int32(addr))) // i32.const
	if op.store || op.name == "i64.atomic.rmw.add" {
		b = append(b, 0x20, 0) // local.get 0
		switch op.typ {
		case 0x7f:
			b = append(b, 0xa7) // i32.wrap_i64
		case 0x7d:
			b = append(b, 0xa7, 0xbe) // i32.wrap_i64; f32.reinterpret_i32
		case 0x7c:
			b = append(b, 0xbf) // f64.reinterpret_i64
		case 0x7b:
			b = append(b, 0xfd, 0x12) // i64x2.splat
		}
	}
	if op.prefix != 0 {
		b = leb128.AppendUnsigned(append(b, op.prefix), uint64(op.code))
	} else {
		b = append(b, byte(op.code))
	}
	b = leb128.AppendUnsigned(leb128.AppendUnsigned(b, uint64(op.align)), uint64(offset))
	if op.store {
		return b
	}
	switch op.typ {
	case 0x7f:
		b = append(b, 0xad) // i64.extend_i32_u
	case 0x7d:
		b = append(b, 0xbc, 0xad) // i32.reinterpret_f32; i64.extend_i32_u
	case 0x7c:
		b = append(b, 0xbd) // i64.reinterpret_f64
	case 0x7b:
		b = append(b, 0xfd, 0x1d, 1) // i64x2.extract_lane 1
	}
	// local 0 = local 0 * 31 + value
	return append(b, 0x20, 0, 0x42, 31, 0x7e, 0x7c, 0x21, 0)
}

// partialUses are loads whose value is used only in part, or only on a condition: a
// compiler that folds the load into its use may read fewer bytes, or none.
var partialUses = []struct {
	load string
	// use follows the load and leaves an i64 on the stack.
	use []byte
}{
	// i32.wrap_i64; i64.extend_i32_u: 4 of the 8 bytes.
	{"i64.load", []byte{0xa7, 0xad}},
	// i8x16.splat; i8x16.extract_lane_u 0; i64.extend_i32_u: 1 of the 4 bytes.
	{"i32.load", []byte{0xfd, 0x0f, 0xfd, 0x16, 0, 0xad}},
	// f64.const 1.5; (i32.wrap_i64 (local.get 0)) & 1; select; i64.reinterpret_f64: the
	// value chosen on the accumulator's lowest bit.
	{"f64.load", []byte{0x44, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x20, 0, 0xa7, 0x41, 1, 0x71, 0x1b, 0xbd}},
}

// partialUse appends `i32.const addr; load offset` and partialUses[i]'s use of it, and
// folds the result into local 0.
func partialUse(b []byte, i int, addr, offset uint32) []byte {
	op := lookup(partialUses[i].load)
	b = leb128.AppendSigned(append(b, 0x41), int64(int32(addr))) // i32.const
	b = append(b, byte(op.code))
	b = leb128.AppendUnsigned(leb128.AppendUnsigned(b, uint64(op.align)), uint64(offset))
	b = append(b, partialUses[i].use...)
	// local 0 = local 0 * 31 + value
	return append(b, 0x20, 0, 0x42, 31, 0x7e, 0x7c, 0x21, 0)
}
