package wasmbin

import (
	"bytes"
	"math"
	"reflect"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/leb128"
)

func TestULEB128(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		v       uint64
		n       int
		minimal bool // in is what appendULEB writes for v
	}{
		{"zero", []byte{0x00}, 0, 1, true},
		{"largest one byte", []byte{0x7f}, 127, 1, true},
		{"smallest two bytes", []byte{0x80, 0x01}, 128, 2, true},
		{"three bytes", []byte{0xe5, 0x8e, 0x26}, 624485, 3, true},
		{"largest u32", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, math.MaxUint32, 5, true},
		{"largest u64", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, math.MaxUint64, 10, true},
		{"zero padded to three bytes", []byte{0x80, 0x80, 0x00}, 0, 3, false},
		{"one padded to five bytes", []byte{0x81, 0x80, 0x80, 0x80, 0x00}, 1, 5, false},
		{"bytes after the number", []byte{0x05, 0x80}, 5, 1, false},
		{"empty", nil, 0, 0, false},
		{"unterminated", []byte{0x80, 0x80}, 0, 0, false},
		{"eleven bytes", append(bytes.Repeat([]byte{0x80}, 10), 0x00), 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, n := uleb128(tc.in); v != tc.v || n != tc.n {
				t.Errorf("uleb128(%x) = %d, %d; want %d, %d", tc.in, v, n, tc.v, tc.n)
			}
			if got := leb128.AppendUnsigned(nil, tc.v); tc.minimal && !bytes.Equal(got, tc.in) {
				t.Errorf("leb128.AppendUnsigned(%d) = %x, want %x", tc.v, got, tc.in)
			}
		})
	}
}

func TestSLEB128(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		v       int64
		n       int
		minimal bool // in is what appendSLEB writes for v
	}{
		{"zero", []byte{0x00}, 0, 1, true},
		{"minus one", []byte{0x7f}, -1, 1, true},
		{"largest one byte", []byte{0x3f}, 63, 1, true},
		{"smallest one byte", []byte{0x40}, -64, 1, true},
		{"64 needs two bytes", []byte{0xc0, 0x00}, 64, 2, true},
		{"-65 needs two bytes", []byte{0xbf, 0x7f}, -65, 2, true},
		{"YieldEvery", []byte{0x80, 0x80, 0x01}, YieldEvery, 3, true},
		{"-123456", []byte{0xc0, 0xbb, 0x78}, -123456, 3, true},
		{"smallest i32", []byte{0x80, 0x80, 0x80, 0x80, 0x78}, math.MinInt32, 5, true},
		{"smallest i64", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}, math.MinInt64, 10, true},
		{"largest i64", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, math.MaxInt64, 10, true},
		{"minus one padded", []byte{0xff, 0x7f}, -1, 2, false},
		{"empty", nil, 0, 0, false},
		{"unterminated", []byte{0xff}, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if v, n := sleb128(tc.in); v != tc.v || n != tc.n {
				t.Errorf("sleb128(%x) = %d, %d; want %d, %d", tc.in, v, n, tc.v, tc.n)
			}
			if got := leb128.AppendSigned(nil, tc.v); tc.minimal && !bytes.Equal(got, tc.in) {
				t.Errorf("leb128.AppendSigned(%d) = %x, want %x", tc.v, got, tc.in)
			}
		})
	}
}

func TestSections(t *testing.T) {
	for _, tc := range []struct {
		name string
		wasm []byte
		want []section
	}{
		{"header only", module(), nil},
		{"empty sections", module(sec(1), sec(0)), []section{{1, []byte{}}, {0, []byte{}}}},
		{"section size padded", module([]byte{0x05, 0x82, 0x80, 0x00, 0x00, 0x01}), []section{{5, []byte{0x00, 0x01}}}},
		{"ids in any order", module(sec(11, u(0)), sec(1, u(0))), []section{{11, []byte{0}}, {1, []byte{0}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sections(tc.wasm)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("sections = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
