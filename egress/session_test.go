package egress

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// echoServer listens on 127.0.0.1 and echoes every connection; it returns its port.
func echoServer(t *testing.T) int { return testkit.StartTCP(t, testkit.Echo).Port }

// noDNS is a resolver that must not be called.
func noDNS(t *testing.T) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, name string) ([]netip.Addr, error) {
		t.Errorf("resolved %q", name)
		return nil, errors.New("no DNS in tests")
	}
}

func code(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestSessionEcho(t *testing.T) {
	port := echoServer(t)
	p, _ := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
	s := NewSession(p, Config{Resolve: noDNS(t)})
	defer s.Close()
	ctx := context.Background()
	h, err := s.Connect(ctx, "127.0.0.1", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := s.Recv(ctx, h, buf, 0); code(err) != CodeAgain {
		t.Fatalf("non-blocking recv with nothing sent: %v, want CodeAgain", err)
	}
	items := []PollItem{{Handle: h, Events: PollIn}}
	if n := s.Poll(ctx, items, 0); n != 0 {
		t.Fatalf("poll before any data: %d ready", n)
	}
	if n, err := s.Send(ctx, h, []byte("hello"), time.Second); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	if n := s.Poll(ctx, items, time.Second); n != 1 || items[0].Ready != PollIn {
		t.Fatalf("poll after data: %d ready, %v", n, items[0])
	}
	n, err := s.Recv(ctx, h, buf[:3], -1)
	if err != nil || string(buf[:n]) != "hel" {
		t.Fatal(n, err)
	}
	n, err = s.Recv(ctx, h, buf, -1)
	if err != nil || string(buf[:n]) != "lo" {
		t.Fatal(n, err)
	}
	if _, err := s.Recv(ctx, h, buf, 50*time.Millisecond); code(err) != CodeTimeout {
		t.Fatalf("recv timeout: %v", err)
	}
	if addr, err := s.Addr(h, 0); err != nil || addr != "127.0.0.1 "+strconv.Itoa(port) {
		t.Fatal(addr, err)
	}
	_ = s.Shutdown(h, 1)
	if n, err := s.Recv(ctx, h, buf, time.Second); n != 0 || err != nil {
		t.Fatalf("after shutdown: %d %v, want the end of the stream", n, err)
	}
	if err := s.CloseConn(h); err != nil || s.Open() != 0 {
		t.Fatal(err, s.Open())
	}
	if _, err := s.Send(ctx, h, []byte("x"), 0); code(err) != CodeBadHandle {
		t.Fatalf("send after close: %v", err)
	}
}

func TestSessionDenials(t *testing.T) {
	port := echoServer(t)
	p, _ := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
	var denied []string
	s := NewSession(p, Config{Resolve: noDNS(t), OnDeny: func(dest, reason string) { denied = append(denied, dest) }})
	defer s.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		host string
		port int
		want string
	}{
		{"127.0.0.1", port + 1, "no outbound entry covers port"},
		{"127.0.0.2", port, "loopback"},
		{"0.0.0.0", port, "this network"},
		{"::1", port, "IPv6 loopback"},
		{"localhost", port, "not granted"}, // a name the grant does not name: not even resolved
		{"169.254.169.254", 80, "link-local"},
	} {
		_, err := s.Connect(ctx, tc.host, tc.port, 0)
		if code(err) != CodeDenied || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not granted") {
			t.Errorf("%s:%d: %v, want denied (%s)", tc.host, tc.port, err, tc.want)
		}
		if s.LastError() != err.Error() {
			t.Errorf("LastError %q", s.LastError())
		}
	}
	if len(denied) != 6 {
		t.Errorf("OnDeny told of %v", denied)
	}
	if _, err := s.Resolve(ctx, "metadata.google.internal"); code(err) != CodeDenied {
		t.Errorf("resolving an ungranted name: %v", err)
	}
	if s.Open() != 0 {
		t.Errorf("%d connections open", s.Open())
	}
}

func TestSessionResolvedNameGoesToCheckedAddress(t *testing.T) {
	port := echoServer(t)
	p, _ := NewPolicy([]string{"tcp://db.example:" + strconv.Itoa(port), "tcp://127.0.0.1:" + strconv.Itoa(port)})
	calls := 0
	s := NewSession(p, Config{Resolve: func(_ context.Context, name string) ([]netip.Addr, error) {
		calls++
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}})
	defer s.Close()
	h, err := s.Connect(context.Background(), "db.example", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("%d lookups for one connection", calls)
	}
	if a, _ := s.Addr(h, 0); !strings.HasPrefix(a, "127.0.0.1 ") {
		t.Errorf("connected to %s", a)
	}
	// Without the literal grant, the name's loopback answer is refused.
	p2, _ := NewPolicy([]string{"tcp://db.example:" + strconv.Itoa(port)})
	s2 := NewSession(p2, Config{Resolve: func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}})
	if _, err := s2.Connect(context.Background(), "db.example", port, 0); code(err) != CodeDenied ||
		!strings.Contains(err.Error(), "loopback") {
		t.Errorf("name resolving to loopback: %v", err)
	}
}

func TestSessionLimits(t *testing.T) {
	port := echoServer(t)
	p, _ := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
	s := NewSession(p, Config{Limits: Limits{MaxOpen: 2, MaxConns: 3, MaxBytesOut: 8}})
	defer s.Close()
	ctx := context.Background()
	h1, _ := s.Connect(ctx, "127.0.0.1", port, 0)
	h2, _ := s.Connect(ctx, "127.0.0.1", port, 0)
	if _, err := s.Connect(ctx, "127.0.0.1", port, 0); code(err) != CodeLimit || !strings.Contains(err.Error(), "max_open") {
		t.Fatalf("third open connection: %v", err)
	}
	_ = s.CloseConn(h2)
	if _, err := s.Connect(ctx, "127.0.0.1", port, 0); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseConn(h1)
	if _, err := s.Connect(ctx, "127.0.0.1", port, 0); code(err) != CodeLimit || !strings.Contains(err.Error(), "max_conns") {
		t.Fatalf("fourth connection of the request: %v", err)
	}
	s.Close()
	s.Begin(nil)
	h, err := s.Connect(ctx, "127.0.0.1", port, 0)
	if err != nil {
		t.Fatalf("the next request starts afresh: %v", err)
	}
	if _, err := s.Send(ctx, h, []byte("123456789"), 0); code(err) != CodeLimit {
		t.Fatalf("sending past max_bytes_out: %v", err)
	}
}

func TestSessionRecvEndsWithTheRequest(t *testing.T) {
	port := echoServer(t)
	p, _ := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
	s := NewSession(p, Config{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	h, err := s.Connect(ctx, "127.0.0.1", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := s.Recv(ctx, h, make([]byte, 4), -1); err == nil {
		t.Fatal("recv with nothing to read returned")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("recv outlived the request's deadline by %v", d)
	}
}

// A handle from one session names nothing in another, such as a restored instance's
// session meeting a socket object that a snapshot captured.
func TestHandlesAreNotShared(t *testing.T) {
	port := echoServer(t)
	p, _ := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port)})
	a, b := NewSession(p, Config{}), NewSession(p, Config{})
	defer a.Close()
	defer b.Close()
	ha, err := a.Connect(context.Background(), "127.0.0.1", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := b.Connect(context.Background(), "127.0.0.1", port, 0)
	if err != nil || hb == ha || ha <= 0 || hb <= 0 {
		t.Fatalf("handles %d and %d (%v)", ha, hb, err)
	}
	if _, err := b.Send(context.Background(), ha, []byte("x"), 0); code(err) != CodeBadHandle {
		t.Fatalf("another session's handle: %v", err)
	}
}

// recvAll reads n bytes from h.
func recvAll(t *testing.T, s *Session, h int32, n int) string {
	t.Helper()
	var got []byte
	buf := make([]byte, n)
	for len(got) < n {
		k, err := s.Recv(context.Background(), h, buf[:n-len(got)], time.Second)
		if err != nil || k == 0 {
			t.Fatalf("recv after %q: %d, %v", got, k, err)
		}
		got = append(got, buf[:k]...)
	}
	return string(got)
}

// The counters of one request: what succeeded, and denials, each counted once.
func TestSessionStats(t *testing.T) {
	port, closed := echoServer(t), testkit.FreePort(t)
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake below
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	tlsPort := tlsSrv.Listener.Addr().(*net.TCPAddr).Port
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())
	p, err := NewPolicy([]string{"tcp://127.0.0.1:" + strconv.Itoa(port), "tcp://db.example:" + strconv.Itoa(port),
		"https://127.0.0.1:" + strconv.Itoa(tlsPort), "tcp://127.0.0.1:" + strconv.Itoa(closed)})
	if err != nil {
		t.Fatal(err)
	}
	lookups := 0
	s := NewSession(p, Config{RootCAs: func() *x509.CertPool { return roots },
		Resolve: func(_ context.Context, name string) ([]netip.Addr, error) {
			lookups++
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}})
	defer s.Close()
	ctx := context.Background()
	s.Begin(nil)

	if _, err := s.Resolve(ctx, "db.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "127.0.0.1"); err != nil { // an address: nothing to look up
		t.Fatal(err)
	}
	h1, err := s.Connect(ctx, "db.example", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := s.Connect(ctx, "127.0.0.1", port, 0)
	if err != nil {
		t.Fatal(err)
	}
	for h, msg := range map[int32]string{h1: "hello", h2: "abc"} {
		if n, err := s.Send(ctx, h, []byte(msg), time.Second); n != len(msg) || err != nil {
			t.Fatal(n, err)
		}
		if got := recvAll(t, s, h, len(msg)); got != msg {
			t.Fatalf("echo %q, want %q", got, msg)
		}
	}
	if _, err := s.Connect(ctx, "127.0.0.2", port, 0); code(err) != CodeDenied {
		t.Fatalf("127.0.0.2: %v", err)
	}
	if _, err := s.Resolve(ctx, "metadata.google.internal"); code(err) != CodeDenied {
		t.Fatalf("an ungranted name: %v", err)
	}
	// A refused connection is no connection.
	if _, err := s.Connect(ctx, "127.0.0.1", closed, 0); code(err) != CodeRefused {
		t.Fatalf("a port nothing listens on: %v", err)
	}
	ht, err := s.Connect(ctx, "127.0.0.1", tlsPort, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StartTLS(ctx, ht, TLS{ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}

	st := s.End()
	if st.Conns != 3 || st.BytesOut != 8 || st.BytesIn != 8 || st.Lookups != 2 || st.TLSHandshakes != 1 || st.Denied != 2 {
		t.Errorf("stats %+v, want 3 connections, 8 bytes each way, 2 lookups, 1 handshake, 2 denials", st)
	}
	if lookups != 2 {
		t.Errorf("the resolver was called %d times, the stats say %d", lookups, st.Lookups)
	}
	if len(st.ConnectTimes) != 3 {
		t.Errorf("%d connect times, want one per connection", len(st.ConnectTimes))
	}
	for i, d := range st.ConnectTimes {
		if d <= 0 {
			t.Errorf("connect time %d is %v", i, d)
		}
	}

	// A failed handshake is not counted.
	s2 := NewSession(p, Config{})
	defer s2.Close()
	s2.Begin(nil)
	h, err := s2.Connect(ctx, "127.0.0.1", tlsPort, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.StartTLS(ctx, h, TLS{}); err == nil {
		t.Fatal("a handshake with an untrusted certificate succeeded")
	}
	if st := s2.End(); st.Conns != 1 || st.TLSHandshakes != 0 {
		t.Errorf("after a failed handshake: %+v", st)
	}

	// The next request counts afresh; a connection it kept is counted where it is used.
	s.Begin(nil)
	if n, err := s.Send(ctx, h2, []byte("again"), time.Second); n != 5 || err != nil {
		t.Fatal(n, err)
	}
	recvAll(t, s, h2, 5)
	if st := s.End(); st.Conns != 0 || st.BytesOut != 5 || st.BytesIn != 5 || st.Lookups != 0 || st.Denied != 0 ||
		st.ConnectTimes != nil {
		t.Errorf("second request: %+v, want only its 5 bytes each way", st)
	}
}
