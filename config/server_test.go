package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wasmwsgi.toml")
	err := os.WriteFile(file, []byte(`
addr = "127.0.0.1:9001"
apps_dir = "from-file"
[log]
format = "json"
level = "warn"
[limits]
timeout = "5s"
memory = "64MiB"
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WASMWSGI_ADDR", "127.0.0.1:9002")
	t.Setenv("WASMWSGI_LIMITS__TIMEOUT", "7s")
	t.Setenv("WASMWSGI_LOG__LEVEL", "debug")
	// The build's cache folder shares the prefix; it is not refused as an unknown key.
	t.Setenv(BuildCacheVar, t.TempDir())

	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--addr", "127.0.0.1:9003"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(fs, "")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"addr (flag beats env and file)", cfg.Addr, "127.0.0.1:9003"},
		{"limits.timeout (env beats file)", cfg.Limits.Timeout, 7 * time.Second},
		{"log.level (env beats file)", cfg.Log.Level, "debug"},
		{"log.format (file beats default)", cfg.Log.Format, "json"},
		{"limits.memory (file beats default)", cfg.Limits.Memory, "64MiB"},
		{"apps_dir (file)", cfg.AppsDir, "from-file"},
		{"limits.app_files (default)", cfg.Limits.AppFiles, "256MiB"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
	// The positional apps folder beats everything.
	cfg, err = Load(fs, "positional")
	if err != nil || cfg.AppsDir != "positional" {
		t.Errorf("positional DIR: %q, %v", cfg.AppsDir, err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]string{
		"timeout = 5":                 "", // unknown key at the top level
		"[limits]\ntimeout = \"-1s\"": "limits.timeout",
		"[limits]\nmemory = \"lots\"": "limits.memory",
		"[limits]\nmemory = \"1MiB\"": "minimum",
		"[limits]\nconcurrency = -1":  "concurrency",
		"[log]\nformat = \"xml\"":     "log.format",
		"[log]\nlevel = \"loud\"":     "log.level",
		"[limits]\ntimeot = \"1s\"":   "timeot",
	}
	for content, want := range cases {
		file := filepath.Join(t.TempDir(), "c.toml")
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		AddFlags(fs)
		_ = fs.Parse([]string{"--config", file})
		_, err := Load(fs, "")
		if err == nil {
			t.Errorf("%q: accepted", content)
			continue
		}
		if want == "" {
			want = "timeout"
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q does not name %q", content, err, want)
		}
	}
}

// loadFile loads a configuration whose file is content, with args as more flags.
func loadFile(t *testing.T, content string, args ...string) (*Config, string, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "wasmwsgi.toml")
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse(append([]string{"--config", file}, args...)); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(fs, "")
	return cfg, file, err
}

func TestGrants(t *testing.T) {
	t.Setenv("WASMWSGI_APPS__SHOP__ENV__API_Key", "from the environment")
	cfg, file, err := loadFile(t, `
data_root = "data"

[apps.shop]
hosts = ["Shop.Example.com"]
data_dir = true

[apps.shop.limits]
memory = "512MiB"

[apps.shop.env]
DATABASE_URL = "postgres://db/shop"
`)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(filepath.Dir(file), "data")
	if cfg.DataRoot != root {
		t.Errorf("data_root %q, want %q: relative to the config file's folder", cfg.DataRoot, root)
	}
	g := cfg.Grants["shop"]
	if len(g.Hosts) != 1 || g.Hosts[0] != "shop.example.com" || g.DataDir != filepath.Join(root, "shop") ||
		g.Limits.Memory != 512<<20 || g.Limits.Timeout != 30*time.Second {
		t.Errorf("grant %+v", g)
	}
	if g.Env["DATABASE_URL"] != "postgres://db/shop" || g.Env["API_Key"] != "from the environment" {
		t.Errorf("grant env %v: names keep their case", g.Env)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("loading the configuration made data_root: %v", err)
	}
	sources := map[string]string{}
	for _, e := range cfg.Entries() {
		sources[e.Key] = e.Source
	}
	for key, want := range map[string]string{
		"apps.shop.hosts": file, "apps.shop.data_dir": file, "apps.shop.limits.memory": file,
		"apps.shop.env.DATABASE_URL": file, "apps.shop.env.API_Key": "WASMWSGI_APPS__SHOP__ENV__API_Key",
		"data_root": file, "limits.memory": "default",
	} {
		if sources[key] != want {
			t.Errorf("entry %s from %q, want %q", key, sources[key], want)
		}
	}
	for _, key := range []string{"apps.shop.prefix", "apps.shop.limits.timeout"} {
		if _, ok := sources[key]; ok {
			t.Errorf("entry %s is listed though no source set it", key)
		}
	}
}

func TestGrantErrors(t *testing.T) {
	base := t.TempDir()
	apps := filepath.Join(base, "apps")
	cases := map[string]string{
		"[apps.shop]\ndata_dir = true\n": "apps.shop.data_dir = true needs data_root",
		"apps_dir = \"" + apps + "\"\ndata_root = \"" + filepath.Join(apps, ".data") + "\"\n": "lies inside apps_dir",
		"apps_dir = \"" + apps + "\"\ndata_root = \"" + base + "\"\n":                         "holds apps_dir",
		"[apps.a]\nprefix = \"/x\"\n[apps.b]\nprefix = \"/x\"\n":                              "apps.a and apps.b both mount their app at /x",
		"[apps.shop]\nprefix = \"shop/\"\n":                                                   `apps.shop.prefix = "shop/" must be a clean absolute path`,
		"[apps.shop]\nhosts = [\"a b\"]\n":                                                    `apps.shop.hosts[0] = "a b" is not a host name`,
		"[apps.shop.limits]\nmemory = \"1MiB\"\n":                                             "apps.shop.limits.memory",
		"[apps.shop]\nhostz = [\"a\"]\n":                                                      "line 2: apps.shop.hostz is not a setting; did you mean apps.shop.hosts?",
		"[apps._x]\nprefix = \"/x\"\n":                                                        "no app folder has that name",
	}
	for content, want := range cases {
		_, _, err := loadFile(t, content)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", content, err, want)
		}
	}
}

// SIGHUP applies the live keys of the configuration read again and keeps the others.
func TestReloaded(t *testing.T) {
	running, _, err := loadFile(t, "addr = \"127.0.0.1:1\"\n[apps.shop]\nprefix = \"/a\"\n")
	if err != nil {
		t.Fatal(err)
	}
	next, _, err := loadFile(t, "addr = \"127.0.0.1:2\"\nvalidate = true\ntrust_app_config = true\n"+
		"[limits]\ninstances = 3\ntimeout = \"5s\"\n[apps.shop]\nprefix = \"/b\"\n[apps.new]\nhosts = [\"n.example\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	applied, err := running.Reloaded(next)
	if err != nil {
		t.Fatal(err)
	}
	if applied.Addr != "127.0.0.1:1" || applied.Limits.Instances != 64 {
		t.Errorf("restart-only keys changed: addr %q, limits.instances %d", applied.Addr, applied.Limits.Instances)
	}
	if !applied.Validate || !applied.TrustAppConfig || applied.AppLimits.Timeout != 5*time.Second ||
		applied.Grants["shop"].Prefix != "/b" || applied.Grants["new"].Hosts[0] != "n.example" {
		t.Errorf("live keys not applied: %+v", applied)
	}
	for key, live := range map[string]bool{"validate": true, "apps.x.prefix": true, "limits.queue": true,
		"limits.instances": false, "addr": false, "data_root": false, "trust_app_config": true} {
		if Live(key) != live {
			t.Errorf("Live(%q) = %v", key, !live)
		}
	}
}

// share_snapshots is a server key with no flag: true by default, false in the file or
// in WASMWSGI_SHARE_SNAPSHOTS, applied on SIGHUP; [apps.NAME] share_snapshot overrides
// it for one app.
func TestShareSnapshotsKey(t *testing.T) {
	c, _, err := loadFile(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.ShareSnapshots || c.Source("share_snapshots") != "default" || !c.Operator().ShareSnapshots {
		t.Errorf("default: %v from %s", c.ShareSnapshots, c.Source("share_snapshots"))
	}
	c, file, err := loadFile(t, "share_snapshots = false\n[apps.shop]\nshare_snapshot = true\n[apps.blog]\nshare_snapshot = false\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.ShareSnapshots || c.Source("share_snapshots") != file || c.Operator().ShareSnapshots {
		t.Errorf("from the file: %v from %s", c.ShareSnapshots, c.Source("share_snapshots"))
	}
	if g := c.Grants["shop"].ShareSnapshot; g == nil || !*g {
		t.Errorf("apps.shop.share_snapshot = true: %v", g)
	}
	if g := c.Grants["blog"].ShareSnapshot; g == nil || *g {
		t.Errorf("apps.blog.share_snapshot = false: %v", g)
	}
	sources := map[string]string{}
	for _, e := range c.Entries() {
		sources[e.Key] = e.Source
	}
	if sources["share_snapshots"] != file || sources["apps.shop.share_snapshot"] != file {
		t.Errorf("entries: share_snapshots from %q, apps.shop.share_snapshot from %q", sources["share_snapshots"],
			sources["apps.shop.share_snapshot"])
	}
	if _, _, err := loadFile(t, "share_snapshots = 1\n"); err == nil || !strings.Contains(err.Error(), "share_snapshots = 1 is not true or false") {
		t.Errorf("a number: %v", err)
	}
	if _, _, err := loadFile(t, "share_snapshot = false\n"); err == nil || !strings.Contains(err.Error(), "did you mean share_snapshots?") {
		t.Errorf("the tenant's key in the server's file: %v", err)
	}
	t.Setenv("WASMWSGI_SHARE_SNAPSHOTS", "false")
	if c, _, err = loadFile(t, ""); err != nil {
		t.Fatal(err)
	}
	if c.ShareSnapshots || c.Source("share_snapshots") != "WASMWSGI_SHARE_SNAPSHOTS" {
		t.Errorf("from the environment: %v from %s", c.ShareSnapshots, c.Source("share_snapshots"))
	}
	for key, live := range map[string]bool{"share_snapshots": true, "apps.shop.share_snapshot": true} {
		if Live(key) != live {
			t.Errorf("Live(%q) = %v", key, !live)
		}
	}
}
