package router

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitPath(t *testing.T) {
	cases := []struct {
		prefix, path, script, info string
		ok                         bool
	}{
		{"/app", "/app/x", "/app", "/x", true},
		{"/app", "/app", "/app", "", true},
		{"/app", "/app/", "/app", "/", true},
		{"/app", "/application", "", "", false},
		{"/app", "/other", "", "", false},
		{"/", "/", "", "/", true},
		{"/", "/x/y", "", "/x/y", true},
		{"/a/b", "/a/b/c", "/a/b", "/c", true},
	}
	for _, c := range cases {
		script, info, ok := splitPath(c.prefix, c.path)
		if script != c.script || info != c.info || ok != c.ok {
			t.Errorf("splitPath(%q, %q) = (%q, %q, %v), want (%q, %q, %v)",
				c.prefix, c.path, script, info, ok, c.script, c.info, c.ok)
		}
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"plain/app.py":             "",
		"both/app.py":              "",
		"both/wsgi.py":             "",
		"onlywsgi/wsgi.py":         "",
		"file/site.wsgi":           "",
		"twofiles/a.wsgi":          "",
		"twofiles/b.wsgi":          "",
		"custom/main.py":           "",
		"custom/wasmwsgi.toml":     "entrypoint = \"main:server\"\nprefix = \"/c\"\n",
		"vhost/app.py":             "",
		"vhost/wasmwsgi.toml":      "hosts = [\"A.Example\"]\n",
		"badprefix/app.py":         "",
		"badprefix/wasmwsgi.toml":  "prefix = \"shop/\"\n",
		"reserved/app.py":          "",
		"reserved/wasmwsgi.toml":   "prefix = \"/_wasmwsgi/x\"\n",
		"unknownkey/app.py":        "",
		"unknownkey/wasmwsgi.toml": "entrypont = \"app\"\n",
		"badtoml/app.py":           "",
		"badtoml/wasmwsgi.toml":    "prefix = \n",
		"notanapp/README.md":       "",
		"_hidden/app.py":           "",
		".dot/app.py":              "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apps, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]AppDir{}
	for _, a := range apps {
		got[a.Name] = a
	}
	want := map[string]struct{ entry, prefix, err string }{
		"plain":      {"app", "/plain", ""},
		"both":       {"app", "/both", ""},
		"onlywsgi":   {"wsgi", "/onlywsgi", ""},
		"file":       {"site.wsgi", "/file", ""},
		"twofiles":   {"", "", "several *.wsgi files"},
		"custom":     {"main:server", "/c", ""},
		"vhost":      {"app", "/", ""},
		"badprefix":  {"", "", "clean absolute path"},
		"reserved":   {"", "", "reserved"},
		"unknownkey": {"", "", "entrypont"},
		"badtoml":    {"", "", "wasmwsgi.toml"},
	}
	if len(got) != len(want) {
		t.Errorf("discovered %d apps, want %d: %v", len(got), len(want), apps)
	}
	for name, w := range want {
		a, ok := got[name]
		if !ok {
			t.Errorf("app %s not discovered", name)
			continue
		}
		if w.err != "" {
			if a.Err == nil || !strings.Contains(a.Err.Error(), w.err) {
				t.Errorf("app %s: error %v, want one containing %q", name, a.Err, w.err)
			}
			continue
		}
		if a.Err != nil || a.Config.Entrypoint != w.entry || a.Config.Prefix != w.prefix {
			t.Errorf("app %s: entry %q prefix %q err %v; want %q %q", name, a.Config.Entrypoint, a.Config.Prefix, a.Err, w.entry, w.prefix)
		}
	}
	if h := got["vhost"].Config.Hosts; len(h) != 1 || h[0] != "a.example" {
		t.Errorf("vhost hosts = %v, want [a.example]", h)
	}
	if _, err := Discover(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing apps folder: %v", err)
	}
}
