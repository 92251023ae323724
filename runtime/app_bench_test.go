package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	return loadAppWith(tb, e, dir, IsolationRequest)
}

func loadAppWith(tb testing.TB, e *Engine, dir string, iso Isolation) *App {
	tb.Helper()
	a := e.NewApp(AppSpec{Name: filepath.Base(dir), Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 30,
		Isolation: iso, MaxRequests: 1000,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 4, QueueTimeout: time.Second, OpenFiles: 64}})
	if err := a.Load(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.pool.drain)
	return a
}

func serveOnce(tb testing.TB, a *App, target string) *httptest.ResponseRecorder {
	return serveAt(tb, a, target, "/hello", "/")
}

// serveAt serves a GET of target, mounted at scriptName with pathInfo below it, and
// fails unless the answer is 200.
func serveAt(tb testing.TB, a *App, target, scriptName, pathInfo string) *httptest.ResponseRecorder {
	tb.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	w := httptest.NewRecorder()
	a.Serve(w, &Request{HTTP: r, ScriptName: scriptName, PathInfo: pathInfo})
	if w.Code != http.StatusOK {
		tb.Fatalf("status %d: %s", w.Code, w.Body)
	}
	return w
}

// benchApps are the example apps the benchmarks run: hello, and flask once `make
// vendor-apps` has filled its site-packages.
func benchApps(b *testing.B) []string {
	if _, err := os.Stat("../apps/flask/site-packages"); err != nil {
		b.Log("skipping flask: run make vendor-apps")
		return []string{"hello"}
	}
	return []string{"hello", "flask"}
}

// benchPath is the page each benchmark requests, the one make bench's wrk runs use,
// and benchWarmup the warm-up paths of the app's wasmwsgi.toml.
var (
	benchPath   = map[string]string{"hello": "/", "flask": "/hello"}
	benchWarmup = map[string][]string{"hello": {"/"}, "flask": {"/", "/hello"}}
)

// serveBench serves the app's benchmark page.
func serveBench(tb testing.TB, a *App, app string) {
	serveAt(tb, a, "/"+app+benchPath[app], "/"+app, benchPath[app])
}

// BenchmarkServe measures one request through the runtime, without HTTP: take an
// instance from the pool (or restore one from the snapshot), call the app, and put the
// instance back -- in request isolation after restoring its memory to the snapshot.
// The apps are loaded with the warm-up of their wasmwsgi.toml.
func BenchmarkServe(b *testing.B) {
	e := newTestEngine(b)
	for _, app := range benchApps(b) {
		for _, iso := range []Isolation{IsolationRequest, IsolationInstance} {
			b.Run(app+"/"+string(iso), func(b *testing.B) {
				a := e.NewApp(AppSpec{Name: app, Dir: "../apps/" + app, Entrypoint: "app", MaxFileBytes: 1 << 30,
					Isolation: iso, MaxRequests: 1000, Prewarm: 1, Warmup: benchWarmup[app],
					Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 4, QueueTimeout: time.Second, OpenFiles: 64}})
				if err := a.Load(context.Background()); err != nil {
					b.Fatal(err)
				}
				defer a.pool.drain()
				serveBench(b, a, app)
				for b.Loop() {
					serveBench(b, a, app)
				}
			})
		}
	}
}

// BenchmarkRestore measures putting a used instance back to the app's snapshot after a
// request (the pagemap scan and the copy of the pages the request wrote) and reports
// the median restore time and the pages restored per request.
func BenchmarkRestore(b *testing.B) {
	e := newTestEngine(b)
	for _, app := range benchApps(b) {
		dir := "../apps/" + app
		for _, warm := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/warmup=%v", app, warm), func(b *testing.B) {
				a := e.NewApp(AppSpec{Name: app, Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 30, Prewarm: 1,
					Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 4, QueueTimeout: time.Second, OpenFiles: 64}})
				if warm {
					a.Spec.Warmup = benchWarmup[app]
				}
				if err := a.Load(context.Background()); err != nil {
					b.Fatal(err)
				}
				defer a.pool.drain()
				serveBench(b, a, app)
				var took []time.Duration
				var pages []int
				for b.Loop() {
					serveBench(b, a, app)
					inst := a.pool.take()
					if inst == nil {
						b.Fatal("the instance did not go back to the pool")
					}
					took, pages = append(took, inst.lastRestore), append(pages, inst.lastDirty)
					a.pool.put(inst)
				}
				slices.Sort(took)
				slices.Sort(pages)
				b.ReportMetric(float64(took[len(took)/2].Microseconds()), "restore-µs")
				b.ReportMetric(float64(pages[len(pages)/2]), "pages")
			})
		}
	}
}

// BenchmarkColdStart measures an app from nothing to its first response: "new" imports
// the app (a name never seen, so no cached snapshot), "cached" restores the snapshot a
// previous load wrote to the cache, as a restart does. Compiling python.wasm is not
// included (BenchmarkEngineStart).
func BenchmarkColdStart(b *testing.B) {
	e := newTestEngine(b)
	// A restart is a new process: no closed instance left a spare memory.
	e.spares = nil
	for _, app := range benchApps(b) {
		dir := "../apps/" + app
		spec := func(name string) AppSpec {
			return AppSpec{Name: name, Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 30,
				Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 4, QueueTimeout: time.Second, OpenFiles: 64}}
		}
		first := func(b *testing.B, a *App) {
			if err := a.Load(context.Background()); err != nil {
				b.Fatal(err)
			}
			serveOnce(b, a, "/hello/")
			a.pool.drain()
		}
		b.Run(app+"/new", func(b *testing.B) {
			run := fmt.Sprintf("%s-cold-%d", app, time.Now().UnixNano())
			i := 0
			for b.Loop() {
				i++
				a := e.NewApp(spec(fmt.Sprintf("%s-%d", run, i)))
				first(b, a)
				os.Remove(a.cachePath)
			}
		})
		b.Run(app+"/cached", func(b *testing.B) {
			name := app + "-restart"
			first(b, e.NewApp(spec(name)))
			for b.Loop() {
				first(b, e.NewApp(spec(name)))
			}
		})
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

// BenchmarkEngineStartCold measures an engine's start with an empty cache folder, up to
// python.wasm compiled (Engine.Compiled): reading and instrumenting it, and wazero's
// compile with one worker per CPU, as a first start or a new release pays it.
func BenchmarkEngineStartCold(b *testing.B) {
	for b.Loop() {
		e, err := NewEngine(context.Background(), EngineConfig{
			CacheDir: b.TempDir(),
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if errors.Is(err, pythonwasm.ErrNotBuilt) {
			b.Skip("python.wasm is not built; run make build")
		}
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Compiled(); err != nil {
			b.Fatal(err)
		}
		e.Close(context.Background())
	}
}

func TestServeHelloDirect(t *testing.T) {
	a := loadApp(t, newTestEngine(t), "../apps/hello")
	w := serveOnce(t, a, "/hello/?name=bench")
	got := w.Body.String()
	if !strings.HasPrefix(got, "Hello, bench! (CPython 3.11.2 on wasi)\n") || !strings.Contains(got, "/hello/info ") {
		t.Errorf("body %q", got)
	}
}

// BenchmarkNewInstance measures making an instance from an app's snapshot and closing
// it, without running it: what a request to an app that holds no idle instance pays
// before the app runs (wazero's instantiation, the memory mapped and the files and
// sockets set up).
func BenchmarkNewInstance(b *testing.B) {
	e := newTestEngine(b)
	a := loadApp(b, e, "../apps/hello")
	snap := a.snapshot()
	ctx := context.Background()
	for b.Loop() {
		inst, err := a.newInstance(ctx, snap, nil, ctx)
		if err != nil {
			b.Fatal(err)
		}
		inst.close()
	}
}

// BenchmarkFirstRequest measures a request to an app that holds no idle instance, as
// an idle tenant's first request is: an instance made from the snapshot on disk, the
// request, and the instance's memory restored. The snapshot's pages are in the page
// cache and its hot page set is learned first. "spare" makes the instance over the
// memory of the one closed before it (memimage.Spares), as a server does once it has
// closed any instance over the same file; "mapped" maps the snapshot afresh, as for
// the first instance.
func BenchmarkFirstRequest(b *testing.B) {
	e := newTestEngine(b)
	spares := e.spares
	for _, app := range benchApps(b) {
		for _, mode := range []string{"spare", "mapped"} {
			b.Run(app+"/"+mode, func(b *testing.B) {
				e.spares = spares
				if mode == "mapped" {
					e.spares = nil
				}
				defer func() { e.spares = spares }()
				a := e.NewApp(AppSpec{Name: app + "-first", Dir: "../apps/" + app, Entrypoint: "app", MaxFileBytes: 1 << 30,
					Warmup: benchWarmup[app],
					Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 4, Queue: 4, QueueTimeout: time.Second, OpenFiles: 64}})
				if err := a.Load(context.Background()); err != nil {
					b.Fatal(err)
				}
				defer a.pool.drain()
				for range 3 {
					serveBench(b, a, app)
				}
				for b.Loop() {
					a.pool.drain()
					serveBench(b, a, app)
				}
			})
		}
	}
}
