// Command wasmwsgi serves Python WSGI apps, each request in its own WebAssembly sandbox.
//
//	wasmwsgi serve [DIR] [--addr HOST:PORT] [--config FILE]
//	wasmwsgi check [DIR]
//	wasmwsgi call APP|DIR [METHOD] PATH [--data BODY] [-H "Name: value"]
//	wasmwsgi run APP|DIR [--timeout D] [-- ARG...]
//	wasmwsgi config [DIR] [--json]
//	wasmwsgi version
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/wasmwsgi/wasmwsgi/config"
	pythonwasm "github.com/wasmwsgi/wasmwsgi/python-wasm"
	"github.com/wasmwsgi/wasmwsgi/router"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

const usage = `wasmwsgi serves Python WSGI apps, each request in its own WebAssembly sandbox.

Usage:
  wasmwsgi serve [DIR] [flags]   serve every app folder in DIR (default ./apps)
  wasmwsgi check [DIR] [flags]   load every app once, report problems, exit 1 if any failed
  wasmwsgi call APP|DIR [METHOD] PATH [--data BODY] [-H "Name: value"]...
                                 run one request through the sandbox of an app (its name,
                                 or its folder's path), print it like curl -i
  wasmwsgi run APP|DIR [--timeout D] [-- ARG...]
                                 run Python in the sandbox of an app, with its files, data
                                 folder, env and grants: ARGs as python's (-c CODE, -m MODULE,
                                 SCRIPT relative to the app folder, nothing for a prompt);
                                 the terminal's stdin/stdout/stderr, python's exit status,
                                 no time limit unless --timeout (manage.py migrate, ...)
  wasmwsgi config [DIR] [--json] print the configuration serve would use, each value with
                                 its source (default, file, env, flag); exit 2 if invalid
  wasmwsgi version               print the wasmwsgi and CPython versions
  wasmwsgi help                  show this help

Run 'wasmwsgi serve --help' for the flags (check, call, run and config take the same
ones; in run, --timeout bounds the command).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "check":
		return check(args[1:], stdout, stderr)
	case "call":
		return call(args[1:], stdout, stderr)
	case "run":
		return runCmd(args[1:], os.Stdin, stdout, stderr)
	case "config":
		return configCommand(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "wasmwsgi: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func versionString() string {
	version := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				version += "+" + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("wasmwsgi %s\nCPython %s (wasm32-wasi)\nengine %s\n%s", version, pythonwasm.CPythonVersion(),
		runtime.WazeroBuild(), pythonwasm.BuildInfo())
}

func serve(args []string, stderr io.Writer) int {
	start := time.Now()
	fs, code := commandFlags("serve", "Usage: wasmwsgi serve [DIR] [flags]\n\nServes every app folder in DIR (default ./apps).",
		args, stderr, nil)
	if fs == nil {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "wasmwsgi serve: takes one apps folder, got %q\n", fs.Args())
		return 2
	}
	cfg, err := config.Load(fs, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi serve: %v\n", err)
		return 2
	}
	log := newLogger(cfg.Log.Format, cfg.LogLevel, stderr)
	reread := func() (*config.Config, error) { return config.Load(fs, fs.Arg(0)) }
	if err := serveConfig(cfg, reread, log, start); err != nil {
		log.Error(err.Error())
		return 1
	}
	return 0
}

// serveConfig serves cfg; reread loads the configuration again for SIGHUP.
func serveConfig(cfg *config.Config, reread func() (*config.Config, error), log *slog.Logger, start time.Time) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Caught from the start, so that a SIGHUP while the apps load waits for them
	// instead of ending the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	tlsConfig, err := loadTLS(cfg)
	if err != nil {
		return err
	}
	engine, rt, err := newRouter(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer engine.Close(context.Background())
	go func() {
		if engine.Compiled() == nil {
			log.Info("engine ready", "cpython", pythonwasm.CPythonVersion(), "guard_pages", engine.GuardPages(),
				"loop_checks", engine.LoopChecks(), "elapsed", time.Since(start).Round(time.Millisecond))
		}
	}()
	if len(rt.Mounts()) == 0 {
		log.Warn("no apps found: an app is a subfolder holding app.py, wsgi.py, a *.wsgi file or a Django project's manage.py", "apps_dir", cfg.AppsDir)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set --addr or addr in the config)", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler: rt,
		// Bounds how long a client may take to send its headers (slowloris).
		ReadHeaderTimeout: 10 * time.Second,
		// Bounds how long an idle keep-alive connection is kept.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		TLSConfig:      tlsConfig,
		Protocols:      protocols(cfg),
	}
	served := make(chan error, 1)
	go func() { served <- serveOn(srv, ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "tls", tlsConfig != nil, "h2c", cfg.H2C,
		"apps_dir", cfg.AppsDir, "apps", len(rt.Mounts()))

	adminSrv, err := startAdmin(cfg, rt, log, served)
	if err != nil {
		return err
	}

	failed := rt.LoadAll(ctx)
	// The apps folder is watched from here on: a change made after an app loaded must
	// not wait for the compile, which restored apps do not need until their first
	// instance.
	stopReloads := reloadOnChange(ctx, rt, cfg, reread, hup, log)
	defer stopReloads()
	if err := engine.Compiled(); err != nil {
		return err // every app failed for it
	}
	log.Info("ready", "apps", len(rt.Mounts()), "failed", failed, "elapsed", time.Since(start).Round(time.Millisecond))

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop()
	grace := drainGrace(cfg, rt)
	log.Info("shutting down: draining in-flight requests", "grace", grace)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	stopAdmin(shutdownCtx, adminSrv, log)
	err = srv.Shutdown(shutdownCtx)
	// The apps are closed once their requests have ended: their instances, snapshots
	// and data folders (and the folders' flocks) are released before the process ends.
	if cerr := rt.Close(shutdownCtx); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// drainGrace is how long shutdown waits for requests in flight: the longest any app's
// request may take, queue wait included, and a second for the response to go out.
func drainGrace(cfg *config.Config, rt *router.Router) time.Duration {
	longest := cfg.AppLimits.QueueTimeout + cfg.AppLimits.Timeout
	for _, m := range rt.Mounts() {
		l := m.App.Spec.Limits
		longest = max(longest, l.QueueTimeout+l.Timeout)
	}
	return longest + time.Second
}

// newRouter compiles python.wasm and discovers the apps of cfg.AppsDir (not loaded yet).
// serving is set for serve, whose router reports ready before it loads the apps a
// cache already holds (unless check_before_ready): check, call and the others load
// every app first.
func newRouter(ctx context.Context, cfg *config.Config, log *slog.Logger, serving bool) (*runtime.Engine, *router.Router, error) {
	engine, err := runtime.NewEngine(ctx, runtime.EngineConfig{
		CacheDir:     cfg.CacheDir,
		MaxInstances: cfg.Limits.Instances,
		MaxIdle:      cfg.Limits.IdleInstances,
		BoundsChecks: !cfg.GuardPages,
		Logger:       log,
	})
	if err != nil {
		return nil, nil, err
	}
	rcfg := routerConfig(cfg)
	rcfg.LoadKnownAfterReady = serving && !cfg.CheckBeforeReady
	rt, err := router.New(engine, rcfg, log)
	if err != nil {
		engine.Close(ctx)
		return nil, nil, err
	}
	return engine, rt, nil
}

// routerConfig is the router's part of cfg; SIGHUP applies it again with the new
// settings.
func routerConfig(cfg *config.Config) router.Config {
	return router.Config{
		Apps:           cfg.Operator(),
		MaxAppBytes:    cfg.MaxAppBytes,
		TrustedProxies: cfg.Proxies,
		IdleAfter:      cfg.IdleTimeout,
		Admin:          router.AdminConfig{Enabled: cfg.Admin.Enabled, Token: cfg.Admin.Token, OwnListener: cfg.AdminAddr != ""},
	}
}

// newLogger logs to w in format ("text" or "json") from level on.
func newLogger(format string, level slog.Level, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
