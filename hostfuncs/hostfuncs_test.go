package hostfuncs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// memoryModule is a wasm module that exports one page of memory and nothing else:
//
//	(module (memory (export "memory") 1))
var memoryModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
	0x05, 0x03, 0x01, 0x00, 0x01, // memory section: one memory, min 1 page
	0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00, // export "memory"
}

const pageSize = 65536

func newMemory(t testing.TB) api.Memory {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	t.Cleanup(func() { r.Close(ctx) })
	mod, err := r.Instantiate(ctx, memoryModule)
	if err != nil {
		t.Fatal(err)
	}
	return mod.Memory()
}

// fakeExchange records what the host functions hand it.
type fakeExchange struct {
	info, env []byte
	input     io.Reader
	status    *Status
	headers   []Pair
	body      bytes.Buffer
	limit     int // body bytes accepted in total, -1 for no limit
	logs      []string
	faults    []string
}

func (f *fakeExchange) AppInfo() []byte { return f.info }
func (f *fakeExchange) Environ() []byte { return f.env }
func (f *fakeExchange) ReadInput(p []byte) (int, error) {
	if f.input == nil {
		return 0, io.EOF
	}
	return f.input.Read(p)
}
func (f *fakeExchange) StartResponse(s Status, h []Pair) error {
	if f.status != nil {
		return ErrOutOfOrder
	}
	f.status, f.headers = &s, h
	return nil
}
func (f *fakeExchange) WriteBody(p []byte) (int, error) {
	if f.status == nil {
		return 0, ErrOutOfOrder
	}
	if f.limit >= 0 && f.body.Len()+len(p) > f.limit {
		p = p[:f.limit-f.body.Len()]
	}
	return f.body.Write(p)
}
func (f *fakeExchange) Log(l Level, msg []byte)  { f.logs = append(f.logs, string(msg)) }
func (f *fakeExchange) Fault(fn string, e error) { f.faults = append(f.faults, fn+": "+e.Error()) }

func newFake() *fakeExchange {
	return &fakeExchange{
		info:  AppendPairs(nil, []Pair{{"name", "demo"}}),
		env:   AppendPairs(nil, []Pair{{"REQUEST_METHOD", "GET"}, {"PATH_INFO", "/caf\xc3\xa9"}}),
		limit: -1,
	}
}

func byName(t testing.TB, name string) function {
	for _, f := range functions {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no host function %q", name)
	return function{}
}

func invoke(t testing.TB, mem api.Memory, ex Exchange, name string, args ...uint32) int32 {
	ctx := context.Background()
	if ex != nil {
		ctx = WithExchange(ctx, ex)
	}
	return call(ctx, mem, byName(t, name), args)
}

func TestSizedValues(t *testing.T) {
	mem := newMemory(t)
	ex := newFake()
	for _, fn := range []string{"app_info", "environ_get"} {
		want := ex.info
		if fn == "environ_get" {
			want = ex.env
		}
		// Too small: nothing written, real length returned.
		mem.Write(100, bytes.Repeat([]byte{0xAA}, len(want)))
		if got := invoke(t, mem, ex, fn, 100, 3); got != int32(len(want)) {
			t.Fatalf("%s with small buffer = %d, want %d", fn, got, len(want))
		}
		if b, _ := mem.Read(100, 3); !bytes.Equal(b, []byte{0xAA, 0xAA, 0xAA}) {
			t.Fatalf("%s wrote into a buffer that was too small", fn)
		}
		// Fits: written.
		if got := invoke(t, mem, ex, fn, 100, 4096); got != int32(len(want)) {
			t.Fatalf("%s = %d, want %d", fn, got, len(want))
		}
		if b, _ := mem.Read(100, uint32(len(want))); !bytes.Equal(b, want) {
			t.Fatalf("%s wrote %q, want %q", fn, b, want)
		}
		// Buffer that runs past the end of memory.
		if got := invoke(t, mem, ex, fn, pageSize-2, 4096); got != ErrBounds {
			t.Fatalf("%s past memory end = %d, want ErrBounds", fn, got)
		}
	}
}

func TestBoundsAndNegativeLengths(t *testing.T) {
	mem := newMemory(t)
	cases := []struct {
		fn   string
		args []uint32
	}{
		{"input_read", []uint32{pageSize, 1}},
		{"input_read", []uint32{0, 0x80000000}},
		{"body_write", []uint32{pageSize - 1, 2}},
		{"body_write", []uint32{0xFFFFFFFF, 0xFFFFFFFF}},
		{"start_response", []uint32{0, 6, pageSize, 1}},
		{"start_response", []uint32{0xFFFFFFF0, 0x20, 0, 0}},
		{"log_write", []uint32{3, 0, pageSize + 1}},
		{"app_info", []uint32{0, 0xFFFFFFFF}},
		{"environ_get", []uint32{pageSize, 0x7FFFFFFF}},
	}
	for _, c := range cases {
		ex := newFake()
		ex.status = &Status{Code: 200}
		if got := invoke(t, mem, ex, c.fn, c.args...); got != ErrBounds {
			t.Errorf("%s%v = %d, want ErrBounds (%d)", c.fn, c.args, got, ErrBounds)
		}
	}
}

func TestNoExchange(t *testing.T) {
	mem := newMemory(t)
	for _, f := range functions {
		args := make([]uint32, len(f.params))
		if got := invoke(t, mem, nil, f.name, args...); got != ErrNoRequest {
			t.Errorf("%s without exchange = %d, want ErrNoRequest", f.name, got)
		}
	}
	// During init there is an exchange but no request: only app_info and log_write work.
	ex := newFake()
	ex.env = nil
	for _, name := range []string{"environ_get", "input_read", "start_response", "body_write"} {
		args := make([]uint32, len(byName(t, name).params))
		if got := invoke(t, mem, ex, name, args...); got != ErrNoRequest {
			t.Errorf("%s outside a request = %d, want ErrNoRequest", name, got)
		}
	}
}

func TestResponseFlow(t *testing.T) {
	mem := newMemory(t)
	ex := newFake()
	ex.limit = 5
	status := []byte("201 Created")
	headers := AppendPairs(nil, []Pair{{"Content-Type", "text/plain"}, {"X-Caf\xe9", "ok"}})
	mem.Write(0, status)
	mem.Write(100, headers)
	mem.Write(1000, []byte("body!"))

	if got := invoke(t, mem, ex, "body_write", 1000, 5); got != ErrState {
		t.Fatalf("body_write before start_response = %d, want ErrState", got)
	}
	// The header name with 0xe9 is not a token: rejected, nothing sent.
	if got := invoke(t, mem, ex, "start_response", 0, uint32(len(status)), 100, uint32(len(headers))); got != ErrInvalid {
		t.Fatalf("start_response with non-token name = %d, want ErrInvalid", got)
	}
	if ex.status != nil || len(ex.faults) != 2 {
		t.Fatalf("rejected start_response reached the exchange (%v) or was not reported (%v)", ex.status, ex.faults)
	}
	headers = AppendPairs(nil, []Pair{{"Content-Type", "text/plain"}, {"X-Name", "caf\xe9"}})
	mem.Write(100, headers)
	if got := invoke(t, mem, ex, "start_response", 0, uint32(len(status)), 100, uint32(len(headers))); got != 0 {
		t.Fatalf("start_response = %d, want 0 (faults %v)", got, ex.faults)
	}
	if ex.status.Code != 201 || ex.status.Reason != "Created" || ex.headers[1].Value != "caf\xe9" {
		t.Fatalf("got status %+v headers %+v", ex.status, ex.headers)
	}
	if got := invoke(t, mem, ex, "start_response", 0, uint32(len(status)), 100, uint32(len(headers))); got != ErrState {
		t.Fatalf("second start_response = %d, want ErrState", got)
	}
	if got := invoke(t, mem, ex, "body_write", 1000, 3); got != 3 {
		t.Fatalf("body_write = %d, want 3", got)
	}
	// The exchange accepts only 2 more bytes: the short count reaches the guest.
	if got := invoke(t, mem, ex, "body_write", 1000, 5); got != 2 {
		t.Fatalf("body_write past the limit = %d, want 2", got)
	}
	if ex.body.String() != "bodbo" {
		t.Fatalf("body = %q", ex.body.String())
	}
}

func TestInputRead(t *testing.T) {
	mem := newMemory(t)
	ex := newFake()
	ex.input = strings.NewReader("hello world")
	if got := invoke(t, mem, ex, "input_read", 10, 5); got != 5 {
		t.Fatalf("input_read = %d, want 5", got)
	}
	if got := invoke(t, mem, ex, "input_read", 15, 100); got != 6 {
		t.Fatalf("input_read = %d, want 6", got)
	}
	if got := invoke(t, mem, ex, "input_read", 15, 100); got != 0 {
		t.Fatalf("input_read at EOF = %d, want 0", got)
	}
	if b, _ := mem.Read(10, 11); string(b) != "hello world" {
		t.Fatalf("memory holds %q", b)
	}
	ex.input = errReader{}
	if got := invoke(t, mem, ex, "input_read", 10, 5); got != ErrIO {
		t.Fatalf("input_read on a failing body = %d, want ErrIO", got)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestParseStatus(t *testing.T) {
	good := map[string]Status{
		"200 OK":               {200, "OK"},
		"404 Not Found":        {404, "Not Found"},
		"299 ":                 {299, ""},
		"500 Caf\xe9 \t broke": {500, "Caf\xe9 \t broke"},
	}
	for in, want := range good {
		got, err := ParseStatus([]byte(in))
		if err != nil || got != want {
			t.Errorf("ParseStatus(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "200", "200OK", "20x OK", "099 Low", "200 OK\r\nX: y", "200 O\nK", "200 \x00", "200 \x7f", " 200 OK"} {
		if _, err := ParseStatus([]byte(in)); err == nil {
			t.Errorf("ParseStatus(%q) accepted a bad status", in)
		}
	}
}

func TestCheckHeader(t *testing.T) {
	bad := [][2]string{
		{"", "x"}, {"X Y", "x"}, {"X:Y", "x"}, {"X\r\nY", "x"}, {"Set-Cookie", "a\r\nb"},
		{"X", "a\nb"}, {"X", "a\x00"}, {"Connection", "close"}, {"transfer-encoding", "chunked"},
		{"Keep-Alive", "5"}, {"Upgrade", "h2c"}, {"TE", "trailers"}, {"Trailer", "X"},
		{"Proxy-Authenticate", "Basic"},
	}
	for _, h := range bad {
		if err := CheckHeader(h[0], h[1]); err == nil {
			t.Errorf("CheckHeader(%q, %q) accepted", h[0], h[1])
		}
	}
	for _, h := range [][2]string{{"Content-Type", "text/html; charset=utf-8"}, {"X-Empty", ""}, {"X-Tab", "a\tb"}, {"X-Latin", "caf\xe9"}} {
		if err := CheckHeader(h[0], h[1]); err != nil {
			t.Errorf("CheckHeader(%q, %q) = %v", h[0], h[1], err)
		}
	}
}

func TestPairsRoundTrip(t *testing.T) {
	in := []Pair{{"A", "1"}, {"", ""}, {"PATH_INFO", "/caf\xc3\xa9\x00"}}
	out, err := DecodePairs(AppendPairs(nil, in), 10)
	if err != nil || len(out) != len(in) {
		t.Fatalf("round trip: %v %v", out, err)
	}
	for i := range in {
		if in[i] != out[i] {
			t.Fatalf("pair %d: %+v != %+v", i, in[i], out[i])
		}
	}
	enc := AppendPairs(nil, in)
	for cut := 1; cut < len(enc); cut++ {
		// Only a cut on a pair boundary decodes, and then it re-encodes to itself.
		if ps, err := DecodePairs(enc[:cut], 10); err == nil && !bytes.Equal(AppendPairs(nil, ps), enc[:cut]) {
			t.Fatalf("truncation at %d decoded inconsistently", cut)
		}
	}
	if _, err := DecodePairs(AppendPairs(nil, in), 2); err == nil {
		t.Fatal("DecodePairs ignored its limit")
	}
}

func TestDeadlineStopsTheGuest(t *testing.T) {
	mem := newMemory(t)
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	defer func() {
		exit, ok := recover().(*sys.ExitError)
		if !ok || exit.ExitCode() != sys.ExitCodeDeadlineExceeded {
			t.Fatalf("a call past the deadline did not end the guest: %v", exit)
		}
	}()
	call(WithExchange(ctx, newFake()), mem, byName(t, "body_write"), []uint32{0, 1})
	t.Fatal("a call past the deadline returned")
}
