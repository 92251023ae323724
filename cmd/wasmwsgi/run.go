package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/router"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

const runUsage = `Usage: wasmwsgi run APP|DIR [flags] [-- ARG...]

Runs Python in the sandbox of an app, with what its requests get: the app folder
read-only at /app (the working directory, first on sys.path), the data folder the
operator granted at /data, a private /tmp, the app's environment, outbound grants
and limits, but no time limit unless --timeout is given. The ARGs are python's:

  -c CODE [ARG...]     run CODE
  -m MODULE [ARG...]   run a module as __main__
  SCRIPT [ARG...]      run a script; its path is relative to the app folder
  -                    run the script read from stdin
  (none)               an interactive prompt

python's own options may come first: -B, -W ARG, -X OPT, -E, -I, -s, -S, -u, -q, -V.

stdin, stdout and stderr are this process's, and the exit status is python's.
APP is an app's name in the apps folder, DIR the path of an app folder (./apps/hello):

  wasmwsgi run django --config server.toml -- manage.py migrate`

// runCmd runs a Python command line in an app's sandbox and returns its exit status;
// wasmwsgi's own failures are 2 (usage, configuration, no such app) or 1.
func runCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var timeout time.Duration
	fs, code := commandFlags("run", runUsage, args, stderr, func(fs *pflag.FlagSet) {
		appsFlag(fs)
		fs.Lookup("timeout").Usage = "wall-time limit of the command, e.g. 10m (default none)"
	})
	if fs == nil {
		return code
	}
	// --timeout is the command's own time limit here, not the requests' limits.timeout,
	// which run does not use.
	if f := fs.Lookup("timeout"); f.Changed {
		d, err := time.ParseDuration(f.Value.String())
		if err != nil || d < 0 {
			fmt.Fprintf(stderr, "wasmwsgi run: --timeout %q is not a duration such as 90s or 10m\n", f.Value.String())
			return 2
		}
		timeout, f.Changed = d, false
	}
	rest := fs.Args()
	if len(rest) == 0 || fs.ArgsLenAtDash() == 0 {
		fmt.Fprintf(stderr, "wasmwsgi run: name the app first: wasmwsgi run APP [flags] [-- ARG...]\n")
		return 2
	}
	appsDir, _ := fs.GetString("apps")
	cfg, err := config.Load(fs, appsDir)
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi run: %v\n", err)
		return 2
	}
	name, isPath, code := appArg("run", rest[0], cfg, appsDir != "", stderr)
	if code >= 0 {
		return code
	}

	// The first SIGINT or SIGTERM stops the guest (at its next loop iteration or host
	// call; a read from a terminal waits for its line); a second one ends the process.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	engine, rt, err := newRouter(ctx, cfg, newLogger("text", slog.LevelWarn, stderr), false)
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi run: %v\n", err)
		return 1
	}
	defer engine.Close(context.Background())
	defer rt.Close(context.Background())
	m, code := findMount("run", rt, name, rest[0], isPath, cfg.AppsDir, stderr)
	if m == nil {
		return code
	}
	if m.Dir.Err != nil {
		fmt.Fprintf(stderr, "wasmwsgi run: %v\n", m.Dir.Err)
		return 2
	}
	status, err := m.App.Run(ctx, runtime.Command{
		Argv: rest[1:], Stdin: stdin, Stdout: stdout, Stderr: stderr, Timeout: timeout,
	})
	switch {
	case errors.Is(err, runtime.ErrTimeout):
		fmt.Fprintf(stderr, "wasmwsgi run: stopped at the time limit of %s (--timeout)\n", timeout)
		return 124
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "wasmwsgi run: interrupted")
		return 130
	case err != nil:
		fmt.Fprintf(stderr, "wasmwsgi run: app %s: %v\n", name, err)
		return 1
	}
	return status
}

// appArg resolves the APP|DIR argument of call and run: an app's name in cfg's apps
// folder, or the path of an app folder, in which case cfg.AppsDir becomes the folder
// above it. It returns the app's name and whether a path was given, and an exit code
// >= 0 when the argument is unusable (the error is written to stderr).
func appArg(cmd, typed string, cfg *config.Config, appsFlag bool, stderr io.Writer) (string, bool, int) {
	if !appPath(typed, cfg.AppsDir, appsFlag) {
		return typed, false, -1
	}
	if appsFlag {
		fmt.Fprintf(stderr, "wasmwsgi %s: %s is an app folder's path: drop --apps, or give the app's name\n", cmd, typed)
		return "", true, 2
	}
	abs, err := filepath.Abs(typed)
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi %s: %s: %v\n", cmd, typed, err)
		return "", true, 2
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "wasmwsgi %s: %s is not a folder: give the path of an app folder, or the name of an app in %s\n",
			cmd, typed, cfg.AppsDir)
		return "", true, 2
	}
	cfg.AppsDir = filepath.Dir(abs)
	return filepath.Base(abs), true, -1
}

// findMount returns the app named name, or nil and an exit code after saying on stderr
// why there is none: the folder typed is no app folder, or the apps folder has no app
// of that name (the error lists the ones it has).
func findMount(cmd string, rt *router.Router, name, typed string, isPath bool, appsDir string, stderr io.Writer) (*router.Mount, int) {
	if m := rt.Mount(name); m != nil {
		return m, -1
	}
	if isPath {
		fmt.Fprintf(stderr, "wasmwsgi %s: %s is not an app folder: it needs an app.py, wsgi.py, *.wsgi file or "+
			"wasmwsgi.toml, and a name that does not start with \".\" or \"_\"\n", cmd, typed)
		return nil, 2
	}
	var names []string
	for _, m := range rt.Mounts() {
		names = append(names, m.Dir.Name)
	}
	sort.Strings(names)
	fmt.Fprintf(stderr, "wasmwsgi %s: no app %q in %s (apps: %s)\n", cmd, name, appsDir, strings.Join(names, ", "))
	return nil, 2
}
