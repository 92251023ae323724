package hostfuncs

import (
	"context"
	"strings"
	"testing"
)

// FuzzHostCall calls every host function with arbitrary arguments against a one-page
// memory filled with arbitrary bytes. The host must never panic; every result is a
// length that fits what was asked or one of the documented error codes.
func FuzzHostCall(f *testing.F) {
	f.Add(uint8(3), uint32(0), uint32(6), uint32(100), uint32(40), []byte("200 OK"))
	f.Add(uint8(4), uint32(65535), uint32(2), uint32(0), uint32(0), []byte{})
	f.Add(uint8(0), uint32(0), uint32(0xFFFFFFFF), uint32(0), uint32(0), []byte{1})
	f.Add(uint8(2), uint32(65530), uint32(10), uint32(0), uint32(0), []byte("xyz"))
	f.Add(uint8(5), uint32(7), uint32(0), uint32(10), uint32(0), []byte("log"))
	mem := newMemory(f)
	f.Fuzz(func(t *testing.T, index uint8, a, b, c, d uint32, content []byte) {
		fn := functions[int(index)%len(functions)]
		mem.Write(0, content[:min(len(content), pageSize)])
		ex := newFake()
		ex.input = &repeatReader{}
		if index&0x80 != 0 {
			ex.status = &Status{Code: 200} // exercise body_write after headers
		}
		args := []uint32{a, b, c, d, a ^ d, b ^ c, a + d, b + c}[:len(fn.params)]
		got := call(WithExchange(context.Background(), ex), mem, fn, args)
		if got < ErrBadHandle {
			t.Fatalf("%s%v returned undocumented code %d", fn.name, args, got)
		}
	})
}

// FuzzParseHeaders checks that whatever ParseHeaders accepts could not split a header
// or a status line on the wire.
func FuzzParseHeaders(f *testing.F) {
	f.Add(AppendPairs(nil, []Pair{{"Content-Type", "text/plain"}}), []byte("200 OK"))
	f.Add(AppendPairs(nil, []Pair{{"X", "a\r\nInjected: 1"}}), []byte("200 OK\r\n"))
	f.Fuzz(func(t *testing.T, headers, status []byte) {
		if s, err := ParseStatus(status); err == nil {
			for _, c := range []byte(s.Reason) {
				if c == '\r' || c == '\n' || c == 0 {
					t.Fatalf("status %q accepted with control byte", status)
				}
			}
		}
		hs, err := ParseHeaders(headers)
		if err != nil {
			return
		}
		for _, h := range hs {
			for _, s := range []string{h.Name, h.Value} {
				for i := 0; i < len(s); i++ {
					if s[i] == '\r' || s[i] == '\n' || s[i] == 0 {
						t.Fatalf("header %q: %q accepted with control byte", h.Name, h.Value)
					}
				}
			}
			if len(h.Name) == 0 || hopByHop[strings.ToLower(h.Name)] {
				t.Fatalf("header name %q accepted", h.Name)
			}
		}
	})
}

// repeatReader is an endless request body.
type repeatReader struct{}

func (*repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}
