package runtime

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/hostfuncs"
	"github.com/wasmwsgi/wasmwsgi/runtime/guestfs"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/wasmbin"
)

// AppSpec describes one app folder.
type AppSpec struct {
	// Name identifies the app in logs and metrics (the folder name).
	Name string
	// Dir is the host folder whose files the guest sees read-only at /app.
	Dir string
	// Entrypoint is "module", "module:callable" (a dotted path), "module:factory()"
	// (with literal arguments), or a file "name.wsgi[:callable]" relative to Dir.
	// Without a callable the shim looks for `application`, `app`, then calls
	// `create_app()` or `make_app()`.
	Entrypoint string
	// DjangoSettings is the settings module a Django project's manage.py names; with
	// no Entrypoint the shim loads the project's WSGI_APPLICATION, as runserver does.
	DjangoSettings string
	// Limits bound each request.
	Limits Limits
	// Env is the guest's whole environment ("KEY=value"); nothing comes from the host.
	Env []string
	// Validate wraps the app in wsgiref.validate inside the sandbox: every PEP 3333
	// violation by the app (or the server) fails the request and is logged.
	Validate bool
	// ServerTiming adds a Server-Timing header (guest time, peak memory) to responses.
	ServerTiming bool
	// MaxFileBytes caps how many bytes of app files are loaded into memory.
	MaxFileBytes int64
	// DataDir, when set, is a host folder the guest sees read-write at /data, shared
	// by the app's instances under a write lock (package guestfs, datadir.go).
	DataDir string
	// Isolation is IsolationRequest (the default when empty) or IsolationInstance.
	Isolation Isolation
	// MaxRequests bounds, in instance isolation, how many requests one instance
	// serves; each instance draws its own bound from [MaxRequests/2, MaxRequests].
	// 0 means no bound.
	MaxRequests int
	// IdleAfter is how long the app may go without a request before it keeps no
	// instance, the pre-warmed ones included; its next request restores one from the
	// snapshot. 0 keeps Prewarm instances for as long as the app is loaded.
	IdleAfter time.Duration
	// Prewarm is how many restored instances wait in the pool once the app is loaded
	// (and survive idle trimming).
	Prewarm int
	// Outbound are the destinations the guest may connect to (none when nil),
	// OutboundLimits bound each request's connections, and CAFile adds trusted
	// certificates for TLS to the system's (package egress).
	Outbound       []egress.Rule
	OutboundLimits egress.Limits
	CAFile         string
	// Warmup are paths requested with GET, in order and each WarmupRounds times,
	// after the import and before the snapshot is taken: whatever they leave in
	// memory (caches filled, bytecode specialised by the interpreter) is in every
	// request's starting state.
	Warmup []string
	// AutoWarmup, for an app without Warmup paths and without a data folder, requests
	// GET / before the snapshot as Warmup would, with no network, and keeps the result
	// only when the app answered below 500 and the same on the first and last rounds;
	// otherwise the snapshot is taken without it and the log says why.
	AutoWarmup bool
	// ShareSnapshot lets the app's cached snapshot share its pages with the snapshots
	// of byte-identical copies of the app (same files, settings and environment): the
	// snapshot's hash secret then comes from those inputs and a key of the server's,
	// the same for every such copy, instead of from fresh entropy (docs/design.md,
	// "Shared snapshot pages").
	ShareSnapshot bool
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

	// files, info and the keys are read once, by Fingerprint or Load (readFiles), and
	// then fixed: key is the snapshot's (snapshotKey), copiesKey the share key
	// (shareKey).
	files     *guestfs.MemFS
	skipped   []string
	info      []byte
	key       string
	copiesKey string
	gate      *gate
	pool      pool

	events Events
	net    outbound // what its instances' outbound sessions share

	mu      sync.RWMutex
	state   State
	loadErr string
	// snap is the app's snapshot (docs/design.md, "What a snapshot holds"); nil before
	// Load or without one.
	snap *memimage.Image
	// cachePath is where the snapshot is cached on disk ("" when it is not).
	cachePath string
	// hotMu orders the writes of the snapshot's hot page set (keepHotPages).
	hotMu sync.Mutex
	// data is the app's data folder from its load until it fails or is closed; nil
	// without one (datadir.go).
	data atomic.Pointer[guestfs.DataDir]
}

// NewApp returns an app in the loading state; call Load before Serve.
func (e *Engine) NewApp(spec AppSpec) *App {
	if spec.Isolation == "" {
		spec.Isolation = IsolationRequest
	}
	return &App{
		Spec:   spec,
		engine: e,
		log:    e.log.With("app", spec.Name),
		state:  StateLoading,
		gate:   newGate(spec.Limits.Concurrency, spec.Limits.Queue),
		pool:   pool{max: max(spec.Limits.Concurrency, 1), keep: spec.Prewarm, emptyAfter: spec.IdleAfter, shared: e.idle, spares: e.spares},
	}
}

// Status returns the app's state and, when it failed, why (with the Python traceback).
func (a *App) Status() (State, string) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.state, a.loadErr
}

// Files returns the app's files as its instances see them at /app (read-only, in
// memory), once the app is ready; nil before, and for a failed app.
func (a *App) Files() *guestfs.MemFS {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.state != StateReady {
		return nil
	}
	return a.files
}

func (a *App) setStatus(s State, why string) {
	a.mu.Lock()
	a.state, a.loadErr = s, why
	a.mu.Unlock()
}

// Load opens the app's data folder if it has one, copies the app's files into memory
// and imports the app once in a fresh instance to prove it loads. A failure leaves the
// app in StateFailed with the reason (the Python traceback for an import error), its
// data folder released, and is also returned.
func (a *App) Load(ctx context.Context) error {
	err := a.load(ctx)
	if err != nil {
		a.releaseDataDir()
		a.setStatus(StateFailed, err.Error())
		a.log.Error("app failed to load", "dir", a.Spec.Dir, "error", err.Error())
		return err
	}
	a.setStatus(StateReady, "")
	go a.prewarm(a.Spec.Prewarm)
	return nil
}

func (a *App) load(ctx context.Context) error {
	if err := a.openDataDir(); err != nil {
		return err
	}
	if err := a.readFiles(); err != nil {
		return err
	}
	a.warnSkipped()
	return a.importOrRestore(ctx)
}

// readFiles copies the app's files into memory and builds its app_info, once: the part
// of a load that Fingerprint does first to tell whether the app changed.
func (a *App) readFiles() error {
	if err := a.readTree(); err != nil {
		return err
	}
	if a.Spec.Entrypoint == "" && a.Spec.DjangoSettings == "" {
		return fmt.Errorf("app %s: no entrypoint in %s: add app.py or wsgi.py defining `application`, "+
			"a *.wsgi file, or set entrypoint = \"module:callable\" in wasmwsgi.toml", a.Spec.Name, a.Spec.Dir)
	}
	a.info = a.Spec.AppInfo().Encode()
	return nil
}

// readTree copies the app's folder into memory, the tree its instances see at /app,
// unless it already did.
func (a *App) readTree() error {
	if a.files != nil {
		return nil
	}
	index := a.fileIndexPath()
	var known *guestfs.FileIndex
	if index != "" {
		known = guestfs.ReadFileIndex(index)
	}
	files, skipped, err := guestfs.MemFSFromDir(a.Spec.Dir, a.Spec.MaxFileBytes, GuestCacheTag, known)
	if err != nil {
		return fmt.Errorf("app %s: reading %s: %w", a.Spec.Name, a.Spec.Dir, err)
	}
	a.files, a.skipped = files, skipped
	if index != "" && files.Index() != known {
		if err := guestfs.WriteFileIndex(index, files.Index()); err != nil {
			a.log.Warn("cannot keep the index of the app's files; the next start reads them all", "error", err.Error())
		}
		// The index's earlier format (JSON), which no start reads any more.
		os.Remove(strings.TrimSuffix(index, ".index") + ".json")
	}
	// The next read of the folder takes the index from the cache: the tree, held for
	// as long as the app runs, need not carry it.
	files.ForgetIndex()
	return nil
}

// Known reports whether an earlier load of the app's folder, with this cache, left the
// index of its files: a load now reads its folder from the index and restores the
// snapshot that load made, unless a file changed since. An app with a data folder is
// never known: it is imported at every load.
func (a *App) Known() bool {
	if a.Spec.DataDir != "" {
		return false
	}
	p := a.fileIndexPath()
	if p == "" {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

// fileIndexPath returns where the index of the app folder's files is kept (see
// guestfs.FileIndex), named after the folder's absolute path; "" without a cache.
func (a *App) fileIndexPath() string {
	if a.engine.indexDir == "" {
		return ""
	}
	dir, err := filepath.Abs(a.Spec.Dir)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(a.engine.indexDir, a.Spec.Name+"-"+hex.EncodeToString(sum[:8])+".index")
}

// warnSkipped logs the files of the app's folder left out of its tree.
func (a *App) warnSkipped() {
	for _, s := range a.skipped {
		a.log.Warn("app file skipped: it is not a regular file inside the app folder", "file", s)
	}
}

// AppInfo returns what app_info tells the guest about the app: its settings and where
// its folder is mounted, with site-packages when Dir has that folder. It leaves out
// the app's name, which only a command line is told.
func (s AppSpec) AppInfo() hostfuncs.AppInfo {
	info := hostfuncs.AppInfo{Entrypoint: s.Entrypoint, DjangoSettings: s.DjangoSettings, AppDir: GuestApp,
		Validate: s.Validate, Isolation: string(s.Isolation)}
	if st, err := os.Stat(filepath.Join(s.Dir, "site-packages")); err == nil && st.IsDir() {
		info.SitePackages = GuestApp + "/site-packages"
	}
	return info
}

// Describe says what the guest loads, as `wasmwsgi check` shows it: the entrypoint as
// written, with the names looked for when it names no callable, or a Django project's
// WSGI_APPLICATION.
func (s AppSpec) Describe() string {
	switch {
	case s.Entrypoint == "" && s.DjangoSettings != "":
		return "WSGI_APPLICATION of " + s.DjangoSettings + " (from manage.py)"
	case !strings.Contains(s.Entrypoint, ":"):
		return s.Entrypoint + " (application, app, create_app() or make_app())"
	}
	return s.Entrypoint
}

// importing names what the guest imports in an error message.
func (s AppSpec) importing() string {
	if s.Entrypoint == "" && s.DjangoSettings != "" {
		return "the " + s.Describe()
	}
	return strconv.Quote(s.Entrypoint)
}

// importOrRestore restores the app's snapshot from the on-disk cache, or imports the app.
func (a *App) importOrRestore(ctx context.Context) error {
	a.cachePath = a.snapshotCachePath()
	if a.cachePath != "" && a.loadCachedSnapshot(a.cachePath) {
		a.log.Info("snapshot restored from the cache; the app was not imported again", "file", a.cachePath)
		a.offerSnapshot()
		return nil
	}

	var once *importOnce
	if sh, ok := a.sharing(); ok {
		o, lead := a.engine.importsOnce.join(sh.key)
		if lead {
			once = o
			defer close(o.done)
		} else {
			select {
			case <-o.done:
			case <-ctx.Done():
				return fmt.Errorf("app %s: the load was cancelled while a copy of the app was imported: %w", a.Spec.Name, ctx.Err())
			}
			if o.path != "" && a.takeSnapshot(o) {
				a.markTakeable()
				a.log.Info("snapshot taken from the import of an identical copy; the app was not imported", "copy", o.from)
				return nil
			}
		}
	}

	select {
	case a.engine.imports <- struct{}{}:
		defer func() { <-a.engine.imports }()
	case <-ctx.Done():
		return fmt.Errorf("app %s: the load was cancelled while it waited to import: %w", a.Spec.Name, ctx.Err())
	}
	auto := a.autoWarmup()
	var stderr tail
	ex := &exchange{app: a, log: a.log, errCopy: &stderr}
	code, err := a.importApp(ctx, ex, &stderr, auto)
	var skipped autoWarmupSkipped
	if errors.As(err, &skipped) {
		a.log.Info("snapshot taken without the automatic warm-up", "reason", string(skipped),
			"hint", "list paths that answer the same every time in warmup = [...] in wasmwsgi.toml, or set warmup = [] to turn it off")
		stderr = tail{}
		ex = &exchange{app: a, log: a.log, errCopy: &stderr}
		code, err = a.importApp(ctx, ex, &stderr, false)
	}
	if ex.mem.LimitHit() {
		return fmt.Errorf("app %s: importing %s needs more than the memory limit of %d bytes (raise limits.memory):\n%s",
			a.Spec.Name, a.Spec.importing(), a.Spec.Limits.Memory, stderr.String())
	}
	var warm warmupError
	switch {
	case errors.As(err, &warm):
		return fmt.Errorf("app %s: %s:\n%s", a.Spec.Name, warm, stderr.String())
	case err != nil:
		return fmt.Errorf("app %s: starting the interpreter: %s\n%s", a.Spec.Name, describe(err), stderr.String())
	case code != 0:
		return fmt.Errorf("app %s: importing %s failed:\n%s", a.Spec.Name, a.Spec.importing(), stderr.String())
	}
	switch {
	case auto && skipped == "":
		a.probeHotPages(ctx, AutoWarmupPath)
	case len(a.Spec.Warmup) > 0:
		a.probeHotPages(ctx, a.Spec.Warmup[0])
	}
	if once != nil {
		why := ownImport(ex)
		if why == "" && !ex.cached {
			why = "its snapshot is not in the cache"
		}
		if why != "" {
			a.log.Debug("copies of the app import for themselves", "reason", why)
		} else if snap := a.snapshot(); snap != nil {
			once.path, once.hot, once.from = a.cachePath, snap.HotPages(), a.Spec.Name
			a.markTakeable()
		}
	}
	return nil
}

// probeHotPages serves the app's first warm-up request once more, on an instance
// restored from the snapshot just taken, so that the snapshot knows the pages requests
// use (memimage.Image.Prefetch) before any real request comes: the first request after
// a restart, or to an app whose pages were evicted, then has them read ahead. The
// request is the warm-up's, with no network, and its answer is dropped; the instance
// is closed, so nothing it did reaches a request.
func (a *App) probeHotPages(ctx context.Context, path string) {
	snap := a.snapshot()
	if snap == nil || a.engine.pagemap == nil || !a.poolable() {
		return
	}
	// The request's limits are an import's: limits.timeout, enforced as for any
	// request through the instance's interrupt (a guest that spins past it is stopped).
	ctx, cancel := context.WithTimeout(ctx, a.Spec.Limits.Timeout)
	defer cancel()
	// A fresh mapping: a spare memory has other guests' pages mapped, and would teach
	// the snapshot nothing.
	inst, err := a.newInstance(ctx, snap, nil, ctx)
	if err != nil {
		return
	}
	defer inst.close()
	if inst.interrupt != nil {
		stop := context.AfterFunc(ctx, func() { inst.interrupt.Set(1) })
		defer stop()
	}
	sockets := egress.NewSession(nil, egress.Config{})
	defer sockets.Close()
	load := &exchange{app: a, log: a.log, errCopy: &tail{}, mem: &inst.mem.Memory}
	if _, err := a.warmupRequest(ctx, inst.mod, load, path, sockets, ""); err != nil {
		a.log.Debug("the request that finds the snapshot's hot pages failed; real requests will", "error", err.Error())
		return
	}
	if inst.mem.Learn(a.engine.pagemap) {
		a.keepHotPages(snap)
	}
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

// Stats is what one request cost, and whether its client left: for the access log and
// the metrics.
type Stats struct {
	// Guest is the wall time of the instance: restore or start, and the app's handling.
	Guest time.Duration
	// PeakMemory is the largest size the instance's linear memory reached, in bytes.
	PeakMemory uint64
	// Outbound is what the request did through its outbound connections.
	Outbound egress.Stats
	// ClientGone is set when the request ended because its client disconnected
	// before it was answered.
	ClientGone bool
}

// Serve runs one request in a fresh instance and writes the response to w. A failure
// before the response headers went out becomes a plain error status with nothing of the
// app's output: 413 body too large, 408 body too slow, 504 time limit, 503 no free
// instance, 500 anything else. A failure after that aborts the connection so the client
// sees a truncated response, never a complete-looking one. A request that failed
// because its client disconnected gets no answer at all (see clientWentAway).
func (a *App) Serve(w http.ResponseWriter, req *Request) {
	if state, _ := a.Status(); state != StateReady {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("app %s is %s", a.Spec.Name, state))
		return
	}
	lim := a.Spec.Limits
	if lim.MaxBody > 0 && req.HTTP.ContentLength > lim.MaxBody {
		a.events.MaxBody.Add(1)
		a.requestLog(req).Warn("request refused: limits.max_body", "content_length", req.HTTP.ContentLength, "max_body", lim.MaxBody)
		writeError(w, http.StatusRequestEntityTooLarge, http.StatusText(http.StatusRequestEntityTooLarge))
		return
	}
	release, err := a.admit(req.HTTP.Context())
	if errors.Is(err, context.Canceled) {
		// admit waits on the request's context: the client left while queued.
		a.clientWentAway(req, false, "it left while the request was queued for an instance")
	}
	if err != nil {
		a.events.Queue.Add(1)
		busy, queued := a.gate.inUse()
		a.requestLog(req).Warn("request refused: no free instance", "limit", "limits.concurrency", "reason", err.Error(),
			"in_flight", busy, "queued", queued)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, http.StatusText(http.StatusServiceUnavailable))
		return
	}
	defer func() {
		release()
		// The goroutines that waited while this request ran go first. A guest yields
		// only when Go asks (at a collection, or after a 10 ms time slice), and
		// without this, requests served back to back kept the others waiting: p99 of
		// 100 ms (docs/design.md, "sched_yield is runtime.Gosched"). After release, so
		// that the instance and the admission are free for them.
		goruntime.Gosched()
	}()

	// The instance lives until the time limit, not until the client's connection ends:
	// a client that goes away makes body_write fail, and the app still gets to run its
	// close(). The instance is stopped disconnectGrace later at the latest.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.HTTP.Context()), lim.Timeout)
	defer cancel()
	stop := context.AfterFunc(req.HTTP.Context(), func() { time.AfterFunc(disconnectGrace, cancel) })
	defer stop()
	ex := newRequestExchange(a, req, w, ctx)
	defer ex.resetDeadlines()
	code, err := a.handle(ctx, ex)
	if req.Stats != nil {
		req.Stats.Guest, req.Stats.PeakMemory, req.Stats.Outbound = ex.guest, ex.mem.Peak(), ex.outbound
	}

	if err == nil && code == 0 && ex.started && !ex.cut {
		return
	}
	status, reason := http.StatusInternalServerError, "the app raised an exception (traceback above)"
	switch {
	case ex.cut:
		a.events.MaxResponse.Add(1)
		reason = fmt.Sprintf("response larger than limits.max_response (%d bytes): stream cut", lim.MaxResponse)
	case ex.mem.LimitHit():
		a.events.MemoryLimit.Add(1)
		reason = fmt.Sprintf("memory limit of %d bytes reached (limits.memory)", lim.Memory)
	case ex.bodyTooLarge:
		a.events.MaxBody.Add(1)
		status, reason = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than limits.max_body (%d bytes)", lim.MaxBody)
	case ex.bodyTimeout:
		a.events.BodyTimeout.Add(1)
		status, reason = http.StatusRequestTimeout, "the client sent its body too slowly"
	case ex.bodyErr != nil:
		status, reason = http.StatusBadRequest, "malformed request body: "+ex.bodyErr.Error()
	case ex.timedOut():
		a.events.Timeouts.Add(1)
		status, reason = http.StatusGatewayTimeout, fmt.Sprintf("time limit of %s exceeded (limits.timeout)", lim.Timeout)
	case (err != nil || code != 0) && ex.clientGone():
		detail := "the app raised once the client had left (traceback above)"
		if err != nil {
			detail = fmt.Sprintf("the instance was stopped %s after it left", disconnectGrace)
		}
		a.clientWentAway(req, ex.started, detail)
	case err != nil:
		a.events.Traps.Add(1)
		reason = describe(err)
	case !ex.started && code == 0:
		reason = "the app returned without calling start_response"
	}
	if ex.started {
		ex.log.Error("request aborted after the response started", "reason", reason, "path", req.HTTP.URL.Path)
		panic(http.ErrAbortHandler)
	}
	ex.log.Error("request failed", "status", status, "reason", reason, "path", req.HTTP.URL.Path)
	// The connection's deadlines were the request's; give the error response its own.
	_ = ex.rc.SetWriteDeadline(time.Now().Add(errorWriteTimeout))
	writeError(w, status, http.StatusText(status))
}

// clientWentAway ends a request whose client disconnected before it was answered:
// that is the client's doing, so it is logged at info and counted as a disconnect,
// never as a trap or a 5xx. Nothing more is written: the connection is closed (an
// HTTP/2 stream reset), and Stats.ClientGone tells the access log.
func (a *App) clientWentAway(req *Request, started bool, detail string) {
	a.events.ClientDisconnects.Add(1)
	if req.Stats != nil {
		req.Stats.ClientGone = true
	}
	a.requestLog(req).Info("client went away: request abandoned", "detail", detail,
		"response_started", started, "path", req.HTTP.URL.Path)
	panic(http.ErrAbortHandler)
}

// requestLog is the app's logger with the request id.
func (a *App) requestLog(req *Request) *slog.Logger {
	if req.ID == "" {
		return a.log
	}
	return a.log.With("request_id", req.ID)
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

// SnapshotSize returns the bytes of linear memory in the app's snapshot, 0 without one.
func (a *App) SnapshotSize() uint64 {
	if s := a.snapshot(); s != nil {
		return s.Size()
	}
	return 0
}

// importApp is the load path: it starts the interpreter in a fresh instance, which
// imports the app (wasmwsgi_init), and when that worked sends the warm-up requests
// (with auto, the automatic ones), freezes the heap and keeps the instance's memory as
// the app's snapshot. It returns init's result code; stderr receives a copy of the
// guest's stderr. An automatic warm-up that cannot be kept is an autoWarmupSkipped
// error, and nothing is kept.
func (a *App) importApp(ctx context.Context, ex *exchange, stderr *tail, auto bool) (int32, error) {
	ctx, cancel := context.WithTimeout(ctx, a.Spec.Limits.Timeout)
	defer cancel()
	if sh, ok := a.sharing(); ok {
		ex.entropy = newImportEntropy(sh)
	}
	stdout, errw := newLogWriter(ex.log, "stdout", nil), newLogWriter(ex.log, "stderr", stderr)
	defer stdout.Close()
	defer errw.Close()
	return a.runFresh(ctx, ex, stdout, errw, func(ctx context.Context, mod api.Module) (int32, error) {
		warm := a.warmUp
		if auto {
			warm = a.autoWarmUp
		}
		if err := warm(ctx, mod, ex); err != nil {
			return 0, err
		}
		if err := a.freeze(ctx, mod); err != nil {
			return 0, err
		}
		ex.cached = a.keepSnapshot(ex.mem)
		return 0, nil
	})
}

// handle is the serve path: it runs one request (wasmwsgi_handle) on an instance
// restored from the app's snapshot (runRestored), or, for an app without a snapshot,
// on a fresh instance that starts the interpreter and imports the app first. It returns
// the guest's result code: init's when init failed, else handle's.
func (a *App) handle(ctx context.Context, ex *exchange) (int32, error) {
	stdout, errw := newLogWriter(ex.log, "stdout", nil), newLogWriter(ex.log, "stderr", nil)
	defer stdout.Close()
	defer errw.Close()
	if snap := a.snapshot(); snap != nil {
		return a.runRestored(ctx, ex, snap, stdout, errw)
	}
	t0 := time.Now()
	return a.runFresh(ctx, ex, stdout, errw, func(ctx context.Context, mod api.Module) (int32, error) {
		res, err := mod.ExportedFunction("wasmwsgi_handle").Call(ctx)
		ex.guest = time.Since(t0)
		if err != nil {
			return 0, err
		}
		return int32(res[0]), nil
	})
}

// runFresh instantiates python.wasm in a new memory of its own, writes its data
// segments, and starts the interpreter, which imports the app (wasmwsgi_init). When
// init succeeded it calls then with the live module and returns its result; otherwise
// init's result code. The instance is closed and its memory released on return.
func (a *App) runFresh(ctx context.Context, ex *exchange, stdout, stderr io.Writer,
	then func(context.Context, api.Module) (int32, error)) (int32, error) {
	if ex.scratch == nil {
		ex.files, ex.scratch = a.newHostFiles()
	}
	cfg := a.moduleConfig(ex.files, ex.scratch, ctx, stdout, stderr, sleepUntil(ctx), ex.childEnv)
	if ex.childArgv != nil {
		cfg = cfg.WithArgs(ex.childArgv...)
	}
	if ex.stdin != nil {
		cfg = cfg.WithStdin(ex.stdin)
	}
	if ex.entropy != nil {
		cfg = cfg.WithRandSource(ex.entropy)
	}
	ex.mem = memimage.NewMemory(a.memoryLimit())
	if !a.engine.guardPages {
		ex.mem.NoGuard()
	}
	// Registered before the module's Close, so it runs after it: the guest is done.
	defer ex.mem.Release()
	if ex.sockets == nil {
		ex.sockets = a.newSockets()
		defer ex.sockets.Close()
	}
	ex.sockets.Begin(ex.onDeny)
	defer a.endOutbound(ex, ex.sockets) // before the session closes
	ctx = hostfuncs.WithExchange(ctx, ex)

	mod, err := a.engine.instantiate(ctx, ex.mem, cfg)
	if err != nil {
		return 0, err
	}
	defer mod.Close(context.Background())
	if err := a.engine.initMemory(mod.Memory()); err != nil {
		return 0, err
	}
	if a.engine.interruptible {
		// The global is written from the goroutine that sees the context end while the
		// guest reads it at its loop heads: a plain store that the next check observes.
		interrupt := mod.ExportedGlobal(wasmbin.InterruptGlobal).(api.MutableGlobal)
		stop := context.AfterFunc(ctx, func() { interrupt.Set(1) })
		defer stop()
	}
	if _, err := mod.ExportedFunction("_initialize").Call(ctx); err != nil {
		return 0, err
	}
	if ex.childArgv != nil {
		// A child process: python's main runs the command line and returns its status.
		res, err := mod.ExportedFunction("wasmwsgi_main").Call(ctx)
		if err != nil {
			return 0, err
		}
		return int32(res[0]), nil
	}
	res, err := mod.ExportedFunction("wasmwsgi_init").Call(ctx)
	if err != nil {
		return 0, err
	}
	if res[0] != 0 {
		return int32(res[0]), nil
	}
	return then(ctx, mod)
}

// rootTree is the tree mounted at GuestRoot: it lists /data only for an app that has
// one.
func (a *App) rootTree() *guestfs.MemFS {
	if a.Spec.DataDir != "" {
		return a.engine.rootData
	}
	return a.engine.root
}

// newHostFiles returns the open-file count of a new instance and its private /tmp,
// which counts its open files with the instance's others.
func (a *App) newHostFiles() (*guestfs.OpenFiles, *guestfs.ScratchFS) {
	files := guestfs.NewOpenFiles(a.Spec.Limits.OpenFiles)
	return files, guestfs.NewScratchFS(a.Spec.Limits.Scratch, files)
}

// memoryLimit is the most linear memory an instance may have.
func (a *App) memoryLimit() uint64 {
	if a.Spec.Limits.Memory == 0 {
		return 4 << 30
	}
	return a.Spec.Limits.Memory
}

// moduleConfig is what every instance of the app is given: the stdlib, the app, the
// TLS roots (certBundle) and the root tree (rootTree: the folders leading to the
// mounts, /dev/null, the time zone database) read-only, scratch at /tmp, /data (whose
// lock waits on dataCtx) when the app has a data_dir, its [env] (or env, a child
// process's, when not nil) and nothing else of the host's, the host's entropy and
// clocks, and stdout, stderr and sleep as passed. No start function runs.
//
// sched_yield, which the loop checks call every wasmbin.YieldEvery iterations, is
// runtime.Gosched (docs/design.md, "sched_yield is runtime.Gosched").
func (a *App) moduleConfig(files *guestfs.OpenFiles, scratch *guestfs.ScratchFS, dataCtx context.Context,
	stdout, stderr io.Writer, sleep func(ns int64), env []string) wazero.ModuleConfig {
	mounts := map[string]experimentalsys.FS{
		GuestStdlib:  a.engine.stdlib.ReadOnly(files),
		GuestApp:     a.files.ReadOnly(files),
		GuestCerts:   a.certBundle().ReadOnly(files),
		GuestScratch: scratch,
		GuestRoot:    a.rootTree().ReadOnly(files),
	}
	data, dataAt := a.dataMount(dataCtx, files)
	fsc := wazero.NewFSConfig().(sysfs.FSConfig)
	for _, at := range []string{GuestStdlib, GuestApp, GuestCerts, GuestScratch, GuestRoot} {
		fsc = fsc.WithSysFSMount(mounts[at], at).(sysfs.FSConfig)
	}
	fsConfig := fsc.WithSysFSMount(data, dataAt) // in this order, the preopens of the snapshot
	if dataAt != "" {
		mounts[dataAt] = data
	}
	// A symbolic link in /tmp that leads out of it is followed in these mounts only
	// (a child process's, in its parent's).
	if !scratch.HasView() {
		scratch.SetView(GuestScratch, guestfs.MountView(mounts))
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithFSConfig(fsConfig).
		WithStdout(stdout).
		WithStderr(stderr).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(sleep).
		WithOsyield(goruntime.Gosched)
	if env == nil {
		env = a.Spec.Env
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		cfg = cfg.WithEnv(k, v)
	}
	return cfg
}

// warmUp sends the app its warm-up requests in the instance that will become the
// snapshot. A request that fails or answers an error status fails the load.
func (a *App) warmUp(ctx context.Context, mod api.Module, load *exchange) error {
	for i := range len(a.Spec.Warmup) * WarmupRounds {
		path := a.Spec.Warmup[i/WarmupRounds]
		w, err := a.warmupRequest(ctx, mod, load, path, nil, "")
		switch {
		case err != nil:
			return err
		case w.status >= 400:
			return warmupError(fmt.Sprintf("warm-up request GET %s answered %d; list only paths that succeed in warmup", path, w.status))
		}
	}
	return nil
}

// autoWarmup reports whether the app gets the automatic warm-up (AppSpec.AutoWarmup):
// an app with a data folder does not, since its requests may write there.
func (a *App) autoWarmup() bool {
	return a.Spec.AutoWarmup && len(a.Spec.Warmup) == 0 && a.Spec.DataDir == ""
}

// AutoWarmupPath is what the automatic warm-up requests.
const AutoWarmupPath = "/"

// autoWarmupSkipped says why an automatic warm-up was not kept.
type autoWarmupSkipped string

func (e autoWarmupSkipped) Error() string { return string(e) }

// autoWarmUp is warmUp for an app that listed no paths: GET AutoWarmupPath,
// WarmupRounds times, with no network (a connection attempt ends it). It is kept only
// when every answer is below 500 and the last is the same as the first (status,
// headers and body): an app whose answer changes from one request to the next keeps
// something between requests, which its snapshot must not hold.
func (a *App) autoWarmUp(ctx context.Context, mod api.Module, load *exchange) error {
	var tried string
	sockets := egress.NewSession(nil, egress.Config{OnDeny: func(dest, _ string) {
		if tried == "" {
			tried = dest
		}
	}})
	defer sockets.Close()
	var first string
	for i := range WarmupRounds {
		step := map[int]string{0: "first", WarmupRounds - 1: "last"}[i]
		w, err := a.warmupRequest(ctx, mod, load, AutoWarmupPath, sockets, step)
		switch {
		case w != nil && w.header.Get("Wasmwsgi-State-Changed") != "":
			return autoWarmupSkipped(fmt.Sprintf("GET %s changed %s, so the app keeps state between requests",
				AutoWarmupPath, w.header.Get("Wasmwsgi-State-Changed")))
		case tried != "":
			return autoWarmupSkipped(fmt.Sprintf("GET %s tried to connect to %s, and the automatic warm-up has no network", AutoWarmupPath, tried))
		case err != nil:
			return autoWarmupSkipped(err.Error())
		case w.status >= 500:
			return autoWarmupSkipped(fmt.Sprintf("GET %s answered %d", AutoWarmupPath, w.status))
		case i == 0:
			first = w.digest()
		case i == WarmupRounds-1 && w.digest() != first:
			return autoWarmupSkipped(fmt.Sprintf("GET %s answered differently the %s time than the first, so the app may keep state between requests",
				AutoWarmupPath, ordinal(WarmupRounds)))
		}
	}
	return nil
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return strconv.Itoa(n) + "th"
}

// warmupRequest sends GET path to the instance being loaded; sockets, when not nil,
// are its outbound connections (else it has none). autoStep, for the automatic
// warm-up, asks the guest to check the app's state (the shim's _check_warmup). A
// request that fails, or answers no status, is a warmupError.
func (a *App) warmupRequest(ctx context.Context, mod api.Module, load *exchange, path string,
	sockets *egress.Session, autoStep string) (*warmupWriter, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+path, nil)
	if err != nil || !strings.HasPrefix(path, "/") {
		return nil, warmupError(fmt.Sprintf("warmup path %q is not a path such as \"/\" or \"/page?x=1\"", path))
	}
	r.RemoteAddr = "127.0.0.1:0"
	w := &warmupWriter{header: http.Header{}, body: sha256.New()}
	ex := newRequestExchange(a, &Request{HTTP: r, PathInfo: r.URL.Path, ID: "warmup"}, w, ctx)
	ex.mem, ex.errCopy = load.mem, load.errCopy
	// The guest reads no entropy for a warm-up request (hostfuncs/doc.go, environ_get).
	ex.env = hostfuncs.AppendPairs(ex.env, []hostfuncs.Pair{{Name: "wasmwsgi.warmup", Value: "1"}})
	if autoStep != "" {
		ex.env = hostfuncs.AppendPairs(ex.env, []hostfuncs.Pair{{Name: "wasmwsgi.auto_warmup", Value: autoStep}})
	}
	if sockets != nil {
		ex.sockets = sockets
		sockets.Begin(nil) // its Config.OnDeny
		defer sockets.End()
	}
	res, err := mod.ExportedFunction("wasmwsgi_handle").Call(hostfuncs.WithExchange(ctx, ex))
	switch {
	case err != nil:
		return nil, warmupError(fmt.Sprintf("warm-up request GET %s: %s", path, describe(err)))
	case res[0] != 0 || w.status == 0:
		return nil, warmupError(fmt.Sprintf("warm-up request GET %s failed", path))
	}
	return w, nil
}

// freeze prepares the guest's heap for the snapshot (wasmwsgi_freeze): every object
// alive after import and warm-up becomes immortal and leaves the collector's
// generations, so a request that only reads an object no longer writes its page
// (docs/design.md, "Immortal objects in the snapshot").
func (a *App) freeze(ctx context.Context, mod api.Module) error {
	res, err := mod.ExportedFunction("wasmwsgi_freeze").Call(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("preparing the snapshot: %s", describe(err))
	case int32(res[0]) < 0:
		return errors.New("preparing the snapshot failed (traceback above)")
	}
	a.log.Debug("snapshot heap frozen", "immortal_objects", int32(res[0]))
	return nil
}

// WarmupRounds is how many times each warm-up path is requested: CPython 3.11
// specialises a code object's bytecode after it has run a few times, and the pages a
// request writes are fewest once that has happened before the snapshot.
const WarmupRounds = 16

// warmupError is a failed warm-up request.
type warmupError string

func (e warmupError) Error() string { return string(e) }

// warmupWriter takes a warm-up response and keeps only its status.
type warmupWriter struct {
	header http.Header
	status int
	body   hash.Hash
}

// digest sums up the response: status, headers and body.
func (w *warmupWriter) digest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", w.status)
	w.header.WriteSubset(&b, nil)
	fmt.Fprintf(&b, "%x", w.body.Sum(nil))
	return b.String()
}

func (w *warmupWriter) Header() http.Header { return w.header }
func (w *warmupWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *warmupWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
func (w *warmupWriter) Flush() {}

// runRestored serves one request on an instance restored from snap, then gives the
// instance back to the pool when it is clean (instance.reset) or closes it.
func (a *App) runRestored(ctx context.Context, ex *exchange, snap *memimage.Image, stdout, errw io.Writer) (int32, error) {
	t0 := time.Now()
	var inst *instance
	if a.poolable() {
		inst = a.pool.take()
	}
	var spare *memimage.Restored
	if inst == nil {
		spare = a.spareMemory(snap)
	}
	if inst != nil && inst.uses == 0 || inst == nil && spare == nil {
		// An instance's first request reads the snapshot pages requests use: they start
		// on their way into the page cache now, while the instance is made
		// (memimage.Image.Prefetch). Not at pre-warming, when no request waits for them
		// and a restart's reads would only slow the other apps' loads; nor over a spare
		// memory, which has the snapshot's file mapped already.
		snap.Prefetch()
	}
	if inst == nil {
		var err error
		if inst, err = a.newInstance(ctx, snap, spare, ctx); err != nil {
			ex.mem = &memimage.Memory{}
			return 0, err
		}
	}
	start := inst.mem.Size()
	inst.mem.ResetPeak()
	inst.ctx, inst.stdout.w, inst.stderr.w = ctx, stdout, errw
	ex.mem = &inst.mem.Memory
	ex.sockets = inst.sockets
	ex.files, ex.scratch = inst.files, inst.scratch
	inst.sockets.Begin(ex.onDeny)
	interrupted := func() bool { return false }
	if inst.interrupt != nil {
		stop := context.AfterFunc(ctx, func() { inst.interrupt.Set(1) })
		interrupted = func() bool { return !stop() }
	}
	t1 := time.Now()
	res, err := inst.handle.Call(hostfuncs.WithExchange(ctx, ex))
	ex.guest = time.Since(t0)
	a.endOutbound(ex, inst.sockets)
	fired := interrupted()
	inst.ctx, inst.stdout.w, inst.stderr.w = context.Background(), nil, nil
	inst.uses++
	if a.Spec.Isolation != IsolationInstance {
		inst.sockets.Close() // the request's connections end with it
	}
	// The exchange keeps what the request cost; the instance may serve another one.
	final := inst.mem.Memory
	ex.mem = &final
	ex.log.Debug("instance timings", "pooled", inst.uses > 1, "start", t1.Sub(t0),
		"handle", time.Since(t1), "peak_memory", final.Peak())
	why := "the call failed"
	switch {
	case err == nil && fired:
		why = "interrupted"
	case err == nil && !a.poolable():
		why = "data_dir apps get a fresh instance per request"
	case err == nil:
		if inst.mem.Learn(a.engine.pagemap) {
			a.keepHotPages(snap)
		}
		why = inst.reset(a.Spec.Isolation, a.engine.pagemap, start)
	}
	if why == "" {
		a.pool.put(inst)
	} else {
		a.events.Recycled.Add(1)
		ex.log.Debug("instance closed", "reason", why, "requests", inst.uses)
		var spares *memimage.Spares
		if err == nil && !fired && !a.poolable() {
			// A data_dir app's instance serves one request; its memory may serve
			// another instance, of any app, once made that app's snapshot.
			spares = a.engine.spares
		}
		inst.retire(spares)
	}
	if err != nil {
		return 0, err
	}
	return int32(res[0]), nil
}

// keepSnapshot stores the memory of a freshly initialised instance as the app's
// snapshot. Without one (memfd unavailable, say) the app still works: every request
// then starts its interpreter afresh, much more slowly.
func (a *App) keepSnapshot(mem *memimage.Memory) (cached bool) {
	image := mem.Bytes()
	var snap *memimage.Image
	if a.cachePath != "" && a.cacheSnapshot(a.cachePath, image) {
		snap, _ = memimage.Open(a.cachePath)
		cached = snap != nil
	}
	if snap == nil {
		var err error
		if snap, err = memimage.New(a.Spec.Name, image); err != nil {
			a.log.Warn("no snapshot: every request will start the interpreter afresh", "error", err.Error())
			return false
		}
	}
	a.mu.Lock()
	old := a.snap
	a.snap = snap
	a.mu.Unlock()
	if old != nil {
		old.Close()
	}
	a.events.SnapshotBuilds.Add(1)
	a.log.Debug("snapshot taken", "bytes", snap.Size())
	return cached
}

func (a *App) snapshot() *memimage.Image {
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
	var mem memoryError
	if errors.As(err, &mem) {
		return mem.Error()
	}
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
