package runtime

import (
	"errors"
	"fmt"
	"math"
)

// InterruptGlobal is the exported mutable i32 global that instrumentLoops adds. The host
// sets it to 1 to stop the guest: the next check traps.
const InterruptGlobal = "wasmwsgi_interrupt"

// yieldEvery is how many loop iterations run between two calls into the host.
const yieldEvery = 1 << 14

// instrumentLoops returns the module with a check at the head of every loop:
//
//	loop ...
//	  global.get $fuel  i32.eqz
//	  if                                  ;; once every yieldEvery iterations
//	    call $sched_yield  drop           ;; into Go: runtime.Gosched (moduleConfig)
//	    i32.const yieldEvery  global.set $fuel
//	    global.get $wasmwsgi_interrupt
//	    if  unreachable  end              ;; the host asked to stop
//	  end
//	  global.get $fuel  i32.const 1  i32.sub  global.set $fuel
//	  ...
//
// This is how a guest that never returns is stopped at its deadline. wazero's own
// WithCloseOnContextDone does the job by calling into Go at every loop head, which
// makes CPython's interpreter loop about three times slower. Calling into Go now and
// then is still needed: code that never leaves wasm cannot be preempted, so a loop that
// never did would stall Go's stop-the-world phases and with them the whole process.
// sched_yield is a WASI import python.wasm already has, so no function index moves.
//
// It understands the instructions of the MVP, sign extension, the 0xFC prefix
// (saturating truncation, bulk memory, tables) and reference types; anything else
// (SIMD, exceptions) is an error, and the caller falls back to WithCloseOnContextDone.
func instrumentLoops(wasm []byte) ([]byte, error) {
	sections, err := wasmSections(wasm)
	if err != nil {
		return nil, err
	}
	var imports importCounts
	ownGlobals := uint32(0)
	for _, s := range sections {
		switch s.id {
		case 2:
			if imports, err = countImports(s.payload); err != nil {
				return nil, err
			}
		case 6:
			c, _ := uleb128(s.payload)
			ownGlobals = uint32(c)
		}
	}
	if imports.schedYield < 0 {
		return nil, errors.New("module does not import wasi_snapshot_preview1.sched_yield")
	}
	interrupt := appendULEB(nil, uint64(imports.globals+ownGlobals))
	fuel := appendULEB(nil, uint64(imports.globals+ownGlobals+1))
	var check []byte
	for _, part := range [][]byte{
		{0x23}, fuel, {0x45, 0x04, 0x40, 0x10}, appendULEB(nil, uint64(imports.schedYield)), {0x1a, 0x41},
		appendSLEB(nil, yieldEvery), {0x24}, fuel, {0x23}, interrupt, {0x04, 0x40, 0x00, 0x0b, 0x0b},
		{0x23}, fuel, {0x41, 0x01, 0x6b, 0x24}, fuel,
	} {
		check = append(check, part...)
	}

	// Every loop head grows the code by len(check); a quarter more is plenty.
	out := append(make([]byte, 0, len(wasm)+len(wasm)/4), wasm[:8]...)
	haveGlobals, haveExports := false, false
	for _, s := range sections {
		id, payload := s.id, s.payload
		switch id {
		case 6:
			payload = appendToVector(payload, []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}) // interrupt: mut i32 = 0
			payload = appendToVector(payload, append([]byte{0x7f, 0x01, 0x41}, append(appendSLEB(nil, yieldEvery), 0x0b)...))
			haveGlobals = true
		case 7:
			payload = appendToVector(payload, exportEntry(imports.globals+ownGlobals))
			haveExports = true
		case 10:
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
	e := appendULEB(nil, uint64(len(InterruptGlobal)))
	e = append(e, InterruptGlobal...)
	e = append(e, 0x03) // export kind: global
	return appendULEB(e, uint64(global))
}

func appendSection(out []byte, id byte, payload []byte) []byte {
	out = append(out, id)
	out = appendULEB(out, uint64(len(payload)))
	return append(out, payload...)
}

// appendToVector adds one entry to a section whose payload is a counted vector.
func appendToVector(payload, entry []byte) []byte {
	count, n := uleb128(payload)
	out := appendULEB(nil, count+1)
	out = append(out, payload[n:]...)
	return append(out, entry...)
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
	out := appendULEB(make([]byte, 0, len(payload)+len(payload)/4), uint64(count))
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
		out = appendULEB(out, uint64(len(body)))
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

// reader decodes the parts of the binary format instrumentLoops needs.
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

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
