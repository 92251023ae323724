package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
	"github.com/wasmwsgi/wasmwsgi/runtime/guestfs"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
)

// exchange implements hostfuncs.Exchange for one instance: during App.Load it only
// answers app_info; during App.Serve it carries one HTTP request and its response.
type exchange struct {
	app *App
	log *slog.Logger
	// info, when set, is what app_info answers instead of the app's own (a command's,
	// with its argv); stdin is then the command's standard input.
	info  []byte
	stdin io.Reader
	// errCopy, when set, also receives wsgi.errors (a load's warm-up requests).
	errCopy *tail
	// entropy, when set, is the entropy of an import whose snapshot is shared with
	// copies of the app (importEntropy).
	entropy *importEntropy
	// cached is set once the import's snapshot is in the cache on disk.
	cached  bool
	mem     *memimage.Memory // the instance's linear memory allocator
	sockets *egress.Session  // the instance's outbound connections
	// files and scratch are the instance's open-file count and /tmp, which its child
	// processes share (RunProcess); childArgv and childEnv, set for a child, are its
	// command line and environment.
	files     *guestfs.OpenFiles
	scratch   *guestfs.ScratchFS
	childArgv []string
	childEnv  []string
	kids      *children               // the child processes it may still start; nil until the first
	lastChild hostfuncs.ProcessResult // what proc_output reads
	outbound  egress.Stats            // what they did, set when the request is done
	guest     time.Duration           // wall time of the instance, set when the request is done
	start     time.Time               // when the request was handed to an instance

	// ctx is the instance's: it ends at the time limit, or disconnectGrace after the
	// client went away. client is the HTTP request's own, which net/http ends when the
	// client's connection closes or its HTTP/2 stream is reset. Both are nil while
	// loading.
	ctx, client context.Context

	// Request side (nil env while loading).
	env          []byte
	body         io.Reader
	bodyTooLarge bool  // limits.max_body reached while reading a chunked body
	bodyTimeout  bool  // the body did not arrive before the deadline
	bodyErr      error // the body was malformed (e.g. a bad chunk) or the client went away

	// Response side.
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	// An HTTP/2 stream is cut from another goroutine when the time is up (see
	// newRequestExchange); cutMu orders that with the start and the end of the request.
	cutMu    sync.Mutex
	sent     bool        // the response started (under cutMu)
	ended    bool        // resetDeadlines ran: the stream is no longer ours (under cutMu)
	stopCut  func() bool // unregisters the cut (nil without one)
	declared int64       // the app's Content-Length, -1 when it set none
	written  int64
	cut      bool // limits.max_response reached
}

func newRequestExchange(a *App, req *Request, w http.ResponseWriter, ctx context.Context) *exchange {
	log := a.requestLog(req)
	rc := http.NewResponseController(w)
	body := req.HTTP.Body
	if a.Spec.Limits.MaxBody > 0 && body != nil {
		body = http.MaxBytesReader(w, body, a.Spec.Limits.MaxBody)
	}
	x := &exchange{
		app:      a,
		log:      log,
		env:      hostfuncs.AppendPairs(nil, Environ(req)),
		body:     body,
		w:        w,
		rc:       rc,
		declared: -1,
		start:    time.Now(),
		ctx:      ctx,
		client:   req.HTTP.Context(),
	}
	// A slow client (body or reading the response) cannot hold the instance past its
	// deadline: both directions of the connection share it. Setting a deadline fails
	// on writers that have none (a warm-up request's); nothing depends on it then.
	if d, ok := ctx.Deadline(); ok {
		_ = rc.SetReadDeadline(d)
		if req.HTTP.ProtoMajor < 2 {
			_ = rc.SetWriteDeadline(d)
		} else {
			// HTTP/2 resets a stream as soon as its write deadline passes, which would
			// replace the 504 sent when the time limit strikes before the response
			// started. So the stream's write deadline leaves room for that error
			// response, and a response already under way is cut when the time is up.
			_ = rc.SetWriteDeadline(d.Add(errorWriteTimeout))
			x.stopCut = context.AfterFunc(ctx, func() {
				x.cutMu.Lock()
				defer x.cutMu.Unlock()
				if x.sent && !x.ended {
					_ = rc.SetWriteDeadline(time.Now())
				}
			})
		}
	}
	return x
}

// resetDeadlines clears the connection deadlines set for the request, so that a later
// request on the same keep-alive connection starts fresh. It must run before the
// handler returns: the writer is not to be touched after that.
func (x *exchange) resetDeadlines() {
	if x.stopCut != nil {
		x.stopCut()
		x.cutMu.Lock()
		x.ended = true
		x.cutMu.Unlock()
	}
	_ = x.rc.SetReadDeadline(time.Time{})
	_ = x.rc.SetWriteDeadline(time.Time{})
}

// timedOut reports whether the request reached its time limit.
func (x *exchange) timedOut() bool {
	if x.ctx == nil {
		return false
	}
	if errors.Is(x.ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	// A write past the connection's deadline (set to the same instant) can fail, and
	// end the client's context, a moment before the context's own timer fires.
	d, ok := x.ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// clientGone reports whether the client went away before the time limit: net/http
// ended the request's context because the connection closed (a read saw its end, or
// a write to it failed) or the HTTP/2 stream was reset. Whatever the request's guest
// did after that (trapped when it was stopped, raised because body_write failed) is
// the client's doing, not the app's or the server's.
func (x *exchange) clientGone() bool {
	return x.client != nil && x.client.Err() != nil && !x.timedOut()
}

func (x *exchange) AppInfo() []byte {
	if x.info != nil {
		return x.info
	}
	return x.app.info
}
func (x *exchange) Environ() []byte { return x.env }

func (x *exchange) ReadInput(p []byte) (int, error) {
	if x.body == nil || len(p) == 0 {
		return 0, io.EOF
	}
	n, err := x.body.Read(p)
	var tooLarge *http.MaxBytesError
	var netErr net.Error
	switch {
	case errors.As(err, &tooLarge):
		x.bodyTooLarge = true
	case errors.As(err, &netErr) && netErr.Timeout():
		x.bodyTimeout = true
	case err != nil && err != io.EOF:
		x.bodyErr = err
	}
	return n, err
}

func (x *exchange) StartResponse(s hostfuncs.Status, headers []hostfuncs.Pair) error {
	if x.started {
		return hostfuncs.ErrOutOfOrder
	}
	if s.Code < 200 || s.Code > 599 {
		return fmt.Errorf("%w: status %s is not a final status (200-599)", hostfuncs.ErrRejected, s)
	}
	h := x.w.Header()
	for _, p := range headers {
		if strings.EqualFold(p.Name, "Content-Length") {
			n, err := strconv.ParseInt(p.Value, 10, 64)
			if err != nil || n < 0 || x.declared >= 0 {
				return fmt.Errorf("%w: Content-Length %q is not one non-negative integer", hostfuncs.ErrRejected, p.Value)
			}
			x.declared = n
		}
		h.Add(p.Name, p.Value)
	}
	if x.app.Spec.ServerTiming {
		h.Add("Server-Timing", x.serverTiming())
	}
	x.started = true
	x.cutMu.Lock()
	x.sent = true
	x.cutMu.Unlock()
	x.w.WriteHeader(s.Code)
	return nil
}

// serverTiming is the Server-Timing value for the response about to start: the wall
// time since the request was handed to its instance (import or restore included) and
// the peak of the instance's linear memory so far. A Server-Timing metric carries only
// dur (milliseconds) and desc, so the memory is a desc: "<bytes> bytes peak".
func (x *exchange) serverTiming() string {
	var peak uint64
	if x.mem != nil {
		peak = x.mem.Peak()
	}
	ms := float64(time.Since(x.start).Microseconds()) / 1000
	return fmt.Sprintf(`guest;dur=%.3f, mem;desc="%d bytes peak"`, ms, peak)
}

func (x *exchange) WriteBody(p []byte) (int, error) {
	if !x.started {
		return 0, hostfuncs.ErrOutOfOrder
	}
	if x.declared >= 0 && int64(len(p)) > x.declared-x.written {
		// Never send more than the app declared (PEP 3333); the short count tells the
		// guest to stop iterating.
		p = p[:x.declared-x.written]
	}
	if limit := x.app.Spec.Limits.MaxResponse; limit > 0 && int64(len(p)) > limit-x.written {
		p = p[:max(limit-x.written, 0)]
		x.cut = true
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := x.w.Write(p)
	x.written += int64(n)
	if err == http.ErrBodyNotAllowed {
		return len(p), nil // 204, 304: the body is dropped, as HTTP requires
	}
	if err != nil {
		return n, err
	}
	return n, x.rc.Flush()
}

func (x *exchange) Log(level hostfuncs.Level, msg []byte) {
	text := strings.TrimRight(string(msg), "\n")
	if text == "" {
		return
	}
	x.log.Log(context.Background(), slogLevels[level], text, "stream", "wsgi.errors")
	if x.errCopy != nil {
		x.errCopy.Write(msg)
	}
}

// slogLevels maps log_write levels (validated by hostfuncs) to slog's.
var slogLevels = [...]slog.Level{
	hostfuncs.LevelDebug: slog.LevelDebug, hostfuncs.LevelInfo: slog.LevelInfo,
	hostfuncs.LevelWarning: slog.LevelWarn, hostfuncs.LevelError: slog.LevelError,
}

// BeginAppCode is begin_app_code: the app's own code runs from now on.
func (x *exchange) BeginAppCode() {
	if x.entropy != nil {
		x.entropy.appCode = true
	}
}

func (x *exchange) Fault(function string, err error) {
	if x.clientGone() && !errors.Is(err, hostfuncs.ErrOutOfOrder) && !errors.Is(err, hostfuncs.ErrRejected) {
		// body_write to a connection the client closed: Serve logs the request's end.
		x.log.Debug("host call failed: the client went away", "function", function, "error", err.Error())
		return
	}
	x.log.Warn("invalid host call from the guest", "function", function, "error", err.Error())
}
