package runtime

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	pythonwasm "github.com/wasmwsgi/wasmwsgi/python-wasm"
)

func newTestEngine(tb testing.TB) *Engine {
	tb.Helper()
	e, err := NewEngine(context.Background(), EngineConfig{
		CacheDir: filepath.Join(os.TempDir(), "wasmwsgi-test-cache", "wasmwsgi"),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if errors.Is(err, pythonwasm.ErrNotBuilt) {
		tb.Skip("python.wasm is not built; run make build")
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func loadApp(tb testing.TB, e *Engine, dir string) *App {
	tb.Helper()
	a := e.NewApp(AppSpec{Name: filepath.Base(dir), Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 30,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 4, QueueTimeout: time.Second, OpenFiles: 64}})
	if err := a.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return a
}

func serveOnce(tb testing.TB, a *App, target string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	w := httptest.NewRecorder()
	a.Serve(w, &Request{HTTP: r, ScriptName: "/hello", PathInfo: "/"})
	if w.Code != http.StatusOK {
		tb.Fatalf("status %d: %s", w.Code, w.Body)
	}
	return w
}

// BenchmarkServeHello measures one request to apps/hello through the runtime, without
// HTTP: instantiate python.wasm, start the interpreter, import the app, call it.
func BenchmarkServeHello(b *testing.B) {
	a := loadApp(b, newTestEngine(b), "../apps/hello")
	b.ResetTimer()
	for b.Loop() {
		serveOnce(b, a, "/hello/")
	}
}

// BenchmarkEngineStart measures compiling python.wasm with a warm compilation cache and
// loading the stdlib: the fixed part of a process start.
func BenchmarkEngineStart(b *testing.B) {
	newTestEngine(b) // warms the cache
	for b.Loop() {
		e := newTestEngine(b)
		e.Close(context.Background())
	}
}

func TestServeHelloDirect(t *testing.T) {
	a := loadApp(t, newTestEngine(t), "../apps/hello")
	w := serveOnce(t, a, "/hello/?name=bench")
	if got := w.Body.String(); got != "Hello, bench! (CPython 3.11.2 on wasi)\n" {
		t.Errorf("body %q", got)
	}
}
