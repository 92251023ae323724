package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// serverLimits are the defaults of the server's [limits].
var serverLimits = runtime.Limits{Timeout: 30 * time.Second, Memory: 128 << 20, MaxBody: 16 << 20,
	MaxResponse: 256 << 20, Concurrency: 8, Queue: 64, QueueTimeout: 10 * time.Second, OpenFiles: 256,
	Scratch: 16 << 20}

// discover returns the apps of op by name.
func discover(t *testing.T, op Operator) map[string]App {
	t.Helper()
	apps, err := Discover(op)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]App{}
	for _, a := range apps {
		got[a.Name] = a
	}
	return got
}

// With trust_app_config, wasmwsgi.toml sets everything, as a single-tenant server wants.
func TestDiscoverTrusted(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{
		"plain/app.py":             "",
		"both/app.py":              "",
		"both/wsgi.py":             "",
		"onlywsgi/wsgi.py":         "",
		"file/site.wsgi":           "",
		"twofiles/a.wsgi":          "",
		"twofiles/b.wsgi":          "",
		"custom/main.py":           "",
		"custom/wasmwsgi.toml":     "entrypoint = \"main:server\"\nprefix = \"/c\"\n[limits]\nmemory = \"1GiB\"\n",
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
	got := discover(t, Operator{Dir: dir, Limits: serverLimits, Trust: true})
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
		t.Errorf("discovered %d apps, want %d: %v", len(got), len(want), got)
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
		if a.Err != nil || a.Entrypoint != w.entry || a.Prefix != w.prefix {
			t.Errorf("app %s: entry %q prefix %q err %v; want %q %q", name, a.Entrypoint, a.Prefix, a.Err, w.entry, w.prefix)
		}
	}
	if h := got["vhost"].Hosts; len(h) != 1 || h[0] != "a.example" {
		t.Errorf("vhost hosts = %v, want [a.example]", h)
	}
	if m := got["custom"].Limits.Memory; m != 1<<30 {
		t.Errorf("a trusted app's memory above the server's: %d", m)
	}
	if _, err := Discover(Operator{Dir: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing apps folder: %v", err)
	}
}

// Without trust_app_config a tenant file narrows what the operator grants: the
// operator's keys and limits above the ceilings are refused, naming the file, the key,
// the ceiling and the operator key that would grant it.
func TestTenantNarrowsGrants(t *testing.T) {
	outside := t.TempDir()
	files := map[string]string{
		"prefix/app.py":          "",
		"prefix/wasmwsgi.toml":   "# mine now\nprefix = \"/shop\"\n",
		"hosts/app.py":           "",
		"hosts/wasmwsgi.toml":    "hosts = [\"shop.example.com\"]\n",
		"absolute/app.py":        "",
		"absolute/wasmwsgi.toml": "data_dir = \"" + outside + "\"\n",
		"dotdot/app.py":          "",
		"dotdot/wasmwsgi.toml":   "data_dir = \"../../x\"\n",
		"narrow/app.py":          "",
		"narrow/wasmwsgi.toml":   "[limits]\nmemory = \"64MiB\"\ntimeout = \"5s\"\n[env]\nMODE = \"tenant\"\nKEY = \"tenant\"\n",
		"granted/app.py":         "",
		"granted/wasmwsgi.toml":  "[limits]\nmemory = \"512MiB\"\n",
	}
	above := map[string]string{
		"timeout": `"31s"`, "memory": `"2GiB"`, "max_body": `"17MiB"`, "max_response": `"1GiB"`,
		"concurrency": "9", "queue": "65", "queue_timeout": `"11s"`, "open_files": "257", "scratch": `"17MiB"`,
	}
	for key, v := range above {
		files["raise-"+key+"/app.py"] = ""
		files["raise-"+key+"/wasmwsgi.toml"] = "[limits]\n" + key + " = " + v + "\n"
	}
	dir := testkit.WriteTree(t, files)
	if err := os.MkdirAll(filepath.Join(dir, "symlink"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "symlink", "out")); err != nil {
		t.Fatal(err)
	}
	files["symlink/wasmwsgi.toml"] = "data_dir = \"out\"\n"
	if err := os.WriteFile(filepath.Join(dir, "symlink", "wasmwsgi.toml"), []byte(files["symlink/wasmwsgi.toml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	granted := serverLimits
	granted.Memory = 1 << 30
	op := Operator{Dir: dir, Limits: serverLimits, DataRoot: root, Grants: map[string]Grant{
		"granted": {Limits: granted, DataDir: filepath.Join(root, "granted"), Env: map[string]string{"DATABASE_URL": "secret"}},
		"narrow":  {Limits: serverLimits, Env: map[string]string{"KEY": "operator"}},
	}, Source: func(key string) string {
		switch key {
		case "apps.granted.limits.memory", "apps.granted.data_dir", "apps.granted.env.DATABASE_URL":
			return "/etc/wasmwsgi.toml"
		}
		return "default"
	}}
	got := discover(t, op)
	file := func(app string) string { return filepath.Join(dir, app, AppFile) }

	for app, want := range map[string][]string{
		"prefix":   {file("prefix") + ", line 2: prefix is the server operator's to set", `[apps.prefix] prefix = "/path"`},
		"hosts":    {file("hosts") + ", line 1: hosts is the server operator's to set", `[apps.hosts] hosts = [`},
		"absolute": {file("absolute") + ", line 1: data_dir is the server operator's to set", "[apps.absolute] data_dir = true"},
		"dotdot":   {"data_dir is the server operator's to set", "[apps.dotdot] data_dir = true"},
		"symlink":  {"data_dir is the server operator's to set", "[apps.symlink] data_dir = true"},
		"raise-memory": {file("raise-memory") + `, line 2: limits.memory = "2GiB" is above this app's ceiling of 128MiB ` +
			`(limits.memory, the server's): lower it, or have the server's operator raise the ceiling with ` +
			`[apps.raise-memory.limits] memory = "2GiB" in the server configuration`},
		"raise-concurrency": {"limits.concurrency = 9 is above this app's ceiling of 8", "[apps.raise-concurrency.limits] concurrency = 9"},
	} {
		a := got[app]
		if a.Err == nil {
			t.Errorf("%s: accepted (prefix %q hosts %v data_dir %q limits %+v)", app, a.Prefix, a.Hosts, a.DataDir, a.Limits)
			continue
		}
		for _, w := range want {
			if !strings.Contains(a.Err.Error(), w) {
				t.Errorf("%s: error\n%s\nlacks %q", app, a.Err, w)
			}
		}
		if a.DataDir != "" || len(a.Hosts) > 0 || a.Prefix != "/"+app {
			t.Errorf("%s: refused, yet data_dir %q hosts %v prefix %q", app, a.DataDir, a.Hosts, a.Prefix)
		}
	}
	for key := range above {
		a := got["raise-"+key]
		if a.Err == nil || !strings.Contains(a.Err.Error(), "limits."+key+" = ") ||
			!strings.Contains(a.Err.Error(), "[apps.raise-"+key+".limits] "+key+" = ") {
			t.Errorf("limits.%s above the ceiling: %v", key, a.Err)
		}
	}

	n := got["narrow"]
	if n.Err != nil || n.Limits.Memory != 64<<20 || n.Limits.Timeout != 5*time.Second || n.Limits.Concurrency != 8 {
		t.Errorf("narrowed limits: %+v, %v", n.Limits, n.Err)
	}
	if n.Env["KEY"] != "operator" || n.Env["MODE"] != "tenant" {
		t.Errorf("env %v: the operator's KEY wins, the tenant's MODE stays", n.Env)
	}
	g := got["granted"]
	if g.Err != nil || g.Limits.Memory != 512<<20 || g.DataDir != filepath.Join(root, "granted") || g.Env["DATABASE_URL"] != "secret" {
		t.Errorf("granted app: %+v data_dir %q env %v, %v", g.Limits, g.DataDir, g.Env, g.Err)
	}
	for key, want := range map[string]string{
		"limits.memory":      "tenant file (" + file("granted") + ")",
		"limits.timeout":     "default",
		"data_dir":           "grant (/etc/wasmwsgi.toml)",
		"env.DATABASE_URL":   "grant (/etc/wasmwsgi.toml)",
		"prefix":             "default (the folder's name)",
		"limits.concurrency": "default",
	} {
		if g.Sources[key] != want {
			t.Errorf("granted: source of %s is %q, want %q", key, g.Sources[key], want)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("discovery created %v in data_root", entries)
	}
}

// A mount the operator grants wins over an app's default mount, whichever folder comes
// first.
func TestGrantedRouteWins(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{
		"aaa/app.py": "", "shop/app.py": "", "store/app.py": "", "zzz/app.py": "", "vhost/app.py": "",
	})
	op := Operator{Dir: dir, Limits: serverLimits, Grants: map[string]Grant{
		"store": {Prefix: "/shop", Limits: serverLimits}, // found after shop
		"aaa":   {Prefix: "/zzz", Limits: serverLimits},  // found before zzz
		"vhost": {Hosts: []string{"shop.example.com"}, Limits: serverLimits},
	}, Source: func(key string) string {
		if strings.HasPrefix(key, "apps.") {
			return "/etc/wasmwsgi.toml"
		}
		return "default"
	}}
	got := discover(t, op)
	for _, name := range []string{"store", "aaa", "vhost"} {
		if a := got[name]; a.Err != nil || a.Shadowed {
			t.Errorf("%s, granted its mount: %v (shadowed %v)", name, a.Err, a.Shadowed)
		}
	}
	for name, holder := range map[string]string{"shop": "store", "zzz": "aaa"} {
		a := got[name]
		if !a.Shadowed || a.Err == nil || !strings.Contains(a.Err.Error(), "belongs to app "+holder) ||
			!strings.Contains(a.Err.Error(), "[apps."+name+"] prefix") {
			t.Errorf("%s, whose default mount is granted to %s: %v (shadowed %v)", name, holder, a.Err, a.Shadowed)
		}
	}
	if v := got["vhost"]; v.Prefix != "/" || v.Hosts[0] != "shop.example.com" {
		t.Errorf("vhost: %q %v", v.Prefix, v.Hosts)
	}
}

// share_snapshot is the grant's, else the server's share_snapshots; a tenant file may
// turn it off, and may turn it on only where the operator's value is on already, or
// with trust_app_config. Settings shows it with its source.
func TestShareSnapshot(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{
		"plain/app.py": "",
		"off/app.py":   "", "off/wasmwsgi.toml": "share_snapshot = false\n",
		"on/app.py": "", "on/wasmwsgi.toml": "# wants sharing\nshare_snapshot = true\n",
	})
	file := func(app string) string { return filepath.Join(dir, app, AppFile) }
	tenant := func(app string) string { return "tenant file (" + file(app) + ")" }
	off, on := false, true
	const etc = "/etc/wasmwsgi.toml"
	source := func(key string) string {
		if key == "share_snapshots" || strings.HasSuffix(key, ".share_snapshot") {
			return etc
		}
		return "default"
	}
	type want struct {
		share  bool
		source string
		err    string // "" when the app loads
	}
	for _, c := range []struct {
		name string
		op   Operator
		want map[string]want
	}{
		{"server on by default", Operator{ShareSnapshots: true}, map[string]want{
			"plain": {true, "default", ""},
			"off":   {false, tenant("off"), ""},
			"on":    {true, tenant("on"), ""},
		}},
		{"server off", Operator{ShareSnapshots: false, Source: source}, map[string]want{
			"plain": {false, "default (share_snapshots from " + etc + ")", ""},
			"off":   {false, tenant("off"), ""},
			"on": {false, "", file("on") + ", line 2: share_snapshot = true is more than this app is granted " +
				"(share_snapshots = false, the server's): remove it, or have the server's operator grant it with " +
				"[apps.on] share_snapshot = true in the server configuration"},
		}},
		{"grant off over server on", Operator{ShareSnapshots: true, Source: source, Grants: map[string]Grant{
			"plain": {Limits: serverLimits, ShareSnapshot: &off},
			"on":    {Limits: serverLimits, ShareSnapshot: &off},
		}}, map[string]want{
			"plain": {false, "grant (" + etc + ")", ""},
			"off":   {false, tenant("off"), ""},
			"on": {false, "", file("on") + ", line 2: share_snapshot = true is more than this app is granted " +
				"(apps.on.share_snapshot = false): remove it, or have the server's operator grant it with " +
				"[apps.on] share_snapshot = true in the server configuration"},
		}},
		{"grant on over server off", Operator{ShareSnapshots: false, Source: source, Grants: map[string]Grant{
			"plain": {Limits: serverLimits, ShareSnapshot: &on},
			"off":   {Limits: serverLimits, ShareSnapshot: &on},
			"on":    {Limits: serverLimits, ShareSnapshot: &on},
		}}, map[string]want{
			"plain": {true, "grant (" + etc + ")", ""},
			"off":   {false, tenant("off"), ""},
			"on":    {true, tenant("on"), ""},
		}},
		{"trust_app_config", Operator{ShareSnapshots: false, Trust: true}, map[string]want{
			"plain": {false, "default", ""},
			"off":   {false, tenant("off"), ""},
			"on":    {true, tenant("on"), ""},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.op.Dir, c.op.Limits = dir, serverLimits
			apps := discover(t, c.op)
			for name, w := range c.want {
				a := apps[name]
				if w.err != "" {
					if a.Err == nil || a.Err.Error() != w.err {
						t.Errorf("%s: error\n%v\nwant\n%s", name, a.Err, w.err)
					}
					if a.ShareSnapshot {
						t.Errorf("%s: refused, yet share_snapshot is true", name)
					}
					continue
				}
				if a.Err != nil || a.ShareSnapshot != w.share || a.Sources["share_snapshot"] != w.source {
					t.Errorf("%s: share_snapshot %v from %q (error %v), want %v from %q",
						name, a.ShareSnapshot, a.Sources["share_snapshot"], a.Err, w.share, w.source)
				}
				var row *Setting
				for _, s := range a.Settings() {
					if s.Key == "share_snapshot" {
						row = &s
					}
				}
				if row == nil || row.Value != w.share || row.Source != w.source {
					t.Errorf("%s: Settings row %+v, want %v from %q", name, row, w.share, w.source)
				}
			}
		})
	}

	// The operator's value is part of what the app is granted; the tenant's is not.
	granted := func(op Operator, app string) string {
		op.Dir, op.Limits = dir, serverLimits
		return discover(t, op)[app].Granted
	}
	if granted(Operator{ShareSnapshots: true}, "plain") == granted(Operator{ShareSnapshots: false}, "plain") {
		t.Error("Granted is the same with share_snapshots on and off")
	}
	if g := granted(Operator{ShareSnapshots: true}, "off"); !strings.Contains(g, "share_snapshot=true") {
		t.Errorf("Granted %q: the tenant's share_snapshot = false is in it", g)
	}
}
