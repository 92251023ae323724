// Command wazerohost runs one GET request through python.wasm in a bare wazero runtime:
// the hostfuncs ABI and WASI, but none of runtime/'s rewrites (no loop checks, no
// snapshot) and the runtime configuration chosen by flags. The micro-suite uses it to
// separate the cost of wazero's compiler from the cost of wasmwsgi's sandboxing.
//
//	wazerohost -wasm python.wasm -stdlib DIR -app DIR [-query q] [-cache-dir DIR] [-close-on-context-done]
//
// -stdlib is stdlib.zip extracted, with _wasmwsgi_shim.py added; it and the app folder
// are mounted where runtime/ mounts them. The response body goes to stdout; the exit
// status is 0 for a 2xx answer.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
	"github.com/wasmwsgi/wasmwsgi/internal/guardpages"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// request is the Exchange of the one request: an empty GET body, the response kept in
// memory.
type request struct {
	info, environ []byte
	status        *hostfuncs.Status
	body          []byte
}

func (r *request) AppInfo() []byte { return r.info }
func (r *request) Environ() []byte { return r.environ }

func (r *request) ReadInput([]byte) (int, error) { return 0, io.EOF }

func (r *request) StartResponse(s hostfuncs.Status, _ []hostfuncs.Pair) error {
	if r.status != nil {
		return hostfuncs.ErrOutOfOrder
	}
	r.status = &s
	return nil
}

func (r *request) WriteBody(p []byte) (int, error) {
	r.body = append(r.body, p...)
	return len(p), nil
}

func (r *request) Log(level hostfuncs.Level, msg []byte) {
	fmt.Fprintf(os.Stderr, "guest log [%d]: %s\n", level, msg)
}

func (r *request) Fault(function string, err error) {
	fmt.Fprintf(os.Stderr, "guest called %s wrongly: %v\n", function, err)
}

func main() {
	wasmPath := flag.String("wasm", "", "python.wasm to run (required)")
	stdlib := flag.String("stdlib", "", "folder holding stdlib.zip extracted and _wasmwsgi_shim.py (required)")
	app := flag.String("app", "", "app folder; its app.py must define `application` (required)")
	query := flag.String("query", "", "QUERY_STRING of the request")
	cacheDir := flag.String("cache-dir", "", "wazero compilation cache folder (default: none, compile every time)")
	closeOnDone := flag.Bool("close-on-context-done", false, "wazero's WithCloseOnContextDone (a check at every loop head)")
	guardPages := flag.Bool("guard-pages", false, "compile for guard pages instead of bounds checks (experimental.WithGuardPages: linux/amd64, wazero-patches 0008 and later, not built with -tags wazero_released)")
	flag.Parse()
	if *wasmPath == "" || *stdlib == "" || *app == "" {
		fmt.Fprintln(os.Stderr, "wazerohost: -wasm, -stdlib and -app are required")
		flag.Usage()
		os.Exit(2)
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(*closeOnDone)
	if *cacheDir != "" {
		// One folder per wazero build: released and patched wazero compile differently.
		cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(*cacheDir, runtime.WazeroBuild()))
		if err != nil {
			fmt.Fprintf(os.Stderr, "wazerohost: -cache-dir %s: %v (pass a writable folder)\n", *cacheDir, err)
			os.Exit(2)
		}
		rc = rc.WithCompilationCache(cache)
	}
	ctx := context.Background()
	if *guardPages {
		if !guardpages.Supported() {
			fmt.Fprintln(os.Stderr, "wazerohost: -guard-pages: this build or platform has no guard pages")
			os.Exit(2)
		}
		ctx = guardpages.With(ctx)
	}
	code, err := run(ctx, rc, *wasmPath, *stdlib, *app, *query, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wazerohost: %v\n", err)
	}
	os.Exit(code)
}

// run serves one GET request with query to the app and writes the response body to
// stdout. It returns the exit status: 0 for a 2xx answer, 1 when the app failed or
// answered otherwise, 2 when python.wasm could not be started.
func run(ctx context.Context, rc wazero.RuntimeConfig, wasmPath, stdlib, app, query string, stdout io.Writer) (int, error) {
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		return 2, err
	}
	req := &request{
		info: runtime.AppSpec{Name: "micro", Dir: app, Entrypoint: "app"}.AppInfo().Encode(),
		environ: hostfuncs.AppendPairs(nil, []hostfuncs.Pair{
			{Name: "REQUEST_METHOD", Value: "GET"},
			{Name: "SCRIPT_NAME", Value: ""},
			{Name: "PATH_INFO", Value: "/"},
			{Name: "QUERY_STRING", Value: query},
			{Name: "SERVER_NAME", Value: "localhost"},
			{Name: "SERVER_PORT", Value: "80"},
			{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
			{Name: "REMOTE_ADDR", Value: "127.0.0.1"},
			{Name: "wsgi.url_scheme", Value: "http"},
		}),
	}
	ctx = hostfuncs.WithExchange(ctx, req)

	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if _, err := hostfuncs.Instantiate(ctx, rt); err != nil {
		return 2, err
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return 2, fmt.Errorf("compile %s: %w", wasmPath, err)
	}
	scratch, err := os.MkdirTemp("", "wazerohost-")
	if err != nil {
		return 2, err
	}
	defer os.RemoveAll(scratch)
	cfg := wazero.NewModuleConfig().
		WithStartFunctions("_initialize").
		WithFSConfig(wazero.NewFSConfig().
			WithReadOnlyDirMount(stdlib, runtime.GuestStdlib).
			WithReadOnlyDirMount(app, runtime.GuestApp).
			WithDirMount(scratch, runtime.GuestScratch)).
		WithStdout(os.Stderr).
		WithStderr(os.Stderr).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep()
	mod, err := rt.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		return 2, fmt.Errorf("instantiate: %w", err)
	}
	defer mod.Close(ctx)
	res, err := mod.ExportedFunction("wasmwsgi_init").Call(ctx)
	if err != nil {
		return 1, fmt.Errorf("wasmwsgi_init: %w", err)
	}
	if res[0] != 0 {
		return 1, fmt.Errorf("wasmwsgi_init returned %d (1: the app failed to load, 3: the interpreter failed)", res[0])
	}
	res, err = mod.ExportedFunction("wasmwsgi_handle").Call(ctx)
	if err != nil {
		return 1, fmt.Errorf("wasmwsgi_handle: %w", err)
	}
	if _, err := stdout.Write(req.body); err != nil {
		return 1, err
	}
	switch {
	case res[0] != 0:
		return 1, fmt.Errorf("wasmwsgi_handle returned %d", res[0])
	case req.status == nil:
		return 1, errors.New("the app sent no response")
	case req.status.Code/100 != 2:
		return 1, fmt.Errorf("the app answered %s", req.status)
	}
	return 0, nil
}
