package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/wasmwsgi/wasmwsgi/config"
)

// configCommand prints the configuration serve would run with: every key, its value and
// where the value came from, then each app's effective settings and where each came
// from. It loads and checks the configuration exactly as serve does (the TLS pair
// included) and exits 2, naming the key, when something is unusable.
func configCommand(args []string, stdout, stderr io.Writer) int {
	var asJSON, showSecrets bool
	fs, code := commandFlags("config", "Usage: wasmwsgi config [DIR] [flags]\n\n"+
		"Prints the configuration `wasmwsgi serve` would run with, given the same DIR, flags,\n"+
		"config file and WASMWSGI_* environment: one line per key, `key = value  # source`,\n"+
		"where source is default, the config file, the variable, the flag or DIR. The text\n"+
		"form is valid TOML, usable as a config file. Then, as comments, each app's effective\n"+
		"settings and where each came from: the operator's grant, the app's wasmwsgi.toml or\n"+
		"a default. Values of keys naming a token, password or secret, and the apps'\n"+
		"environment, are shown as \"(redacted)\" unless --show-secrets is given. Exits 2\n"+
		"naming the key when a value is unusable.", args, stderr,
		func(fs *pflag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, `print JSON instead: {"key": {"value": ..., "source": "..."}, "app_settings": {...}}`)
			fs.BoolVar(&showSecrets, "show-secrets", false, "print tokens, passwords, secrets and environments instead of \"(redacted)\"")
		})
	if fs == nil {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "wasmwsgi config: takes one apps folder, got %q\n", fs.Args())
		return 2
	}
	cfg, err := config.Load(fs, fs.Arg(0))
	if err == nil {
		_, err = loadTLS(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi config: %v\n", err)
		return 2
	}
	entries := cfg.Entries()
	apps, appsErr := config.Discover(cfg.Operator())
	appSettings := make([][]config.Setting, len(apps))
	for i, a := range apps {
		appSettings[i] = a.Settings()
	}
	if !showSecrets {
		redactSecrets(entries)
		for _, s := range appSettings {
			redactEnv(s)
		}
	}
	if asJSON {
		out := make(map[string]any, len(entries)+1)
		for _, e := range entries {
			out[e.Key] = e
		}
		if appsErr == nil {
			out["app_settings"] = appsJSON(apps, appSettings)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "wasmwsgi config: %v\n", err)
			return 1
		}
		return 0
	}
	writeConfigText(stdout, entries)
	writeAppsText(stdout, cfg.AppsDir, apps, appSettings, appsErr)
	return 0
}

// appJSON is one app in the JSON form of `wasmwsgi config`.
type appJSON struct {
	Dir      string                  `json:"dir"`
	Error    string                  `json:"error,omitempty"`
	Settings map[string]config.Entry `json:"settings"`
}

func appsJSON(apps []config.App, settings [][]config.Setting) map[string]appJSON {
	out := make(map[string]appJSON, len(apps))
	for i, a := range apps {
		j := appJSON{Dir: a.Dir, Settings: map[string]config.Entry{}}
		if a.Err != nil {
			j.Error = a.Err.Error()
		}
		for _, s := range settings[i] {
			j.Settings[s.Key] = config.Entry(s)
		}
		out[a.Name] = j
	}
	return out
}

// writeAppsText prints each app's effective settings as TOML comments, aligned, one
// `key = value  # source` line each, under a line naming the app and its folder (and
// its error, if it fails to load).
func writeAppsText(w io.Writer, dir string, apps []config.App, settings [][]config.Setting, err error) {
	if err != nil {
		fmt.Fprintf(w, "\n# No apps: %s\n", strings.ReplaceAll(err.Error(), "\n", "\n# "))
		return
	}
	if len(apps) == 0 {
		fmt.Fprintf(w, "\n# No apps in %s.\n", dir)
		return
	}
	fmt.Fprintf(w, "\n# The apps in %s, each with the settings it runs with and where each comes from:\n"+
		"# the operator's grant ([apps.NAME] above), the app's own wasmwsgi.toml, or a default.\n", dir)
	keyWidth, valueWidth := 0, 0
	for _, s := range settings {
		for _, x := range s {
			keyWidth, valueWidth = max(keyWidth, len(x.Key)), max(valueWidth, len(tomlValue(x.Value)))
		}
	}
	for i, a := range apps {
		fmt.Fprintf(w, "#\n# [%s] %s\n", a.Name, a.Dir)
		if a.Err != nil {
			fmt.Fprintf(w, "#   fails to load: %s\n", strings.ReplaceAll(a.Err.Error(), "\n", "\n#   "))
		}
		for _, x := range settings[i] {
			fmt.Fprintf(w, "#   %-*s = %-*s  # %s\n", keyWidth, x.Key, valueWidth, tomlValue(x.Value), x.Source)
		}
	}
}

// redactSecrets replaces the non-empty values of keys that name a token, password or
// secret, so that the output can be shared.
func redactSecrets(entries []config.Entry) {
	for i, e := range entries {
		name := strings.ToLower(e.Key[strings.LastIndexByte(e.Key, '.')+1:])
		secret := strings.Contains(name, "token") || strings.Contains(name, "password") || strings.Contains(name, "secret")
		// The variables the operator gives an app ([apps.NAME.env]) are its secrets.
		secret = secret || strings.HasPrefix(e.Key, "apps.") && strings.Contains(e.Key, ".env.")
		if s, ok := e.Value.(string); ok && secret && s != "" {
			entries[i].Value = "(redacted)"
		}
	}
}

// redactEnv replaces the values of an app's environment, which holds its secrets.
func redactEnv(settings []config.Setting) {
	for i, s := range settings {
		if v, ok := s.Value.(string); ok && strings.HasPrefix(s.Key, "env.") && v != "" {
			settings[i].Value = "(redacted)"
		}
	}
}

// writeConfigText prints one aligned `key = value  # source` line per entry. Values
// are TOML (strings quoted, lists in brackets), so the output is itself a config file.
func writeConfigText(w io.Writer, entries []config.Entry) {
	type line struct{ key, value, source string }
	lines := make([]line, 0, len(entries))
	keyWidth, valueWidth := 0, 0
	for _, e := range entries {
		l := line{e.Key, tomlValue(e.Value), e.Source}
		keyWidth, valueWidth = max(keyWidth, len(l.key)), max(valueWidth, len(l.value))
		lines = append(lines, l)
	}
	for _, l := range lines {
		fmt.Fprintf(w, "%-*s = %-*s  # %s\n", keyWidth, l.key, valueWidth, l.value, l.source)
	}
}

// tomlValue writes a string, bool, integer or string list as TOML. JSON's encoding of
// those is valid TOML: its string escapes are a subset of TOML's basic-string escapes.
func tomlValue(v any) string {
	if list, ok := v.([]string); ok {
		items := make([]string, len(list))
		for i, s := range list {
			items[i] = tomlValue(s)
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	// TOML, unlike JSON, wants DEL escaped too.
	return strings.ReplaceAll(strings.TrimSuffix(b.String(), "\n"), "\x7f", `\u007f`)
}
