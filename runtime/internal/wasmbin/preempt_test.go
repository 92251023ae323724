package wasmbin

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// testPreempt is the preemption import of these tests. The interpreter they run on
// reads it as an ordinary global, which withPreempt makes read 0 or 1.
var testPreempt = Import{Module: "penv", Name: "preempt"}

// withPreempt instantiates the module that testPreempt resolves to, its global set to v.
func (h *host) withPreempt(t *testing.T, v byte) *host {
	t.Helper()
	provider := module(sec(6, vec([]byte{i32, 0x00, 0x41, v, 0x0b})), sec(7, vec(export(testPreempt.Name, 3, 0))))
	if _, err := h.rt.InstantiateWithConfig(context.Background(), provider,
		wazero.NewModuleConfig().WithName(testPreempt.Module)); err != nil {
		t.Fatal(err)
	}
	return h
}

// wantPreemptCheck is the check InstrumentLoops inserts with a preemption import,
// written out from its doc comment.
func wantPreemptCheck(schedYield, preempt, interrupt uint32) []byte {
	return cat(
		[]byte{0x23}, u(uint64(preempt)), []byte{0x23}, u(uint64(interrupt)), []byte{0x72}, // $preempt | $interrupt
		[]byte{0x04, empty},                               // if
		[]byte{0x10}, u(uint64(schedYield)), []byte{0x1a}, // call $sched_yield  drop
		[]byte{0x23}, u(uint64(interrupt)), []byte{0x04, empty, 0x00, 0x0b}, // global.get $interrupt  if unreachable end
		[]byte{0x0b}, // end
	)
}

// TestInstrumentLoopsPreempt: the module gains the import after its own and one global,
// the interrupt flag, and every loop head reads the import; on a host where it reads 1,
// every iteration yields, and where it reads 0, none does.
func TestInstrumentLoopsPreempt(t *testing.T) {
	m := loopModule{
		imports:   [][]byte{importGlobal(moduleGlobals, "g0"), yieldImport, importGlobal(moduleGlobals, "g1")},
		yieldFunc: 0, importedGlobals: 2, globals: 130, funcs: []fn{countTo},
	}
	in := m.build(false)
	// What it must make: the preemption import at global index 2, the module's 130
	// globals moved to 3..132 (none is used by the code here), the interrupt at 133.
	const interrupt = 2 + 1 + 130
	var globals [][]byte
	for i := 0; i < 130; i++ {
		globals = append(globals, global(int32(i)))
	}
	globals = append(globals, global(0))
	code := cat(countTo.locals, []byte{0x03, empty}, wantPreemptCheck(0, 2, interrupt), bytes.Join(countTo.code[2:], nil), []byte{0x0b})
	types := [][]byte{funcType(nil, nil), funcType([]byte{i32}, []byte{i32}), funcType(nil, []byte{i32})}
	for len(types) < blockType {
		types = append(types, funcType(nil, nil))
	}
	types = append(types, funcType([]byte{i32}, []byte{i32}))
	want := module(
		sec(1, vec(types...)),
		sec(2, vec(append(m.imports, importGlobal(testPreempt.Module, testPreempt.Name))...)),
		sec(3, vec(u(typeI32ToI32))),
		sec(5, vec([]byte{0x00, 0x01})),
		sec(6, vec(globals...)),
		sec(7, vec(export("f0", 0, 1), export(InterruptGlobal, 3, interrupt))),
		sec(10, vec(cat(u(uint64(len(code))), code))),
	)
	got, err := InstrumentLoops(in, &testPreempt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("InstrumentLoops made\n%x\nwant\n%x", got, want)
	}
	for _, tc := range []struct {
		preempt    byte
		n          uint32
		wantYields int64
	}{{0, 3 * YieldEvery, 0}, {1, 100, 100}} {
		h := newHost(t).withPreempt(t, tc.preempt)
		res, err := h.instantiate(t, got).ExportedFunction("f0").Call(context.Background(), uint64(tc.n))
		if err != nil || uint32(res[0]) != tc.n || h.yields.Load() != tc.wantYields {
			t.Errorf("import reading %d: f0(%d) = %v, %v with %d yields, want %d with %d",
				tc.preempt, tc.n, res, err, h.yields.Load(), tc.n, tc.wantYields)
		}
	}
}

// TestInstrumentLoopsPreemptMovesGlobals runs a module that reads and writes its own
// globals and imported ones, in code, in an initial value and through an export,
// before and after the rewrite: every result is the same.
func TestInstrumentLoopsPreemptMovesGlobals(t *testing.T) {
	// Globals: 0 and 1 imported (genv g0 = 0, g1 = 1); the module's own: 2 = 40,
	// mutable, and 3, immutable, initialised from g1 (an initial value can read only
	// an import).
	own := [][]byte{
		global(40),
		{i32, 0x00, 0x23, 0x01, 0x0b}, // immutable, = global.get 1 (g1)
	}
	types := vec(funcType(nil, []byte{i32}), funcType([]byte{i32}, []byte{i32}))
	imports := vec(importGlobal(moduleGlobals, "g0"), importGlobal(moduleGlobals, "g1"),
		importFunc("wasi_snapshot_preview1", "sched_yield", 0))
	code := [][]byte{
		// f0(n): own global 2 += n in a loop of one iteration, then
		// return g2 * 100 + g3 * 10 + g1.
		body(noLocals,
			[]byte{0x03, empty},
			[]byte{0x23, 0x02, 0x20, 0x00, 0x6a, 0x24, 0x02}, // g2 += n
			[]byte{0x0b},
			[]byte{0x23, 0x02, 0x41, 0xe4, 0x00, 0x6c}, // g2 * 100
			[]byte{0x23, 0x03, 0x41, 0x0a, 0x6c, 0x6a}, // + g3 * 10
			[]byte{0x23, 0x01, 0x6a},                   // + g1
		),
	}
	in := module(
		sec(1, types), sec(2, imports), sec(3, vec(u(1))), sec(5, vec([]byte{0x00, 0x01})),
		sec(6, vec(own...)),
		sec(7, vec(export("f0", 0, 1), export("g2", 3, 2), export("g3", 3, 3))),
		sec(10, vec(code...)),
	)
	got, err := InstrumentLoops(in, &testPreempt)
	if err != nil {
		t.Fatal(err)
	}
	for _, wasm := range [][]byte{in, got} {
		h := newHost(t).withPreempt(t, 0)
		mod := h.instantiate(t, wasm)
		res, err := mod.ExportedFunction("f0").Call(context.Background(), 2)
		if err != nil || res[0] != 42*100+1*10+1 {
			t.Errorf("f0(2) = %v, %v, want %d", res, err, 42*100+1*10+1)
		}
		if g2, g3 := mod.ExportedGlobal("g2").Get(), mod.ExportedGlobal("g3").Get(); g2 != 42 || g3 != 1 {
			t.Errorf("exported g2, g3 = %d, %d, want 42, 1", g2, g3)
		}
	}
	if !bytes.Contains(got, []byte{0x23, 0x03, 0x20, 0x00, 0x6a, 0x24, 0x03}) {
		t.Error("the module's global 2 was not moved to 3 in its code")
	}
}

// TestInstrumentLoopsPreemptRefuses: a global initial value that does not end.
func TestInstrumentLoopsPreemptRefuses(t *testing.T) {
	in := module(sec(2, vec(yieldImport)), sec(6, vec([]byte{i32, 0x00, 0x41, 0x01})), sec(7, vec()))
	if _, err := InstrumentLoops(in, &testPreempt); err == nil || !strings.Contains(err.Error(), "global section") {
		t.Errorf("error %v, want one about the global section", err)
	}
}
