package leb128

import (
	"bytes"
	"testing"
)

// TestAppend checks the encodings against examples of the WebAssembly specification's
// and DWARF's LEB128.
func TestAppend(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want []byte
	}{{0, []byte{0}}, {127, []byte{0x7f}}, {128, []byte{0x80, 0x01}}, {624485, []byte{0xe5, 0x8e, 0x26}}} {
		if got := AppendUnsigned(nil, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("AppendUnsigned(%d) = % x, want % x", tc.v, got, tc.want)
		}
	}
	for _, tc := range []struct {
		v    int64
		want []byte
	}{{0, []byte{0}}, {-1, []byte{0x7f}}, {63, []byte{0x3f}}, {64, []byte{0xc0, 0x00}}, {-64, []byte{0x40}},
		{-65, []byte{0xbf, 0x7f}}, {-123456, []byte{0xc0, 0xbb, 0x78}}} {
		if got := AppendSigned(nil, tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("AppendSigned(%d) = % x, want % x", tc.v, got, tc.want)
		}
	}
}
