package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// commandFlags parses the config flags (plus extra ones) of a command that works on an
// apps folder; a nil FlagSet comes back with the exit code when the command is done.
func commandFlags(name, usage string, args []string, stderr io.Writer, extra func(*pflag.FlagSet)) (*pflag.FlagSet, int) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage+"\n\nFlags:\n")
		fs.PrintDefaults()
	}
	config.AddFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	return fs, -1
}

func appsFlag(fs *pflag.FlagSet) {
	fs.String("apps", "", "apps folder (default: apps_dir from the config, ./apps)")
}

// check loads every app of a folder once, as serve would, and reports each one.
func check(args []string, stdout, stderr io.Writer) int {
	fs, code := commandFlags("check", "Usage: wasmwsgi check [DIR] [flags]\n\n"+
		"Loads every app folder in DIR (default ./apps) once, as serve would, prints one line\n"+
		"per app and each failure in full, and exits 1 if any app failed.", args, stderr, appsFlag)
	if fs == nil {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "wasmwsgi check: takes one apps folder, got %q\n", fs.Args())
		return 2
	}
	dir := fs.Arg(0)
	if dir == "" {
		dir, _ = fs.GetString("apps")
	}
	cfg, err := config.Load(fs, dir)
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi check: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The apps' own output and tracebacks belong to the report below, not to the log.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, rt, err := newRouter(ctx, cfg, log, false)
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi check: %v\n", err)
		return 1
	}
	defer engine.Close(context.Background())
	defer rt.Close(context.Background())
	if len(rt.Mounts()) == 0 {
		fmt.Fprintf(stderr, "wasmwsgi check: no apps in %s: an app is a subfolder holding app.py, wsgi.py, a *.wsgi file or a Django project's manage.py\n", cfg.AppsDir)
		return 1
	}
	failed := rt.LoadAll(ctx)

	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "APP\tSTATE\tMOUNT\tENTRYPOINT")
	var problems []string
	for _, m := range rt.Mounts() {
		state, why := m.App.Status()
		mount := m.Prefix
		if len(m.Hosts) > 0 {
			mount = strings.Join(m.Hosts, ",") + mount
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Dir.Name, state, mount, m.App.Spec.Describe())
		if state == runtime.StateFailed {
			problems = append(problems, fmt.Sprintf("--- %s (%s)\n%s", m.Dir.Name, m.Dir.Dir, strings.TrimSpace(why)))
		}
	}
	w.Flush()
	for _, p := range problems {
		fmt.Fprintf(stdout, "\n%s\n", p)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "\n%d of %d apps failed to load\n", failed, len(rt.Mounts()))
		return 1
	}
	return 0
}

// call runs one request through an app's sandbox without a server and prints the
// response like `curl -i`. It exits 1 when the app failed to load or answered 5xx.
func call(args []string, stdout, stderr io.Writer) int {
	var data string
	var headers []string
	fs, code := commandFlags("call", "Usage: wasmwsgi call APP|DIR [METHOD] PATH [flags]\n\n"+
		"Runs one request through an app's sandbox, without a server, and prints the response\n"+
		"like curl -i. The app is APP in the apps folder, or the app folder DIR (a path:\n"+
		"./apps/hello). PATH is below the app's mount: `wasmwsgi call hello /info`.", args, stderr,
		func(fs *pflag.FlagSet) {
			appsFlag(fs)
			fs.StringVarP(&data, "data", "d", "", "request body (the method defaults to POST with a body)")
			fs.StringArrayVarP(&headers, "header", "H", nil, `request header "Name: value" (repeatable)`)
		})
	if fs == nil {
		return code
	}
	rest := fs.Args()
	if len(rest) < 2 || len(rest) > 3 {
		fs.Usage()
		return 2
	}
	name, method, target := rest[0], http.MethodGet, rest[len(rest)-1]
	if data != "" {
		method = http.MethodPost
	}
	if len(rest) == 3 {
		method = strings.ToUpper(rest[1])
	}
	if !strings.HasPrefix(target, "/") {
		target = "/" + target
	}
	appsDir, _ := fs.GetString("apps")
	cfg, err := config.Load(fs, appsDir)
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi call: %v\n", err)
		return 2
	}
	typed := name
	name, isPath, code := appArg("call", typed, cfg, appsDir != "", stderr)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// What the app prints goes to stderr, tagged as in the server's log.
	engine, rt, err := newRouter(ctx, cfg, newLogger("text", slog.LevelWarn, stderr), false)
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi call: %v\n", err)
		return 1
	}
	defer engine.Close(context.Background())
	defer rt.Close(context.Background())
	m, code := findMount("call", rt, name, typed, isPath, cfg.AppsDir, stderr)
	if m == nil {
		return code
	}
	if err := rt.Load(ctx, m); err != nil {
		fmt.Fprintf(stderr, "wasmwsgi call: %v\n", err)
		return 1
	}

	if m.Prefix != "/" {
		target = m.Prefix + target
	}
	req := httptest.NewRequest(method, target, strings.NewReader(data))
	if len(m.Hosts) > 0 {
		req.Host = m.Hosts[0]
	}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			fmt.Fprintf(stderr, "wasmwsgi call: header %q must look like \"Name: value\"\n", h)
			return 2
		}
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	rec := httptest.NewRecorder()
	aborted := serveRecorded(rt, rec, req)
	res := rec.Result()
	fmt.Fprintf(stdout, "HTTP/1.1 %s\r\n", res.Status)
	_ = res.Header.Write(stdout)
	fmt.Fprint(stdout, "\r\n")
	_, _ = io.Copy(stdout, res.Body)
	if aborted {
		fmt.Fprintln(stderr, "wasmwsgi call: the app failed after its response started; a client would see the connection cut")
		return 1
	}
	if res.StatusCode >= 500 {
		return 1
	}
	return 0
}

// appPath reports whether call's APP argument is the path of an app folder rather
// than the name of an app in appsDir: it has a slash, is "." or "..", or, unless
// --apps was given, is a folder here while appsDir has no folder of that name.
func appPath(app, appsDir string, appsFlag bool) bool {
	if strings.ContainsRune(app, '/') || app == "." || app == ".." {
		return true
	}
	if appsFlag {
		return false
	}
	here, err := os.Stat(app)
	if err != nil || !here.IsDir() {
		return false
	}
	inApps, err := os.Stat(filepath.Join(appsDir, app))
	return err != nil || !inApps.IsDir()
}

// serveRecorded serves req and reports whether the handler aborted the response.
func serveRecorded(h http.Handler, w http.ResponseWriter, req *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			aborted = true
		}
	}()
	h.ServeHTTP(w, req)
	return false
}
