package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound the outbound connections of one request.
type Limits struct {
	// MaxOpen is how many connections may be open at once. Default 6.
	MaxOpen int
	// MaxConns is how many connections one request may open. Default 50.
	MaxConns int
	// MaxBytesIn and MaxBytesOut bound the bytes one request receives and sends over
	// all its connections; 0 is no bound.
	MaxBytesIn, MaxBytesOut int64
	// ConnectTimeout bounds name resolution plus the TCP connect (and a TLS
	// handshake). Default 5s.
	ConnectTimeout time.Duration
}

// Default limits.
const (
	DefaultMaxOpen        = 6
	DefaultMaxConns       = 50
	DefaultConnectTimeout = 5 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxOpen <= 0 {
		l.MaxOpen = DefaultMaxOpen
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = DefaultConnectTimeout
	}
	return l
}

// Code classifies a failed call for the guest.
type Code int

// Codes of Error.
const (
	CodeDenied    Code = iota + 1 // the policy refused the destination
	CodeLimit                     // a limit was reached
	CodeTimeout                   // the call's own timeout passed
	CodeAgain                     // nothing to read yet (a non-blocking call)
	CodeRefused                   // the destination refused the connection
	CodeNotFound                  // the name does not resolve
	CodeReset                     // the connection was reset or is closed
	CodeBadHandle                 // no such connection
	CodeIO                        // anything else (unreachable, TLS failure, deadline)
)

// Error is a failed call: its code and a message for the guest.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func fail(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Config is what a Session needs besides its policy.
type Config struct {
	Limits Limits
	// RootCAs returns the roots that verify TLS servers, called at the first
	// handshake (loading them costs milliseconds); nil, or a nil result, is the
	// system's roots.
	RootCAs func() *x509.CertPool
	// Resolve looks a name up; nil is net.DefaultResolver.
	Resolve func(ctx context.Context, name string) ([]netip.Addr, error)
	// OnDeny is told of every destination the policy refused, with the reason.
	OnDeny func(dest, reason string)
}

// LoadRoots returns the system's roots plus the PEM certificates of caFile ("" for
// none).
func LoadRoots(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("outbound.ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("outbound.ca_file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// systemBundles are where Linux distributions keep the system's roots as one PEM file,
// as crypto/x509 looks for them; SSL_CERT_FILE, when set, comes first.
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",                // Debian, Ubuntu, Alpine
	"/etc/pki/tls/certs/ca-bundle.crt",                  // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",                            // openSUSE
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", // CentOS, RHEL 7
	"/etc/ssl/cert.pem",                                 // Alpine, BSDs
}

// RootsPEM returns the system's roots and then the certificates of caFile ("" for
// none) as one PEM bundle: what LoadRoots trusts, for a guest that reads a CA bundle
// file before it connects.
func RootsPEM(caFile string) ([]byte, error) {
	var out []byte
	for _, f := range append([]string{os.Getenv("SSL_CERT_FILE")}, systemBundles...) {
		if f == "" {
			continue
		}
		if b, err := os.ReadFile(f); err == nil {
			out = append(out, b...)
			break
		}
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return out, fmt.Errorf("outbound.ca_file: %w", err)
		}
		if len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, '\n')
		}
		out = append(out, b...)
	}
	return out, nil
}

// lastHandle numbers connections across every session of the process, from a random
// base: a handle a guest kept from another session (one captured in a snapshot, say,
// even a snapshot cached by an earlier process) names nothing in this one.
var lastHandle atomic.Int32

func init() { lastHandle.Store(1<<20 + rand.Int32N(1<<28)) }

// newHandle returns a handle no session of the process has used: positive, as the
// ABI requires, wrapping far from zero.
func newHandle() int32 {
	for {
		h := lastHandle.Add(1)
		if h > 0 {
			return h
		}
		lastHandle.CompareAndSwap(h, 1<<20)
	}
}

// Stats counts what one request did through its session, from Begin to End.
type Stats struct {
	// Conns is how many connections were opened.
	Conns int64
	// BytesOut and BytesIn are the bytes the guest sent and received over all its
	// connections (after TLS: the plaintext).
	BytesOut, BytesIn int64
	// Lookups is how many names the host looked up (the guest's getaddrinfo, and
	// connections to a name).
	Lookups int64
	// TLSHandshakes is how many TLS handshakes completed.
	TLSHandshakes int64
	// Denied is how many destinations and names the policy refused.
	Denied int64
	// ConnectTimes holds each opened connection's TCP connect time, in order.
	ConnectTimes []time.Duration
}

// Session holds the outbound connections of one guest instance: the guest names them
// by small integer handles. Requests call Begin and End; connections are closed by
// End (request isolation) or by Close (when the instance is dropped).
type Session struct {
	policy *Policy
	cfg    Config

	mu       sync.Mutex
	conns    map[int32]*conn
	stats    Stats                 // the current request's
	resolved map[netip.Addr]string // addresses the host answered this request, by name
	lastErr  string
	notify   chan struct{} // a connection became readable
	onDeny   func(dest, reason string)
}

// NewSession returns a session under policy (nil: nothing is granted).
func NewSession(policy *Policy, cfg Config) *Session {
	if policy == nil {
		policy = &Policy{}
	}
	cfg.Limits = cfg.Limits.withDefaults()
	return &Session{policy: policy, cfg: cfg, conns: map[int32]*conn{}, resolved: map[netip.Addr]string{},
		notify: make(chan struct{}, 1)}
}

// Begin starts a request's accounting (its Stats, which the limits apply to); onDeny,
// when not nil, is told of the request's denials instead of Config.OnDeny.
func (s *Session) Begin(onDeny func(dest, reason string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats, s.lastErr = Stats{}, ""
	s.onDeny = onDeny
	clear(s.resolved)
}

// End returns what the request did since Begin. The connections stay open (Close
// closes them).
func (s *Session) End() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	s.stats = Stats{} // ConnectTimes now belongs to the caller
	return st
}

// Close closes every connection; the session can be used again.
func (s *Session) Close() {
	s.mu.Lock()
	conns := s.conns
	s.conns = map[int32]*conn{}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// Open returns how many connections are open.
func (s *Session) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// LastError returns the message of the last failed call.
func (s *Session) LastError() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func (s *Session) failed(err *Error) *Error {
	s.mu.Lock()
	s.lastErr = err.Msg
	s.mu.Unlock()
	return err
}

func (s *Session) deny(d Dest, reason error) *Error {
	s.mu.Lock()
	onDeny := s.onDeny
	s.stats.Denied++
	s.mu.Unlock()
	if onDeny == nil {
		onDeny = s.cfg.OnDeny
	}
	if onDeny != nil {
		onDeny(d.String(), reason.Error())
	}
	return s.failed(&Error{Code: CodeDenied, Msg: reason.Error()})
}

func (s *Session) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	s.mu.Lock()
	s.stats.Lookups++
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.ConnectTimeout)
	defer cancel()
	if s.cfg.Resolve != nil {
		return s.cfg.Resolve(ctx, name)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", name)
}

// Resolve answers the guest's getaddrinfo: an address is returned as it is; a name is
// looked up only when some grant names it, and its addresses are remembered for this
// request so that a connection to one of them is checked under the name.
func (s *Session) Resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if !s.policy.NameGranted(name, 0) {
		d := Dest{Name: name}
		return nil, s.deny(d, fmt.Errorf("%s is not granted to this app: no outbound entry names this host, "+
			"so the server does not resolve it", name))
	}
	addrs, err := s.lookup(ctx, name)
	if err != nil || len(addrs) == 0 {
		return nil, s.failed(fail(CodeNotFound, "%s: name not found (%v)", name, err))
	}
	s.mu.Lock()
	for i, a := range addrs {
		addrs[i] = a.Unmap()
		s.resolved[addrs[i]] = name
	}
	s.mu.Unlock()
	return addrs, nil
}

// Connect opens a TCP connection to host:port and returns its handle. A name is
// resolved here, once, and the connection goes to the address that was checked.
func (s *Session) Connect(ctx context.Context, host string, port int, timeout time.Duration) (int32, error) {
	s.mu.Lock()
	switch {
	case len(s.conns) >= s.cfg.Limits.MaxOpen:
		s.mu.Unlock()
		return 0, s.failed(fail(CodeLimit, "connection to %s:%d refused: this request already has %d connections "+
			"open, its limit (outbound.max_open)", host, port, s.cfg.Limits.MaxOpen))
	case s.stats.Conns >= int64(s.cfg.Limits.MaxConns):
		s.mu.Unlock()
		return 0, s.failed(fail(CodeLimit, "connection to %s:%d refused: this request already opened %d "+
			"connections, its limit (outbound.max_conns)", host, port, s.cfg.Limits.MaxConns))
	}
	s.mu.Unlock()
	if port < 1 || port > 65535 {
		return 0, s.failed(fail(CodeDenied, "%s:%d: port out of range", host, port))
	}
	var candidates []Dest
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		s.mu.Lock()
		name := s.resolved[ip]
		s.mu.Unlock()
		candidates = []Dest{{Name: name, IP: ip, Port: port}}
	} else {
		name := strings.TrimSuffix(strings.ToLower(host), ".")
		if !s.policy.NameGranted(name, port) {
			return 0, s.deny(Dest{Name: name, Port: port}, fmt.Errorf("%s:%d is not granted to this app: "+
				"no outbound entry covers it", name, port))
		}
		addrs, err := s.lookup(ctx, name)
		if err != nil || len(addrs) == 0 {
			return 0, s.failed(fail(CodeNotFound, "%s: name not found (%v)", name, err))
		}
		for _, a := range addrs {
			candidates = append(candidates, Dest{Name: name, IP: a.Unmap(), Port: port})
		}
	}
	var target *Dest
	var denied error
	for i, d := range candidates {
		if err := s.policy.Decide(d); err != nil {
			if denied == nil {
				denied = err
			}
			continue
		}
		target = &candidates[i]
		break
	}
	if target == nil {
		return 0, s.deny(candidates[0], denied)
	}
	if timeout <= 0 || timeout > s.cfg.Limits.ConnectTimeout {
		timeout = s.cfg.Limits.ConnectTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var dialer net.Dialer
	t0 := time.Now()
	// The address is a literal: nothing is resolved again.
	nc, err := dialer.DialContext(dctx, "tcp", netip.AddrPortFrom(target.IP, uint16(port)).String())
	if err != nil {
		return 0, s.failed(dialError(*target, err, ctx, dctx))
	}
	took := time.Since(t0)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := newHandle()
	s.conns[h] = &conn{c: nc, dest: *target, session: s, closed: make(chan struct{})}
	s.stats.Conns++
	s.stats.ConnectTimes = append(s.stats.ConnectTimes, took)
	return h, nil
}

func dialError(d Dest, err error, ctx, dctx context.Context) *Error {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || dctx.Err() != nil && ctx.Err() == nil:
		return fail(CodeTimeout, "connection to %s timed out", d)
	case strings.Contains(err.Error(), "connection refused"):
		return fail(CodeRefused, "connection to %s refused", d)
	}
	return fail(CodeIO, "connection to %s failed: %v", d, err)
}

func (s *Session) get(h int32) (*conn, *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conns[h]
	if !ok {
		s.lastErr = fmt.Sprintf("no open connection has handle %d", h)
		return nil, &Error{Code: CodeBadHandle, Msg: s.lastErr}
	}
	return c, nil
}

// deadline is the earlier of now+timeout (timeout > 0) and ctx's deadline.
func deadline(ctx context.Context, timeout time.Duration) time.Time {
	d, _ := ctx.Deadline()
	if timeout > 0 {
		if t := time.Now().Add(timeout); d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

// Send writes p, waiting at most timeout (<= 0: until ctx ends); it returns how much was
// written.
func (s *Session) Send(ctx context.Context, h int32, p []byte, timeout time.Duration) (int, error) {
	c, e := s.get(h)
	if e != nil {
		return 0, e
	}
	s.mu.Lock()
	if max := s.cfg.Limits.MaxBytesOut; max > 0 && s.stats.BytesOut+int64(len(p)) > max {
		s.mu.Unlock()
		return 0, s.failed(fail(CodeLimit, "sending to %s: this request would send more than %d bytes, "+
			"its limit (outbound.max_bytes_out)", c.dest, max))
	}
	s.mu.Unlock()
	_ = c.c.SetWriteDeadline(deadline(ctx, timeout))
	stop := context.AfterFunc(ctx, func() { _ = c.c.SetWriteDeadline(time.Unix(1, 0)) })
	n, err := c.c.Write(p)
	stop()
	s.mu.Lock()
	s.stats.BytesOut += int64(n)
	s.mu.Unlock()
	if err != nil && n == 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
			return 0, s.failed(fail(CodeTimeout, "sending to %s timed out", c.dest))
		}
		return 0, s.failed(fail(CodeReset, "sending to %s: %v", c.dest, err))
	}
	return n, nil
}

// Recv reads into p: at once what has arrived, else it waits for data at most timeout
// (0: not at all, CodeAgain; < 0: until ctx ends). 0 bytes is the end of the stream.
func (s *Session) Recv(ctx context.Context, h int32, p []byte, timeout time.Duration) (int, error) {
	c, e := s.get(h)
	if e != nil {
		return 0, e
	}
	if len(p) == 0 {
		return 0, nil
	}
	c.startReader()
	timer, stop := afterTimeout(timeout)
	defer stop()
	for {
		if c.pending == nil {
			select {
			case b := <-c.chunks:
				c.pending = b
			default:
			}
		}
		if c.pending != nil {
			n := copy(p, c.pending)
			s.mu.Lock()
			over := s.cfg.Limits.MaxBytesIn > 0 && s.stats.BytesIn+int64(n) > s.cfg.Limits.MaxBytesIn
			if !over {
				s.stats.BytesIn += int64(n)
			}
			s.mu.Unlock()
			if over {
				return 0, s.failed(fail(CodeLimit, "receiving from %s: this request would receive more than %d "+
					"bytes, its limit (outbound.max_bytes_in)", c.dest, s.cfg.Limits.MaxBytesIn))
			}
			c.pending = c.pending[n:]
			if len(c.pending) == 0 {
				c.pending = nil
			}
			return n, nil
		}
		select {
		case <-c.done:
			if len(c.chunks) > 0 {
				continue
			}
			if c.readErr == nil || errors.Is(c.readErr, io.EOF) {
				return 0, nil
			}
			return 0, s.failed(fail(CodeReset, "receiving from %s: %v", c.dest, c.readErr))
		default:
		}
		if timeout == 0 {
			return 0, s.failed(fail(CodeAgain, "nothing to read from %s yet", c.dest))
		}
		select {
		case b := <-c.chunks:
			c.pending = b
		case <-c.done:
		case <-timer:
			return 0, s.failed(fail(CodeTimeout, "receiving from %s timed out", c.dest))
		case <-ctx.Done():
			return 0, s.failed(fail(CodeIO, "receiving from %s: the request ended", c.dest))
		}
	}
}

// Poll events.
const (
	PollIn  = 1
	PollOut = 2
	PollBad = 4 // no such connection
)

// PollItem is one connection and the events asked for; Poll sets Ready.
type PollItem struct {
	Handle       int32
	Events       uint32
	Ready        uint32
	Unresolvable bool
}

// afterTimeout returns a channel that receives once d has passed (never, for d <= 0)
// and the function that stops it.
func afterTimeout(d time.Duration) (<-chan time.Time, func()) {
	if d <= 0 {
		return nil, func() {}
	}
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Poll waits until one of the items is ready (readable: data or the end of the stream
// has arrived; writable: the connection is open), at most timeout (0: no wait, < 0:
// until ctx ends), and returns how many are ready.
func (s *Session) Poll(ctx context.Context, items []PollItem, timeout time.Duration) int {
	timer, stop := afterTimeout(timeout)
	defer stop()
	for {
		ready := 0
		for i := range items {
			it := &items[i]
			it.Ready = 0
			c, e := s.get(it.Handle)
			if e != nil {
				it.Ready = PollBad
				ready++
				continue
			}
			if it.Events&PollIn != 0 {
				c.startReader()
				if c.readable() {
					it.Ready |= PollIn
				}
			}
			if it.Events&PollOut != 0 {
				it.Ready |= PollOut
			}
			if it.Ready != 0 {
				ready++
			}
		}
		if ready > 0 || timeout == 0 {
			return ready
		}
		select {
		case <-s.notify:
		case <-timer:
			return 0
		case <-ctx.Done():
			return 0
		}
	}
}

// Shutdown shuts down reading (0), writing (1) or both (2).
func (s *Session) Shutdown(h int32, how int) error {
	c, e := s.get(h)
	if e != nil {
		return e
	}
	type halfCloser interface {
		CloseRead() error
		CloseWrite() error
	}
	hc, ok := c.c.(halfCloser)
	if !ok {
		if how == 0 {
			return nil
		}
		if tc, ok := c.c.(*tls.Conn); ok {
			_ = tc.CloseWrite()
		}
		return nil
	}
	if how == 0 || how == 2 {
		_ = hc.CloseRead()
	}
	if how == 1 || how == 2 {
		_ = hc.CloseWrite()
	}
	return nil
}

// CloseConn closes one connection.
func (s *Session) CloseConn(h int32) error {
	s.mu.Lock()
	c, ok := s.conns[h]
	delete(s.conns, h)
	s.mu.Unlock()
	if !ok {
		return s.failed(&Error{Code: CodeBadHandle, Msg: fmt.Sprintf("no open connection has handle %d", h)})
	}
	c.close()
	return nil
}

// Addr returns a connection's peer address (which 0) or its local address (1) as
// "ip port"; after TLS, the negotiated ALPN protocol, version and cipher suite (2,
// one a line), the server certificate's fields (3, describeCert) or its DER (4).
func (s *Session) Addr(h int32, which int) (string, error) {
	c, e := s.get(h)
	if e != nil {
		return "", e
	}
	var a net.Addr
	switch which {
	case 0:
		a = c.c.RemoteAddr()
	case 1:
		a = c.c.LocalAddr()
	case 2:
		if tc, ok := c.c.(*tls.Conn); ok {
			st := tc.ConnectionState()
			return st.NegotiatedProtocol + "\n" + tls.VersionName(st.Version) + "\n" +
				tls.CipherSuiteName(st.CipherSuite), nil
		}
		return "", s.failed(fail(CodeBadHandle, "connection %d does not use TLS", h))
	case 3, 4:
		tc, ok := c.c.(*tls.Conn)
		if !ok || len(tc.ConnectionState().PeerCertificates) == 0 {
			return "", s.failed(fail(CodeBadHandle, "connection %d does not use TLS", h))
		}
		cert := tc.ConnectionState().PeerCertificates[0]
		if which == 4 {
			return string(cert.Raw), nil
		}
		return describeCert(cert), nil
	default:
		return "", s.failed(fail(CodeBadHandle, "net_addr: which must be 0 to 4"))
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String(), nil
	}
	return ap.Addr().Unmap().String() + " " + strconv.Itoa(int(ap.Port())), nil
}

// TLS is how a connection becomes a TLS client connection, as the app's SSLContext
// asks.
type TLS struct {
	// ServerName is sent as SNI and checked against the certificate; "" is the name
	// (or address) the connection was opened to.
	ServerName string
	// ALPN lists the application protocols offered.
	ALPN []string
	// CAs are PEM certificates the app trusts besides the system's roots and
	// outbound.ca_file (its SSLContext.load_verify_locations).
	CAs []byte
	// NoVerify accepts any certificate (the app's CERT_NONE); NoNameCheck verifies the
	// chain but not the name (check_hostname off). Either only weakens the app's own
	// connection: where it may connect is still the grants' decision.
	NoVerify, NoNameCheck bool
}

// MaxCAs bounds TLS.CAs.
const MaxCAs = 4 << 20

// StartTLS makes the connection a TLS client connection: unless opt says otherwise,
// the handshake verifies the server's certificate for the name against the system's
// roots, outbound.ca_file and the app's own CAs. It must come before the
// connection's first read.
func (s *Session) StartTLS(ctx context.Context, h int32, opt TLS) error {
	c, e := s.get(h)
	if e != nil {
		return e
	}
	if c.reading {
		return s.failed(fail(CodeBadHandle, "TLS must start before the first read from %s", c.dest))
	}
	name := opt.ServerName
	if name == "" {
		name = c.dest.Name
	}
	if name == "" {
		name = c.dest.IP.String()
	}
	cfg := &tls.Config{ServerName: name, NextProtos: opt.ALPN, MinVersion: tls.VersionTLS12}
	if !opt.NoVerify {
		roots, err := s.roots(opt.CAs)
		if err != nil {
			return s.failed(err)
		}
		cfg.RootCAs = roots
		if opt.NoNameCheck {
			// Go verifies the chain and the name together; without the name, the chain
			// is verified here instead.
			cfg.InsecureSkipVerify = true
			cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, roots) }
		}
	} else {
		cfg.InsecureSkipVerify = true
	}
	tc := tls.Client(c.c, cfg)
	hctx, cancel := context.WithTimeout(ctx, s.cfg.Limits.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return s.failed(fail(CodeIO, "TLS handshake with %s: %v", c.dest, err))
	}
	c.c = tc
	s.mu.Lock()
	s.stats.TLSHandshakes++
	s.mu.Unlock()
	return nil
}

// roots returns the pool that verifies servers: the session's, plus the app's PEM
// certificates when it gave some.
func (s *Session) roots(cas []byte) (*x509.CertPool, *Error) {
	var roots *x509.CertPool
	if s.cfg.RootCAs != nil {
		roots = s.cfg.RootCAs()
	}
	if len(cas) == 0 {
		return roots, nil
	}
	if len(cas) > MaxCAs {
		return nil, fail(CodeLimit, "the app's CA certificates take %d bytes, more than %d", len(cas), MaxCAs)
	}
	if roots == nil {
		if sys, err := x509.SystemCertPool(); err == nil {
			roots = sys
		} else {
			roots = x509.NewCertPool()
		}
	} else {
		roots = roots.Clone()
	}
	if !roots.AppendCertsFromPEM(cas) {
		return nil, fail(CodeIO, "the app's CA certificates (load_verify_locations) hold no PEM certificate")
	}
	return roots, nil
}

// verifyChain verifies the server's chain against roots, for any name.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	return err
}

// conn is one connection. A reader goroutine, started by the first read or poll,
// reads ahead one chunk at a time, so readiness can be known without blocking.
type conn struct {
	c       net.Conn
	dest    Dest
	session *Session

	reading bool
	chunks  chan []byte   // read ahead, at most one waiting
	pending []byte        // the rest of a chunk the guest took in part
	done    chan struct{} // closed when the reader stops; readErr is then set
	readErr error
	closed  chan struct{}
	once    sync.Once
}

func (c *conn) startReader() {
	if c.reading {
		return
	}
	c.reading = true
	c.chunks = make(chan []byte, 1)
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		defer c.session.wake()
		for {
			b := make([]byte, 32<<10)
			n, err := c.c.Read(b)
			if n > 0 {
				select {
				case c.chunks <- b[:n]:
					c.session.wake()
				case <-c.closed:
					return
				}
			}
			if err != nil {
				c.readErr = err
				return
			}
		}
	}()
}

func (c *conn) readable() bool {
	if c.pending != nil || len(c.chunks) > 0 {
		return true
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.closed)
		_ = c.c.Close()
	})
}

func (s *Session) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// describeCert writes the fields of a verified certificate that Python's
// SSLSocket.getpeercert() reports, one "key\tvalue" a line: subject and issuer
// common names and organizations, each DNS and IP subject alternative name, the
// validity period (as OpenSSL prints it) and the serial number.
func describeCert(c *x509.Certificate) string {
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + "\t" + v + "\n") }
	line("subject.commonName", c.Subject.CommonName)
	for _, o := range c.Subject.Organization {
		line("subject.organizationName", o)
	}
	line("issuer.commonName", c.Issuer.CommonName)
	for _, o := range c.Issuer.Organization {
		line("issuer.organizationName", o)
	}
	for _, d := range c.DNSNames {
		line("DNS", d)
	}
	for _, ip := range c.IPAddresses {
		line("IP Address", ip.String())
	}
	const openssl = "Jan _2 15:04:05 2006 GMT"
	line("notBefore", c.NotBefore.UTC().Format(openssl))
	line("notAfter", c.NotAfter.UTC().Format(openssl))
	line("serialNumber", strings.ToUpper(c.SerialNumber.Text(16)))
	return b.String()
}
