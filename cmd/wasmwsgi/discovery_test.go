package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// appPrinting is an app.py that prints a marker when it is imported, followed by body.
func appPrinting(marker, body string) string {
	return "import os, sys\nprint(" + `"IMPORTED ` + marker + `"` + ", file=sys.stderr)\n" + body
}

// answering is a module-level WSGI callable that answers its text.
const answering = `
def answer(text):
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]
    return application
`

// TestEntrypointForms serves one app for each form of entrypoint gunicorn accepts, and
// for Flask's factories found without one: the factory runs once, at import, and every
// request starts from its result in the snapshot. A spec that is not a name, a dotted
// path or a call with literal arguments fails the app before any of its code runs, and
// an app whose module defines no callable says what was looked for and what to write.
func TestEntrypointForms(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{
		// A factory, no configuration. CREATED proves it ran once, before the snapshot.
		"factory/app.py": appPrinting("factory", answering+`
CREATED = []

def create_app():
    token = os.urandom(8).hex()
    CREATED.append(token)
    return answer("made by create_app %s" % token)

def make_app():
    return answer("make_app, which create_app comes before")
`),
		"makeapp/wsgi.py": appPrinting("makeapp", answering+`
def make_app():
    return answer("made by make_app")
`),
		// Literal arguments, positional and by keyword.
		"literal/app.py": appPrinting("literal", answering+`
def create_app(env, *, debug=True, sizes=(), extra=None):
    return answer("env=%r debug=%r sizes=%r extra=%r" % (env, debug, sizes, extra))
`),
		"literal/wasmwsgi.toml": `entrypoint = "app:create_app('production', debug=False, sizes=(1, 2.5, -3), extra={'k': [None, b'x']})"` + "\n",
		// A dotted module and a dotted attribute path, and a factory reached by one.
		"dotted/pkg/__init__.py": "",
		"dotted/pkg/web.py": appPrinting("dotted", answering+`
class holder:
    class inner:
        wsgi = staticmethod(answer("holder.inner.wsgi in pkg/web.py"))

    class factories:
        @staticmethod
        def build(name):
            return answer("built by holder.factories.build(%r)" % name)
`),
		"dotted/wasmwsgi.toml":       `entrypoint = "pkg.web:holder.inner.wsgi"` + "\n",
		"dottedcall/pkg/__init__.py": "",
		"dottedcall/wasmwsgi.toml":   `entrypoint = "pkg.web:holder.factories.build('shop')"` + "\n",
		// Bad specs: each app prints a marker at import, which must never appear.
		"badcall/app.py":          appPrinting("badcall", "def create_app(x):\n    print('FACTORY RAN', file=sys.stderr)\n"),
		"badcall/wasmwsgi.toml":   `entrypoint = "app:create_app(__import__('os').getpid())"` + "\n",
		"badkw/app.py":            appPrinting("badkw", "def create_app(**kw):\n    print('FACTORY RAN', file=sys.stderr)\n"),
		"badkw/wasmwsgi.toml":     `entrypoint = "app:create_app(**{'a': 1})"` + "\n",
		"badexpr/app.py":          appPrinting("badexpr", "apps = []\n"),
		"badexpr/wasmwsgi.toml":   `entrypoint = "app:apps[0]"` + "\n",
		"badsyntax/app.py":        appPrinting("badsyntax", ""),
		"badsyntax/wasmwsgi.toml": `entrypoint = "app:create_app("` + "\n",
		"badmodule/app.py":        appPrinting("badmodule", ""),
		"badmodule/wasmwsgi.toml": `entrypoint = "../app:application"` + "\n",
		// Names that are missing or wrong, found only once the module is imported.
		"none/app.py":              appPrinting("none", "def handler(environ, start_response):\n    pass\n"),
		"nosuchattr/app.py":        appPrinting("nosuchattr", "class holder:\n    pass\n"),
		"nosuchattr/wasmwsgi.toml": `entrypoint = "app:holder.wsgi"` + "\n",
		"returnsnone/app.py":       appPrinting("returnsnone", "def create_app():\n    return None\n"),
	})
	dotted, err := os.ReadFile(filepath.Join(apps, "dotted", "pkg", "web.py"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(apps, "dottedcall", "pkg", "web.py"), string(dotted))
	s := testkit.Start(t, apps)

	for _, tc := range []struct{ app, want string }{
		{"makeapp", "made by make_app"},
		{"literal", "env='production' debug=False sizes=(1, 2.5, -3) extra={'k': [None, b'x']}"},
		{"dotted", "holder.inner.wsgi in pkg/web.py"},
		{"dottedcall", "built by holder.factories.build('shop')"},
	} {
		if r := get(t, s.Base+"/"+tc.app+"/"); r.status != http.StatusOK || r.body != tc.want {
			t.Errorf("%s: %d %q, want 200 %q", tc.app, r.status, r.body, tc.want)
		}
	}

	// The factory ran at import: every request, restored from the snapshot, answers
	// with the one token it made there.
	first := get(t, s.Base+"/factory/")
	if first.status != http.StatusOK || !regexp.MustCompile(`^made by create_app [0-9a-f]{16}$`).MatchString(first.body) {
		t.Fatalf("factory: %d %q", first.status, first.body)
	}
	for range 3 {
		if r := get(t, s.Base+"/factory/"); r.body != first.body {
			t.Errorf("factory: %q after %q: the factory ran again, its result is not the snapshot's", r.body, first.body)
		}
	}

	states := readyStates(t, s.Base)
	log := s.Log()
	for _, tc := range []struct{ app, want string }{
		{"badcall", `entrypoint = "app:create_app(__import__('os').getpid())": the arguments of create_app() are not all Python literals`},
		{"badkw", "the arguments of create_app() are not all Python literals"},
		{"badexpr", `"apps[0]" is not a name, a dotted path or a call`},
		{"badsyntax", `"create_app(" is not a name, a dotted path or a call`},
		{"badmodule", `"../app" is not a module name`},
		{"none", `app.py defines none of application, app, create_app(), make_app(): name the WSGI callable ` +
			"`application`" + `, or set entrypoint = "app:NAME" (or "app:FACTORY()", "app:FACTORY('arg')") in wasmwsgi.toml`},
		{"nosuchattr", `entrypoint = "app:holder.wsgi": holder in app.py has no attribute wsgi`},
		{"returnsnone", "what app.py: create_app() returned is not a WSGI callable (it is NoneType)"},
	} {
		st := states[tc.app]
		if st.State != "failed" || !strings.Contains(strings.ReplaceAll(st.Error, `\"`, `"`), tc.want) {
			t.Errorf("%s: state %q, error %q; want failed with %q", tc.app, st.State, st.Error, tc.want)
		}
		if r := get(t, s.Base+"/"+tc.app+"/"); r.status != http.StatusServiceUnavailable {
			t.Errorf("%s: %d, want 503", tc.app, r.status)
		}
	}
	// A bad spec runs nothing: not the module, let alone the call.
	for _, app := range []string{"badcall", "badkw", "badexpr", "badsyntax", "badmodule"} {
		if strings.Contains(log, "IMPORTED "+app) {
			t.Errorf("%s: the app's module was imported although its entrypoint is refused", app)
		}
		if strings.Contains(states[app].Error, "Traceback") {
			t.Errorf("%s: the error is a traceback, not a plain message: %s", app, states[app].Error)
		}
	}
	if strings.Contains(log, "FACTORY RAN") {
		t.Error("a factory named by a refused entrypoint ran")
	}
	if !strings.Contains(log, "IMPORTED none") {
		t.Error("an app whose entrypoint is well formed was not imported")
	}
}

// startproject writes a new Django project named mysite into dir with the Django
// vendored from Debian for the example (apps/django/site-packages), runs nothing else,
// and gives the project that Django in its own site-packages.
func startproject(t *testing.T, dir string) {
	t.Helper()
	vendored, err := filepath.Abs("../../apps/django/site-packages")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(vendored, "django")); err != nil || !st.IsDir() {
		unavailable(t, "apps/django/site-packages is missing: run `make vendor-apps` to vendor Django from Debian")
	}
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		if python, err = exec.LookPath("python3"); err != nil {
			unavailable(t, "no python3 on this machine to run django-admin startproject")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-m", "django", "startproject", "mysite", dir)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+vendored, "PYTHONDONTWRITEBYTECODE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("django-admin startproject: %v\n%s", err, out)
	}
	copyDjangoTree(t, vendored, filepath.Join(dir, "site-packages"))
}

// editFile replaces old by new in the file p, which must hold old.
func editFile(t *testing.T, p, old, new string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not hold %q", p, old)
	}
	testkit.WriteFile(t, p, strings.Replace(string(b), old, new, 1))
}

// TestDjangoProjectFolder serves folders made by Django's own startproject (the Django
// of the example, from Debian) as they are: no wasmwsgi.toml, no app.py. The settings
// module comes from manage.py, read by the host without running it, and the app from
// the WSGI_APPLICATION setting, as runserver loads it. A project whose setting or
// module is missing fails with an error that says which, and `wasmwsgi check` reports
// what each app is loaded from.
func TestDjangoProjectFolder(t *testing.T) {
	apps := t.TempDir()
	for _, name := range []string{"site", "custom", "nowsgi", "nomodule", "nosettings"} {
		startproject(t, filepath.Join(apps, name))
	}
	// WSGI_APPLICATION names another callable: the one that answers is that one.
	testkit.WriteFile(t, filepath.Join(apps, "custom", "mysite", "custom.py"), `from .wsgi import application as django_app


def application(environ, start_response):
    def start(status, headers, exc_info=None):
        return start_response(status, headers + [("X-Loaded-From", "mysite.custom")], exc_info)
    return django_app(environ, start)
`)
	editFile(t, filepath.Join(apps, "custom", "mysite", "settings.py"),
		"WSGI_APPLICATION = 'mysite.wsgi.application'", "WSGI_APPLICATION = 'mysite.custom.application'")
	editFile(t, filepath.Join(apps, "nowsgi", "mysite", "settings.py"), "WSGI_APPLICATION = 'mysite.wsgi.application'", "")
	editFile(t, filepath.Join(apps, "nomodule", "mysite", "settings.py"),
		"WSGI_APPLICATION = 'mysite.wsgi.application'", "WSGI_APPLICATION = 'mysite.gone.application'")
	editFile(t, filepath.Join(apps, "nosettings", "manage.py"), "'mysite.settings'", "'othersite.settings'")
	conf := testkit.ConfigFile(t, "[limits]\ntimeout = \"120s\"\nqueue_timeout = \"120s\"\n")

	s := testkit.Start(t, apps, "--config", conf)
	// startproject's settings: DEBUG on, so Django's own 404 page names the URLconf;
	// the admin's login page carries the mount in its form's action.
	if r := get(t, s.Base+"/site/nowhere"); r.status != http.StatusNotFound || !strings.Contains(r.body, "mysite.urls") {
		t.Errorf("/site/nowhere: %d, want Django's 404 page naming mysite.urls:\n%s", r.status, r.body)
	}
	r := get(t, s.Base+"/site/admin/login/")
	if r.status != http.StatusOK || !strings.Contains(r.body, "Django administration") ||
		!strings.Contains(r.body, `action="/site/admin/login/"`) {
		t.Errorf("/site/admin/login/: %d:\n%s", r.status, r.body)
	}
	r = get(t, s.Base+"/custom/admin/login/")
	if r.status != http.StatusOK || r.header.Get("X-Loaded-From") != "mysite.custom" {
		t.Errorf("/custom/admin/login/: %d, X-Loaded-From %q: the app is not WSGI_APPLICATION's",
			r.status, r.header.Get("X-Loaded-From"))
	}
	states := readyStates(t, s.Base)
	for _, tc := range []struct{ app, want string }{
		{"nowsgi", `mysite/settings.py sets no WSGI_APPLICATION, which names the project's WSGI callable: add WSGI_APPLICATION = "PROJECT.wsgi.application"`},
		{"nomodule", "mysite/settings.py: WSGI_APPLICATION = 'mysite.gone.application' cannot be imported (No module named 'mysite.gone')"},
		{"nosettings", `DJANGO_SETTINGS_MODULE = 'othersite.settings' (from manage.py) names no module in the app folder: add othersite/settings.py`},
	} {
		st := states[tc.app]
		if st.State != "failed" || !strings.Contains(strings.ReplaceAll(st.Error, `\"`, `"`), tc.want) {
			t.Errorf("%s: state %q, error %q; want failed with %q", tc.app, st.State, st.Error, tc.want)
		}
	}
	s.Stop(t)

	// check reports each app's entrypoint, found or written.
	for _, name := range []string{"nowsgi", "nomodule", "nosettings", "custom"} {
		if err := os.RemoveAll(filepath.Join(apps, name)); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WriteFile(t, filepath.Join(apps, "factory", "app.py"), answering+"\ndef create_app():\n    return answer('x')\n")
	testkit.WriteFile(t, filepath.Join(apps, "literal", "app.py"), answering+"\ndef create_app(x):\n    return answer(x)\n")
	testkit.WriteFile(t, filepath.Join(apps, "literal", "wasmwsgi.toml"), `entrypoint = "app:create_app('a')"`+"\n")
	cmd := exec.Command(testkit.Binary(t), "check", apps, "--config", conf)
	cmd.Env = testkit.Env(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wasmwsgi check: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^factory +ready +/factory +app \(application, app, create_app\(\) or make_app\(\)\)$`),
		regexp.MustCompile(`(?m)^literal +ready +/literal +app:create_app\('a'\)$`),
		regexp.MustCompile(`(?m)^site +ready +/site +WSGI_APPLICATION of mysite\.settings \(from manage\.py\)$`),
	} {
		if !want.Match(out) {
			t.Errorf("wasmwsgi check does not match %s:\n%s", want, out)
		}
	}
}
