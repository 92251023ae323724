package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// configEntry is one key of the effective configuration.
type configEntry struct {
	Key    string `json:"-"`
	Value  any    `json:"value"`
	Source string `json:"source"`
}

// configCommand prints the configuration serve would run with: every key, its value and
// where the value came from. It loads and checks the configuration exactly as serve
// does (the TLS pair included) and exits 2, naming the key, when something is unusable.
func configCommand(args []string, stdout, stderr io.Writer) int {
	var asJSON, showSecrets bool
	fs, code := commandFlags("config", "Usage: wasmwsgi config [DIR] [flags]\n\n"+
		"Prints the configuration `wasmwsgi serve` would run with, given the same DIR, flags,\n"+
		"config file and WASMWSGI_* environment: one line per key, `key = value  # source`,\n"+
		"where source is default, the config file, the variable, the flag or DIR. The text\n"+
		"form is valid TOML, usable as a config file. Values of keys naming a token, password\n"+
		"or secret are shown as \"(redacted)\" unless --show-secrets is given. Exits 2 naming\n"+
		"the key when a value is unusable.", args, stderr,
		func(fs *pflag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, `print JSON instead: {"key": {"value": ..., "source": "..."}}`)
			fs.BoolVar(&showSecrets, "show-secrets", false, "print tokens, passwords and secrets instead of \"(redacted)\"")
		})
	if fs == nil {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "wasmwsgi config: takes one apps folder, got %q\n", fs.Args())
		return 2
	}
	cfg, sources, err := loadConfigSources(fs, fs.Arg(0))
	if err == nil {
		_, err = cfg.tlsConfig()
	}
	if err != nil {
		fmt.Fprintf(stderr, "wasmwsgi config: %v\n", err)
		return 2
	}
	entries := configEntries(cfg, sources)
	if !showSecrets {
		redactSecrets(entries)
	}
	if asJSON {
		out := make(map[string]configEntry, len(entries))
		for _, e := range entries {
			out[e.Key] = e
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
	return 0
}

// configEntries lists the keys of cfg in declaration order, each with its value and its
// source; a key no source set has the built-in default.
func configEntries(cfg Config, sources map[string]string) []configEntry {
	var out []configEntry
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			fv := v.Field(i)
			if name == "" {
				if opts == "squash" && fv.Kind() == reflect.Struct {
					walk(prefix, fv)
				}
				continue
			}
			key := prefix + name
			if fv.Kind() == reflect.Struct {
				walk(key+".", fv)
				continue
			}
			source := sources[key]
			if source == "" {
				source = "default"
			}
			out = append(out, configEntry{Key: key, Value: configValue(fv), Source: source})
		}
	}
	walk("", reflect.ValueOf(cfg))
	return out
}

// redactSecrets replaces the non-empty values of keys that name a token, password or
// secret, so that the output can be shared.
func redactSecrets(entries []configEntry) {
	for i, e := range entries {
		name := strings.ToLower(e.Key[strings.LastIndexByte(e.Key, '.')+1:])
		secret := strings.Contains(name, "token") || strings.Contains(name, "password") || strings.Contains(name, "secret")
		if s, ok := e.Value.(string); ok && secret && s != "" {
			entries[i].Value = "(redacted)"
		}
	}
}

// configValue is a field's value as it is written in a config file: durations as text
// ("30s"), lists never null.
func configValue(v reflect.Value) any {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case []string:
		if x == nil {
			return []string{}
		}
	}
	return v.Interface()
}

// writeConfigText prints one aligned `key = value  # source` line per entry. Values
// are TOML (strings quoted, lists in brackets), so the output is itself a config file.
func writeConfigText(w io.Writer, entries []configEntry) {
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
