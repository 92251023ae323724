package runtime

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// logWriter turns a guest's stdout or stderr into log records, one per line, tagged
// with the app (and request id) carried by log. Output never reaches the response.
// A line longer than maxLine is split.
type logWriter struct {
	mu     sync.Mutex
	log    *slog.Logger
	stream string
	buf    []byte
	copyTo *tail
}

const maxLine = 16 << 10

func newLogWriter(log *slog.Logger, stream string, copyTo *tail) *logWriter {
	return &logWriter{log: log, stream: stream, copyTo: copyTo}
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.copyTo != nil {
		w.copyTo.Write(p)
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 && len(w.buf) < maxLine {
			break
		}
		if i < 0 {
			i = maxLine
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[min(i+1, len(w.buf)):]
	}
	return len(p), nil
}

// Close logs a final unterminated line.
func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	return nil
}

func (w *logWriter) emit(line []byte) {
	w.log.Log(context.Background(), slog.LevelInfo, string(line), "stream", w.stream)
}

// tail keeps the last tailSize bytes written to it: enough for a Python traceback in a
// load error, bounded whatever the guest prints.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 32 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
