package wasmbin

import (
	"errors"
	"fmt"

	"github.com/wasmwsgi/wasmwsgi/internal/leb128"
)

// InterruptGlobal is the exported mutable i32 global that InstrumentLoops adds. The host
// sets it to 1 to stop the guest: the next check traps.
const InterruptGlobal = "wasmwsgi_interrupt"

// YieldEvery is how many loop iterations run between two calls into the host.
const YieldEvery = 1 << 14

// InstrumentLoops returns the module with a check at the head of every loop:
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
// $fuel and $wasmwsgi_interrupt are two globals appended to the module's own, and
// sched_yield is the module's import of wasi_snapshot_preview1.sched_yield, so no
// existing function or global index moves. It understands the instructions of the MVP,
// sign extension, the 0xFC prefix (saturating truncation, bulk memory, tables) and
// reference types; anything else (SIMD, exceptions) is an error.
func InstrumentLoops(wasm []byte) ([]byte, error) {
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
	interrupt := leb128.AppendUnsigned(nil, uint64(imports.globals+ownGlobals))
	fuel := leb128.AppendUnsigned(nil, uint64(imports.globals+ownGlobals+1))
	var check []byte
	for _, part := range [][]byte{
		{0x23}, fuel, {0x41, 0x01, 0x6b, 0x24}, fuel,
		{0x23}, fuel, {0x45, 0x04, 0x40, 0x10}, leb128.AppendUnsigned(nil, uint64(imports.schedYield)), {0x1a, 0x41},
		leb128.AppendSigned(nil, YieldEvery), {0x24}, fuel, {0x23}, interrupt, {0x04, 0x40, 0x00, 0x0b, 0x0b},
	} {
		check = append(check, part...)
	}

	// Every loop head grows the code by len(check); a quarter more is plenty.
	out := append(make([]byte, 0, len(wasm)+len(wasm)/4), wasm[:8]...)
	haveGlobals, haveExports := false, false
	for _, s := range secs {
		id, payload := s.id, s.payload
		switch id {
		case sectionGlobal:
			payload = appendToVector(payload, []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}) // interrupt: mut i32 = 0
			payload = appendToVector(payload, append([]byte{0x7f, 0x01, 0x41}, append(leb128.AppendSigned(nil, YieldEvery+1), 0x0b)...))
			haveGlobals = true
		case sectionExport:
			payload = appendToVector(payload, exportEntry(imports.globals+ownGlobals))
			haveExports = true
		case sectionCode:
			if payload, err = instrumentCode(payload, check); err != nil {
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

// instrumentCode rewrites the code section, inserting check after every loop header.
func instrumentCode(payload, check []byte) ([]byte, error) {
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
		body, err = instrumentBody(body[:0], r.b[r.p:r.p+size], check)
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

// instrumentBody appends the instrumented function body to out.
func instrumentBody(out, body, check []byte) ([]byte, error) {
	r := &reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- { // local declarations
		r.u32()
		r.byte()
	}
	out = append(out, body[:r.p]...)
	for r.err == nil && r.p < len(r.b) {
		start := r.p
		op := r.byte()
		if err := r.immediates(op); err != nil {
			return nil, err
		}
		out = append(out, r.b[start:r.p]...)
		if op == 0x03 { // loop: the check goes right after its block type
			out = append(out, check...)
		}
	}
	if r.err != nil {
		return nil, r.err
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
