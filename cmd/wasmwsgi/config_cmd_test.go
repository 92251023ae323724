package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// runWith runs the built wasmwsgi with env added to an environment cleared of
// WASMWSGI_* variables, and returns its stdout, stderr and exit code. It gives up
// after a minute.
func runWith(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	return runFor(t, time.Minute, nil, env, args...)
}

// runFor is runWith with a time limit and stdin (nil for none).
func runFor(t *testing.T, limit time.Duration, stdin io.Reader, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, testkit.Binary(t), args...)
	cmd.Env = testkit.Env(t, env...)
	cmd.Stdin = stdin
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("wasmwsgi %q did not finish within %s", args, limit)
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
	testkit.WriteFile(t, file, `
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
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") { // the apps' settings follow as comments
			lines = append(lines, l)
		}
	}
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
	testkit.WriteFile(t, again, out)
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
		testkit.WriteFile(t, p, content)
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
		{nil, []string{dir, "--data-root", filepath.Join(dir, ".data")}, "data_root " + filepath.Join(dir, ".data") + " lies inside apps_dir"},
		{nil, []string{filepath.Join(dir, "apps"), "--data-root", dir}, "data_root " + dir + " holds apps_dir"},
		{nil, []string{"--config", toml("grant.toml", "[apps.shop]\ndata_dir = true\n")}, "apps.shop.data_dir = true needs data_root"},
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
	entries := []config.Entry{
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
		testkit.WriteFile(t, p, content)
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

// A value of the wrong type is named as the user wrote it, with what the key takes,
// in the server's file, in its environment and in a tenant's wasmwsgi.toml; true is
// never taken as a number (a timeout of one nanosecond), nor a number as true.
func TestSettingTypeErrors(t *testing.T) {
	const helloApp = "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'hi']\n"
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		testkit.WriteFile(t, p, content)
		return p
	}
	logs := file("log.toml", "log = \"json\"\n")
	outbound := file("outbound.toml", "[outbound]\nmax_open = \"x\"\n")
	watch := file("watch.toml", "watch = \"maybe\"\n")
	apps := testkit.WriteTree(t, map[string]string{
		"table/app.py": helloApp, "table/wasmwsgi.toml": "limits = 5\n",
		"switch/app.py": helloApp, "switch/wasmwsgi.toml": "[limits]\ntimeout = true\n",
		"number/app.py": helloApp, "number/wasmwsgi.toml": "validate = 1\n",
		"optional/app.py": helloApp, "optional/wasmwsgi.toml": "server_timing = 0\n",
		"fine/app.py": helloApp, "fine/wasmwsgi.toml": "server_timing = true\n[env]\nCOUNT = 5\n",
	})
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"config", "--config", logs}, logs + `, line 1: log = "json" is not a table of settings; set its keys one by one, such as log.format`},
		{[]string{"WASMWSGI_LOG=json"}, []string{"config"}, `WASMWSGI_LOG = "json" is not a table of settings; set its keys one by one, such as WASMWSGI_LOG__FORMAT`},
		{nil, []string{"config", "--config", outbound}, outbound + `, line 2: outbound.max_open = "x" is not a whole number`},
		{[]string{"WASMWSGI_IDLE_TIMEOUT=soon"}, []string{"config"}, `WASMWSGI_IDLE_TIMEOUT = "soon" is not a duration such as "5s" or "2m"`},
		{nil, []string{"config", "--config", watch}, watch + `, line 1: watch = "maybe" is not true or false`},
	} {
		out, errOut, code := runWith(t, c.env, c.args...)
		if code != 2 || !strings.Contains(errOut, c.want) || out != "" {
			t.Errorf("%q %q: exit %d, stdout %q, stderr %q\nwant stderr %q", c.env, c.args, code, out, errOut, c.want)
		}
		if strings.Contains(errOut, "expected") || strings.Contains(errOut, "strconv") {
			t.Errorf("%q %q shows the decoder's words: %s", c.env, c.args, errOut)
		}
	}
	out, _, _ := runWith(t, nil, "check", apps)
	for _, want := range []string{
		filepath.Join(apps, "table", "wasmwsgi.toml") + ", line 1: limits = 5 is not a table of settings; set its keys one by one, such as limits.",
		filepath.Join(apps, "switch", "wasmwsgi.toml") + `, line 2: limits.timeout = true is not a duration such as "5s" or "2m"`,
		filepath.Join(apps, "number", "wasmwsgi.toml") + ", line 1: validate = 1 is not true or false",
		filepath.Join(apps, "optional", "wasmwsgi.toml") + ", line 1: server_timing = 0 is not true or false",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check: want %q in\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^fine\s+ready`).MatchString(out) {
		t.Errorf("check: an [env] number is text, and the app loads:\n%s", out)
	}
}

// config shows each app's effective settings and where each comes from: the operator's
// grant, the app's own wasmwsgi.toml or a default. An app that asks for more than its
// grant shows why it fails to load. Discovering the apps creates nothing.
func TestConfigCommandApps(t *testing.T) {
	dir := t.TempDir()
	apps := filepath.Join(dir, "apps")
	testkit.WriteFile(t, filepath.Join(apps, "shop", "app.py"), reloadApp("shop"))
	testkit.WriteFile(t, filepath.Join(apps, "shop", "wasmwsgi.toml"), "[limits]\nmemory = \"256MiB\"\n[env]\nMODE = \"tenant\"\n")
	testkit.WriteFile(t, filepath.Join(apps, "greedy", "app.py"), reloadApp("greedy"))
	testkit.WriteFile(t, filepath.Join(apps, "greedy", "wasmwsgi.toml"), "[limits]\ntimeout = \"10m\"\n")
	file := filepath.Join(dir, "server.toml")
	testkit.WriteFile(t, file, `data_root = "data"
[apps.shop]
hosts = ["shop.example.com"]
data_dir = true
[apps.shop.limits]
memory = "512MiB"
[apps.shop.env]
DATABASE_URL = "postgres://db/shop"
`)
	type setting struct {
		Value  any    `json:"value"`
		Source string `json:"source"`
	}
	var got struct {
		Env  setting `json:"apps.shop.env.DATABASE_URL"`
		Apps map[string]struct {
			Dir      string
			Error    string
			Settings map[string]setting
		} `json:"app_settings"`
	}
	configOf := func(args ...string) {
		t.Helper()
		out, errOut, code := runWith(t, nil, append([]string{"config", "--json", apps, "--config", file}, args...)...)
		if code != 0 {
			t.Fatalf("config exited %d: %s", code, errOut)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("config --json printed %q: %v", out, err)
		}
	}
	configOf()
	tenant := "tenant file (" + filepath.Join(apps, "shop", "wasmwsgi.toml") + ")"
	grant := "grant (" + file + ")"
	shop := got.Apps["shop"].Settings
	for key, want := range map[string]setting{
		"limits.memory":    {"256MiB", tenant},
		"limits.timeout":   {"30s", "default"},
		"hosts":            {[]any{"shop.example.com"}, grant},
		"prefix":           {"/", `default ("/" with hosts)`},
		"data_dir":         {filepath.Join(dir, "data", "shop"), grant},
		"entrypoint":       {"app", "default (app.py: application, app, create_app() or make_app())"},
		"env.DATABASE_URL": {"(redacted)", grant},
		"env.MODE":         {"(redacted)", tenant},
	} {
		if g := shop[key]; !reflect.DeepEqual(g, want) {
			t.Errorf("shop %s = %#v, want %#v", key, g, want)
		}
	}
	if got.Env.Value != "(redacted)" || got.Env.Source != file {
		t.Errorf("apps.shop.env.DATABASE_URL: %+v", got.Env)
	}
	if e := got.Apps["greedy"].Error; !strings.Contains(e, `limits.timeout = "600s" is above this app's ceiling of 30s`) {
		t.Errorf("greedy's error: %q", e)
	}
	configOf("--show-secrets")
	if v := got.Apps["shop"].Settings["env.DATABASE_URL"].Value; v != "postgres://db/shop" {
		t.Errorf("--show-secrets: env.DATABASE_URL = %v", v)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("config made data_root: %v", err)
	}

	out, _, _ := runWith(t, nil, "config", apps, "--config", file)
	for _, want := range []string{
		"apps.shop.hosts = [\"shop.example.com\"]", "# [greedy] " + filepath.Join(apps, "greedy"),
		"# fails to load: " + filepath.Join(apps, "greedy", "wasmwsgi.toml") + ", line 2: limits.timeout",
		`# limits.memory = "256MiB" # ` + tenant,
	} {
		if !strings.Contains(regexp.MustCompile(` +`).ReplaceAllString(out, " "), want) {
			t.Errorf("config lacks %q:\n%s", want, out)
		}
	}
}
