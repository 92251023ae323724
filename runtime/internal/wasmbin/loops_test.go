package wasmbin

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Type indices of loopModule's type section. blockType is a type index of two LEB128
// bytes, (i32) -> (i32), for loops whose block type is an index.
const (
	typeVoid      = 0 // () -> ()
	typeI32ToI32  = 1 // (i32) -> (i32), every test function
	typeYield     = 2 // () -> (i32), sched_yield
	blockType     = 70
	moduleFuncs   = "env"  // where the test imports plain functions from
	moduleGlobals = "genv" // where the test imports globals from
)

// loopCheck marks, in a function's instructions, where InstrumentLoops must insert its
// check: right after a loop's block type.
var loopCheck []byte

// wantCheck is the check InstrumentLoops inserts, written out from its doc comment.
func wantCheck(schedYield, interrupt uint32) []byte {
	fuel := interrupt + 1
	return cat(
		[]byte{0x23}, u(uint64(fuel)), []byte{0x41, 0x01, 0x6b, 0x24}, u(uint64(fuel)), // fuel -= 1
		[]byte{0x23}, u(uint64(fuel)), []byte{0x45}, // global.get $fuel  i32.eqz
		[]byte{0x04, empty},                               // if
		[]byte{0x10}, u(uint64(schedYield)), []byte{0x1a}, // call $sched_yield  drop
		[]byte{0x41}, s(YieldEvery), []byte{0x24}, u(uint64(fuel)), // i32.const YieldEvery  global.set $fuel
		[]byte{0x23}, u(uint64(interrupt)), []byte{0x04, empty, 0x00, 0x0b}, // global.get $interrupt  if unreachable end
		[]byte{0x0b}, // end
	)
}

// loopModule is a module of i32 -> i32 functions exported as f0, f1, ...
type loopModule struct {
	imports [][]byte // import entries (sched_yield among them, unless left out)
	// yieldFunc and importedGlobals are the function index of sched_yield and the count of
	// imported globals: where the check must call, and where its globals start.
	yieldFunc       uint32
	importedGlobals uint32
	globals         int  // own globals, 0 for no global section
	noExports       bool // no export section
	bulk            bool // a table, a passive element and a passive data segment
	funcs           []fn
}

// fn is one function: its local declarations and its instructions, without the final end.
type fn struct {
	locals []byte
	code   [][]byte
}

// build returns the module, or with instrumented set what InstrumentLoops must make of it.
func (m loopModule) build(instrumented bool) []byte {
	types := [][]byte{funcType(nil, nil), funcType([]byte{i32}, []byte{i32}), funcType(nil, []byte{i32})}
	for len(types) < blockType {
		types = append(types, funcType(nil, nil))
	}
	types = append(types, funcType([]byte{i32}, []byte{i32}))
	importedFuncs := uint32(0)
	for _, im := range m.imports {
		if bytes.Contains(im, []byte{0x00, typeYield}) || bytes.Contains(im, []byte{0x00, typeVoid}) {
			importedFuncs++
		}
	}
	funcs := make([][]byte, len(m.funcs))
	var exports, code [][]byte
	for i, f := range m.funcs {
		funcs[i] = u(typeI32ToI32)
		exports = append(exports, export(fmt.Sprint("f", i), 0, importedFuncs+uint32(i)))
		var instrs [][]byte
		for _, in := range f.code {
			switch {
			case in != nil:
				instrs = append(instrs, in)
			case instrumented:
				instrs = append(instrs, wantCheck(m.yieldFunc, m.importedGlobals+uint32(m.globals)))
			}
		}
		code = append(code, body(f.locals, instrs...))
	}
	var globals [][]byte
	for i := 0; i < m.globals; i++ {
		globals = append(globals, global(int32(i)))
	}
	if instrumented {
		globals = append(globals, global(0), global(YieldEvery+1))
		exports = append(exports, export(InterruptGlobal, 3, m.importedGlobals+uint32(m.globals)))
	}
	secs := [][]byte{sec(1, vec(types...)), sec(2, vec(m.imports...)), sec(3, vec(funcs...))}
	if m.bulk {
		secs = append(secs, sec(4, vec([]byte{0x70, 0x00, 0x01}))) // table: funcref, min 1
	}
	secs = append(secs, sec(5, vec([]byte{0x00, 0x01}))) // memory: min 1 page
	if len(globals) > 0 {
		secs = append(secs, sec(6, vec(globals...)))
	}
	if !m.noExports {
		secs = append(secs, sec(7, vec(exports...)))
	}
	if m.bulk {
		secs = append(secs,
			sec(9, vec(cat([]byte{0x01, 0x00}, vec(u(uint64(importedFuncs))))))) // passive elem: f0
		secs = append(secs, sec(12, u(1)))
	}
	secs = append(secs, sec(10, vec(code...)))
	if m.bulk {
		secs = append(secs, sec(11, vec(cat([]byte{0x01}, name("passive")))))
	}
	return module(secs...)
}

// yieldImport is the WASI import every instrumented module needs.
var yieldImport = importFunc("wasi_snapshot_preview1", "sched_yield", typeYield)

// countTo is a loop that runs its head n times (n >= 1) and returns n.
var countTo = fn{locals: oneLocal, code: [][]byte{
	{0x03, empty}, loopCheck, // loop
	{0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01}, // i += 1 (local.tee)
	{0x20, 0x00, 0x49, 0x0d, 0x00},             // br_if 0 (i < n)
	{0x0b},                                     // end
	{0x20, 0x01},                               // local.get i
}}

// spin loops forever.
var spin = fn{locals: noLocals, code: [][]byte{
	{0x03, empty}, loopCheck, {0x0c, 0x00, 0x0b}, // loop br 0 end
	{0x41, 0x00}, // i32.const 0
}}

// run is one call of a test module's function, on a fresh instance: its result and how
// many times the module called sched_yield.
type run struct {
	fn         string
	arg, want  uint32
	wantYields int64
}

func TestInstrumentLoops(t *testing.T) {
	funcsBefore := make([][]byte, 130)
	for i := range funcsBefore {
		funcsBefore[i] = importFunc(moduleFuncs, fmt.Sprint("f", i), typeVoid)
	}
	// brTable has 130 labels (a two-byte count): label 1 continues the loop, every other
	// one and the default leave the block around it.
	brTable := []byte{0x0e, 0x82, 0x01, 0x01, 0x00}
	brTable = append(brTable, bytes.Repeat([]byte{0x01}, 128)...)
	brTable = append(brTable, 0x01)

	for _, tc := range []struct {
		name string
		m    loopModule
		runs []run
	}{
		{
			name: "one loop",
			m:    loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{countTo}},
			runs: []run{
				{"f0", 1, 1, 0},
				{"f0", YieldEvery, YieldEvery, 0},
				{"f0", YieldEvery + 1, YieldEvery + 1, 1},
				{"f0", 3*YieldEvery + 1, 3*YieldEvery + 1, 3},
			},
		},
		{
			name: "no loop",
			m: loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{{locals: noLocals, code: [][]byte{
				{0x20, 0x00, 0x41, 0x01, 0x6a}, // n + 1
			}}}},
			runs: []run{{"f0", 41, 42, 0}},
		},
		{
			name: "nested loops",
			m: loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{{
				locals: []byte{0x01, 0x03, i32}, // i, j, total
				code: [][]byte{
					{0x03, empty}, loopCheck, // outer loop
					{0x41, 0x00, 0x21, 0x02}, // j = 0
					{0x03, empty}, loopCheck, // inner loop
					{0x20, 0x03, 0x41, 0x01, 0x6a, 0x21, 0x03}, // total += 1
					{0x20, 0x02, 0x41, 0x01, 0x6a, 0x22, 0x02}, // j += 1
					{0x20, 0x00, 0x49, 0x0d, 0x00, 0x0b},       // br_if inner (j < n); end
					{0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01}, // i += 1
					{0x20, 0x00, 0x49, 0x0d, 0x00, 0x0b},       // br_if outer (i < n); end
					{0x20, 0x03},                               // total
				},
			}}},
			// 200 + 200*200 loop heads share one fuel counter.
			runs: []run{{"f0", 200, 200 * 200, (200 + 200*200 - 1) / YieldEvery}},
		},
		{
			name: "br_table with a two-byte label count",
			m: loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{{locals: oneLocal, code: [][]byte{
				{0x02, empty},            // block
				{0x03, empty}, loopCheck, // loop
				{0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01}, // i += 1
				{0x20, 0x00, 0x49}, brTable,                // i < n: label 1 (loop), else label 0 (block)
				{0x0b, 0x0b}, // end end
				{0x20, 0x01},
			}}}},
			runs: []run{{"f0", 2*YieldEvery + 1, 2*YieldEvery + 1, 2}},
		},
		{
			name: "loop with a type index of two bytes as block type, inside if/else",
			m: loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{{locals: oneLocal, code: [][]byte{
				{0x20, 0x00, 0x45, 0x04, i32},              // if (result i32) n == 0
				{0x41, 0x07},                               // 7
				{0x05},                                     // else
				{0x20, 0x00},                               // n, the loop's parameter
				cat([]byte{0x03}, s(blockType)), loopCheck, // loop (i32) -> (i32)
				{0x41, 0x01, 0x6b, 0x22, 0x01}, // n - 1, kept in i
				{0x20, 0x01, 0x0d, 0x00},       // br_if 0 (i != 0) with n - 1
				{0x0b, 0x0b},                   // end end
			}}}},
			runs: []run{{"f0", 0, 7, 0}, {"f0", YieldEvery + 1, 0, 1}},
		},
		{
			name: "0xFC prefix and reference instructions",
			m: loopModule{imports: [][]byte{yieldImport}, globals: 1, bulk: true, funcs: []fn{{locals: oneLocal, code: [][]byte{
				{0x03, empty}, loopCheck,
				{0x43, 0x00, 0x00, 0xc0, 0x3f, 0xfc, 0x00, 0x1a},             // i32.trunc_sat_f32_s 1.5; drop
				{0x44, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0xfc, 0x03, 0x1a},       // i32.trunc_sat_f64_u 1.5; drop
				{0x41, 0x00, 0x41, 0x2a, 0x41, 0x08, 0xfc, 0x0b, 0x00},       // memory.fill 0 42 8
				{0x41, 0x08, 0x41, 0x00, 0x41, 0x08, 0xfc, 0x0a, 0x00, 0x00}, // memory.copy 8 0 8
				{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x08, 0x00, 0x00}, // memory.init 0 (0 bytes)
				{0xfc, 0x09, 0x00}, // data.drop 0
				{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0c, 0x00, 0x00}, // table.init 0 0 (0 entries)
				{0xfc, 0x0d, 0x00}, // elem.drop 0
				{0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x0e, 0x00, 0x00}, // table.copy 0 0 (0 entries)
				{0xd0, 0x70, 0x41, 0x00, 0xfc, 0x0f, 0x00, 0x1a},             // table.grow 0 by 0; drop
				{0xfc, 0x10, 0x00, 0x1a},                                     // table.size; drop
				{0x41, 0x00, 0xd2, 0x01, 0x41, 0x01, 0xfc, 0x11, 0x00},       // table.fill 0 (ref.func f0) 1
				{0x41, 0x00, 0x25, 0x00, 0xd1, 0x1a},                         // table.get 0; ref.is_null; drop
				{0x41, 0x00, 0xd0, 0x70, 0x26, 0x00},                         // table.set 0 null
				{0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01},                   // i += 1
				{0x20, 0x00, 0x49, 0x0d, 0x00, 0x0b},                         // br_if 0 (i < n); end
				{0x41, 0x08, 0x28, 0x00, 0x00},                               // i32.load 8: the filled bytes, copied
			}}}},
			runs: []run{{"f0", YieldEvery + 1, 0x2a2a2a2a, 1}},
		},
		{
			name: "immediates holding the loop opcode's byte are not loops",
			m: loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{{
				locals: []byte{0x02, 0x03, i32, 0x01, 0x7e}, // two groups: 3 i32, 1 i64
				code: [][]byte{
					{0x41, 0x03, 0x21, 0x03},                              // i32.const 3; local.set 3
					{0x44, 3, 3, 3, 3, 3, 3, 3, 3, 0x1a},                  // f64.const with every byte 0x03; drop
					{0x43, 3, 3, 3, 3, 0x1a},                              // f32.const likewise; drop
					cat([]byte{0x42}, s(math.MinInt64), []byte{0x1a}),     // i64.const, ten bytes; drop
					{0x41, 0x00, 0x28, 0x02, 0x83, 0x03, 0x1a},            // i32.load align=4 offset=387 (0x83 0x03); drop
					{0x20, 0x00, 0x41, 0x03, 0x20, 0x00, 0x1c, 0x01, i32}, // select (result i32): n, or 3 when n is 0
					{0x3f, 0x00, 0x1a, 0x41, 0x00, 0x40, 0x00, 0x1a},      // memory.size; drop; memory.grow 0; drop
					{0x02, empty, 0x0c, 0x00, 0x0b},                       // block br 0 end
				},
			}}},
			runs: []run{{"f0", 9, 9, 0}, {"f0", 0, 3, 0}},
		},
		{
			name: "130 own globals: the new globals' indices take two bytes",
			m:    loopModule{imports: [][]byte{yieldImport}, globals: 130, funcs: []fn{countTo, spin}},
			runs: []run{{"f0", YieldEvery + 1, YieldEvery + 1, 1}},
		},
		{
			name: "130 imported functions before sched_yield and imported globals",
			m: loopModule{
				imports: append(append(append([][]byte{importGlobal(moduleGlobals, "g0")}, funcsBefore...),
					yieldImport), importGlobal(moduleGlobals, "g1")),
				yieldFunc: 130, importedGlobals: 2, globals: 1, funcs: []fn{countTo},
			},
			runs: []run{{"f0", 2*YieldEvery + 1, 2*YieldEvery + 1, 2}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, want := tc.m.build(false), tc.m.build(true)
			got, err := InstrumentLoops(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("InstrumentLoops made\n%x\nwant\n%x", got, want)
			}
			for _, r := range tc.runs {
				h := newHost(t)
				mod := h.instantiate(t, got)
				res, err := mod.ExportedFunction(r.fn).Call(context.Background(), uint64(r.arg))
				if err != nil {
					t.Fatalf("%s(%d): %v", r.fn, r.arg, err)
				}
				if uint32(res[0]) != r.want || h.yields.Load() != r.wantYields {
					t.Errorf("%s(%d) = %d with %d yields, want %d with %d", r.fn, r.arg, uint32(res[0]),
						h.yields.Load(), r.want, r.wantYields)
				}
			}
		})
	}
}

// TestInstrumentLoopsPaddedLEB128 rewrites a module whose sizes, counts and immediates
// are LEB128 numbers padded with redundant bytes, as the binary format allows: the
// sizes InstrumentLoops writes are minimal, what it copies is kept as it was.
func TestInstrumentLoopsPaddedLEB128(t *testing.T) {
	pad := func(v byte) []byte { return []byte{v | 0x80, 0x80, 0x80, 0x80, 0x00} } // 5 bytes
	code := cat(
		pad(1), pad(1), []byte{i32}, // one local declaration, padded
		[]byte{0x03, empty},                                                      // loop
		[]byte{0x20}, pad(1), []byte{0x41, 0x81, 0x80, 0x00, 0x6a, 0x22}, pad(1), // i += 1 (padded index and constant)
		[]byte{0x20, 0x00, 0x49, 0x0d}, pad(0), []byte{0x0b}, // br_if 0 (padded depth); end
		[]byte{0x20, 0x01, 0x0b},
	)
	// Section sizes padded to five bytes each.
	padSec := func(id byte, payload []byte) []byte {
		n := uint64(len(payload))
		size := []byte{byte(n&0x7f) | 0x80, byte(n>>7&0x7f) | 0x80, byte(n>>14&0x7f) | 0x80, byte(n>>21&0x7f) | 0x80, byte(n >> 28)}
		return cat([]byte{id}, size, payload)
	}
	types := vec(funcType(nil, []byte{i32}), funcType([]byte{i32}, []byte{i32}))
	imports := vec(importFunc("wasi_snapshot_preview1", "sched_yield", 0))
	globals := vec(global(0))
	exports := vec(export("f0", 0, 1))
	in := module(
		padSec(1, types), padSec(2, imports), padSec(3, vec(u(1))), padSec(6, globals), padSec(7, exports),
		padSec(10, cat(pad(1), pad(byte(len(code))), code)),
	)
	check := wantCheck(0, 1)
	instrumented := cat(code[:13], check, code[13:]) // after the locals and `loop empty`
	want := module(
		sec(1, types), sec(2, imports), sec(3, vec(u(1))),
		sec(6, vec(global(0), global(0), global(YieldEvery+1))),
		sec(7, vec(export("f0", 0, 1), export(InterruptGlobal, 3, 1))),
		sec(10, vec(cat(u(uint64(len(instrumented))), instrumented))),
	)
	got, err := InstrumentLoops(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("InstrumentLoops made\n%x\nwant\n%x", got, want)
	}
	h := newHost(t)
	res, err := h.instantiate(t, got).ExportedFunction("f0").Call(context.Background(), YieldEvery+1)
	if err != nil || uint32(res[0]) != YieldEvery+1 || h.yields.Load() != 1 {
		t.Errorf("f0(%d) = %v, %v with %d yields, want %d with 1", YieldEvery+1, res, err, h.yields.Load(), YieldEvery+1)
	}
}

func TestInstrumentLoopsRefuses(t *testing.T) {
	ok := loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{countTo}}
	withCode := func(code ...[]byte) []byte {
		m := ok
		m.funcs = []fn{{locals: noLocals, code: code}}
		return m.build(false)
	}
	valid := ok.build(false)
	for _, tc := range []struct {
		name, wantErr string
		wasm          []byte
	}{
		{"not a module", "not a wasm module", []byte("\x7fELF\x02\x01\x01\x00")},
		{"section past the end", "malformed section at byte 8", module([]byte{0x01, 0x05, 0x00})},
		{"section size of 2^63", "malformed section at byte 8",
			module([]byte{0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})},
		{"section size LEB128 longer than ten bytes", "malformed section at byte 8",
			module(cat([]byte{0x01}, bytes.Repeat([]byte{0x80}, 11), []byte{0x00}))},
		{"no sched_yield import", "does not import wasi_snapshot_preview1.sched_yield",
			loopModule{imports: [][]byte{importFunc("wasi_snapshot_preview1", "fd_write", typeVoid)}, globals: 1,
				funcs: []fn{countTo}}.build(false)},
		{"no global section", "no global or no export section",
			loopModule{imports: [][]byte{yieldImport}, funcs: []fn{countTo}}.build(false)},
		{"no export section", "no global or no export section",
			loopModule{imports: [][]byte{yieldImport}, globals: 1, noExports: true, funcs: []fn{countTo}}.build(false)},
		{"import of an unknown kind", "import of unknown kind 4",
			module(sec(2, vec(cat(name("m"), name("tag"), []byte{0x04, 0x00, 0x00}))), sec(6, vec(global(0))))},
		{"SIMD", "function 0: unsupported instruction 0xfd", withCode([]byte{0xfd, 0x0c})},
		{"0xFC beyond table.fill", "function 0: unsupported instruction 0xfc 18", withCode([]byte{0xfc, 0x12})},
		{"exception handling", "function 0: unsupported instruction 0x06", withCode([]byte{0x06, empty})},
		{"i32.const LEB128 longer than ten bytes", "function 0: LEB128 too long",
			withCode(cat([]byte{0x41}, bytes.Repeat([]byte{0xff}, 11)))},
		{"body ends inside an instruction", "function 0: unexpected end", withCode([]byte{0x44, 0x00, 0x00})},
		{"body size past the code section", "function 0: truncated body",
			module(sec(2, vec(yieldImport)), sec(6, vec(global(0))), sec(7, vec()), sec(10, []byte{0x01, 0x09, 0x00, 0x0b}))},
		{"bytes after the last body", "malformed code section",
			module(sec(2, vec(yieldImport)), sec(6, vec(global(0))), sec(7, vec()), sec(10, []byte{0x01, 0x02, 0x00, 0x0b, 0x0b}))},
		{"truncated module", "malformed section", valid[:len(valid)-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := InstrumentLoops(tc.wasm, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestInterruptStopsASpinningLoop sets the interrupt global from another goroutine
// while the guest spins, as the runtime does at a request's deadline: the next check
// yields and traps, with the counter and with a preemption import that never asks (it
// reads 0), where the interrupt alone takes the check there.
func TestInterruptStopsASpinningLoop(t *testing.T) {
	for _, preempt := range []*Import{nil, &testPreempt} {
		t.Run(fmt.Sprintf("preemption import %v", preempt != nil), func(t *testing.T) {
			wasm, err := InstrumentLoops(loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{spin}}.build(false), preempt)
			if err != nil {
				t.Fatal(err)
			}
			h := newHost(t)
			if preempt != nil {
				h.withPreempt(t, 0)
			}
			mod := h.instantiate(t, wasm)
			interrupt := mod.ExportedGlobal(InterruptGlobal).(api.MutableGlobal)
			time.AfterFunc(20*time.Millisecond, func() { interrupt.Set(1) })
			done := make(chan error, 1)
			go func() {
				_, err := mod.ExportedFunction("f0").Call(context.Background(), 0)
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "unreachable") {
					t.Errorf("the spinning guest ended with %v, want the check's unreachable trap", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the interrupt did not stop the guest")
			}
			if h.yields.Load() == 0 {
				t.Error("the guest never called sched_yield while it spun")
			}
		})
	}
}

// host is a wazero runtime with the imports of the test modules: sched_yield, which
// counts its calls, plain functions and two globals.
type host struct {
	rt     wazero.Runtime
	yields atomic.Int64
}

func newHost(t *testing.T) *host {
	t.Helper()
	ctx := context.Background()
	h := &host{rt: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())}
	t.Cleanup(func() { h.rt.Close(ctx) })
	_, err := h.rt.NewHostModuleBuilder("wasi_snapshot_preview1").NewFunctionBuilder().
		WithFunc(func() int32 { h.yields.Add(1); return 0 }).Export("sched_yield").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := h.rt.NewHostModuleBuilder(moduleFuncs)
	for i := 0; i < 130; i++ {
		b.NewFunctionBuilder().WithFunc(func() {}).Export(fmt.Sprint("f", i))
	}
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	genv := module(sec(6, vec(cat([]byte{i32, 0x00, 0x41, 0x00, 0x0b}), cat([]byte{i32, 0x00, 0x41, 0x01, 0x0b}))),
		sec(7, vec(export("g0", 3, 0), export("g1", 3, 1))))
	if _, err := h.rt.InstantiateWithConfig(ctx, genv, wazero.NewModuleConfig().WithName(moduleGlobals)); err != nil {
		t.Fatal(err)
	}
	return h
}

// instantiate compiles and instantiates wasm under a new name, so that wazero validates it.
func (h *host) instantiate(t *testing.T, wasm []byte) api.Module {
	t.Helper()
	mod, err := h.rt.InstantiateWithConfig(context.Background(), wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("wazero refuses the module: %v", err)
	}
	return mod
}

// TestInstrumentLoopsSkipsImmediates decodes each instruction with immediates, every
// one of them the byte 0x03 (the loop opcode) where the encoding allows, followed by a
// loop: reading one immediate too few takes a 0x03 for a loop, one too many eats the
// loop that follows. The modules are decoded only, not run (most are not valid).
func TestInstrumentLoopsSkipsImmediates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		instr []byte
	}{
		{"block with a type index", []byte{0x02, 0x03, 0x0b}},
		{"if with a valtype", []byte{0x04, 0x7f, 0x0b}},
		{"br", []byte{0x0c, 0x03}},
		{"br_if", []byte{0x0d, 0x03}},
		{"br_table", []byte{0x0e, 0x03, 0x03, 0x03, 0x03, 0x03}},
		{"br_table with a padded count", []byte{0x0e, 0x83, 0x00, 0x03, 0x03, 0x03, 0x03}},
		{"call", []byte{0x10, 0x03}},
		{"call_indirect", []byte{0x11, 0x03, 0x03}},
		{"return_call", []byte{0x12, 0x03}},
		{"return_call_indirect", []byte{0x13, 0x03, 0x03}},
		{"select t*", []byte{0x1c, 0x03, 0x03, 0x03, 0x03}},
		{"local.get", []byte{0x20, 0x03}},
		{"global.set", []byte{0x24, 0x03}},
		{"table.get", []byte{0x25, 0x03}},
		{"table.set", []byte{0x26, 0x03}},
		{"i32.load", []byte{0x28, 0x03, 0x03}},
		{"i64.store32", []byte{0x3e, 0x03, 0x03}},
		{"memory.size", []byte{0x3f, 0x03}},
		{"memory.grow", []byte{0x40, 0x03}},
		{"i32.const", []byte{0x41, 0x03}},
		{"i64.const", []byte{0x42, 0x03}},
		{"i64.const of two bytes", []byte{0x42, 0x83, 0x03}},
		{"f32.const", []byte{0x43, 0x03, 0x03, 0x03, 0x03}},
		{"f64.const", []byte{0x44, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03, 0x03}},
		{"ref.null", []byte{0xd0, 0x03}},
		{"ref.func", []byte{0xd2, 0x03}},
		{"i32.trunc_sat_f32_s", []byte{0xfc, 0x00}},
		{"i64.trunc_sat_f64_u", []byte{0xfc, 0x07}},
		{"memory.init", []byte{0xfc, 0x08, 0x03, 0x03}},
		{"data.drop", []byte{0xfc, 0x09, 0x03}},
		{"memory.copy", []byte{0xfc, 0x0a, 0x03, 0x03}},
		{"memory.fill", []byte{0xfc, 0x0b, 0x03}},
		{"table.init", []byte{0xfc, 0x0c, 0x03, 0x03}},
		{"elem.drop", []byte{0xfc, 0x0d, 0x03}},
		{"table.copy", []byte{0xfc, 0x0e, 0x03, 0x03}},
		{"table.grow", []byte{0xfc, 0x0f, 0x03}},
		{"table.size", []byte{0xfc, 0x10, 0x03}},
		{"table.fill", []byte{0xfc, 0x11, 0x03}},
		{"0xFC subopcode as padded LEB128", []byte{0xfc, 0x8b, 0x00, 0x03}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := loopModule{imports: [][]byte{yieldImport}, globals: 1, funcs: []fn{{locals: noLocals, code: [][]byte{
				tc.instr, {0x03, empty}, loopCheck, {0x0b},
			}}}}
			got, err := InstrumentLoops(m.build(false), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := m.build(true); !bytes.Equal(got, want) {
				t.Errorf("InstrumentLoops made\n%x\nwant\n%x", got, want)
			}
		})
	}
}
