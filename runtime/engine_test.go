package runtime

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pythonwasm "github.com/wasmwsgi/wasmwsgi/python-wasm"
)

// TestEngineRewritesPythonWasm checks that python.wasm as built takes both rewrites:
// the loop checks (without them the engine falls back to wazero's slower context
// checks, and says so only in the log) and the data segments split.
func TestEngineRewritesPythonWasm(t *testing.T) {
	e := newTestEngine(t)
	if !e.interruptible {
		t.Error("python.wasm was not instrumented with loop checks")
	}
	if len(e.data) == 0 {
		t.Error("python.wasm has no data segments for fresh instances")
	}
}

// markerApp answers with the GUEST_MARKER of the shim that runs it, if it has one.
const markerApp = `
import _wasmwsgi_shim

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [getattr(_wasmwsgi_shim, "GUEST_MARKER", "embedded").encode()]
`

// TestEngineGuest hands the engine its guest: the embedded one by default, or another
// build, whose shim then is the one the app runs under.
func TestEngineGuest(t *testing.T) {
	embedded, err := EmbeddedGuest()
	if errors.Is(err, pythonwasm.ErrNotBuilt) {
		t.Skip("python.wasm is not built; run make build")
	}
	if err != nil {
		t.Fatal(err)
	}
	withShim := *embedded
	withShim.Shim = append(bytes.Clone(embedded.Shim), "\nGUEST_MARKER = 'handed in'\n"...)
	badWasm, badStdlib, emptyWasm := *embedded, *embedded, *embedded
	badWasm.Wasm = []byte("not wasm")
	// A module with a memory and one data segment, exporting nothing.
	emptyWasm.Wasm = []byte("\x00asm\x01\x00\x00\x00" + "\x05\x03\x01\x00\x01" + "\x0b\x07\x01\x00\x41\x00\x0b\x01x")
	badStdlib.Stdlib = []byte("not a zip")

	dir := filepath.Join(t.TempDir(), "marker")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(markerApp), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		guest    *Guest
		wantBody string
		wantErr  string
		// wantCompileErr is the error of the compile NewEngine starts, which the
		// app's load then fails with.
		wantCompileErr string
	}{
		{name: "nil is the embedded guest", guest: nil, wantBody: "embedded"},
		{name: "the embedded guest handed in", guest: embedded, wantBody: "embedded"},
		{name: "another shim", guest: &withShim, wantBody: "handed in"},
		{name: "python.wasm that is not a module", guest: &badWasm, wantErr: "python.wasm: not a wasm module"},
		{name: "a stdlib that is not a zip", guest: &badStdlib, wantErr: "stdlib bundle"},
		{name: "python.wasm that exports nothing", guest: &emptyWasm, wantCompileErr: "python.wasm exports no memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine(context.Background(), EngineConfig{
				CacheDir: filepath.Join(os.TempDir(), "wasmwsgi-test-cache", "wasmwsgi"),
				Logger:   slog.New(slog.DiscardHandler),
				Guest:    tc.guest,
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("NewEngine: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close(context.Background())
			if tc.wantCompileErr != "" {
				if err := e.Compiled(); err == nil || !strings.Contains(err.Error(), tc.wantCompileErr) {
					t.Fatalf("Compiled: %v, want an error containing %q", err, tc.wantCompileErr)
				}
				a := e.NewApp(AppSpec{Name: "marker", Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 20,
					Limits: Limits{Timeout: time.Second, Memory: 64 << 20, Concurrency: 1, Queue: 1, QueueTimeout: time.Second, OpenFiles: 64}})
				if err := a.Load(context.Background()); err == nil || !strings.Contains(err.Error(), tc.wantCompileErr) {
					t.Errorf("Load: %v, want an error containing %q", err, tc.wantCompileErr)
				}
				return
			}
			a := loadApp(t, e, dir)
			if got := serveOnce(t, a, "/marker/").Body.String(); got != tc.wantBody {
				t.Errorf("the app runs under the shim %q, want %q", got, tc.wantBody)
			}
		})
	}
}
