package router

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
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
	dir := writeApps(t, map[string]string{
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
	})
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

func TestForwarded(t *testing.T) {
	rt := &Router{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"),
	}}}
	cases := []struct {
		peer, xff, proto, host string
		client, scheme, vhost  string
	}{
		{"10.1.2.3:5000", "203.0.113.7", "https", "shop.example", "203.0.113.7", "https", "shop.example"},
		// The client forged an entry to the left: the first untrusted hop from the right wins.
		{"127.0.0.1:1", "1.1.1.1, 203.0.113.7, 10.9.9.9", "", "", "203.0.113.7", "", ""},
		// An untrusted peer changes nothing.
		{"192.0.2.1:1", "203.0.113.7", "https", "evil.example", "", "", ""},
		// Garbage in the chain stops the walk; bad proto and host values are ignored.
		{"10.0.0.1:1", "not-an-ip, 10.0.0.2", "gopher", "a b", "10.0.0.2", "", ""},
		{"[::ffff:10.0.0.1]:1", "2001:db8::1", "http", "", "2001:db8::1", "http", ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", c.xff)
		r.Header.Set("X-Forwarded-Proto", c.proto)
		r.Header.Set("X-Forwarded-Host", c.host)
		client, scheme, host := rt.forwarded(r)
		if client != c.client || scheme != c.scheme || host != c.vhost {
			t.Errorf("peer %s xff %q: got (%q, %q, %q), want (%q, %q, %q)",
				c.peer, c.xff, client, scheme, host, c.client, c.scheme, c.vhost)
		}
	}
}
