package wasmbin

import (
	"errors"
	"fmt"

	"github.com/wasmwsgi/wasmwsgi/internal/leb128"
)

// InterruptGlobal is the exported mutable i32 global that InstrumentLoops adds. The host
// sets it to 1 to stop the guest: the next check traps.
const InterruptGlobal = "wasmwsgi_interrupt"

// YieldEvery is how many loop iterations run between two calls into the host, in
// modules instrumented without a preemption import.
const YieldEvery = 1 << 14

// Import names an import of a module: the preemption import, when InstrumentLoops is
// given one.
type Import struct{ Module, Name string }

// InstrumentLoops returns the module with a check at the head of every loop. Without a
// preemption import (preempt nil) the check counts iterations in a global:
//
//	loop ...
//	  global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	  global.get $fuel  i32.eqz
//	  if                                  ;; once every YieldEvery iterations
//	    call $sched_yield  drop           ;; the host's yield (runtime.Gosched)
//	    i32.const YieldEvery  global.set $fuel
//	    global.get $wasmwsgi_interrupt
//	    if  unreachable  end              ;; the host asked to stop
//	  end
//	  ...
//
// The count goes down before it is tested, so the compiled check loads $fuel once:
// the second global.get reads the value just set. $fuel starts at YieldEvery+1, so the
// first yield comes after YieldEvery iterations, as every later one does.
//
// With a preemption import, the module imports it as an immutable i32 global, which
// the engine makes read 1 while Go asks the goroutine running the guest to stop (wazero
// patch 0009, experimental.PreemptImportName), and the check only reads it:
//
//	loop ...
//	  global.get $preempt  global.get $wasmwsgi_interrupt  i32.or
//	  if                                  ;; Go wants the goroutine back, or the host
//	    call $sched_yield  drop           ;; Go stops the goroutine here
//	    global.get $wasmwsgi_interrupt
//	    if  unreachable  end              ;; the host asked to stop
//	  end
//	  ...
//
// That is two reads and a branch per iteration, with no store, and no call into Go
// until one of them asks.
//
// $fuel and $wasmwsgi_interrupt are globals appended to the module's own, and
// sched_yield is the module's import of wasi_snapshot_preview1.sched_yield, so no
// function index moves. The preemption import is appended to the imports: it takes the
// first global index after the imported ones, and every global the module defines
// moves up by one, in its code, its exports and its globals' initial values. (Data and
// element segment offsets are copied as they are: they can name only imported globals,
// which keep their indices.) It understands the instructions of
// the MVP, sign extension, the 0xFC prefix (saturating truncation, bulk memory, tables)
// and reference types; anything else (SIMD, exceptions) is an error.
func InstrumentLoops(wasm []byte, preempt *Import) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	var imports importCounts
	ownGlobals := uint32(0)
	for _, s := range secs {
		switch s.id {
		case sectionImport:
			if imports, err = countImports(s.payload); err != nil {
				return nil, err
			}
		case sectionGlobal:
			c, _ := uleb128(s.payload)
			ownGlobals = uint32(c)
		}
	}
	if imports.schedYield < 0 {
		return nil, errors.New("module does not import wasi_snapshot_preview1.sched_yield")
	}
	// shift is added to the index of every global the module defines.
	shift := uint32(0)
	if preempt != nil {
		shift = 1
	}
	interruptIndex := imports.globals + shift + ownGlobals
	interrupt := leb128.AppendUnsigned(nil, uint64(interruptIndex))
	yield := leb128.AppendUnsigned(nil, uint64(imports.schedYield))
	var parts [][]byte
	if preempt != nil {
		parts = [][]byte{
			{0x23}, leb128.AppendUnsigned(nil, uint64(imports.globals)), {0x23}, interrupt, {0x72, 0x04, 0x40, 0x10}, yield, {0x1a},
			{0x23}, interrupt, {0x04, 0x40, 0x00, 0x0b, 0x0b},
		}
	} else {
		fuel := leb128.AppendUnsigned(nil, uint64(interruptIndex+1))
		parts = [][]byte{
			{0x23}, fuel, {0x41, 0x01, 0x6b, 0x24}, fuel,
			{0x23}, fuel, {0x45, 0x04, 0x40, 0x10}, yield, {0x1a, 0x41},
			leb128.AppendSigned(nil, YieldEvery), {0x24}, fuel, {0x23}, interrupt, {0x04, 0x40, 0x00, 0x0b, 0x0b},
		}
	}
	var check []byte
	for _, part := range parts {
		check = append(check, part...)
	}
	rw := rewrite{check: check, globalsFrom: imports.globals, globalShift: shift}

	// Every loop head grows the code by len(check); a quarter more is plenty.
	out := append(make([]byte, 0, len(wasm)+len(wasm)/4), wasm[:8]...)
	haveGlobals, haveExports := false, false
	for _, s := range secs {
		id, payload := s.id, s.payload
		switch id {
		case sectionImport:
			if preempt != nil {
				payload = appendToVector(payload, globalImport(*preempt))
			}
		case sectionGlobal:
			if shift != 0 {
				if payload, err = rw.globals(payload); err != nil {
					return nil, err
				}
			}
			payload = appendToVector(payload, []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}) // interrupt: mut i32 = 0
			if preempt == nil {
				payload = appendToVector(payload, append([]byte{0x7f, 0x01, 0x41}, append(leb128.AppendSigned(nil, YieldEvery+1), 0x0b)...))
			}
			haveGlobals = true
		case sectionExport:
			if shift != 0 {
				if payload, err = rw.exports(payload); err != nil {
					return nil, err
				}
			}
			payload = appendToVector(payload, exportEntry(interruptIndex))
			haveExports = true
		case sectionCode:
			if payload, err = rw.code(payload); err != nil {
				return nil, err
			}
		}
		out = appendSection(out, id, payload)
	}
	if !haveGlobals || !haveExports {
		return nil, errors.New("module has no global or no export section")
	}
	return out, nil
}

// globalImport is the import entry of an immutable i32 global.
func globalImport(im Import) []byte {
	e := leb128.AppendUnsigned(nil, uint64(len(im.Module)))
	e = append(e, im.Module...)
	e = leb128.AppendUnsigned(e, uint64(len(im.Name)))
	e = append(e, im.Name...)
	return append(e, 0x03, 0x7f, 0x00) // global: i32, immutable
}

func exportEntry(global uint32) []byte {
	e := leb128.AppendUnsigned(nil, uint64(len(InterruptGlobal)))
	e = append(e, InterruptGlobal...)
	e = append(e, 0x03) // export kind: global
	return leb128.AppendUnsigned(e, uint64(global))
}

type importCounts struct {
	globals    uint32
	schedYield int64 // function index of wasi_snapshot_preview1.sched_yield, -1 if absent
}

func countImports(payload []byte) (importCounts, error) {
	r := &reader{b: payload}
	c := importCounts{schedYield: -1}
	funcs := int64(0)
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		module := r.name()
		field := r.name()
		switch kind := r.byte(); kind {
		case 0: // func: type index
			r.u32()
			if module == "wasi_snapshot_preview1" && field == "sched_yield" {
				c.schedYield = funcs
			}
			funcs++
		case 1: // table: reftype, limits
			r.byte()
			r.limits()
		case 2: // memory: limits
			r.limits()
		case 3: // global: valtype, mutability
			r.byte()
			r.byte()
			c.globals++
		default:
			return c, fmt.Errorf("import of unknown kind %d", kind)
		}
	}
	return c, r.err
}

// rewrite is what InstrumentLoops does to a module's sections: check goes after every
// loop header, and global indices from globalsFrom up (the module's own globals) move
// up by globalShift.
type rewrite struct {
	check       []byte
	globalsFrom uint32
	globalShift uint32
}

// global returns the new index of global index i.
func (rw *rewrite) global(i uint32) uint32 {
	if i >= rw.globalsFrom {
		return i + rw.globalShift
	}
	return i
}

// code rewrites the code section.
func (rw *rewrite) code(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	count := r.u32()
	out := leb128.AppendUnsigned(make([]byte, 0, len(payload)+len(payload)/4), uint64(count))
	var body []byte // one buffer for every function's new body
	for i := uint32(0); i < count; i++ {
		size := int(r.u32())
		if r.err != nil || r.p+size > len(r.b) {
			return nil, fmt.Errorf("function %d: truncated body", i)
		}
		var err error
		body, err = rw.body(body[:0], r.b[r.p:r.p+size])
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		r.p += size
		out = leb128.AppendUnsigned(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, errors.New("malformed code section")
	}
	return out, nil
}

// body appends the rewritten function body to out.
func (rw *rewrite) body(out, body []byte) ([]byte, error) {
	r := &reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- { // local declarations
		r.u32()
		r.byte()
	}
	out = append(out, body[:r.p]...)
	return rw.instructions(out, r, false)
}

// instructions appends the instructions r holds, rewritten, to out: up to its end, or
// with constant set up to and with the end of one constant expression.
func (rw *rewrite) instructions(out []byte, r *reader, constant bool) ([]byte, error) {
	for r.err == nil && r.p < len(r.b) {
		start := r.p
		op := r.byte()
		if (op == 0x23 || op == 0x24) && rw.globalShift != 0 { // global.get, global.set
			i := r.u32()
			out = append(out, op)
			out = leb128.AppendUnsigned(out, uint64(rw.global(i)))
			continue
		}
		if err := r.immediates(op); err != nil {
			return nil, err
		}
		out = append(out, r.b[start:r.p]...)
		if op == 0x03 && !constant { // loop: the check goes right after its block type
			out = append(out, rw.check...)
		}
		if op == 0x0b && constant {
			return out, r.err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if constant {
		return nil, errors.New("constant expression without end")
	}
	return out, nil
}

// globals rewrites the global section: its initial values may read other globals.
func (rw *rewrite) globals(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n := r.u32()
	out := leb128.AppendUnsigned(make([]byte, 0, len(payload)), uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		start := r.p
		r.byte() // valtype
		r.byte() // mutability
		out = append(out, r.b[start:r.p]...)
		var err error
		if out, err = rw.instructions(out, r, true); err != nil {
			return nil, fmt.Errorf("global section: %w", err)
		}
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, errors.New("malformed global section")
	}
	return out, nil
}

// exports rewrites the export section: the indices of exported globals.
func (rw *rewrite) exports(payload []byte) ([]byte, error) {
	r := &reader{b: payload}
	n := r.u32()
	out := leb128.AppendUnsigned(make([]byte, 0, len(payload)), uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		start := r.p
		r.name()
		kind := r.byte()
		out = append(out, r.b[start:r.p]...)
		i := r.u32()
		if kind == 0x03 {
			i = rw.global(i)
		}
		out = leb128.AppendUnsigned(out, uint64(i))
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, errors.New("malformed export section")
	}
	return out, nil
}

// immediates skips the immediate operands of opcode op.
func (r *reader) immediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if: block type
		switch b := r.b[min(r.p, len(r.b)-1)]; {
		case b == 0x40 || (b >= 0x6f && b <= 0x7f):
			r.byte()
		default:
			r.leb() // type index as s33
		}
	case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12: // br, br_if, call, return_call
		r.u32()
	case op == 0x0e: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.byte()
		}
	case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
		r.u32()
		r.u32()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41 || op == 0x42: // i32.const, i64.const
		r.leb()
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xd0: // ref.null t
		r.byte()
	case op == 0xd2: // ref.func
		r.u32()
	case op == 0xfc:
		switch sub := r.u32(); {
		case sub <= 7: // saturating truncation
		case sub == 8: // memory.init
			r.u32()
			r.u32()
		case sub == 9 || sub == 13 || (sub >= 15 && sub <= 17): // data.drop, elem.drop, table.grow/size/fill
			r.u32()
		case sub == 10 || sub == 12 || sub == 14: // memory.copy, table.init, table.copy
			r.u32()
			r.u32()
		case sub == 11: // memory.fill
			r.u32()
		default:
			return fmt.Errorf("unsupported instruction 0xfc %d", sub)
		}
	case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
		(op >= 0x45 && op <= 0xc4) || op == 0xd1:
		// no immediates
	default:
		return fmt.Errorf("unsupported instruction 0x%02x", op)
	}
	return r.err
}

// GlobalModule returns a module that exports an immutable i32 global of value 0 as
// name: what a preemption import resolves to (the engine never reads its value).
func GlobalModule(name string) []byte {
	global := []byte{0x01, 0x7f, 0x00, 0x41, 0x00, 0x0b} // one global: i32, immutable, = 0
	export := leb128.AppendUnsigned([]byte{0x01}, uint64(len(name)))
	export = append(append(export, name...), 0x03, 0x00) // global 0
	out := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	out = appendSection(out, sectionGlobal, global)
	return appendSection(out, sectionExport, export)
}
