package wasmbin

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// dataModule is a module with one page of memory, exported, and the given data count
// (nil for none) and data sections (nil for none), with a custom section around them.
func dataModule(dataCount, data []byte) []byte {
	secs := [][]byte{
		sec(0, name("before"), []byte("kept as it is")),
		sec(5, vec([]byte{0x00, 0x01})),
		sec(7, vec(export("memory", 2, 0))),
	}
	if dataCount != nil {
		secs = append(secs, sec(12, dataCount))
	}
	if data != nil {
		secs = append(secs, sec(11, data))
	}
	return module(append(secs, sec(0, name("after"), []byte("kept too")))...)
}

func TestSplitDataSegments(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dataCount []byte // nil: no data count section
		data      []byte
		want      []DataSegment
		// decodeOnly rows hold segments that do not fit in the test module's memory.
		decodeOnly bool
	}{
		{
			name: "several active segments",
			data: vec(activeData(1024, "first"), activeData(70000-65536, "second"), activeData(16, "third")),
			want: []DataSegment{{1024, []byte("first")}, {70000 - 65536, []byte("second")}, {16, []byte("third")}},
		},
		{
			name:      "several active segments and a data count section",
			dataCount: u(2),
			data:      vec(activeData(8, "a"), activeData(9, "b")),
			want:      []DataSegment{{8, []byte("a")}, {9, []byte("b")}},
		},
		{
			name: "a segment at offset 0",
			data: vec(activeData(0, "at zero")),
			want: []DataSegment{{0, []byte("at zero")}},
		},
		{
			name: "an empty segment",
			data: vec(activeData(100, "")),
			want: []DataSegment{{100, []byte{}}},
		},
		{
			name: "an empty data section",
			data: vec(),
			want: []DataSegment{},
		},
		{
			name:      "an empty data section and a data count of 0",
			dataCount: u(0),
			data:      vec(),
			want:      []DataSegment{},
		},
		{
			name: "offset and size as padded LEB128",
			data: vec(cat([]byte{0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b, 0x83, 0x80, 0x00}, []byte("pad"))),
			want: []DataSegment{{0, []byte("pad")}},
		},
		{
			name:       "a negative i32.const is an offset near 4 GiB",
			data:       vec(activeData(-1, ""), activeData(-65536, "x")),
			want:       []DataSegment{{0xffffffff, []byte{}}, {0xffff0000, []byte("x")}},
			decodeOnly: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := dataModule(tc.dataCount, tc.data)
			stripped, segs, err := SplitDataSegments(in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(segs, tc.want) {
				t.Errorf("segments %v, want %v", segs, tc.want)
			}
			var wantCount []byte
			if tc.dataCount != nil {
				wantCount = u(0)
			}
			if want := dataModule(wantCount, vec()); !bytes.Equal(stripped, want) {
				t.Errorf("module without its data\n%x\nwant\n%x", stripped, want)
			}
			clear(in)
			if !reflect.DeepEqual(segs, tc.want) {
				t.Error("the segments changed with the module's bytes: they are not copies")
			}
			if tc.decodeOnly {
				return
			}
			// The stripped module instantiates to zeroed memory; with the segments
			// written it equals the original module's memory.
			want := memoryOf(t, dataModule(tc.dataCount, tc.data), nil)
			if got := memoryOf(t, stripped, nil); bytes.Count(got, []byte{0}) != len(got) {
				t.Error("the stripped module still writes data at instantiation")
			}
			if got := memoryOf(t, stripped, segs); !bytes.Equal(got, want) {
				t.Error("the stripped module's memory with the segments written differs from the original's")
			}
		})
	}
}

// memoryOf instantiates wasm, writes segs into its memory and returns a copy of it.
func memoryOf(t *testing.T, wasm []byte, segs []DataSegment) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatalf("wazero refuses the module: %v", err)
	}
	for _, s := range segs {
		if !mod.Memory().Write(s.Offset, s.Bytes) {
			t.Fatalf("segment at %d does not fit", s.Offset)
		}
	}
	b, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(b)
}

func TestSplitDataSegmentsRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, wantErr string
		wasm          []byte
	}{
		{"no data section", "module has no data section", dataModule(nil, nil)},
		{"no data section, a data count section", "module has no data section", dataModule(u(0), nil)},
		{"a passive segment", "data segment 0: kind 1 is not supported",
			dataModule(u(1), vec(cat([]byte{0x01}, name("passive"))))},
		{"an active segment of memory 1", "data segment 1: kind 2 is not supported",
			dataModule(nil, vec(activeData(0, "ok"), cat([]byte{0x02, 0x01, 0x41, 0x00, 0x0b}, name("x"))))},
		{"an offset from a global", "data segment 0: offset is not an i32.const",
			dataModule(nil, vec(cat([]byte{0x00, 0x23, 0x00, 0x0b}, name("x"))))},
		{"an offset expression of two instructions", "data segment 0: offset expression does not end",
			dataModule(nil, vec(cat([]byte{0x00, 0x41, 0x00, 0x41, 0x00, 0x6a, 0x0b}, name("x"))))},
		{"an offset LEB128 longer than ten bytes", "data segment 0: bad offset",
			dataModule(nil, vec(cat([]byte{0x00, 0x41}, bytes.Repeat([]byte{0x80}, 11), []byte{0x00, 0x0b}, name("x"))))},
		{"a segment past the section's end", "data segment 0: malformed",
			dataModule(nil, cat(u(1), []byte{0x00, 0x41, 0x00, 0x0b, 0x09}, []byte("short")))},
		{"a count above the segments", "data segment 1",
			dataModule(nil, cat(u(2), activeData(0, "one")))},
		{"a count of 2^32-1 in a short section", "malformed data section",
			dataModule(nil, []byte{0xff, 0xff, 0xff, 0xff, 0x0f})},
		{"bytes after the last segment", "malformed data section",
			dataModule(nil, cat(vec(activeData(0, "one")), []byte{0x00}))},
		{"not a module", "not a wasm module", []byte("\x00asm")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := SplitDataSegments(tc.wasm)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
