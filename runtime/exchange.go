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
	"time"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
)

// exchange implements hostfuncs.Exchange for one instance: during App.Load it only
// answers app_info; during App.Serve it carries one HTTP request and its response.
type exchange struct {
	app   *App
	log   *slog.Logger
	mem   *cappedMemory // the instance's linear memory allocator
	guest time.Duration // wall time of the instance, set when the request is done

	// Request side (nil env while loading).
	env          []byte
	body         io.Reader
	bodyTooLarge bool  // limits.max_body reached while reading a chunked body
	bodyTimeout  bool  // the body did not arrive before the deadline
	bodyErr      error // the body was malformed (e.g. a bad chunk) or the client went away

	// Response side.
	w        http.ResponseWriter
	rc       *http.ResponseController
	started  bool
	declared int64 // the app's Content-Length, -1 when it set none
	written  int64
	cut      bool // limits.max_response reached
}

func newRequestExchange(a *App, req *Request, w http.ResponseWriter, ctx context.Context) *exchange {
	log := a.log
	if req.ID != "" {
		log = log.With("request_id", req.ID)
	}
	rc := http.NewResponseController(w)
	// A slow client (body or reading the response) cannot hold the instance past its
	// deadline: both directions of the connection share it.
	if d, ok := ctx.Deadline(); ok {
		_ = rc.SetReadDeadline(d)
		_ = rc.SetWriteDeadline(d)
	}
	body := req.HTTP.Body
	if a.Spec.Limits.MaxBody > 0 && body != nil {
		body = http.MaxBytesReader(w, body, a.Spec.Limits.MaxBody)
	}
	return &exchange{
		app:      a,
		log:      log,
		env:      hostfuncs.AppendPairs(nil, Environ(req)),
		body:     body,
		w:        w,
		rc:       rc,
		declared: -1,
	}
}

// resetDeadlines clears the connection deadlines set for the request, so that a later
// request on the same keep-alive connection starts fresh.
func (x *exchange) resetDeadlines() {
	_ = x.rc.SetReadDeadline(time.Time{})
	_ = x.rc.SetWriteDeadline(time.Time{})
}

func (x *exchange) AppInfo() []byte { return x.app.info }
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
	x.started = true
	x.w.WriteHeader(s.Code)
	return nil
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
}

// slogLevels maps log_write levels (validated by hostfuncs) to slog's.
var slogLevels = [...]slog.Level{
	hostfuncs.LevelDebug: slog.LevelDebug, hostfuncs.LevelInfo: slog.LevelInfo,
	hostfuncs.LevelWarning: slog.LevelWarn, hostfuncs.LevelError: slog.LevelError,
}

func (x *exchange) Fault(function string, err error) {
	x.log.Warn("invalid host call from the guest", "function", function, "error", err.Error())
}
