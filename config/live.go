package config

import (
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

// Live reports whether a key takes effect on SIGHUP: what every app is loaded with
// (the grants, trust_app_config, the apps' defaults and ceilings) and trusted_proxies.
// The others (addresses, folders, data_root, TLS, logging, the admin page, the
// server-wide instance caps, watch) are read once, at start.
func Live(key string) bool {
	switch key {
	case "validate", "server_timing", "static_files", "share_snapshots", "trusted_proxies", "trust_app_config":
		return true
	case "limits.instances", "limits.idle_instances":
		return false
	}
	return strings.HasPrefix(key, "limits.") || strings.HasPrefix(key, "apps.")
}

// Reloaded is the configuration a SIGHUP puts in force: c, the one running, with the
// live keys as next (the configuration read again) has them. The other keys keep their
// running values until a restart.
func (c *Config) Reloaded(next *Config) (*Config, error) {
	values := map[string]any{}
	sources := map[string]string{}
	for key, v := range c.values {
		if !Live(key) {
			values[key], sources[strings.ToLower(key)] = v, c.sources[strings.ToLower(key)]
		}
	}
	for key, v := range next.values {
		if Live(key) {
			values[key], sources[strings.ToLower(key)] = v, next.sources[strings.ToLower(key)]
		}
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(values, "."), nil); err != nil {
		return nil, err
	}
	return decode(k, c.File, sources, nil)
}

// Entry is one key of the configuration with its value as it is written in a config
// file and where the value came from.
type Entry struct {
	Key    string `json:"-"`
	Value  any    `json:"value"`
	Source string `json:"source"`
}

// Entries lists c's keys: the server's in declaration order, each with its value and
// its source, then the grants' keys that a source set, by app name.
func (c *Config) Entries() []Entry {
	var out []Entry
	var walk func(prefix, lookup string, v reflect.Value, onlySet bool)
	walk = func(prefix, lookup string, v reflect.Value, onlySet bool) {
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
					walk(prefix, lookup, fv, onlySet)
				}
				continue
			}
			key, lkey := prefix+name, lookup+name
			switch {
			case fv.Kind() == reflect.Struct:
				walk(key+".", lkey+".", fv, onlySet)
				continue
			case fv.Kind() == reflect.Map:
				names := make([]string, 0, fv.Len())
				for _, k := range fv.MapKeys() {
					names = append(names, k.String())
				}
				sort.Strings(names)
				for _, n := range names {
					ev := fv.MapIndex(reflect.ValueOf(n))
					if ev.Kind() == reflect.Struct {
						walk(key+"."+tomlKeyPart(n)+".", lkey+"."+n+".", ev, true)
						continue
					}
					k := lkey + "." + n
					if s := c.sources[strings.ToLower(k)]; s != "" {
						out = append(out, Entry{Key: key + "." + tomlKeyPart(n), Value: configValue(ev), Source: s})
					}
				}
				continue
			}
			source := c.sources[strings.ToLower(lkey)]
			if source == "" {
				if onlySet {
					continue
				}
				source = "default"
			}
			out = append(out, Entry{Key: key, Value: configValue(fv), Source: source})
		}
	}
	walk("", "", reflect.ValueOf(c.Server), false)
	return out
}

// configValue is a field's value as it is written in a config file: durations as text
// ("30s"), lists never null.
func configValue(v reflect.Value) any {
	switch x := v.Interface().(type) {
	case time.Duration:
		return showDuration(x)
	case []string:
		if x == nil {
			return []string{}
		}
	}
	return v.Interface()
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// tomlKeyPart writes one part of a dotted TOML key: bare when it can be, else quoted.
func tomlKeyPart(s string) string {
	if bareKey.MatchString(s) {
		return s
	}
	return strconv.Quote(s)
}
