package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// startprojectManage is manage.py as Django 3.2's django-admin startproject writes it.
const startprojectManage = `#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main():
    """Run administrative tasks."""
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and "
            "available on your PYTHONPATH environment variable? Did you "
            "forget to activate a virtual environment?"
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == '__main__':
    main()
`

// The settings module is read from manage.py's code only: comments, docstrings and
// other strings are never taken for code, and any form but two plain literals is an
// error that shows the form to write.
func TestFindSettingsCall(t *testing.T) {
	for _, tc := range []struct {
		name, src, want, err string
	}{
		{"startproject", startprojectManage, "mysite.settings", ""},
		{"double quotes, spaces, trailing comma", "import os\nos.environ.setdefault( \"DJANGO_SETTINGS_MODULE\" ,\n  \"a.b.settings\", )\n", "a.b.settings", ""},
		{"the same call twice", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x.settings')\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x.settings')\n", "x.settings", ""},
		{"only in a comment", "# os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x.settings')\n", "", "names no settings module"},
		{"only in a docstring", "\"\"\"\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x.settings')\n\"\"\"\n", "", "names no settings module"},
		{"a string holding a quote before the call",
			"s = 'it\\'s \"# not a comment'\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'y.settings')\n", "y.settings", ""},
		{"a raw string ending in an escaped quote",
			"s = r'\\''\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'y.settings')\n", "y.settings", ""},
		{"a computed name", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', NAME + '.settings')\n", "", "two plain string literals"},
		{"an f-string", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', f'{x}.settings')\n", "", "two plain string literals"},
		{"a third argument", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'a.settings', 1)\n", "", "two plain string literals"},
		{"not a module name", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x; import os')\n", "", `"x; import os" is not a dotted module name`},
		{"a path, not a module", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', '../x/settings')\n", "", "not a dotted module name"},
		{"two modules", "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'a.settings')\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'b.settings')\n", "", `lines 1 and 2 set DJANGO_SETTINGS_MODULE to "a.settings" and to "b.settings"`},
		{"an assignment instead", "os.environ['DJANGO_SETTINGS_MODULE'] = 'a.settings'\n", "", "names no settings module"},
		{"an unclosed string", "x = 'abc\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'a.settings')\n", "", "line 1: a string is not closed"},
		{"another variable", "os.environ.setdefault('OTHER', 'a.settings')\n", "", "names no settings module"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findSettingsCall(tc.src)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.err)
				}
				if !strings.Contains(err.Error(), settingsCall) && !strings.Contains(err.Error(), "not closed") &&
					!strings.Contains(err.Error(), "dotted") {
					t.Errorf("the error does not show the form to write: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// A folder with no app.py, wsgi.py or *.wsgi but a startproject manage.py is a Django
// project; a manage.py that names no settings module fails the app with the reason, an
// app.py wins over manage.py, a tenant's entrypoint wins over both, and a manage.py that
// is a symlink out of the app folder is never read.
func TestDiscoverDjangoProject(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "manage.py")
	if err := os.WriteFile(outside, []byte(startprojectManage), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := testkit.WriteTree(t, map[string]string{
		"site/manage.py":         startprojectManage,
		"site/mysite/wsgi.py":    "",
		"nosettings/manage.py":   "print('hello')\n",
		"flask/app.py":           "",
		"flask/manage.py":        startprojectManage,
		"chosen/manage.py":       startprojectManage,
		"chosen/wasmwsgi.toml":   "entrypoint = \"mysite.wsgi:application\"\n",
		"escape/README":          "",
		"big/manage.py":          strings.Repeat("#", maxManageBytes+1),
		"nothing/README":         "",
		"nothing/mysite/wsgi.py": "",
	})
	if err := os.Symlink(outside, filepath.Join(dir, "escape", "manage.py")); err != nil {
		t.Fatal(err)
	}
	got := discover(t, Operator{Dir: dir, Limits: serverLimits})
	if _, ok := got["nothing"]; ok {
		t.Errorf("a folder with no app file and no manage.py is an app: %+v", got["nothing"])
	}
	site := got["site"]
	if site.Err != nil || site.Entrypoint != "" || site.DjangoSettings != "mysite.settings" {
		t.Errorf("startproject folder: entrypoint %q settings %q err %v; want the settings of manage.py",
			site.Entrypoint, site.DjangoSettings, site.Err)
	}
	if src := site.Sources["entrypoint"]; !strings.Contains(src, `DJANGO_SETTINGS_MODULE = "mysite.settings"`) {
		t.Errorf("the entrypoint's source does not say where it came from: %q", src)
	}
	for name, want := range map[string]string{
		"nosettings": "nosettings/manage.py: it names no settings module",
		"escape":     "is not a regular file inside the app folder",
		"big":        "larger than 256 KiB",
	} {
		if err := got[name].Err; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("app %s: error %v, want one containing %q", name, err, want)
		}
	}
	if f := got["flask"]; f.Entrypoint != "app" || f.DjangoSettings != "" || f.Err != nil {
		t.Errorf("app.py beside manage.py: entrypoint %q settings %q err %v; want app.py", f.Entrypoint, f.DjangoSettings, f.Err)
	}
	if c := got["chosen"]; c.Entrypoint != "mysite.wsgi:application" || c.DjangoSettings != "" || c.Err != nil {
		t.Errorf("an entrypoint beside manage.py: entrypoint %q settings %q err %v", c.Entrypoint, c.DjangoSettings, c.Err)
	}
}

// Whatever a tenant's manage.py holds, reading it never panics, and a settings module
// it yields is a dotted name that the file spells in a setdefault call.
func FuzzFindSettingsCall(f *testing.F) {
	f.Add(startprojectManage)
	f.Add("os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"a.b\")\n")
	f.Add("'''\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x')\n'''\n")
	f.Add("r'\\'' # \"\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'x')")
	f.Fuzz(func(t *testing.T, src string) {
		name, err := findSettingsCall(src)
		if err != nil {
			return
		}
		if !dottedName(name) || !strings.Contains(src, name) || !strings.Contains(src, "setdefault") {
			t.Fatalf("%q yields the settings module %q", src, name)
		}
	})
}
