package main

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runWith runs the built wasmwsgi with env added to an environment cleared of
// WASMWSGI_* variables, and returns its stdout, stderr and exit code. It gives up
// after a minute.
func runWith(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = testEnv(t, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("wasmwsgi %q did not finish within a minute", args)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return stdout.String(), stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

type configJSON map[string]struct {
	Value  any    `json:"value"`
	Source string `json:"source"`
}

func configAsJSON(t *testing.T, env []string, args ...string) configJSON {
	t.Helper()
	out, errOut, code := runWith(t, env, append([]string{"config", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("config %q exited %d: %s", args, code, errOut)
	}
	var c configJSON
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("config --json printed %q: %v", out, err)
	}
	return c
}

func TestConfigCommandSources(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "server.toml")
	writeFile(t, file, `
addr = "127.0.0.1:9001"
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
[limits]
memory = "64MiB"
queue = 5
`)
	env := []string{"WASMWSGI_ADDR=127.0.0.1:9002", "WASMWSGI_LOG__LEVEL=debug"}
	args := []string{"my-apps", "--config", file, "--timeout", "9s", "--server-timing"}
	got := configAsJSON(t, env, args...)

	want := map[string]struct {
		value  any
		source string
	}{
		"addr":             {"127.0.0.1:9002", "WASMWSGI_ADDR"}, // env beats the file
		"log.level":        {"debug", "WASMWSGI_LOG__LEVEL"},
		"limits.memory":    {"64MiB", file},
		"limits.queue":     {5.0, file},
		"trusted_proxies":  {[]any{"10.0.0.0/8", "127.0.0.1"}, file},
		"limits.timeout":   {"9s", "--timeout"},
		"server_timing":    {true, "--server-timing"},
		"apps_dir":         {"my-apps", "argument DIR"},
		"log.format":       {"text", "default"},
		"validate":         {false, "default"},
		"limits.instances": {64.0, "default"},
	}
	for key, w := range want {
		g, ok := got[key]
		if !ok {
			t.Errorf("config --json lacks %s", key)
			continue
		}
		if !reflect.DeepEqual(g.Value, w.value) || g.Source != w.source {
			t.Errorf("%s = %#v from %q, want %#v from %q", key, g.Value, g.Source, w.value, w.source)
		}
	}

	// The text form says the same, one aligned line per key.
	out, errOut, code := runWith(t, env, append([]string{"config"}, args...)...)
	if code != 0 {
		t.Fatalf("config exited %d: %s", code, errOut)
	}
	line := regexp.MustCompile(`^(\S+) +=( .*?) +# (.+)$`)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(got) {
		t.Errorf("text has %d lines, JSON %d keys:\n%s", len(lines), len(got), out)
	}
	hash := -1
	for _, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line %q is not `key = value  # source`", l)
			continue
		}
		if hash >= 0 && strings.LastIndex(l, " # ") != hash {
			t.Errorf("line %q: the comments are not aligned", l)
		}
		hash = strings.LastIndex(l, " # ")
		if g, ok := got[m[1]]; !ok || g.Source != m[3] {
			t.Errorf("text line %q disagrees with JSON source %q", l, g.Source)
		}
	}
	for _, w := range []string{`limits.timeout`, `= "9s"`, `# --timeout`, `# ` + file, `# WASMWSGI_LOG__LEVEL`,
		`trusted_proxies`, `["10.0.0.0/8", "127.0.0.1"]`} {
		if !strings.Contains(out, w) {
			t.Errorf("text output lacks %q:\n%s", w, out)
		}
	}

	// The text output is a config file: loaded back, every value is the same and now
	// comes from that file.
	again := filepath.Join(dir, "again.toml")
	writeFile(t, again, out)
	round := configAsJSON(t, nil, "--config", again)
	for key, g := range got {
		r := round[key]
		if !reflect.DeepEqual(r.Value, g.Value) || r.Source != again {
			t.Errorf("round trip: %s = %#v from %q, want %#v from %q", key, r.Value, r.Source, g.Value, again)
		}
	}
}

func TestConfigCommandErrors(t *testing.T) {
	dir := t.TempDir()
	toml := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--timeout", "-1s"}, "limits.timeout"},
		{nil, []string{"--memory", "lots"}, "limits.memory"},
		{nil, []string{"--log-level", "loud"}, "log.level"},
		{[]string{"WASMWSGI_LOG__FORMAT=xml"}, nil, "log.format"},
		{[]string{"WASMWSGI_LIMITS__INSTANCES=0"}, nil, "limits.instances"},
		{[]string{"WASMWSGI_TRUSTED_PROXIES=10.0.0.0/8,nonsense"}, nil, "trusted_proxies"},
		{nil, []string{"--config", toml("mem.toml", "[limits]\nmemory = \"1MiB\"\n")}, "limits.memory"},
		{nil, []string{"--config", toml("typo.toml", "adr = \"127.0.0.1:1\"\n")}, "adr"},
		{nil, []string{"--config", toml("broken.toml", "addr = \n")}, "broken.toml"},
		{nil, []string{"--config", filepath.Join(dir, "absent.toml")}, "absent.toml"},
	}
	for _, c := range cases {
		out, errOut, code := runWith(t, c.env, append([]string{"config"}, c.args...)...)
		if code != 2 {
			t.Errorf("config %q %q exited %d, want 2", c.env, c.args, code)
		}
		if !strings.Contains(errOut, c.want) {
			t.Errorf("config %q %q: error does not name %q: %s", c.env, c.args, c.want, errOut)
		}
		if out != "" {
			t.Errorf("config %q %q printed a configuration despite the error:\n%s", c.env, c.args, out)
		}
	}

	out, errOut, code := runWith(t, nil, "config", "--help")
	if code != 0 || !strings.Contains(errOut, "Usage: wasmwsgi config") || !strings.Contains(errOut, "--json") || out != "" {
		t.Errorf("config --help exited %d: %q %q", code, out, errOut)
	}
	if _, errOut, code := runWith(t, nil, "config", "a", "b"); code != 2 || !strings.Contains(errOut, "one apps folder") {
		t.Errorf("config with two folders exited %d: %s", code, errOut)
	}
}

func TestConfigCommandRedacts(t *testing.T) {
	entries := []configEntry{
		{Key: "admin.token", Value: "abc"},
		{Key: "db.password", Value: ""},
		{Key: "x.Secret_Value", Value: "s"},
		{Key: "tls_key", Value: "/etc/key.pem"},
		{Key: "limits.tokens", Value: 5},
	}
	redactSecrets(entries)
	want := []any{"(redacted)", "", "(redacted)", "/etc/key.pem", 5}
	for i, e := range entries {
		if e.Value != want[i] {
			t.Errorf("%s = %v, want %v", e.Key, e.Value, want[i])
		}
	}
}

// An unknown key stops serve, check, call and config with an error that names it as the
// user wrote it (the variable, or the file, line and key) and the nearest setting in the
// same form when one is close.
func TestUnknownSettings(t *testing.T) {
	dir := t.TempDir()
	toml := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	typo := toml("typo.toml", "addr = \"127.0.0.1:9000\"\n\n[limits]\ntimeot = \"5s\"\n")
	far := toml("far.toml", "# secrets\nprobe_secret = \"x\"\n")
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"WASMWSGI_PROBE_SECRET=x"}, []string{"serve", dir},
			"wasmwsgi serve: WASMWSGI_PROBE_SECRET is not a setting; unset it (the README's Configuration section"},
		{[]string{"WASMWSGI_ADRR=127.0.0.1:1"}, []string{"config"},
			"WASMWSGI_ADRR is not a setting; did you mean WASMWSGI_ADDR?"},
		{[]string{"WASMWSGI_LIMITS_TIMEOUT=5s"}, []string{"check", dir},
			"WASMWSGI_LIMITS_TIMEOUT is not a setting; did you mean WASMWSGI_LIMITS__TIMEOUT?"},
		{[]string{"WASMWSGI_TIMEOUT=5s"}, []string{"call", "--apps", dir, "x", "/"},
			"WASMWSGI_TIMEOUT is not a setting; did you mean WASMWSGI_LIMITS__TIMEOUT?"},
		{nil, []string{"config", "--config", typo},
			typo + ", line 4: limits.timeot is not a setting; did you mean limits.timeout?"},
		{nil, []string{"serve", "--config", far},
			far + ", line 2: probe_secret is not a setting; remove it (the README's Configuration section lists the settings)"},
	}
	for _, c := range cases {
		out, errOut, code := runWith(t, c.env, c.args...)
		if code != 2 {
			t.Errorf("%q %q exited %d, want 2: %s", c.env, c.args, code, errOut)
		}
		if !strings.Contains(errOut, c.want) {
			t.Errorf("%q %q:\n got %q\nwant %q", c.env, c.args, errOut, c.want)
		}
		if strings.Contains(c.want, "; unset it") || strings.Contains(c.want, "; remove it") {
			if strings.Contains(errOut, "did you mean") {
				t.Errorf("%q %q suggests a key that is not close: %s", c.env, c.args, errOut)
			}
		}
		for _, never := range []string{"main.", "Config'", "invalid keys", "probe_secret"} {
			if strings.Contains(errOut, never) && !strings.Contains(c.want, never) {
				t.Errorf("%q %q: the error shows %q: %s", c.env, c.args, never, errOut)
			}
		}
		if out != "" {
			t.Errorf("%q %q printed %q", c.env, c.args, out)
		}
	}
}
