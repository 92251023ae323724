// Package leb128 appends numbers in the LEB128 encoding WebAssembly's binary format
// uses, for the code that writes modules (runtime's instrumentation, the engine
// differential tests).
package leb128

import "encoding/binary"

// AppendUnsigned appends v as an unsigned LEB128 number (the same bytes as
// binary.AppendUvarint).
func AppendUnsigned(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// AppendSigned appends v as a signed LEB128 number.
func AppendSigned(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
