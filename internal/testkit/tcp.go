package testkit

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TCPServer is a server on 127.0.0.1, on a port of its own, that the apps of a test
// connect to. It counts its open connections, so a test can see that the host closed
// every connection an app opened.
type TCPServer struct {
	// Port is the port it listens on.
	Port int

	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// ListenTCP starts a server on 127.0.0.1 that runs serve on each connection and
// closes the connection when serve returns. Close stops it.
func ListenTCP(serve func(net.Conn)) (*TCPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &TCPServer{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				serve(c)
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	return s, nil
}

// StartTCP is ListenTCP for a test, stopped at its end.
func StartTCP(t testing.TB, serve func(net.Conn)) *TCPServer {
	t.Helper()
	s, err := ListenTCP(serve)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Open returns how many connections are open: accepted, and not yet closed by the
// peer (for Echo and Sink) or failed (for Stream).
func (s *TCPServer) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops listening, closes every connection and waits for the handlers.
func (s *TCPServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// FreePort returns a port of 127.0.0.1 that nothing listens on (just now).
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Echo sends back what it receives, until the peer closes.
func Echo(c net.Conn) { _, _ = io.Copy(c, c) }

// Sink reads and drops what it receives and never answers, until the peer closes.
func Sink(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// Stream sends zeros without end, until the peer closes.
func Stream(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// HostileNetGrants returns the operator configuration that grants the hostile tenant
// of cmd/wasmwsgi/testdata/hostile-apps the echo, sink and stream servers (with byte
// caps) and the netvictim tenant the echo server, and the replacer that puts their
// ports into the attacks' paths ({echo}, {sink}, {stream}). The hostile suite and the
// soak both run those tenants.
func HostileNetGrants(echo, sink, stream *TCPServer) (string, *strings.Replacer) {
	conf := fmt.Sprintf(`
[apps.hostile]
outbound = ["tcp://127.0.0.1:%[1]d", "tcp://127.0.0.1:%[2]d", "tcp://127.0.0.1:%[3]d"]
[apps.hostile.outbound_limits]
max_bytes_in = "4MiB"
max_bytes_out = "4MiB"
[apps.netvictim]
outbound = ["tcp://127.0.0.1:%[1]d"]
`, echo.Port, sink.Port, stream.Port)
	ports := strings.NewReplacer("{echo}", strconv.Itoa(echo.Port), "{sink}", strconv.Itoa(sink.Port),
		"{stream}", strconv.Itoa(stream.Port))
	return conf, ports
}
