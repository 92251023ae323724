// Package router finds the apps in a folder, mounts each at its path prefix or virtual
// hosts, and holds the HTTP middleware: request ids, the access log and recovery.
//
// A request goes: Router.ServeHTTP -> middleware -> host table -> prefix match (on a
// path segment boundary) -> runtime.App.Serve with SCRIPT_NAME and PATH_INFO split.
package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// Config configures the router.
type Config struct {
	// AppsDir is the folder whose subfolders are apps.
	AppsDir string
	// Limits are the server-wide defaults; an app's [limits] override them.
	Limits runtime.Limits
	// MaxAppBytes caps the size of one app's files.
	MaxAppBytes int64
	// LoadParallelism is how many apps load at once (default 2).
	LoadParallelism int
	// Validate is the default of every app's validate setting.
	Validate bool
	// TrustedProxies are the peers whose X-Forwarded-For, -Proto and -Host headers
	// are believed.
	TrustedProxies []netip.Prefix
}

// Mount is one app and where it is served.
type Mount struct {
	App    *runtime.App
	Dir    AppDir
	Prefix string // "/" or "/x" without trailing slash
	Hosts  []string
	// shadowed is set when another app already holds this prefix and host; the app is
	// reported as failed and not routed.
	shadowed bool
}

// Router serves every app of an apps folder.
type Router struct {
	cfg     Config
	log     *slog.Logger
	mounts  []*Mount
	handler http.Handler
	metrics *metrics
	loaded  atomic.Bool
}

// New discovers the apps in cfg.AppsDir and builds the routes. Apps are not loaded yet:
// call LoadAll. Configuration problems of one app do not fail New; that app is mounted
// in the failed state and answers 503.
func New(engine *runtime.Engine, cfg Config, log *slog.Logger) (*Router, error) {
	if cfg.LoadParallelism <= 0 {
		cfg.LoadParallelism = 2
	}
	dirs, err := Discover(cfg.AppsDir)
	if err != nil {
		return nil, err
	}
	rt := &Router{cfg: cfg, log: log}
	taken := map[string]string{} // host+prefix -> app name
	for _, d := range dirs {
		m := &Mount{Dir: d, Prefix: d.Config.Prefix, Hosts: d.Config.Hosts}
		if m.Prefix == "" {
			m.Prefix = "/" + d.Name
		}
		limits, err := d.Config.Limits.Apply(cfg.Limits)
		if err != nil && m.Dir.Err == nil {
			m.Dir.Err = fmt.Errorf("%s: %w", filepath.Join(d.Dir, AppConfigFile), err)
		}
		validate := cfg.Validate
		if d.Config.Validate != nil {
			validate = *d.Config.Validate
		}
		env := make([]string, 0, len(d.Config.Env))
		for k, v := range d.Config.Env {
			env = append(env, k+"="+v)
		}
		sort.Strings(env)
		m.App = engine.NewApp(runtime.AppSpec{
			Name:         d.Name,
			Dir:          d.Dir,
			Entrypoint:   d.Config.Entrypoint,
			Limits:       limits,
			Env:          env,
			Validate:     validate,
			MaxFileBytes: cfg.MaxAppBytes,
			DataDir:      d.Config.DataDir,
		})
		if d.Config.DataDir != "" && m.Dir.Err == nil {
			if err := runtime.PrepareDataDir(d.Config.DataDir); err != nil {
				m.Dir.Err = fmt.Errorf("app %s: %w", d.Name, err)
			}
		}
		hosts := m.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			key := h + m.Prefix
			if other, dup := taken[key]; dup {
				m.shadowed = true
				m.Dir.Err = fmt.Errorf("app %s: prefix %q on host %q is already taken by app %s: set another prefix in %s/%s",
					d.Name, m.Prefix, h, other, d.Dir, AppConfigFile)
				continue
			}
			taken[key] = d.Name
		}
		rt.mounts = append(rt.mounts, m)
	}
	rt.metrics = newMetrics(rt)
	rt.handler = rt.routes()
	return rt, nil
}

// Mounts returns the apps in name order.
func (rt *Router) Mounts() []*Mount { return rt.mounts }

// LoadAll loads every app, a few at a time, and marks the router ready when all have
// finished (successfully or not). It returns the number of apps that failed.
func (rt *Router) LoadAll(ctx context.Context) int {
	var wg sync.WaitGroup
	var failed atomic.Int32
	sem := make(chan struct{}, rt.cfg.LoadParallelism)
	for _, m := range rt.mounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := rt.Load(ctx, m); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	rt.loaded.Store(true)
	return int(failed.Load())
}

// Load loads one app (LoadAll does them all). A mount whose settings were unusable is
// put in the failed state without loading.
func (rt *Router) Load(ctx context.Context, m *Mount) error {
	if m.Dir.Err != nil {
		m.App.Fail(m.Dir.Err)
		return m.Dir.Err
	}
	start := time.Now()
	if err := m.App.Load(ctx); err != nil {
		return err
	}
	rt.log.Info("app ready", "app", m.Dir.Name, "prefix", m.Prefix, "hosts", m.Hosts,
		"entrypoint", m.Dir.Config.Entrypoint, "load_time", time.Since(start).Round(time.Millisecond))
	return nil
}

// Mount returns the app named name (its folder name), or nil.
func (rt *Router) Mount(name string) *Mount {
	for _, m := range rt.mounts {
		if m.Dir.Name == name {
			return m
		}
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !chiMethods[r.Method] {
		// chi answers 405 to a method outside its own list before it looks at the path,
		// but methods are extensible (WebDAV's PROPFIND, MKCOL, ...) and an app must see
		// them. Route such a request the way a POST to the same path goes; handlers
		// still see the real r.Method.
		rctx := chi.NewRouteContext()
		rctx.RouteMethod = http.MethodPost
		r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
	}
	rt.handler.ServeHTTP(w, r)
}

// chiMethods are the methods chi routes by themselves (its methodMap in tree.go).
var chiMethods = map[string]bool{
	http.MethodConnect: true, http.MethodDelete: true, http.MethodGet: true, http.MethodHead: true,
	http.MethodOptions: true, http.MethodPatch: true, http.MethodPost: true, http.MethodPut: true,
	"QUERY": true, http.MethodTrace: true,
}

func (rt *Router) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, accessLog(rt.log, rt.metrics), middleware.Recoverer, requestLimits)
	r.Get("/_wasmwsgi/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	r.Get("/_wasmwsgi/ready", rt.ready)
	r.Method(http.MethodGet, "/_wasmwsgi/metrics", rt.metrics.handler())

	// One sub-router per virtual host, plus the default one for requests whose Host
	// names no app. chi matches mounts on whole path segments: /app matches /app and
	// /app/x, never /application.
	byHost := map[string]chi.Router{"": chi.NewRouter()}
	for _, m := range rt.mounts {
		hosts := m.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		for _, h := range hosts {
			sub, ok := byHost[h]
			if !ok {
				sub = chi.NewRouter()
				byHost[h] = sub
			}
			if m.shadowed {
				continue
			}
			if m.Prefix == "/" {
				sub.Handle("/*", rt.serveApp(m))
			} else {
				sub.Mount(m.Prefix, rt.serveApp(m))
			}
		}
	}
	r.Handle("/*", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		host := strings.ToLower(req.Host)
		if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
			host = h
		}
		sub, ok := byHost[host]
		if !ok {
			sub = byHost[""]
		}
		sub.ServeHTTP(w, req)
	}))
	return r
}

// serveApp splits the path into SCRIPT_NAME and PATH_INFO on the mount prefix and hands
// the request to the app.
func (rt *Router) serveApp(m *Mount) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entry := logEntryOf(r.Context())
		entry.app = m.Dir.Name
		script, pathInfo, ok := splitPath(m.Prefix, r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		req := &runtime.Request{
			HTTP:       r,
			ScriptName: script,
			PathInfo:   pathInfo,
			ID:         middleware.GetReqID(r.Context()),
			Stats:      &entry.stats,
		}
		req.Client, req.Scheme, req.Host = rt.forwarded(r)
		m.App.Serve(w, req)
	})
}

// forwarded returns the client address, scheme and host a trusted proxy reports in
// X-Forwarded-For, -Proto and -Host, or empty strings when the peer is not a trusted
// proxy (its headers then change nothing). The client is the right-most address of
// X-Forwarded-For that is not itself a trusted proxy: entries to its left were written
// by the client and may be forged.
func (rt *Router) forwarded(r *http.Request) (client, scheme, host string) {
	if len(rt.cfg.TrustedProxies) == 0 || !rt.trusted(r.RemoteAddr) {
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
	for _, p := range rt.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// splitPath splits a decoded request path at a mount prefix on a segment boundary:
// ("/app", "/app/x") -> ("/app", "/x"); ("/app", "/app") -> ("/app", ""); a root mount
// gives SCRIPT_NAME "". ok is false when the path is not under the prefix.
func splitPath(prefix, p string) (script, pathInfo string, ok bool) {
	if prefix == "/" {
		return "", p, true
	}
	rest, found := strings.CutPrefix(p, prefix)
	if !found || (rest != "" && rest[0] != '/') {
		return "", "", false
	}
	return prefix, rest, true
}

type appStatus struct {
	State  runtime.State `json:"state"`
	Prefix string        `json:"prefix"`
	Hosts  []string      `json:"hosts,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// ready answers 200 once every app has finished loading, 503 before. The body lists
// each app's state; a failed app shows the last line of its error (the full traceback
// is in the log).
func (rt *Router) ready(w http.ResponseWriter, _ *http.Request) {
	apps := map[string]appStatus{}
	for _, m := range rt.mounts {
		state, why := m.App.Status()
		apps[m.Dir.Name] = appStatus{State: state, Prefix: m.Prefix, Hosts: m.Hosts, Error: lastLine(why)}
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
