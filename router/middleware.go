package router

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/wasmwsgi/wasmwsgi/runtime"
)

type logEntryKey struct{}

// logEntry collects what handlers further in learn about a request (the app it went
// to, what it cost the sandbox) for the access log line.
type logEntry struct {
	app string
	// handler says who answered a request to an app: handlerApp or handlerStatic.
	handler string
	stats   runtime.Stats
}

// What answered a request to an app, in the access log and the metrics' handler label.
const (
	handlerApp    = "app"    // the app, in its sandbox
	handlerStatic = "static" // the host, from the app's [static] files
)

// logEntryOf returns the request's access log entry (a throwaway one outside accessLog).
func logEntryOf(ctx context.Context) *logEntry {
	if e, ok := ctx.Value(logEntryKey{}).(*logEntry); ok {
		return e
	}
	return &logEntry{}
}

// StatusClientClosedRequest is the status the access log and the metrics give a request
// whose client disconnected before it was answered (nginx's 499). It is never sent.
const StatusClientClosedRequest = 499

// accessLog writes one line per request (request id, app, for a request to an app
// whether the app or its static files answered, method, path, status, bytes, duration, for app requests guest time and peak memory, and for those that used the
// network their outbound connections and bytes) and counts it in the metrics and,
// through record, in the admin page's figures.
func accessLog(log *slog.Logger, m *metrics, record func(e *logEntry, status int, elapsed time.Duration)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			entry := &logEntry{}
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				aborted := recover()
				switch {
				case entry.stats.ClientGone:
					status = StatusClientClosedRequest
				case aborted != nil:
					status = 0 // connection aborted mid-response
				}
				elapsed := time.Since(start)
				m.observe(entry, status, elapsed.Seconds())
				record(entry, status, elapsed)
				if !log.Enabled(r.Context(), slog.LevelInfo) {
					if aborted != nil {
						panic(aborted)
					}
					return
				}
				attrs := []any{
					"request_id", middleware.GetReqID(r.Context()),
					"app", entry.app,
				}
				if entry.handler != "" {
					attrs = append(attrs, "handler", entry.handler)
				}
				attrs = append(attrs,
					"method", r.Method,
					"path", r.URL.RequestURI(),
					"status", status,
					"bytes", ww.BytesWritten(),
					"duration", elapsed.Round(time.Microsecond),
				)
				if entry.stats.PeakMemory > 0 {
					attrs = append(attrs, "guest_time", entry.stats.Guest.Round(time.Microsecond),
						"peak_memory", entry.stats.PeakMemory)
				}
				if out := &entry.stats.Outbound; out.Conns > 0 || out.BytesOut > 0 || out.BytesIn > 0 {
					attrs = append(attrs, "outbound_conns", out.Conns, "outbound_bytes_out", out.BytesOut,
						"outbound_bytes_in", out.BytesIn)
				}
				log.Info("request", attrs...)
				if aborted != nil {
					panic(aborted)
				}
			}()
			next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), logEntryKey{}, entry)))
		})
	}
}

// Request limits checked before routing. Go's server already answers 431 for headers
// larger than http.Server.MaxHeaderBytes and 400 for malformed requests.
const (
	// MaxURLBytes is the longest request target accepted (414 past it).
	MaxURLBytes = 8 << 10
	// MaxHeaderCount is the most request header lines accepted (431 past it).
	MaxHeaderCount = 100
)

// requestLimits refuses request targets and header sets that are too large, before any
// app sees them, and drops a #fragment from the target.
func requestLimits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.RequestURI) > MaxURLBytes {
			refuse(w, http.StatusRequestURITooLong)
			return
		}
		if target, _, found := strings.Cut(r.RequestURI, "#"); found {
			// A request target has no fragment (RFC 9112 section 3.2) but Go's parser
			// keeps one in the path or query; drop it, as a browser would have.
			u, err := url.ParseRequestURI(target)
			if err != nil {
				refuse(w, http.StatusBadRequest)
				return
			}
			r.URL = u // REQUEST_URI and RAW_URI keep the target as sent
		}
		n := 0
		for _, vs := range r.Header {
			n += len(vs)
		}
		if n > MaxHeaderCount {
			refuse(w, http.StatusRequestHeaderFieldsTooLarge)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, status int) {
	w.Header().Set("Connection", "close")
	http.Error(w, http.StatusText(status), status)
}
