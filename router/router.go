// Package router finds the apps in a folder, mounts each at its path prefix or virtual
// hosts, and holds the HTTP middleware: request ids, the access log and recovery.
//
// A request goes: Router.ServeHTTP -> middleware -> the current route table -> host ->
// chi's match of the mount prefix (on a path segment boundary), which gives SCRIPT_NAME
// and PATH_INFO -> runtime.App.Serve.
//
// The set of apps can change while the server runs (reload.go, watch.go): the mounts
// and the routes to them live in an immutable table that Reload replaces as a whole.
// Close stops the watcher and closes every app.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/runtime"
	"github.com/wasmwsgi/wasmwsgi/static"
)

// Config configures the router.
type Config struct {
	// Apps says where the apps are and what the operator grants them: the input of
	// config.Discover.
	Apps config.Operator
	// MaxAppBytes caps the size of one app's files.
	MaxAppBytes int64
	// LoadParallelism is how many apps load at once (default defaultLoadParallelism).
	// Only runtime.Engine's share of them import at a time: the rest read their
	// folders and restore cached snapshots, which wait on the disk more than on a CPU.
	LoadParallelism int
	// TrustedProxies are the peers whose X-Forwarded-For, -Proto and -Host headers
	// are believed.
	TrustedProxies []netip.Prefix
	// Admin configures the admin page at /_wasmwsgi/ (admin.go).
	Admin AdminConfig
	// IdleAfter is how long an app may go without a request before it keeps no
	// instance (runtime.AppSpec.IdleAfter); 0 keeps its pre-warmed ones.
	IdleAfter time.Duration
	// LoadKnownAfterReady has LoadAll mark the router ready before it loads the apps an
	// earlier start already loaded with this cache (runtime.App.Known): those load
	// right after, and a request to one waits for its load. Their load still reads
	// every file, so no snapshot serves a folder changed since it was taken.
	LoadKnownAfterReady bool
}

// Mount is one app and where it is served. A mount does not change once it is routed:
// a reload that changes the app builds a new Mount.
type Mount struct {
	App *runtime.App
	// Dir is the app folder and the settings the app runs with.
	Dir    config.App
	Prefix string // "/" or "/x" without trailing slash
	Hosts  []string
	// shadowed is set when another app holds this prefix and host; the app is
	// reported as failed and not routed.
	shadowed bool
	// fp identifies the folder and settings the app was loaded from (set by the load,
	// read by Reload; both hold reloadMu).
	fp runtime.Fingerprint
	// static serves the app's [static] routes from its files; made on the first
	// request for one once the app is ready (staticFiles).
	static atomic.Pointer[static.Handler]
	// later is set for an app LoadAll loads after ready (Config.LoadKnownAfterReady)
	// until its load ends; loadOnce runs that load for whoever asks first, the loader
	// or a request, and loaded is closed when it ends.
	later    atomic.Bool
	loadOnce sync.Once
	loaded   chan struct{}
}

// staticFiles returns the handler of the app's [static] routes, over the files the
// app's instances see; nil until the app is ready.
func (m *Mount) staticFiles() *static.Handler {
	if h := m.static.Load(); h != nil {
		return h
	}
	files := m.App.Files()
	if files == nil {
		return nil
	}
	m.static.CompareAndSwap(nil, static.New(m.Dir.Static, m.Dir.StaticCache, files))
	return m.static.Load()
}

// Router serves every app of an apps folder.
type Router struct {
	cfg     Config // as given to New
	engine  *runtime.Engine
	log     *slog.Logger
	handler http.Handler // middleware and server endpoints; apps through the table
	metrics *metrics
	admin   *adminState
	loaded  atomic.Bool
	// closed is set by Close: nothing loads, reloads or starts watching any more.
	closed atomic.Bool

	// table holds the current mounts and their routes (see table).
	table atomic.Pointer[table]
	// swapMu serialises replacing the table.
	swapMu sync.Mutex
	// reloadMu serialises LoadAll, Load and Reload.
	reloadMu sync.Mutex

	cfgMu sync.Mutex
	next  Config // the settings the next Reload applies (SetConfig)

	problemMu sync.Mutex
	problems  map[string]reloadProblem // by app name: a failed reload of a served app

	// dataDirs are the data folders of the apps last discovered; the watcher ignores them.
	dataDirs atomic.Pointer[[]string]

	watchMu  sync.Mutex
	watchers []*Watcher // started by Watch, stopped by Close

	// laterCtx is the context of the loads LoadAll left for after ready.
	laterCtx context.Context
}

// New discovers the apps in cfg.Apps.Dir and builds the routes. Apps are not loaded yet:
// call LoadAll. Configuration problems of one app do not fail New; that app is mounted
// in the failed state and answers 503.
func New(engine *runtime.Engine, cfg Config, log *slog.Logger) (*Router, error) {
	if cfg.LoadParallelism <= 0 {
		cfg.LoadParallelism = defaultLoadParallelism
	}
	dirs, err := config.Discover(cfg.Apps)
	if err != nil {
		return nil, err
	}
	rt := &Router{cfg: cfg, next: cfg, engine: engine, log: log, problems: map[string]reloadProblem{}}
	rt.metrics = newMetrics(rt)
	rt.admin = newAdmin(rt)
	rt.handler = rt.routes()
	rt.swapMu.Lock()
	rt.publish(rt.newTable(cfg, rt.newMounts(cfg, dirs)))
	rt.swapMu.Unlock()
	return rt, nil
}

// newMounts builds a mount, with an app not loaded yet, for each discovered folder. An
// app whose settings cannot be used is failed, not loaded; one whose mount another app
// holds is not routed either.
func (rt *Router) newMounts(cfg Config, dirs []config.App) []*Mount {
	var mounts []*Mount
	var dataDirs []string
	for _, d := range dirs {
		if d.DataDir != "" {
			dataDirs = append(dataDirs, d.DataDir)
		}
		mounts = append(mounts, &Mount{Dir: d, Prefix: d.Prefix, Hosts: d.Hosts, shadowed: d.Shadowed,
			App: rt.engine.NewApp(runtime.AppSpec{
				Name:           d.Name,
				Dir:            d.Dir,
				Entrypoint:     d.Entrypoint,
				DjangoSettings: d.DjangoSettings,
				Limits:         d.Limits,
				Env:            d.EnvList(),
				Validate:       d.Validate,
				ServerTiming:   d.ServerTiming,
				MaxFileBytes:   cfg.MaxAppBytes,
				IdleAfter:      cfg.IdleAfter,
				DataDir:        d.DataDir,
				Isolation:      d.Isolation,
				MaxRequests:    d.MaxRequests,
				Prewarm:        d.Prewarm,
				Warmup:         d.Warmup,
				AutoWarmup:     d.Warmup == nil,
				ShareSnapshot:  d.ShareSnapshot,

				Outbound:       d.Outbound,
				OutboundLimits: d.OutboundLimits,
				CAFile:         d.CAFile,
			})})
	}
	rt.dataDirs.Store(&dataDirs)
	return mounts
}

// errClosed is what loading and reloading return once the router is closed.
var errClosed = errors.New("the router is closed")

// defaultLoadParallelism is how many apps load at once unless Config says otherwise:
// 16, so that the disk reads of cached restarts overlap; the engine bounds the imports
// among them by the CPUs.
const defaultLoadParallelism = 16

// Close ends the router's life: it stops the watchers Watch started, waits for a load
// or reload under way, and retires the apps' routes, so that a later request finds no
// app (404). Requests in flight finish on the apps they started on; once they have
// ended, every app is closed (its instances, snapshot and data folder released) and
// its metrics and admin figures are dropped. Close waits for that, or returns ctx's
// error when ctx ends first (the apps are then closed once their requests end). Loading
// and reloading fail after Close. Close may be called more than once.
func (rt *Router) Close(ctx context.Context) error {
	rt.closed.Store(true)
	rt.watchMu.Lock()
	watchers := rt.watchers
	rt.watchers = nil
	rt.watchMu.Unlock()
	for _, w := range watchers {
		w.Stop()
	}
	rt.reloadMu.Lock()
	rt.swapMu.Lock()
	t := rt.newTable(rt.table.Load().cfg, nil)
	rt.publish(t)
	rt.swapMu.Unlock()
	rt.reloadMu.Unlock()
	select {
	case <-t.after:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing the apps: requests still running: %w", ctx.Err())
	}
}

// Mounts returns the apps of the current table, in name order.
func (rt *Router) Mounts() []*Mount { return rt.table.Load().mounts }

// LoadAll loads every app, a few at a time, and marks the router ready when all have
// finished (successfully or not). It logs each app's phase and, every second until all
// are done, how many are ready. It returns the number of apps that failed.
//
// With Config.LoadKnownAfterReady, the apps an earlier start loaded with this cache are
// left out: the router is ready once the others have loaded, and those load right
// after, in the background, while any request to one starts its load at once and
// waits for it. Reload, Load and Close wait for them.
func (rt *Router) LoadAll(ctx context.Context) int {
	rt.reloadMu.Lock()
	start := time.Now()
	rt.laterCtx = ctx // before any mount is marked: a request may load one at once
	var now, later []*Mount
	for _, m := range rt.Mounts() {
		if rt.cfg.LoadKnownAfterReady && m.Dir.Err == nil && !m.shadowed && m.App.Known() {
			m.loaded = make(chan struct{})
			m.later.Store(true)
			later = append(later, m)
		} else {
			now = append(now, m)
		}
	}
	failed := rt.loadMounts(now, start, func(m *Mount) bool { return rt.loadLogged(ctx, m) })
	rt.loaded.Store(true)
	if len(later) == 0 {
		rt.reloadMu.Unlock()
		return failed
	}
	rt.log.Info("loading the apps an earlier start loaded, after ready", "apps", len(later))
	go func() {
		defer rt.reloadMu.Unlock()
		laterStart := time.Now()
		failed := rt.loadMounts(later, laterStart, rt.loadLater)
		rt.log.Info("apps loaded after ready", "apps", len(later), "failed", failed,
			"elapsed", time.Since(laterStart).Round(time.Millisecond))
	}()
	return failed
}

// loadMounts loads mounts with load, LoadParallelism at a time, logging progress every
// second, and returns how many failed. The caller holds reloadMu.
func (rt *Router) loadMounts(mounts []*Mount, start time.Time, load func(*Mount) bool) int {
	var ready, failed atomic.Int32
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				rt.log.Info(fmt.Sprintf("loading: %d of %d apps ready", ready.Load(), len(mounts)),
					"failed", failed.Load(), "elapsed", time.Since(start).Round(time.Millisecond))
			}
		}
	})
	var loads sync.WaitGroup
	sem := make(chan struct{}, rt.settings().LoadParallelism)
	for _, m := range mounts {
		loads.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if load(m) {
				ready.Add(1)
			} else {
				failed.Add(1)
			}
		})
	}
	loads.Wait()
	close(done)
	wg.Wait()
	return int(failed.Load())
}

// loadLogged loads m, logging its failure; false when it failed.
func (rt *Router) loadLogged(ctx context.Context, m *Mount) bool {
	t0 := time.Now()
	if err := rt.loadMount(ctx, m); err != nil {
		rt.log.Error("app failed", "app", m.Dir.Name, "elapsed", time.Since(t0).Round(time.Millisecond),
			"error", errorSummary(err.Error()))
		return false
	}
	return true
}

// loadLater loads m, an app LoadAll left for after ready, unless a request or the
// loader did already, and waits for that load; false when the app is not ready after
// it (a failed load leaves it failed). The loader holds
// reloadMu until every such app has loaded, so the load is as exclusive of Reload as
// LoadAll's own.
func (rt *Router) loadLater(m *Mount) bool {
	m.loadOnce.Do(func() {
		defer close(m.loaded)
		defer m.later.Store(false)
		if rt.closed.Load() {
			m.App.Fail(errClosed)
			return
		}
		rt.loadLogged(rt.laterCtx, m)
	})
	<-m.loaded
	state, _ := m.App.Status()
	return state == runtime.StateReady
}

// Load loads one app (LoadAll does them all). A mount whose settings were unusable is
// put in the failed state without loading.
func (rt *Router) Load(ctx context.Context, m *Mount) error {
	rt.reloadMu.Lock()
	defer rt.reloadMu.Unlock()
	if rt.closed.Load() {
		return errClosed
	}
	return rt.loadMount(ctx, m)
}

// loadMount loads m's app, logging its phase (restoring a cached snapshot or importing)
// and, when it worked, "app ready" with the time it took. Failures are the caller's to
// log (the runtime logs the traceback). The caller holds reloadMu.
func (rt *Router) loadMount(ctx context.Context, m *Mount) error {
	if m.fp.Key == "" {
		rt.fingerprint(m)
	}
	if m.Dir.Err != nil {
		m.App.Fail(m.Dir.Err)
		return m.Dir.Err
	}
	phase := "importing"
	if m.fp.Cached {
		phase = "restoring a cached snapshot"
	}
	rt.log.Info("app loading", "app", m.Dir.Name, "phase", phase)
	start := time.Now()
	if err := m.App.Load(ctx); err != nil {
		return err
	}
	rt.log.Info("app ready", "app", m.Dir.Name, "prefix", m.Prefix, "hosts", m.Hosts,
		"entrypoint", m.App.Spec.Describe(), "load_time", time.Since(start).Round(time.Millisecond))
	return nil
}

// fingerprint sets m.fp from its folder, settings, mount and grant. A folder that
// cannot be read, and settings that cannot be used, are part of the key: the app
// counts as changed when the error does.
func (rt *Router) fingerprint(m *Mount) {
	fp, err := m.App.Fingerprint()
	if err != nil {
		fp = runtime.Fingerprint{Key: "unreadable: " + err.Error()}
	}
	fp.Key += fmt.Sprintf("\nmount: %q %q %v\ngranted: %s", m.Prefix, m.Hosts, m.shadowed, m.Dir.Granted)
	if m.Dir.Err != nil {
		fp.Key += "\nsettings: " + m.Dir.Err.Error()
	}
	m.fp = fp
}

// Mount returns the app named name (its folder name), or nil.
func (rt *Router) Mount(name string) *Mount {
	for _, m := range rt.Mounts() {
		if m.Dir.Name == name {
			return m
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The request holds the current table until it ends, the access log included.
	t := rt.acquire()
	defer t.release()
	ctx := context.WithValue(r.Context(), tableKey{}, t)
	if !routedMethods[r.Method] {
		// Any token is a method (RFC 9110, section 9.1), and chi answers 405 to one it
		// does not know before it looks at the path. Route it the way a POST to the
		// same path goes, through chi's route method override; handlers and the app
		// still see the real r.Method.
		rctx := chi.NewRouteContext()
		rctx.RouteMethod = http.MethodPost
		ctx = context.WithValue(ctx, chi.RouteCtxKey, rctx)
	}
	rt.handler.ServeHTTP(w, r.WithContext(ctx))
}

// extensionMethods are the methods of IANA's HTTP Method Registry that chi does not
// route by itself (WebDAV's PROPFIND and MKCOL, CalDAV's MKCALENDAR, ...). They are
// registered with chi, so they reach apps as any method does.
var extensionMethods = []string{
	"ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "COPY", "LABEL", "LINK", "LOCK", "MERGE",
	"MKACTIVITY", "MKCALENDAR", "MKCOL", "MKREDIRECTREF", "MKWORKSPACE", "MOVE", "ORDERPATCH", "PROPFIND",
	"PROPPATCH", "REBIND", "REPORT", "SEARCH", "UNBIND", "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE",
	"UPDATEREDIRECTREF", "VERSION-CONTROL",
}

// routedMethods are the methods registered with chi: its own and extensionMethods.
var routedMethods = registerMethods()

func registerMethods() map[string]bool {
	routed := map[string]bool{}
	for _, m := range []string{http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead,
		http.MethodOptions, http.MethodPatch, http.MethodPost, http.MethodPut, "QUERY", http.MethodTrace} {
		chi.RegisterMethod(m) // chi's own: no change
		routed[m] = true
	}
	for _, m := range extensionMethods {
		if registerMethod(m) {
			routed[m] = true
		}
	}
	return routed
}

// registerMethod registers m with chi; false when chi has no room left for it (its
// methods are bits of a uint), and ServeHTTP then routes m like an unknown method.
func registerMethod(m string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	chi.RegisterMethod(m)
	return true
}

func (rt *Router) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, accessLog(rt.log, rt.metrics, rt.admin.record), middleware.Recoverer, requestLimits)
	r.Get("/_wasmwsgi/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	r.Get("/_wasmwsgi/ready", rt.ready)
	rt.admin.routes(r) // /_wasmwsgi/metrics and the admin page

	// Everything else goes to an app of the current table.
	r.Handle("/*", http.HandlerFunc(rt.serveApps))
	return r
}

// tableKey is the context key of the table a request holds.
type tableKey struct{}

// table is one immutable set of mounts and the routes to them. Router.table points to
// the current one; a reload publishes a new one. A request holds the table it was
// routed on until it ends (acquire, release), so it finishes on the app it started on
// even when a reload replaced that app meanwhile, and an app that a reload dropped is
// closed only once every request on the tables that held it has ended (publish).
type table struct {
	cfg    Config
	mounts []*Mount // in name order
	// byHost has one sub-router per virtual host, plus "" for requests whose Host names
	// no app.
	byHost map[string]chi.Router
	// refs counts the requests running on the table, plus one while it is the current
	// table. Once it is zero it stays zero, and drained is closed.
	refs    atomic.Int64
	drained chan struct{}
	// after is closed once every earlier table is drained; settled once this one is
	// drained too.
	after   <-chan struct{}
	settled chan struct{}
}

// newTable builds the routes to mounts (in name order), mountRoutes for each.
func (rt *Router) newTable(cfg Config, mounts []*Mount) *table {
	t := &table{
		cfg: cfg, mounts: mounts,
		byHost:  map[string]chi.Router{"": chi.NewRouter()},
		drained: make(chan struct{}),
		settled: make(chan struct{}),
	}
	t.refs.Store(1)
	routed := map[string]string{} // host+prefix -> app name
	for _, m := range mounts {
		hosts := m.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			sub, ok := t.byHost[h]
			if !ok {
				sub = chi.NewRouter()
				t.byHost[h] = sub
			}
			if m.shadowed {
				continue
			}
			if other, dup := routed[h+m.Prefix]; dup {
				// Only while a reload is under way: the app that gives this prefix up
				// is still loading its new version.
				rt.log.Warn("app not routed yet: another app still holds its prefix", "app", m.Dir.Name,
					"prefix", m.Prefix, "host", h, "held_by", other)
				continue
			}
			routed[h+m.Prefix] = m.Dir.Name
			mountRoutes(sub, m.Prefix, rt.serveApp(m))
		}
	}
	return t
}

// acquire returns the current table, counted as held by one more request.
func (rt *Router) acquire() *table {
	t := rt.table.Load()
	for !t.acquire() {
		// Retired between the load and the acquire: the new table is already current.
		t = rt.table.Load()
	}
	return t
}

// acquire counts one more request on t; false once t is drained.
func (t *table) acquire() bool {
	for {
		n := t.refs.Load()
		if n == 0 {
			return false
		}
		if t.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (t *table) release() {
	if t.refs.Add(-1) == 0 {
		close(t.drained)
	}
}

// serveApps routes a request to an app of the table it holds.
func (rt *Router) serveApps(w http.ResponseWriter, req *http.Request) {
	t, ok := req.Context().Value(tableKey{}).(*table)
	if !ok {
		t = rt.acquire()
		defer t.release()
	}
	host := strings.ToLower(req.Host)
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	sub, ok := t.byHost[host]
	if !ok {
		sub = t.byHost[""]
	}
	sub.ServeHTTP(w, req)
}

// mountRoutes routes the requests under prefix ("/" or "/x") to serve, with SCRIPT_NAME
// and PATH_INFO as chi matched them, on whole path segments: /app and /app/x, never
// /application. SCRIPT_NAME is the prefix ("" at the root); PATH_INFO is "" for /app
// itself, else "/" and what chi's wildcard matched, percent-decoded. At the root the
// whole decoded path is PATH_INFO ("" for an authority-form target such as
// CONNECT's, which chi matches as "/").
func mountRoutes(r chi.Router, prefix string, serve func(w http.ResponseWriter, r *http.Request, script, pathInfo string)) {
	if prefix == "/" {
		r.HandleFunc("/*", func(w http.ResponseWriter, req *http.Request) { serve(w, req, "", req.URL.Path) })
		return
	}
	r.HandleFunc(prefix, func(w http.ResponseWriter, req *http.Request) { serve(w, req, prefix, "") })
	r.HandleFunc(prefix+"/*", func(w http.ResponseWriter, req *http.Request) { serve(w, req, prefix, "/"+decodedWildcard(req)) })
}

// decodedWildcard returns what the route's wildcard matched, percent-decoded: chi
// matches the escaped path (r.URL.RawPath) when the request's escaping differs from
// Go's own, and r.URL.Path otherwise, which is decoded already.
func decodedWildcard(r *http.Request) string {
	rest := chi.URLParam(r, "*")
	if r.URL.RawPath != "" {
		// RawPath is only ever a valid escaping of Path: this does not fail.
		if p, err := url.PathUnescape(rest); err == nil {
			rest = p
		}
	}
	return rest
}

// serveApp hands a request that chi routed to m to its app.
func (rt *Router) serveApp(m *Mount) func(w http.ResponseWriter, r *http.Request, script, pathInfo string) {
	return func(w http.ResponseWriter, r *http.Request, script, pathInfo string) {
		entry := logEntryOf(r.Context())
		entry.app = m.Dir.Name
		if m.later.Load() {
			// Loaded after ready, and not yet: start its load now and wait for it.
			go rt.loadLater(m)
			select {
			case <-m.loaded:
			case <-r.Context().Done():
				return // the client went away
			}
		}
		if len(m.Dir.Static) > 0 && static.Match(m.Dir.Static, pathInfo) {
			// The app's own files, answered by the host; while the app is not ready,
			// the app's answer (503) stands for them too.
			if h := m.staticFiles(); h != nil {
				entry.handler = handlerStatic
				h.Serve(w, r, pathInfo)
				return
			}
		}
		entry.handler = handlerApp
		req := &runtime.Request{
			HTTP:       r,
			ScriptName: script,
			PathInfo:   pathInfo,
			ID:         middleware.GetReqID(r.Context()),
			Stats:      &entry.stats,
		}
		req.Client, req.Scheme, req.Host = rt.forwarded(r)
		m.App.Serve(w, req)
	}
}

// forwarded returns the client address, scheme and host a trusted proxy reports in
// X-Forwarded-For, -Proto and -Host, or empty strings when the peer is not a trusted
// proxy (its headers then change nothing). The client is the right-most address of
// X-Forwarded-For that is not itself a trusted proxy: entries to its left were written
// by the client and may be forged.
func (rt *Router) forwarded(r *http.Request) (client, scheme, host string) {
	if len(rt.trustedProxies()) == 0 || !rt.trusted(r.RemoteAddr) {
		return "", "", ""
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		if _, err := netip.ParseAddr(hops[i]); err != nil {
			break // garbage: stop believing the chain here
		}
		client = hops[i]
		if !rt.trusted(hops[i]) {
			break
		}
	}
	if p := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
		scheme = p
	}
	if h := strings.TrimSpace(r.Header.Get("X-Forwarded-Host")); h != "" && !strings.ContainsAny(h, " /\\,") {
		host = h
	}
	return client, scheme, host
}

// trustedProxies are the current table's trusted proxies (SetConfig may change them).
func (rt *Router) trustedProxies() []netip.Prefix {
	if t := rt.table.Load(); t != nil {
		return t.cfg.TrustedProxies
	}
	return rt.cfg.TrustedProxies
}

// trusted reports whether addr ("ip" or "ip:port") is in a trusted proxy range.
func (rt *Router) trusted(addr string) bool {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range rt.trustedProxies() {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

type appStatus struct {
	State  runtime.State `json:"state"`
	Prefix string        `json:"prefix"`
	Hosts  []string      `json:"hosts,omitempty"`
	Error  string        `json:"error,omitempty"`
	// ReloadError is why the app's latest version failed to load while the version
	// before it keeps serving.
	ReloadError string `json:"reload_error,omitempty"`
}

// ready answers 200 once every app has finished loading, 503 before. The body lists
// each app's state; a failed app shows the last line of its error (the full traceback
// is in the log). An app whose latest version failed to load while the one before it
// keeps serving shows that as reload_error.
func (rt *Router) ready(w http.ResponseWriter, _ *http.Request) {
	apps := map[string]appStatus{}
	for _, m := range rt.Mounts() {
		state, why := m.App.Status()
		apps[m.Dir.Name] = appStatus{State: state, Prefix: m.Prefix, Hosts: m.Hosts, Error: lastLine(why),
			ReloadError: rt.problem(m.Dir.Name).msg}
	}
	status := http.StatusOK
	if !rt.loaded.Load() {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"ready": status == http.StatusOK, "apps": apps})
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
