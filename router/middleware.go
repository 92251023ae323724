package router

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

type logEntryKey struct{}

// logEntry collects what handlers further in learn about a request (the app it went
// to) for the access log line.
type logEntry struct{ app string }

func setLogApp(ctx context.Context, app string) {
	if e, ok := ctx.Value(logEntryKey{}).(*logEntry); ok {
		e.app = app
	}
}

// accessLog writes one line per request: request id, app, method, path, status, bytes
// and duration.
func accessLog(log *slog.Logger) func(http.Handler) http.Handler {
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
				if aborted != nil {
					status = 0 // connection aborted mid-response
				}
				log.Info("request",
					"request_id", middleware.GetReqID(r.Context()),
					"app", entry.app,
					"method", r.Method,
					"path", r.URL.RequestURI(),
					"status", status,
					"bytes", ww.BytesWritten(),
					"duration", time.Since(start).Round(time.Microsecond),
				)
				if aborted != nil {
					panic(aborted)
				}
			}()
			next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), logEntryKey{}, entry)))
		})
	}
}
