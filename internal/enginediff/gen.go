package enginediff

import (
	"fmt"
	"math/rand"

	"github.com/wasmwsgi/wasmwsgi/internal/leb128"
)

const page = 65536

// Access is one function of an edge module: a single access by Op at Addr with static
// Offset. The function traps when Addr+Offset+size passes the memory's length (or, for
// an atomic op, when the address is not aligned).
type Access struct {
	Op           string
	Addr, Offset uint32
}

// InBounds reports whether the access fits in a memory of length bytes.
func (a Access) InBounds(length uint64) bool {
	op := lookup(a.Op)
	return uint64(a.Addr)+uint64(a.Offset)+op.size <= length
}

// Aligned reports whether an atomic access is aligned (every other access is).
func (a Access) Aligned() bool {
	op := lookup(a.Op)
	return !op.atomic || (uint64(a.Addr)+uint64(a.Offset))%op.size == 0
}

func lookup(name string) memOp {
	for _, op := range memOps {
		if op.name == name {
			return op
		}
	}
	panic("enginediff: no memory op " + name)
}

// EdgeModule is a module whose every function makes one access, with the accesses
// placed around the end of the declared minimum: ending one byte before it, at it, and
// one byte past it, with the distance carried by the address, by the offset or by both,
// and at the far ends of the address space (address+offset past 2^32, the largest
// offset). Run before and after "grow", the same accesses meet a larger memory.
type EdgeModule struct {
	Module
	Accesses []Access
}

// EdgeModules returns the edge modules: memories of a declared minimum of 0, 1 and 3
// pages, one of 1 page with no maximum, one imported memory declared as 1 page but
// provided with 2, and one of 2 GiB and a page.
func EdgeModules() []EdgeModule {
	var out []EdgeModule
	for _, shape := range []struct {
		min, max, actual int64
		imported         bool
	}{
		{0, 1, 0, false},
		{1, 2, 1, false},
		{3, 5, 3, false},
		{1, -1, 1, false},
		{1, 4, 2, true},
		// Over 2 GiB: accesses at constant addresses with the top bit set, inside
		// the minimum.
		{1<<15 + 1, 1<<15 + 1, 1<<15 + 1, false},
	} {
		m := EdgeModule{Module: Module{MinPages: shape.min, MaxPages: shape.max, Imported: shape.imported, ActualPages: shape.actual}}
		minBytes := uint64(shape.min) * page
		for _, op := range memOps {
			var ends []uint64 // where the access ends
			for _, b := range []uint64{minBytes, minBytes + page, uint64(shape.actual) * page} {
				for _, d := range []int64{-1, 0, 1} {
					if e := int64(b) + d; e >= int64(op.size) {
						ends = append(ends, uint64(e))
					}
				}
			}
			seen := map[Access]bool{}
			add := func(a Access) {
				if !seen[a] {
					seen[a] = true
					m.Accesses = append(m.Accesses, a)
				}
			}
			for _, end := range ends {
				start := end - op.size
				add(Access{op.name, uint32(start), 0})
				add(Access{op.name, 0, uint32(start)})
				if start >= 24 {
					add(Access{op.name, uint32(start - 24), 24})
				}
			}
			add(Access{op.name, 0, 0})
			add(Access{op.name, 0xffffffff, 0})
			add(Access{op.name, 0, 0xffffffff})
			add(Access{op.name, 0xfffffff0, 0x20})
			add(Access{op.name, 0x80000000, 0x80000000})
			add(Access{op.name, 16, 0xfffffff0})
		}
		for _, a := range m.Accesses {
			m.Bodies = append(m.Bodies, access(nil, lookup(a.Op), a.Addr, a.Offset))
		}
		if shape.min > 0 {
			m.Data = pattern(64)
		}
		out = append(out, m)
	}
	return out
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*37 + 11)
	}
	return b
}

// RandomModule returns a module made from seed: a memory of 0 to 3 pages declared
// (sometimes imported, provided larger), and functions of up to 40 steps, each a load,
// store or read-modify-write at a constant address (chosen near the minimum's end, near
// 0, near 2^32 or anywhere) or at an address computed from the accumulator, a load whose
// value is used in part or on a condition (partialUses), a memory.grow or memory.size,
// or a merge: an address computed into local 1, an if/else
// whose arms access memory through it or grow the memory, and then several accesses
// through it after the arms join, with offsets smaller and larger than the first's (a
// compiler may skip the check of a later one that ends no further than an earlier).
func RandomModule(seed int64) Module {
	r := rand.New(rand.NewSource(seed))
	m := Module{MinPages: int64(r.Intn(4))}
	m.MaxPages = m.MinPages + int64(r.Intn(3))
	if r.Intn(5) == 0 {
		m.MaxPages = -1
	}
	m.ActualPages = m.MinPages
	if r.Intn(4) == 0 {
		m.Imported = true
		if r.Intn(2) == 0 && (m.MaxPages < 0 || m.ActualPages < m.MaxPages) {
			m.ActualPages++
		}
	}
	if m.MinPages > 0 {
		m.Data = pattern(1 + r.Intn(256))
	}
	minBytes := uint64(m.MinPages) * page
	address := func(op memOp) (uint32, uint32) {
		var end uint64
		switch r.Intn(6) {
		case 0, 1, 2:
			end = minBytes + uint64(r.Intn(33)) - 16
		case 3:
			end = uint64(r.Intn(64))
		case 4:
			end = 1<<32 - uint64(r.Intn(64))
		default:
			end = uint64(r.Uint32())
		}
		start := end - op.size
		if int64(start) < 0 {
			start = 0
		}
		if op.atomic && r.Intn(4) != 0 {
			start &^= op.size - 1
		}
		var offset uint64
		switch r.Intn(4) {
		case 0:
			offset = 0
		case 1:
			offset = start
		case 2:
			offset = uint64(r.Intn(128))
		default:
			offset = uint64(r.Uint32())
		}
		if offset > start && r.Intn(3) != 0 {
			offset = start
		}
		return uint32(start - offset), uint32(offset)
	}
	for f := 1 + r.Intn(6); f > 0; f-- {
		var body []byte
		for n := 1 + r.Intn(40); n > 0; n-- {
			switch k := r.Intn(22); {
			case k < 14:
				op := memOps[r.Intn(len(memOps))]
				addr, offset := address(op)
				body = access(body, op, addr, offset)
			case k < 16:
				// An address computed at run time: local 0 masked to the declared minimum
				// plus a little, then an access through it with a small offset.
				op := memOps[r.Intn(len(memOps)-6)] // not SIMD or atomics: no alignment traps
				b := len(body)
				body = access(body, op, 0, uint32(r.Intn(64)))
				// Replace the i32.const 0 (two bytes) by (i32.wrap_i64 (local 0)) & mask.
				mask := int64(minBytes + 64)
				fix := append([]byte{0x20, 0, 0xa7, 0x41}, leb128.AppendSigned(nil, mask)...)
				fix = append(fix, 0x71) // i32.and
				body = append(body[:b], append(fix, body[b+2:]...)...)
			case k < 18:
				body = merge(body, r, minBytes)
			case k < 19:
				body = append(body, 0x41, byte(r.Intn(2)), 0x40, 0, 0xac, 0x20, 0, 0x7c, 0x21, 0) // grow 0 or 1
			case k < 20:
				body = append(body, 0x3f, 0, 0xac, 0x20, 0, 0x7c, 0x21, 0) // memory.size
			default:
				// A load whose value is used only in part, or only on a condition: it must
				// trap past the end all the same.
				use := r.Intn(len(partialUses))
				addr, offset := address(lookup(partialUses[use].load))
				body = partialUse(body, use, addr, offset)
			}
		}
		m.Bodies = append(m.Bodies, body)
	}
	return m
}

// MergeModule returns a module made from seed whose functions each make one merge step
// (below) and nothing else, so that no earlier trap ends a function before it: a memory
// of 1 to 3 pages declared, growable by one.
func MergeModule(seed int64) Module {
	r := rand.New(rand.NewSource(seed))
	m := Module{MinPages: int64(1 + r.Intn(3))}
	m.MaxPages, m.ActualPages = m.MinPages+1, m.MinPages
	m.Data = pattern(256)
	for f := 8; f > 0; f-- {
		m.Bodies = append(m.Bodies, merge(nil, r, uint64(m.MinPages)*page))
	}
	return m
}

// LoopModule returns a module made from seed whose functions each run a loop that
// keeps several values live across a call made on a rarely taken path, the shape of
// the loop checks' call to the host: each iteration updates the i64 locals from the one
// before and a byte of memory, and one in 2 to 16 iterations calls a function of a
// higher index (or grow) and adds its result. The values must survive the call and the
// iterations that skip it alike. Calls go only to higher indexes, so every run ends.
func LoopModule(seed int64) Module {
	r := rand.New(rand.NewSource(seed))
	m := Module{MinPages: 1, MaxPages: 8, ActualPages: 1, Data: pattern(256), ExtraLocals: 2 + r.Intn(10)}
	funcs := 1 + r.Intn(4)
	for f := 0; f < funcs; f++ {
		var b []byte
		b = append(b, 0x03, 0x40) // loop
		// if ((local 1 & mask) == 0) local 0 += call f', f' > f (the last is grow)
		mask := byte(1<<(1+r.Intn(4)) - 1)
		callee := f + 1 + r.Intn(funcs-f)
		b = append(b, 0x20, 1, 0x41, mask, 0x71, 0x45, 0x04, 0x40)
		b = append(b, 0x10, byte(callee), 0x20, 0, 0x7c, 0x21, 0, 0x0b)
		// local k = local k * c + local k-1, for each extra local; local 0 ^= the last
		prev := byte(0)
		for k := 0; k < m.ExtraLocals; k++ {
			l := byte(2 + k)
			b = append(b, 0x20, l, 0x42, byte(3+r.Intn(60)), 0x7e, 0x20, prev, 0x7c, 0x21, l)
			prev = l
		}
		b = append(b, 0x20, 0, 0x20, prev, 0x85, 0x21, 0)
		// local 0 += load8_u(local 1 & 255)
		b = append(b, 0x20, 0, 0x20, 1, 0x41, 0xff, 0x01, 0x71, 0x31, 0, 0, 0x7c, 0x21, 0)
		// local 1 += step; br_if (local 1 < n)
		b = append(b, 0x20, 1, 0x41, byte(1+r.Intn(3)), 0x6a, 0x22, 1, 0x41, byte(8+r.Intn(24)), 0x49, 0x0d, 0, 0x0b)
		m.Bodies = append(m.Bodies, b)
	}
	return m
}

// merge appends RandomModule's merge step: local 1 = an address up to 31 bytes below
// the declared minimum's end or a page past it; if (accumulator is odd) an access
// through local 1 or a memory.grow, else an access through it or nothing; then two to
// four accesses through local 1.
func merge(body []byte, r *rand.Rand, minBytes uint64) []byte {
	// The offsets stay within 4 bytes of a first one, so that a later access often ends
	// just before or just past an earlier one, on either side of the memory's end.
	first := 8 + r.Intn(16)
	viaLocal1 := func(b []byte) []byte {
		op := memOps[r.Intn(len(memOps)-6)] // not SIMD or atomics: no alignment traps
		at := len(b)
		b = access(b, op, 0, uint32(first+r.Intn(9)-4))
		b[at], b[at+1] = 0x20, 1 // the i32.const 0 becomes local.get 1
		return b
	}
	// local 1 = end - ((accumulator + c) & 31), where end is the declared minimum's end or a
	// page past it: the accesses below straddle the memory's end before and after grow.
	end := int64(int32(uint32(minBytes + uint64(r.Intn(2))*page)))
	body = leb128.AppendSigned(append(body, 0x41), end)           // i32.const end
	body = append(body, 0x20, 0, 0xa7, 0x41)                      // local.get 0; i32.wrap_i64; i32.const
	body = leb128.AppendSigned(body, int64(r.Intn(128)))          // a constant, as the accumulator is often 0
	body = append(body, 0x6a, 0x41, 0x1f, 0x71, 0x6b, 0x21, 1)    // i32.add; i32.const 31; i32.and; i32.sub; local.set 1
	body = append(body, 0x20, 0, 0xa7, 0x41, 1, 0x71, 0x04, 0x40) // if (i32.wrap_i64 local 0) & 1
	if r.Intn(3) == 0 {
		body = append(body, 0x41, 1, 0x40, 0, 0x1a) // memory.grow 1; drop
	} else {
		body = viaLocal1(body)
	}
	body = append(body, 0x05) // else
	if r.Intn(2) == 0 {
		body = viaLocal1(body)
	}
	body = append(body, 0x0b) // end
	for n := 2 + r.Intn(3); n > 0; n-- {
		body = viaLocal1(body)
	}
	return body
}

// Describe names function i of an edge module for a failure message.
func (m EdgeModule) Describe(i int) string {
	a := m.Accesses[i]
	return fmt.Sprintf("%s at i32.const %#x offset=%#x (declared minimum %d pages)", a.Op, a.Addr, a.Offset, m.MinPages)
}
