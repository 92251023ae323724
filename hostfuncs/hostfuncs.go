package hostfuncs

import (
	"context"
	"errors"
	"io"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// ModuleName is the wasm import module the guest's _wasmwsgi C module declares.
const ModuleName = "wasmwsgi"

// Error codes returned to the guest; see the package doc.
const (
	ErrNoRequest int32 = -1
	ErrBounds    int32 = -2
	ErrInvalid   int32 = -3
	ErrState     int32 = -4
	ErrIO        int32 = -5
	ErrLimit     int32 = -6
)

// Level is the severity the guest gives a log_write message.
type Level int32

// Log levels of log_write.
const (
	LevelDebug Level = iota
	LevelInfo
	LevelWarning
	LevelError
)

// Exchange is the host side of one guest call: what the guest may read and where its
// output goes. The runtime implements it for each instance; the host functions reach it
// through the context of the export call.
type Exchange interface {
	// AppInfo returns the app settings in the pairs encoding.
	AppInfo() []byte
	// Environ returns the CGI variables in the pairs encoding, or nil when no request is
	// in flight.
	Environ() []byte
	// ReadInput reads request body bytes into p; io.EOF at the end of the body.
	ReadInput(p []byte) (int, error)
	// StartResponse sends the validated status line and headers. ErrOutOfOrder when
	// called twice.
	StartResponse(s Status, headers []Pair) error
	// WriteBody sends one chunk and returns how much of it was accepted.
	WriteBody(p []byte) (int, error)
	// Log writes a guest message to the server log. p and msg are views of guest memory:
	// implementations copy what they keep.
	Log(level Level, msg []byte)
	// Fault records that the guest made an invalid host call, for the log.
	Fault(function string, err error)
}

// Errors an Exchange returns to select the guest's error code: ErrOutOfOrder gives
// ErrState, ErrRejected (wrapped with the reason) gives ErrInvalid, anything else ErrIO.
var (
	ErrOutOfOrder = errors.New("host function called out of order")
	ErrRejected   = errors.New("rejected")
)

type exchangeKey struct{}

// WithExchange returns a context that carries ex to the host functions called during an
// export call made with that context.
func WithExchange(ctx context.Context, ex Exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}

func exchangeFrom(ctx context.Context) Exchange {
	ex, _ := ctx.Value(exchangeKey{}).(Exchange)
	return ex
}

// function is one host function: its name, parameter names and implementation. Every
// function has i32 parameters and one i32 result.
type function struct {
	name   string
	params []string
	fn     func(ctx context.Context, mem api.Memory, ex Exchange, args []uint32) int32
}

// functions is the ABI, in the order the guest's raw_call indexes them.
var functions = []function{
	{"app_info", []string{"buf_ptr", "buf_len"}, appInfo},
	{"environ_get", []string{"buf_ptr", "buf_len"}, environGet},
	{"input_read", []string{"buf_ptr", "buf_len"}, inputRead},
	{"start_response", []string{"status_ptr", "status_len", "headers_ptr", "headers_len"}, startResponse},
	{"body_write", []string{"buf_ptr", "buf_len"}, bodyWrite},
	{"log_write", []string{"level", "buf_ptr", "buf_len"}, logWrite},
	{"net_resolve", []string{"name_ptr", "name_len", "buf_ptr", "buf_len"}, netResolve},
	{"net_connect", []string{"host_ptr", "host_len", "port", "timeout_ms"}, netConnect},
	{"net_send", []string{"handle", "buf_ptr", "buf_len", "timeout_ms"}, netSend},
	{"net_recv", []string{"handle", "buf_ptr", "buf_len", "timeout_ms"}, netRecv},
	{"net_poll", []string{"list_ptr", "list_len", "timeout_ms"}, netPoll},
	{"net_shutdown", []string{"handle", "how"}, netShutdown},
	{"net_close", []string{"handle"}, netClose},
	{"net_addr", []string{"handle", "which", "buf_ptr", "buf_len"}, netAddr},
	{"net_tls", []string{"handle", "name_ptr", "name_len", "alpn_ptr", "alpn_len", "cas_ptr", "cas_len", "flags"}, netTLS},
	{"net_error", []string{"buf_ptr", "buf_len"}, netError},
	{"begin_app_code", nil, beginAppCode},
	{"proc_run", []string{"spec_ptr", "spec_len", "timeout_ms"}, procRun},
	{"proc_output", []string{"which", "buf_ptr", "buf_len"}, procOutput},
}

// NewBuilder returns a builder for the wasmwsgi host module with every function defined.
func NewBuilder(r wazero.Runtime) wazero.HostModuleBuilder {
	b := r.NewHostModuleBuilder(ModuleName)
	for _, f := range functions {
		types := make([]api.ValueType, len(f.params))
		for i := range types {
			types[i] = api.ValueTypeI32
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(goFunc(f), types, []api.ValueType{api.ValueTypeI32}).
			WithParameterNames(f.params...).
			WithResultNames("result").
			Export(f.name)
	}
	return b
}

// Instantiate adds the wasmwsgi host module to r.
func Instantiate(ctx context.Context, r wazero.Runtime) (api.Closer, error) {
	return NewBuilder(r).Instantiate(ctx)
}

func goFunc(f function) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		args := make([]uint32, len(f.params))
		for i := range args {
			args[i] = api.DecodeU32(stack[i])
		}
		stack[0] = api.EncodeI32(call(ctx, mod.Memory(), f, args))
	}
}

// call runs one host function with its arguments already decoded. It is the single
// entry point used by both the wazero binding and the tests.
func call(ctx context.Context, mem api.Memory, f function, args []uint32) int32 {
	// A request past its deadline (or abandoned) goes no further: the panic ends the
	// guest's call with an exit error, as wazero's own context check does at loop heads.
	switch ctx.Err() {
	case context.DeadlineExceeded:
		panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
	case context.Canceled:
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
	ex := exchangeFrom(ctx)
	if ex == nil {
		return ErrNoRequest
	}
	if mem == nil {
		return ErrBounds
	}
	return f.fn(ctx, mem, ex, args)
}

// view returns guest memory [ptr, ptr+n) or false when the range is not inside memory or
// n is negative as an i32.
func view(mem api.Memory, ptr, n uint32) ([]byte, bool) {
	if int32(n) < 0 {
		return nil, false
	}
	return mem.Read(ptr, n)
}

// putSized implements the "buffer and capacity, return the real length" convention.
func putSized(mem api.Memory, ptr, capacity uint32, value []byte) int32 {
	if int32(capacity) < 0 {
		return ErrBounds
	}
	// The whole buffer must lie in memory, whether or not the value fits in it.
	buf, ok := mem.Read(ptr, capacity)
	if !ok {
		return ErrBounds
	}
	if uint64(len(value)) <= uint64(capacity) {
		copy(buf, value)
	}
	return int32(len(value))
}

func appInfo(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	return putSized(mem, a[0], a[1], ex.AppInfo())
}

func environGet(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	env := ex.Environ()
	if env == nil {
		return ErrNoRequest
	}
	return putSized(mem, a[0], a[1], env)
}

func inputRead(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	if ex.Environ() == nil {
		return ErrNoRequest
	}
	buf, ok := view(mem, a[0], a[1])
	if !ok {
		return ErrBounds
	}
	n, err := ex.ReadInput(buf)
	if n > 0 || errors.Is(err, io.EOF) || err == nil {
		return int32(n)
	}
	ex.Fault("input_read", err)
	return ErrIO
}

func startResponse(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	if ex.Environ() == nil {
		return ErrNoRequest
	}
	rawStatus, ok1 := view(mem, a[0], a[1])
	rawHeaders, ok2 := view(mem, a[2], a[3])
	if !ok1 || !ok2 {
		return ErrBounds
	}
	status, err := ParseStatus(rawStatus)
	if err != nil {
		ex.Fault("start_response", err)
		return ErrInvalid
	}
	headers, err := ParseHeaders(rawHeaders)
	if err != nil {
		ex.Fault("start_response", err)
		return ErrInvalid
	}
	return result(ex, "start_response", 0, ex.StartResponse(status, headers))
}

func bodyWrite(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	if ex.Environ() == nil {
		return ErrNoRequest
	}
	buf, ok := view(mem, a[0], a[1])
	if !ok {
		return ErrBounds
	}
	n, err := ex.WriteBody(buf)
	return result(ex, "body_write", int32(n), err)
}

func logWrite(_ context.Context, mem api.Memory, ex Exchange, a []uint32) int32 {
	buf, ok := view(mem, a[1], a[2])
	if !ok {
		return ErrBounds
	}
	level := Level(int32(a[0]))
	if level < LevelDebug || level > LevelError {
		level = LevelError
	}
	ex.Log(level, buf)
	return 0
}

// AppCode is implemented by an Exchange that wants to know when the app's own code
// starts running in its instance (begin_app_code).
type AppCode interface {
	BeginAppCode()
}

func beginAppCode(_ context.Context, _ api.Memory, ex Exchange, _ []uint32) int32 {
	if m, ok := ex.(AppCode); ok {
		m.BeginAppCode()
	}
	return 0
}

// result maps an Exchange error to the guest's error code.
func result(ex Exchange, fn string, ok int32, err error) int32 {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, ErrOutOfOrder):
		ex.Fault(fn, err)
		return ErrState
	case errors.Is(err, ErrRejected):
		ex.Fault(fn, err)
		return ErrInvalid
	default:
		ex.Fault(fn, err)
		return ErrIO
	}
}
