package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// runInput runs the built wasmwsgi with stdin, the test's environment plus env, and
// returns its stdout, stderr and exit code; it gives up after 5 minutes.
func runInput(t *testing.T, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	return runFor(t, 5*time.Minute, strings.NewReader(stdin), env, args...)
}

// TestRunCommand runs Python command lines in the sandbox of an app whose operator
// grants it a data folder, variables and one outbound destination.
func TestRunCommand(t *testing.T) {
	// A loopback server the grant names: it answers every connection with one line.
	port := testkit.StartTCP(t, func(c net.Conn) { fmt.Fprintln(c, "hello from the granted server") }).Port

	tmp := t.TempDir()
	apps, data := filepath.Join(tmp, "apps"), filepath.Join(tmp, "data")
	for name, content := range map[string]string{
		"runner/app.py": "import helper\n\ndef application(environ, start_response):\n" +
			"    start_response('200 OK', [])\n    return [b'ok']\n",
		"runner/helper.py": "WORD = 'helper'\n",
		"runner/greet.py":  "import sys\nprint('greet', __name__, sys.argv)\n",
		"runner/bin/tool.py": "import os, sys, helper\n" +
			"print('tool', sys.argv, sys.path[0], sys.path[1], os.getcwd(), helper.WORD, __name__, __file__)\n",
		"runner/wasmwsgi.toml": "[env]\nTENANT_VAR = \"from the tenant\"\n",
	} {
		testkit.WriteFile(t, filepath.Join(apps, filepath.FromSlash(name)), content)
	}
	conf := testkit.ConfigFile(t, fmt.Sprintf(`data_root = %q

[apps.runner]
data_dir = true
outbound = ["tcp://127.0.0.1:%d"]

[apps.runner.env]
GRANTED_VAR = "from the operator"
`, data, port))
	run := func(t *testing.T, stdin string, args ...string) (string, string, int) {
		t.Helper()
		return runInput(t, stdin, []string{"HOST_ONLY_VAR=host"},
			append([]string{"run", "runner", "--apps", apps, "--config", conf, "--"}, args...)...)
	}

	t.Run("-c prints to stdout and exits 0", func(t *testing.T) {
		out, errOut, code := run(t, "", "-c", "import sys; print('six times seven is', 6 * 7, sys.argv)", "a", "b")
		if code != 0 || out != "six times seven is 42 ['-c', 'a', 'b']\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("SystemExit's code is the exit status", func(t *testing.T) {
		for _, c := range []struct {
			code string
			want int
		}{{"raise SystemExit(3)", 3}, {"import sys; sys.exit()", 0}, {"exit(4)", 4}, {"raise SystemExit('bad input')", 1}} {
			if out, errOut, code := run(t, "", "-c", c.code); code != c.want {
				t.Errorf("%s: exit %d, want %d (stdout %q, stderr %q)", c.code, code, c.want, out, errOut)
			}
		}
		if _, errOut, _ := run(t, "", "-c", "raise SystemExit('bad input')"); errOut != "bad input\n" {
			t.Errorf("SystemExit with a message: stderr %q", errOut)
		}
	})

	t.Run("an uncaught exception prints its traceback and exits 1", func(t *testing.T) {
		out, errOut, code := run(t, "", "-c", "print('before')\n1 / 0")
		want := "Traceback (most recent call last):\n  File \"<string>\", line 2, in <module>\nZeroDivisionError: division by zero\n"
		if code != 1 || out != "before\n" || errOut != want {
			t.Errorf("exit %d, stdout %q, stderr %q; want 1, the traceback:\n%s", code, out, errOut, want)
		}
	})

	t.Run("-m runs a module of the app folder as __main__", func(t *testing.T) {
		out, errOut, code := run(t, "", "-m", "greet", "x", "--y")
		if code != 0 || out != "greet __main__ ['/app/greet.py', 'x', '--y']\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		_, errOut, code = run(t, "", "-m", "no_such_module")
		if code != 1 || !strings.Contains(errOut, "no module named 'no_such_module'") {
			t.Errorf("-m of a missing module: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("a script relative to the app folder, with its arguments", func(t *testing.T) {
		out, errOut, code := run(t, "", "bin/tool.py", "migrate", "--noinput")
		want := "tool ['bin/tool.py', 'migrate', '--noinput'] /app/bin /app /app helper __main__ /app/bin/tool.py\n"
		if code != 0 || out != want {
			t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
		}
		_, errOut, code = run(t, "", "nope.py")
		if code != 2 || !strings.Contains(errOut, "can't open file 'nope.py'") || !strings.Contains(errOut, "relative to the app folder") {
			t.Errorf("a missing script: exit %d, stderr %q", code, errOut)
		}
		out, _, code = run(t, "print('read from stdin')\n", "-")
		if code != 0 || out != "read from stdin\n" {
			t.Errorf("a script from stdin: exit %d, stdout %q", code, out)
		}
	})

	t.Run("stdin piped to the interactive prompt", func(t *testing.T) {
		out, errOut, code := run(t, "x = 6 * 7\nfor i in range(2):\n    print(i)\n\nprint(x)\n1 / 0\nprint('after')\nexit(5)\nprint('never')\n")
		if code != 5 || out != "0\n1\n42\nafter\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if !strings.Contains(errOut, ">>> ") || !strings.Contains(errOut, "... ") || !strings.Contains(errOut, "ZeroDivisionError") {
			t.Errorf("the prompts and the traceback are not on stderr: %q", errOut)
		}
		if out, _, code := run(t, "print('to the end')\n"); code != 0 || out != "to the end\n" {
			t.Errorf("at the end of stdin: exit %d, stdout %q", code, out)
		}
	})

	t.Run("the data folder persists, the app folder is read-only", func(t *testing.T) {
		_, errOut, code := run(t, "", "-c", "open('/data/note.txt', 'w').write('kept')")
		if code != 0 {
			t.Fatalf("writing to /data: exit %d, stderr %q", code, errOut)
		}
		if b, err := os.ReadFile(filepath.Join(data, "runner", "note.txt")); err != nil || string(b) != "kept" {
			t.Errorf("the data folder on the host holds %q, %v", b, err)
		}
		if out, _, code := run(t, "", "-c", "print(open('/data/note.txt').read())"); code != 0 || out != "kept\n" {
			t.Errorf("a later run reads %q (exit %d)", out, code)
		}
		for _, path := range []string{"/app/new.txt", "/app/helper.py", "new.txt"} {
			_, errOut, code := run(t, "", "-c", fmt.Sprintf("with open(%q, 'w') as f:\n    f.write('x')", path))
			if code != 1 || !strings.Contains(errOut, "Error") {
				t.Errorf("writing %s: exit %d, stderr %q; want an OSError", path, code, errOut)
			}
		}
		if _, err := os.Stat(filepath.Join(apps, "runner", "new.txt")); err == nil {
			t.Error("a file was written into the app folder")
		}
		if b, _ := os.ReadFile(filepath.Join(apps, "runner", "helper.py")); string(b) != "WORD = 'helper'\n" {
			t.Errorf("helper.py changed: %q", b)
		}
		if out, _, code := run(t, "", "-c", "open('/tmp/x', 'w').write('t'); print(open('/tmp/x').read())"); code != 0 || out != "t\n" {
			t.Errorf("/tmp: exit %d, stdout %q", code, out)
		}
	})

	t.Run("the app's environment, none of the host's", func(t *testing.T) {
		out, errOut, code := run(t, "", "-c", "import os; print(os.environ.get('GRANTED_VAR'), os.environ.get('TENANT_VAR'), "+
			"os.environ.get('HOST_ONLY_VAR'), sep='|')")
		if code != 0 || out != "from the operator|from the tenant|None\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})

	t.Run("outbound grants", func(t *testing.T) {
		code := "import socket\n" +
			"with socket.create_connection(('127.0.0.1', %d), timeout=30) as s:\n" +
			"    print(s.makefile().readline().strip())\n"
		out, errOut, exit := run(t, "", "-c", fmt.Sprintf(code, port))
		if exit != 0 || out != "hello from the granted server\n" {
			t.Errorf("the granted destination: exit %d, stdout %q, stderr %q", exit, out, errOut)
		}
		_, errOut, exit = run(t, "", "-c", fmt.Sprintf(code, port+1))
		if exit != 1 || !strings.Contains(errOut, "is not granted to this app") {
			t.Errorf("a destination not granted: exit %d, stderr %q", exit, errOut)
		}
	})

	t.Run("--timeout stops the command", func(t *testing.T) {
		_, errOut, code := runInput(t, "", nil, "run", "runner", "--apps", apps, "--config", conf, "--timeout", "1s", "--",
			"-c", "while True: pass")
		if code != 124 || !strings.Contains(errOut, "time limit of 1s (--timeout)") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("SIGINT stops the command", func(t *testing.T) {
		cmd := exec.Command(testkit.Binary(t), "run", "runner", "--apps", apps, "--config", conf, "--",
			"-c", "print('looping', flush=True)\nwhile True: pass")
		cmd.Env = testkit.Env(t)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if line != "looping\n" {
			t.Fatalf("the command printed %q (%v), stderr %q", line, err, stderr.String())
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(stderr.String(), "wasmwsgi run: interrupted") {
			t.Errorf("after SIGINT: %v, stderr %q; want exit 130", err, stderr.String())
		}
	})

	t.Run("python's own options", func(t *testing.T) {
		// Before -c, -m or the script, alone or joined, as python's command line takes them.
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"-V"}, "Python 3.11.2\n"},
			{[]string{"-B", "-W", "error", "-X", "opt=1", "-Xdev", "-c",
				"import sys, warnings; print(sys.dont_write_bytecode, sys._xoptions, warnings.filters[0][0], sys.argv)", "a"},
				"True {'opt': '1', 'dev': True} error ['-c', 'a']\n"},
			{[]string{"-Bc", "import sys; print(sys.dont_write_bytecode)"}, "True\n"},
			{[]string{"-Wignore::DeprecationWarning", "-c", "import warnings; print(warnings.filters[0][0], warnings.filters[0][2].__name__)"},
				"ignore DeprecationWarning\n"},
			{[]string{"-I", "-s", "-S", "-u", "-q", "-c", "print('accepted')"}, "accepted\n"},
			{[]string{"-m", "greet", "-B"}, "greet __main__ ['/app/greet.py', '-B']\n"}, // after -m, the module's
		} {
			if out, errOut, code := run(t, "", c.args...); code != 0 || out != c.want {
				t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", c.args, code, out, errOut, c.want)
			}
		}
		for _, c := range []struct {
			arg, want string
		}{{"-O", "-O (the optimization level) is fixed when the sandbox's interpreter starts"},
			{"-W", "-W needs an argument"}, {"--verbose", "unknown option --verbose"}} {
			if _, errOut, code := run(t, "", c.arg); code != 2 || !strings.Contains(errOut, c.want) {
				t.Errorf("%s: exit %d, stderr %q, want 2 and %q", c.arg, code, errOut, c.want)
			}
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		if _, errOut, code := run(t, "", "-Z"); code != 2 || !strings.Contains(errOut, "unknown option -Z") {
			t.Errorf("an unknown option: exit %d, stderr %q", code, errOut)
		}
		if _, errOut, code := run(t, "", "-c"); code != 2 || !strings.Contains(errOut, "-c needs the code to run") {
			t.Errorf("-c alone: exit %d, stderr %q", code, errOut)
		}
	})
}

// TestRunCommandApps: run names an app as call does, and runs it without importing it.
func TestRunCommandApps(t *testing.T) {
	apps := testApps(t)
	_, errOut, code := runInput(t, "", nil, "run", "nosuchapp", "--apps", apps, "--", "-c", "pass")
	if code != 2 || !strings.Contains(errOut, `no app "nosuchapp" in `+apps) || !strings.Contains(errOut, "wsgitest") {
		t.Errorf("an unknown app: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runInput(t, "", nil, "run", "./testdata/apps/nosuchapp", "--", "-c", "pass")
	if code != 2 || !strings.Contains(errOut, "./testdata/apps/nosuchapp is not a folder") {
		t.Errorf("an app folder that does not exist: exit %d, stderr %q", code, errOut)
	}
	// The app is not imported: one whose import fails still runs commands.
	out, errOut, code := runInput(t, "", nil, "run", "./testdata/apps/broken-import", "--", "-c", "print('ran')")
	if code != 0 || out != "ran\n" {
		t.Errorf("a command in an app whose import fails: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Settings the operator does not grant fail as they would in serve, naming the key.
	_, errOut, code = runInput(t, "", nil, "run", "badconfig", "--apps", apps, "--", "-c", "pass")
	if code != 2 || !strings.Contains(errOut, "wasmwsgi.toml") {
		t.Errorf("an app with a bad wasmwsgi.toml: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := runInput(t, "", nil, "run", "--apps", apps); code != 2 || !strings.Contains(errOut, "name the app") {
		t.Errorf("no app: exit %d, stderr %q", code, errOut)
	}
}
