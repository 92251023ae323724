package main

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

	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	addConfigFlags(fs)
	if err := fs.Parse([]string{"--config", file, "--addr", "127.0.0.1:9003"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(fs, "")
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
	cfg, err = loadConfig(fs, "positional")
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
		addConfigFlags(fs)
		_ = fs.Parse([]string{"--config", file})
		_, err := loadConfig(fs, "")
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
