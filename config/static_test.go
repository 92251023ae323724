package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
	"github.com/wasmwsgi/wasmwsgi/static"
)

// Each [static] entry a tenant may write, and each it may not: an error names the
// file, the line and the key, and says how to fix it.
func TestStaticTable(t *testing.T) {
	app := func(toml string) map[string]string {
		return map[string]string{
			"app.py":               "",
			"static/style.css":     "x",
			"static/img/logo.png":  "x",
			"favicon.ico":          "x",
			".hidden/x.css":        "x",
			"__pycache__/x.pyc":    "x",
			"site-packages/x/a.js": "x",
			"wasmwsgi.toml":        toml,
		}
	}
	cases := []struct {
		name, toml string
		routes     []static.Route
		err        string // "" when the app loads
	}{
		{"folder and file", "[static]\n\"/static\" = \"static\"\n\"/favicon.ico\" = \"favicon.ico\"\n\"/logo.png\" = \"./static/img/../img/logo.png\"\n",
			[]static.Route{{Prefix: "/favicon.ico", Target: "favicon.ico"}, {Prefix: "/logo.png", Target: "static/img/logo.png"},
				{Prefix: "/static", Target: "static", Dir: true}}, ""},
		{"a dotted URL path stays one key", "[static]\n\"/a.b.c/d.e\" = \"static\"\n",
			[]static.Route{{Prefix: "/a.b.c/d.e", Target: "static", Dir: true}}, ""},
		{"inline table", "static = { \"/s\" = \"static\" }\n", []static.Route{{Prefix: "/s", Target: "static", Dir: true}}, ""},
		{"outside the folder", "[static]\n\"/s\" = \"../other\"\n", nil, `line 2: [static] "/s" = "../other": the value points outside the app folder`},
		{"absolute", "[static]\n\"/s\" = \"/etc\"\n", nil, `line 2: [static] "/s" = "/etc": the value is an absolute path`},
		{"missing", "[static]\n\"/s\" = \"assets\"\n", nil, `line 2: [static] "/s" = "assets": the value names nothing in the app folder`},
		{"the app folder", "[static]\n\"/s\" = \".\"\n", nil, "names the app folder itself"},
		{"a hidden folder", "[static]\n\"/s\" = \".hidden\"\n", nil, "goes through .hidden, which is not loaded"},
		{"__pycache__", "[static]\n\"/s\" = \"__pycache__\"\n", nil, "goes through __pycache__"},
		{"backslash", "[static]\n\"/s\" = 'static\\img'\n", nil, "holds a backslash"},
		{"NUL", "[static]\n\"/s\" = \"static\\u0000\"\n", nil, "holds a backslash or a NUL byte"},
		{"empty", "[static]\n\"/s\" = \"\"\n", nil, "is empty"},
		{"not text", "[static]\n\"/s\" = 1\n", nil, `line 2: [static] "/s" = 1 is not text`},
		{"a nested table", "[static.\"/s\"]\nx = \"static\"\n", nil, `[static] "/s" = map[x:static] is not text`},
		{"not a table", "static = \"static\"\n", nil, "line 1: static = static is not a table"},
		{"relative key", "[static]\n\"static\" = \"static\"\n", nil, "the key does not start with /"},
		{"the whole mount", "[static]\n\"/\" = \"static\"\n", nil, "the key is the app's whole mount"},
		{"trailing slash", "[static]\n\"/s/\" = \"static\"\n", nil, "the key is not a clean path"},
		{"dot dot in the key", "[static]\n\"/a/../s\" = \"static\"\n", nil, "the key is not a clean path"},
		{"encoded key", "[static]\n\"/a%2fb\" = \"static\"\n", nil, "without a query"},
		{"cache control", "[static]\n\"/s\" = \"static\"\n[static_cache_control]\nother = \"no-cache\"\nhashed = \"max-age=60\"\n",
			[]static.Route{{Prefix: "/s", Target: "static", Dir: true}}, ""},
		{"cache control with CRLF", "[static_cache_control]\nother = \"no-cache\\r\\nSet-Cookie: x=1\"\n", nil,
			`line 2: static_cache_control.other = "no-cache\r\nSet-Cookie: x=1" holds a character a header may not carry`},
		{"cache control typo", "[static_cache_control]\nhashd = \"x\"\n", nil, "did you mean static_cache_control.hashed?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := testkit.WriteTree(t, map[string]string{})
			for name, content := range app(c.toml) {
				testkit.WriteFile(t, filepath.Join(dir, "app", filepath.FromSlash(name)), content)
			}
			a := discover(t, Operator{Dir: dir, Limits: serverLimits, StaticFiles: true})["app"]
			if c.err == "" {
				if a.Err != nil {
					t.Fatalf("refused: %v", a.Err)
				}
				if len(a.Static) != len(c.routes) {
					t.Fatalf("routes %+v, want %+v", a.Static, c.routes)
				}
				for i := range c.routes {
					if a.Static[i] != c.routes[i] {
						t.Errorf("route %d: %+v, want %+v", i, a.Static[i], c.routes[i])
					}
				}
				return
			}
			if a.Err == nil {
				t.Fatalf("loaded with routes %+v; want an error with %q", a.Static, c.err)
			}
			msg := a.Err.Error()
			if !strings.Contains(msg, c.err) || !strings.Contains(msg, filepath.Join(dir, "app", AppFile)) {
				t.Errorf("error %q lacks %q or the file", msg, c.err)
			}
		})
	}
}

// A link inside the app folder is followed while it stays inside; one that leaves it
// is refused.
func TestStaticTableLinks(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{
		"app/app.py":           "",
		"app/assets/style.css": "x",
		"elsewhere/secret.txt": "x",
		"app/wasmwsgi.toml":    "[static]\n\"/in\" = \"in\"\n\"/out\" = \"out/secret.txt\"\n",
	})
	if err := os.Symlink("assets", filepath.Join(dir, "app", "in")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), filepath.Join(dir, "app", "out")); err != nil {
		t.Fatal(err)
	}
	a := discover(t, Operator{Dir: dir, Limits: serverLimits, StaticFiles: true})["app"]
	if a.Err == nil || !strings.Contains(a.Err.Error(), `line 3: [static] "/out" = "out/secret.txt": the value leaves the app folder through a symbolic link`) {
		t.Errorf("error %v", a.Err)
	}
	if strings.Contains(a.Err.Error(), `"/in"`) {
		t.Errorf("the link inside the folder was refused: %v", a.Err)
	}
}

// The operator's switch: server-wide, and per app in the grant, which wins. Off, the
// tenant's table is not looked at (a bad entry fails nothing) and no route is made.
func TestStaticFilesSwitch(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{
		"a/app.py": "", "a/static/x.css": "x", "a/wasmwsgi.toml": "[static]\n\"/s\" = \"static\"\n",
		"b/app.py": "", "b/wasmwsgi.toml": "[static]\n\"/s\" = \"../../etc\"\n",
	})
	off, on := false, true
	for _, c := range []struct {
		name       string
		op         Operator
		aOn, bFail bool
	}{
		{"on", Operator{StaticFiles: true}, true, true},
		{"off server-wide", Operator{StaticFiles: false}, false, false},
		{"off for one app", Operator{StaticFiles: true, Grants: map[string]Grant{"b": {Limits: serverLimits, StaticFiles: &off}}}, true, false},
		{"on for one app", Operator{StaticFiles: false, Grants: map[string]Grant{"a": {Limits: serverLimits, StaticFiles: &on}}}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.op.Dir, c.op.Limits = dir, serverLimits
			apps := discover(t, c.op)
			a, b := apps["a"], apps["b"]
			if a.Err != nil || a.StaticFiles != c.aOn || (len(a.Static) == 1) != c.aOn {
				t.Errorf("app a: on %v, routes %v, error %v", a.StaticFiles, a.Static, a.Err)
			}
			if (b.Err != nil) != c.bFail {
				t.Errorf("app b: error %v", b.Err)
			}
		})
	}
}

// static_files is an operator key like the others: in the file, WASMWSGI_STATIC_FILES,
// --static-files and [apps.NAME] static_files; a tenant file cannot set it.
func TestStaticFilesKey(t *testing.T) {
	load := func(t *testing.T, content string, args ...string) *Config {
		t.Helper()
		c, _, err := loadFile(t, content, args...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := load(t, "static_files = false\n[apps.shop]\nstatic_files = true\n")
	if c.StaticFiles || c.Grants["shop"].StaticFiles == nil || !*c.Grants["shop"].StaticFiles {
		t.Errorf("static_files %v, grant %v", c.StaticFiles, c.Grants["shop"].StaticFiles)
	}
	if c := load(t, ""); !c.StaticFiles || c.Source("static_files") != "default" {
		t.Errorf("default: %v from %s", c.StaticFiles, c.Source("static_files"))
	}
	if _, _, err := loadFile(t, "static_files = 1\n"); err == nil || !strings.Contains(err.Error(), "static_files = 1 is not true or false") {
		t.Errorf("a number: %v", err)
	}
	t.Setenv("WASMWSGI_STATIC_FILES", "false")
	if c := load(t, ""); c.StaticFiles || c.Source("static_files") != "WASMWSGI_STATIC_FILES" {
		t.Errorf("from the environment: %v from %s", c.StaticFiles, c.Source("static_files"))
	}
	if c := load(t, "", "--static-files=true"); !c.StaticFiles || c.Source("static_files") != "--static-files" {
		t.Errorf("from the flag: %v from %s", c.StaticFiles, c.Source("static_files"))
	}
	if !Live("static_files") {
		t.Error("static_files does not apply on SIGHUP")
	}

	dir := testkit.WriteTree(t, map[string]string{"a/app.py": "", "a/wasmwsgi.toml": "static_files = true\n"})
	a := discover(t, Operator{Dir: dir, Limits: serverLimits, StaticFiles: true})["a"]
	if a.Err == nil || !strings.Contains(a.Err.Error(), "static_files is not a setting") {
		t.Errorf("a tenant file's static_files: %v", a.Err)
	}
}
