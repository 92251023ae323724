package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
)

// AppSpec describes one app folder.
type AppSpec struct {
	// Name identifies the app in logs and metrics (the folder name).
	Name string
	// Dir is the host folder whose files the guest sees read-only at /app.
	Dir string
	// Entrypoint is "module", "module:callable" or a file "name.wsgi[:callable]"
	// relative to Dir. Without a callable the shim looks for `application`, then `app`.
	Entrypoint string
	// Limits bound each request.
	Limits Limits
	// Env is the guest's whole environment ("KEY=value"); nothing comes from the host.
	Env []string
	// Validate wraps the app in wsgiref.validate inside the sandbox: every PEP 3333
	// violation by the app (or the server) fails the request and is logged.
	Validate bool
	// MaxFileBytes caps how many bytes of app files are loaded into memory.
	MaxFileBytes int64
	// DataDir, when set, is a host folder the guest sees read-write at /data, shared
	// by the app's instances under a write lock (datadir.go).
	DataDir string
}

// State is where an app is in its life.
type State string

// App states.
const (
	StateLoading State = "loading"
	StateReady   State = "ready"
	StateFailed  State = "failed"
)

// App is a loaded WSGI app: its files in memory and its load state.
type App struct {
	Spec   AppSpec
	engine *Engine
	log    *slog.Logger

	files *MemFS
	info  []byte
	gate  *gate

	mu      sync.RWMutex
	state   State
	loadErr string
	snap    *Snapshot // the app right after import; nil before Load or without memfd
	// cachePath is where the snapshot is cached on disk ("" when it is not).
	cachePath string
}

// NewApp returns an app in the loading state; call Load before Serve.
func (e *Engine) NewApp(spec AppSpec) *App {
	return &App{
		Spec:   spec,
		engine: e,
		log:    e.log.With("app", spec.Name),
		state:  StateLoading,
		gate:   newGate(spec.Limits.Concurrency, spec.Limits.Queue),
	}
}

// Status returns the app's state and, when it failed, why (with the Python traceback).
func (a *App) Status() (State, string) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.state, a.loadErr
}

func (a *App) setStatus(s State, why string) {
	a.mu.Lock()
	a.state, a.loadErr = s, why
	a.mu.Unlock()
}

// Load copies the app's files into memory and imports the app once in a fresh instance
// to prove it loads. A failure leaves the app in StateFailed with the reason (the Python
// traceback for an import error) and is also returned.
func (a *App) Load(ctx context.Context) error {
	err := a.load(ctx)
	if err != nil {
		a.setStatus(StateFailed, err.Error())
		a.log.Error("app failed to load", "dir", a.Spec.Dir, "error", err.Error())
		return err
	}
	a.setStatus(StateReady, "")
	return nil
}

func (a *App) load(ctx context.Context) error {
	files, skipped, err := MemFSFromDir(a.Spec.Dir, a.Spec.MaxFileBytes)
	if err != nil {
		return fmt.Errorf("app %s: reading %s: %w", a.Spec.Name, a.Spec.Dir, err)
	}
	for _, s := range skipped {
		a.log.Warn("app file skipped: it is not a regular file inside the app folder", "file", s)
	}
	if a.Spec.Entrypoint == "" {
		return fmt.Errorf("app %s: no entrypoint in %s: add app.py or wsgi.py defining `application`, "+
			"a *.wsgi file, or set entrypoint = \"module:callable\" in wasmwsgi.toml", a.Spec.Name, a.Spec.Dir)
	}
	a.files = files
	info := []hostfuncs.Pair{
		{Name: "name", Value: a.Spec.Name},
		{Name: "entrypoint", Value: a.Spec.Entrypoint},
		{Name: "app_dir", Value: GuestApp},
	}
	if st, err := os.Stat(filepath.Join(a.Spec.Dir, "site-packages")); err == nil && st.IsDir() {
		info = append(info, hostfuncs.Pair{Name: "site_packages", Value: GuestApp + "/site-packages"})
	}
	if a.Spec.Validate {
		info = append(info, hostfuncs.Pair{Name: "validate", Value: "1"})
	}
	a.info = hostfuncs.AppendPairs(nil, info)
	a.cachePath = a.snapshotCachePath()
	if a.cachePath != "" && a.loadCachedSnapshot(a.cachePath) {
		a.log.Info("snapshot restored from the cache; the app was not imported again", "file", a.cachePath)
		return nil
	}

	ctx, cancel := context.WithTimeout(ctx, a.Spec.Limits.Timeout)
	defer cancel()
	ex := &exchange{app: a, log: a.log}
	var stderr tail
	code, err := a.run(ctx, ex, &stderr, false)
	if ex.mem.hit {
		return fmt.Errorf("app %s: importing %q needs more than the memory limit of %d bytes (raise limits.memory):\n%s",
			a.Spec.Name, a.Spec.Entrypoint, a.Spec.Limits.Memory, stderr.String())
	}
	switch {
	case err != nil:
		return fmt.Errorf("app %s: starting the interpreter: %s\n%s", a.Spec.Name, describe(err), stderr.String())
	case code != 0:
		return fmt.Errorf("app %s: importing %q failed:\n%s", a.Spec.Name, a.Spec.Entrypoint, stderr.String())
	}
	return nil
}

// disconnectGrace is how long an instance may run on after its client went away.
const disconnectGrace = time.Second

// Request is one HTTP request routed to an app.
type Request struct {
	HTTP *http.Request
	// ScriptName is the app's mount prefix ("" at the root, never "/").
	ScriptName string
	// PathInfo is the percent-decoded path below ScriptName ("" or starting with "/").
	PathInfo string
	// ID is the request id, for the log and the environ.
	ID string
	// Client, Scheme and Host, when set, replace what the connection says: the router
	// sets them from X-Forwarded-* headers sent by a trusted proxy.
	Client, Scheme, Host string
	// Stats, when set, receives what the request cost the sandbox.
	Stats *Stats
}

// Stats is what one request cost: for the access log and the metrics.
type Stats struct {
	// Guest is the wall time of the instance: restore or start, and the app's handling.
	Guest time.Duration
	// PeakMemory is the largest size the instance's linear memory reached, in bytes.
	PeakMemory uint64
}

// Serve runs one request in a fresh instance and writes the response to w. A failure
// before the response headers went out becomes a plain error status with nothing of the
// app's output: 413 body too large, 408 body too slow, 504 time limit, 503 no free
// instance, 500 anything else. A failure after that aborts the connection so the client
// sees a truncated response, never a complete-looking one.
func (a *App) Serve(w http.ResponseWriter, req *Request) {
	if state, _ := a.Status(); state != StateReady {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("app %s is %s", a.Spec.Name, state))
		return
	}
	lim := a.Spec.Limits
	if lim.MaxBody > 0 && req.HTTP.ContentLength > lim.MaxBody {
		a.log.Warn("request refused: limits.max_body", "content_length", req.HTTP.ContentLength, "max_body", lim.MaxBody)
		writeError(w, http.StatusRequestEntityTooLarge, http.StatusText(http.StatusRequestEntityTooLarge))
		return
	}
	release, err := a.admit(req.HTTP.Context())
	if err != nil {
		busy, queued := a.gate.inUse()
		a.log.Warn("request refused: no free instance", "limit", "limits.concurrency", "reason", err.Error(),
			"in_flight", busy, "queued", queued)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, http.StatusText(http.StatusServiceUnavailable))
		return
	}
	defer release()

	// The instance lives until the time limit, not until the client's connection ends:
	// a client that goes away makes body_write fail, and the app still gets to run its
	// close(). The instance is stopped disconnectGrace later at the latest.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.HTTP.Context()), lim.Timeout)
	defer cancel()
	stop := context.AfterFunc(req.HTTP.Context(), func() { time.AfterFunc(disconnectGrace, cancel) })
	defer stop()
	ex := newRequestExchange(a, req, w, ctx)
	defer ex.resetDeadlines()
	code, err := a.run(ctx, ex, nil, true)
	if req.Stats != nil {
		req.Stats.Guest, req.Stats.PeakMemory = ex.guest, ex.mem.peak
	}

	if err == nil && code == 0 && ex.started && !ex.cut {
		return
	}
	status, reason := http.StatusInternalServerError, "the app raised an exception (traceback above)"
	switch {
	case ex.cut:
		reason = fmt.Sprintf("response larger than limits.max_response (%d bytes): stream cut", lim.MaxResponse)
	case ex.mem.hit:
		reason = fmt.Sprintf("memory limit of %d bytes reached (limits.memory)", lim.Memory)
	case ex.bodyTooLarge:
		status, reason = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than limits.max_body (%d bytes)", lim.MaxBody)
	case ex.bodyTimeout:
		status, reason = http.StatusRequestTimeout, "the client sent its body too slowly"
	case ex.bodyErr != nil:
		status, reason = http.StatusBadRequest, "malformed request body: "+ex.bodyErr.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		status, reason = http.StatusGatewayTimeout, fmt.Sprintf("time limit of %s exceeded (limits.timeout)", lim.Timeout)
	case err != nil:
		reason = describe(err)
	case !ex.started && code == 0:
		reason = "the app returned without calling start_response"
	}
	if ex.started {
		a.log.Error("request aborted after the response started", "reason", reason, "path", req.HTTP.URL.Path)
		panic(http.ErrAbortHandler)
	}
	a.log.Error("request failed", "status", status, "reason", reason, "path", req.HTTP.URL.Path)
	// The connection's deadlines were the request's; give the error response its own.
	_ = ex.rc.SetWriteDeadline(time.Now().Add(errorWriteTimeout))
	writeError(w, status, http.StatusText(status))
}

// errorWriteTimeout bounds writing an error response after the request's deadline.
const errorWriteTimeout = 5 * time.Second

// admit waits for a free instance slot of the app, then of the server.
func (a *App) admit(ctx context.Context) (release func(), err error) {
	wait := a.Spec.Limits.QueueTimeout
	if err := a.gate.acquire(ctx, wait); err != nil {
		return nil, err
	}
	if err := a.engine.instances.acquire(ctx, wait); err != nil {
		a.gate.release()
		return nil, fmt.Errorf("server-wide instance limit: %w", err)
	}
	return func() { a.engine.instances.release(); a.gate.release() }, nil
}

// InFlight returns the app's running instances and the requests queued for one.
func (a *App) InFlight() (running, queued int) { return a.gate.inUse() }

// run starts an instance and runs the guest. Loading (handle unset), it starts the
// interpreter, imports the app and, when that worked, keeps the app's Snapshot. Serving,
// it restores the snapshot copy-on-write and calls wasmwsgi_handle straight away; an
// app without a snapshot starts the interpreter afresh first. It returns the guest's
// result code (init's when init failed, else handle's); stderr, when set, receives a
// copy of the guest's stderr. The instance and its memory are always released.
func (a *App) run(ctx context.Context, ex *exchange, stderr *tail, handle bool) (int32, error) {
	stdout := newLogWriter(ex.log, "stdout", nil)
	errw := newLogWriter(ex.log, "stderr", stderr)
	defer stdout.Close()
	defer errw.Close()
	lim := a.Spec.Limits
	files := &fileCounter{limit: lim.OpenFiles}
	if files.limit <= 0 {
		files.limit = 1 << 30
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithFSConfig(wazero.NewFSConfig().
			WithFSMount(a.engine.stdlib.limited(files), GuestStdlib).
			WithFSMount(a.files.limited(files), GuestApp).(sysfs.FSConfig).
			WithSysFSMount(NewScratchFS(lim.Scratch), GuestScratch).(sysfs.FSConfig).
			WithSysFSMount(a.dataMount(ctx, files))).
		WithStdout(stdout).
		WithStderr(errw).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(sleepUntil(ctx))
	for _, kv := range a.Spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		cfg = cfg.WithEnv(k, v)
	}

	limit := lim.Memory
	if limit == 0 {
		limit = 4 << 30
	}
	module := a.engine.compiled
	var allocator experimental.MemoryAllocator
	snap := a.snapshot()
	var restored *snapshotMemory
	if handle && snap != nil {
		restored = &snapshotMemory{cappedMemory: cappedMemory{limit: limit}, snap: snap}
		ex.mem, allocator, module = &restored.cappedMemory, restored, a.engine.restorable
	} else {
		ex.mem = &cappedMemory{limit: limit}
		allocator = ex.mem
		cfg = cfg.WithStartFunctions("_initialize")
	}
	// Registered before the module's Close, so it runs after it: the guest is done.
	defer ex.mem.release()
	ctx = experimental.WithMemoryAllocator(hostfuncs.WithExchange(ctx, ex), allocator)

	t0 := time.Now()
	mod, err := a.engine.rt.InstantiateModule(ctx, module, cfg)
	if err != nil {
		return 0, err
	}
	defer mod.Close(context.Background())
	if a.engine.interruptible {
		// The global is written from the goroutine that sees the context end while the
		// guest reads it at its loop heads: a plain store that the next check observes.
		interrupt := mod.ExportedGlobal(InterruptGlobal).(api.MutableGlobal)
		stop := context.AfterFunc(ctx, func() { interrupt.Set(1) })
		defer stop()
	}
	if restored != nil {
		if restored.err != nil {
			return 0, restored.err
		}
		have := uint64(mod.Memory().Size())
		if have < snap.size {
			if _, ok := mod.Memory().Grow(uint32((snap.size - have) / wasmPage)); !ok {
				return 0, fmt.Errorf("growing the restored memory to the snapshot's %d bytes failed", snap.size)
			}
		}
	} else {
		res, err := mod.ExportedFunction("wasmwsgi_init").Call(ctx)
		if err != nil {
			return 0, err
		}
		if res[0] != 0 || !handle {
			if res[0] == 0 {
				a.keepSnapshot(ex.mem)
			}
			return int32(res[0]), nil
		}
	}
	t1 := time.Now()
	res, err := mod.ExportedFunction("wasmwsgi_handle").Call(ctx)
	ex.guest = time.Since(t0)
	ex.log.Debug("instance timings", "restored", restored != nil, "start", t1.Sub(t0),
		"handle", time.Since(t1), "peak_memory", ex.mem.peak)
	if err != nil {
		return 0, err
	}
	return int32(res[0]), nil
}

// keepSnapshot stores the memory of a freshly initialised instance as the app's
// snapshot. Without one (memfd unavailable, say) the app still works: every request
// then starts its interpreter afresh, much more slowly.
func (a *App) keepSnapshot(mem *cappedMemory) {
	snap, err := newSnapshot(a.Spec.Name, mem.mapped[:mem.size])
	if err != nil {
		a.log.Warn("no snapshot: every request will start the interpreter afresh", "error", err.Error())
		return
	}
	a.mu.Lock()
	old := a.snap
	a.snap = snap
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	a.log.Debug("snapshot taken", "bytes", snap.size)
	if a.cachePath != "" {
		a.cacheSnapshot(a.cachePath, mem.mapped[:mem.size])
	}
}

func (a *App) snapshot() *Snapshot {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.snap
}

// sleepUntil returns the guest's sleep (time.sleep, poll_oneoff): a real sleep that ends
// early when ctx ends, so a sleeping guest cannot outlive its deadline.
func sleepUntil(ctx context.Context) func(ns int64) {
	return func(ns int64) {
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// describe turns a wazero call error into words for the log.
func describe(err error) string {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return "time limit exceeded"
		case sys.ExitCodeContextCanceled:
			return "request canceled (client went away)"
		}
		return fmt.Sprintf("the guest exited with code %d", exit.ExitCode())
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i > 0 {
		msg = msg[:i] // drop wazero's wasm stack trace
	}
	return "the guest trapped: " + msg
}

// writeError sends a short plain-text error that closes the connection.
func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", fmt.Sprint(len(msg)+1))
	h.Set("Connection", "close")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// Fail puts the app in the failed state without loading it (its settings are unusable).
func (a *App) Fail(err error) {
	a.setStatus(StateFailed, err.Error())
	a.log.Error("app failed to load", "dir", a.Spec.Dir, "error", err.Error())
}
