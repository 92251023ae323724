package hostfuncs

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmwsgi/wasmwsgi/egress"
)

// Error codes of the net_* functions; net_error returns the message of the last one.
const (
	ErrDenied    int32 = -7  // the destination is not granted
	ErrTimeout   int32 = -8  // the call's own timeout passed
	ErrAgain     int32 = -9  // nothing to read yet (timeout 0)
	ErrRefused   int32 = -10 // the destination refused the connection
	ErrNotFound  int32 = -11 // the name does not resolve
	ErrReset     int32 = -12 // the connection was reset or closed by the peer
	ErrBadHandle int32 = -13 // no open connection has that handle
)

// Network is implemented by an Exchange whose guest may open outbound connections:
// Sockets returns the instance's session (never nil for such an exchange).
type Network interface {
	Sockets() *egress.Session
}

// noNetwork is the session of an exchange without one: it grants nothing.
var noNetwork = egress.NewSession(nil, egress.Config{})

func sockets(ex Exchange) *egress.Session {
	if n, ok := ex.(Network); ok {
		if s := n.Sockets(); s != nil {
			return s
		}
	}
	return noNetwork
}

// netResult maps a session error to the guest's code.
func netResult(ok int32, err error) int32 {
	if err == nil {
		return ok
	}
	var e *egress.Error
	if !errors.As(err, &e) {
		return ErrIO
	}
	switch e.Code {
	case egress.CodeDenied:
		return ErrDenied
	case egress.CodeLimit:
		return ErrLimit
	case egress.CodeTimeout:
		return ErrTimeout
	case egress.CodeAgain:
		return ErrAgain
	case egress.CodeRefused:
		return ErrRefused
	case egress.CodeNotFound:
		return ErrNotFound
	case egress.CodeReset:
		return ErrReset
	case egress.CodeBadHandle:
		return ErrBadHandle
	}
	return ErrIO
}

// timeoutArg decodes a timeout in milliseconds: -1 (any negative) waits until the
// request ends, 0 does not wait.
func timeoutArg(ms uint32) time.Duration {
	if int32(ms) < 0 {
		return -1
	}
	return time.Duration(int32(ms)) * time.Millisecond
}

func netResolve(ctx context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	name, ok := view(mem, a[0], a[1])
	if !ok {
		return ErrBounds
	}
	addrs, err := sockets(ex).Resolve(ctx, string(name))
	if err != nil {
		return netResult(0, err)
	}
	var b strings.Builder
	for _, ip := range addrs {
		b.WriteString(ip.String())
		b.WriteByte('\n')
	}
	return putSized(mem, a[2], a[3], []byte(b.String()))
}

func netConnect(ctx context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	host, ok := view(mem, a[0], a[1])
	if !ok {
		return ErrBounds
	}
	h, err := sockets(ex).Connect(ctx, string(host), int(int32(a[2])), timeoutArg(a[3]))
	return netResult(h, err)
}

func netSend(ctx context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	buf, ok := view(mem, a[1], a[2])
	if !ok {
		return ErrBounds
	}
	n, err := sockets(ex).Send(ctx, int32(a[0]), buf, timeoutArg(a[3]))
	return netResult(int32(n), err)
}

func netRecv(ctx context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	buf, ok := view(mem, a[1], a[2])
	if !ok {
		return ErrBounds
	}
	n, err := sockets(ex).Recv(ctx, int32(a[0]), buf, timeoutArg(a[3]))
	return netResult(int32(n), err)
}

// maxPollItems bounds a net_poll list.
const maxPollItems = 1024

func netPoll(ctx context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	list, ok := view(mem, a[0], a[1])
	if !ok {
		return ErrBounds
	}
	if len(list)%8 != 0 {
		return ErrInvalid
	}
	if len(list)/8 > maxPollItems {
		return ErrLimit
	}
	items := make([]egress.PollItem, len(list)/8)
	for i := range items {
		items[i].Handle = int32(binary.LittleEndian.Uint32(list[8*i:]))
		items[i].Events = binary.LittleEndian.Uint32(list[8*i+4:])
	}
	n := sockets(ex).Poll(ctx, items, timeoutArg(a[2]))
	for i, it := range items {
		binary.LittleEndian.PutUint32(list[8*i+4:], it.Ready)
	}
	return int32(n)
}

func netShutdown(_ context.Context, _ api.Memory, ex Exchange, a []uint32) int32 {
	how := int(int32(a[1]))
	if how < 0 || how > 2 {
		return ErrInvalid
	}
	return netResult(0, sockets(ex).Shutdown(int32(a[0]), how))
}

func netClose(_ context.Context, _ api.Memory, ex Exchange, a []uint32) int32 {
	return netResult(0, sockets(ex).CloseConn(int32(a[0])))
}

func netAddr(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	addr, err := sockets(ex).Addr(int32(a[0]), int(int32(a[1])))
	if err != nil {
		return netResult(0, err)
	}
	return putSized(mem, a[2], a[3], []byte(addr))
}

// Flags of net_tls.
const (
	TLSNoVerify    = 1 // accept any certificate (the app's CERT_NONE)
	TLSNoNameCheck = 2 // verify the chain but not the name (check_hostname off)
)

func netTLS(ctx context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	name, ok1 := view(mem, a[1], a[2])
	alpn, ok2 := view(mem, a[3], a[4])
	cas, ok3 := view(mem, a[5], a[6])
	if !ok1 || !ok2 || !ok3 {
		return ErrBounds
	}
	opt := egress.TLS{ServerName: string(name), CAs: cas,
		NoVerify: a[7]&TLSNoVerify != 0, NoNameCheck: a[7]&TLSNoNameCheck != 0}
	for _, p := range strings.Split(string(alpn), "\n") {
		if p != "" {
			opt.ALPN = append(opt.ALPN, p)
		}
	}
	return netResult(0, sockets(ex).StartTLS(ctx, int32(a[0]), opt))
}

func netError(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	msg := sockets(ex).LastError()
	if _, ok := ex.(Network); !ok {
		msg = "this server gives the app no outbound network"
	}
	return putSized(mem, a[0], a[1], []byte(msg))
}
