package hostfuncs

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// netExchange is a fake exchange whose guest has a session.
type netExchange struct {
	*fakeExchange
	s *egress.Session
}

func (n netExchange) Sockets() *egress.Session { return n.s }

// The net_* functions through call(), as the guest reaches them: resolve, connect,
// send, poll, recv, addr, close; and denials with their message.
func TestNetFunctions(t *testing.T) {
	port := testkit.StartTCP(t, testkit.Echo).Port
	p, _ := egress.NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
	var denied []string
	s := egress.NewSession(p, egress.Config{OnDeny: func(dest, reason string) { denied = append(denied, dest) }})
	defer s.Close()
	mem := newMemory(t)
	ex := netExchange{newFake(), s}
	ctx := WithExchange(context.Background(), ex)
	run := func(name string, args ...uint32) int32 { return call(ctx, mem, byName(t, name), args) }
	put := func(at uint32, b string) uint32 { mem.Write(at, []byte(b)); return uint32(len(b)) }

	n := put(0, "127.0.0.1")
	if got := run("net_resolve", 0, n, 1000, 100); got != 10 {
		t.Fatalf("net_resolve: %d", got)
	}
	if b, _ := mem.Read(1000, 10); string(b) != "127.0.0.1\n" {
		t.Fatalf("net_resolve wrote %q", b)
	}
	h := run("net_connect", 0, n, uint32(port), 1000)
	if h <= 0 {
		t.Fatalf("net_connect: %d", h)
	}
	m := put(100, "ping")
	if got := run("net_send", uint32(h), 100, m, 1000); got != 4 {
		t.Fatalf("net_send: %d", got)
	}
	var list [8]byte
	binary.LittleEndian.PutUint32(list[:], uint32(h))
	binary.LittleEndian.PutUint32(list[4:], egress.PollIn)
	mem.Write(200, list[:])
	if got := run("net_poll", 200, 8, 1000); got != 1 {
		t.Fatalf("net_poll: %d", got)
	}
	if b, _ := mem.Read(204, 4); binary.LittleEndian.Uint32(b) != egress.PollIn {
		t.Fatalf("net_poll events %v", b)
	}
	if got := run("net_recv", uint32(h), 300, 16, 1000); got != 4 {
		t.Fatalf("net_recv: %d", got)
	}
	if b, _ := mem.Read(300, 4); string(b) != "ping" {
		t.Fatalf("net_recv read %q", b)
	}
	if got := run("net_recv", uint32(h), 300, 16, 0); got != ErrAgain {
		t.Fatalf("non-blocking net_recv with nothing to read: %d", got)
	}
	if got := run("net_addr", uint32(h), 0, 400, 64); got <= 0 {
		t.Fatalf("net_addr: %d", got)
	} else if b, _ := mem.Read(400, uint32(got)); string(b) != "127.0.0.1 "+strconv.Itoa(port) {
		t.Fatalf("net_addr wrote %q", b)
	}
	if got := run("net_close", uint32(h)); got != 0 {
		t.Fatalf("net_close: %d", got)
	}
	if got := run("net_send", uint32(h), 100, m, 1000); got != ErrBadHandle {
		t.Fatalf("net_send after close: %d", got)
	}

	n = put(0, "127.0.0.2")
	if got := run("net_connect", 0, n, uint32(port), 1000); got != ErrDenied {
		t.Fatalf("net_connect to 127.0.0.2: %d", got)
	}
	got := run("net_error", 500, 1000)
	msg, _ := mem.Read(500, uint32(got))
	if !strings.Contains(string(msg), "127.0.0.2:"+strconv.Itoa(port)+" is not granted to this app") {
		t.Fatalf("net_error: %q", msg)
	}
	if len(denied) != 1 {
		t.Fatalf("denials reported: %v", denied)
	}
	// An exchange without a session grants nothing.
	plain := WithExchange(context.Background(), newFake())
	n = put(0, "127.0.0.1")
	if got := call(plain, mem, byName(t, "net_connect"), []uint32{0, n, uint32(port), 1000}); got != ErrDenied {
		t.Fatalf("net_connect without a session: %d", got)
	}
}
