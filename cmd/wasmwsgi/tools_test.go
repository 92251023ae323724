package main

import (
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// runBinary runs the built wasmwsgi with the test's environment (runWith) and returns
// its stdout, stderr and exit code.
func runBinary(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runWith(t, nil, args...)
}

func TestCheckCommand(t *testing.T) {
	out, _, code := runBinary(t, append([]string{"check", testApps(t)}, testAppsGrants(t)...)...)
	if code != 1 {
		t.Errorf("check over broken apps exited %d, want 1", code)
	}
	for _, want := range []string{
		"wsgitest       ready", "broken-import  failed", "tenant.example/",
		"ModuleNotFoundError: No module named 'module_that_does_not_exist'",
		"wasmwsgi.toml, line 2: prefixx is not a setting; did you mean prefix?", "4 of 7 apps failed to load",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if out, _, code := runBinary(t, "check", "../../cmd/wasmwsgi/testdata/hostile-apps"); code != 0 ||
		!regexp.MustCompile(`(?m)^hostile +ready`).MatchString(out) {
		t.Errorf("check over healthy apps exited %d:\n%s", code, out)
	}
}

func TestCallCommand(t *testing.T) {
	apps := testApps(t)
	out, _, code := runBinary(t, "call", "--apps", apps, "wsgitest", "/echo?x=1", "-d", "the body", "-H", "X-Test: yes")
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") {
		t.Fatalf("call exited %d:\n%s", code, out)
	}
	for _, want := range []string{`"REQUEST_METHOD": "POST"`, `"SCRIPT_NAME": "/wsgitest"`, `"QUERY_STRING": "x=1"`,
		`"body": "the body"`, `"HTTP_X_TEST": "yes"`} {
		if !strings.Contains(out, want) {
			t.Errorf("call output lacks %s:\n%s", want, out)
		}
	}
	if out, _, code := runBinary(t, append([]string{"call", "--apps", apps, "vhost", "GET", "/x"}, testAppsGrants(t)...)...); code != 0 ||
		!strings.Contains(out, "vhost tenant.example script='' path='/x'") {
		t.Errorf("call on a virtual host app exited %d:\n%s", code, out)
	}
	if out, _, code := runBinary(t, "call", "--apps", apps, "wsgitest", "/raise"); code != 1 || !strings.Contains(out, "500 Internal Server Error") {
		t.Errorf("call of a failing request exited %d:\n%s", code, out)
	}
	if _, errOut, code := runBinary(t, "call", "--apps", apps, "nosuchapp", "/"); code != 2 || !strings.Contains(errOut, "apps: ") {
		t.Errorf("call of an unknown app exited %d: %s", code, errOut)
	}
	if _, errOut, code := runBinary(t, "call", "--apps", apps, "broken-import", "/"); code != 1 || !strings.Contains(errOut, "ModuleNotFoundError") {
		t.Errorf("call of a broken app exited %d: %s", code, errOut)
	}
}

// call takes an app folder's path as well as an app's name.
func TestCallAppPath(t *testing.T) {
	hello, err := filepath.Abs("../../apps/hello")
	if err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runBinary(t, "call", hello, "/info"); code != 0 || !strings.Contains(out, `"script_name": "/hello"`) {
		t.Errorf("call %s exited %d:\n%s%s", hello, code, out, errOut)
	}
	if out, errOut, code := runBinary(t, "call", "./testdata/apps/wsgitest", "GET", "/echo"); code != 0 ||
		!strings.Contains(out, `"SCRIPT_NAME": "/wsgitest"`) {
		t.Errorf("call ./testdata/apps/wsgitest exited %d:\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"./testdata/apps/nosuchapp", "/"}, "./testdata/apps/nosuchapp is not a folder"},
		{[]string{"./testdata", "/"}, "./testdata is not an app folder"},
		{[]string{"--apps", "testdata/apps", "./testdata/apps/wsgitest", "/"}, "drop --apps"},
	} {
		if _, errOut, code := runBinary(t, append([]string{"call"}, c.args...)...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("call %q exited %d, want 2 and %q: %s", c.args, code, c.want, errOut)
		}
	}
}

// TestGuardPagesUnderAddressSpaceLimit: where the process may not reserve the 8 GiB of
// address space each memory takes with guard pages (ulimit -v), the app fails with an
// error that names guard_pages, and serves with guard_pages = false.
func TestGuardPagesUnderAddressSpaceLimit(t *testing.T) {
	if goruntime.GOOS != "linux" || goruntime.GOARCH != "amd64" {
		t.Skip("guard pages are used on linux/amd64 only")
	}
	apps := testApps(t)
	run := func(args ...string) (string, int) {
		// 6 GB of address space: room for the server, not for an 8 GiB reservation.
		cmd := exec.Command("sh", append([]string{"-c", `ulimit -v 6000000 && exec "$0" "$@"`, testkit.Binary(t)}, args...)...)
		cmd.Env = testkit.Env(t)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run("call", "--apps", apps, "wsgitest", "/")
	if code == 0 || !strings.Contains(out, "reserving") || !strings.Contains(out, "set guard_pages = false") {
		t.Errorf("with guard pages under ulimit -v, call exited %d:\n%s", code, out)
	}
	out, code = run("call", "--apps", apps, "--guard-pages=false", "wsgitest", "/")
	if code != 0 || !strings.HasPrefix(out, "HTTP/1.1 200 OK\r\n") {
		t.Errorf("with --guard-pages=false under ulimit -v, call exited %d:\n%s", code, out)
	}
}
