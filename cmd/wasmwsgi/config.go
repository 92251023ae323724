package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/wasmwsgi/wasmwsgi/router"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// Config is the server-wide configuration. Sources, each overriding the one before:
// defaults < config file (--config, TOML) < WASMWSGI_* environment < flags.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:8080"; use ":8080" to listen on
	// every interface.
	Addr string `koanf:"addr"`
	// AppsDir is the folder whose subfolders are apps. Default "apps"; the positional
	// argument of `serve` sets it too.
	AppsDir string `koanf:"apps_dir"`
	// CacheDir holds the wazero compilation cache. Default $XDG_CACHE_HOME/wasmwsgi
	// (~/.cache/wasmwsgi).
	CacheDir string `koanf:"cache_dir"`
	// Validate wraps every app in wsgiref.validate unless its wasmwsgi.toml says
	// otherwise. Default false.
	Validate bool `koanf:"validate"`
	// Watch reloads an app when its files change (and mounts or unmounts app folders as
	// they appear or go). Default true.
	Watch bool `koanf:"watch"`
	// TrustedProxies are CIDRs ("10.0.0.0/8", "127.0.0.1/32") whose X-Forwarded-For,
	// -Proto and -Host headers set REMOTE_ADDR, wsgi.url_scheme and HTTP_HOST. Default
	// none: the headers change nothing.
	TrustedProxies []string `koanf:"trusted_proxies"`
	// AdminAddr, when set, is a listen address of its own for the admin page and
	// /_wasmwsgi/metrics, which the main address then no longer serves. Default none.
	AdminAddr string `koanf:"admin_addr"`
	// Admin is the admin page at /_wasmwsgi/. Default off.
	Admin AdminConf `koanf:"admin"`
	// TLSCert and TLSKey are PEM files; set both to serve HTTPS (HTTP/2 by ALPN).
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
	// H2C accepts cleartext HTTP/2 with prior knowledge (RFC 9113 section 3.3) next to
	// HTTP/1.1, for a proxy in front that speaks HTTP/2 to its backends. Default false.
	H2C bool `koanf:"h2c"`
	// ServerTiming adds a Server-Timing header (guest time, peak memory) to every app
	// response unless the app's wasmwsgi.toml says otherwise. Default false.
	ServerTiming bool       `koanf:"server_timing"`
	Log          LogConfig  `koanf:"log"`
	Limits       LimitsConf `koanf:"limits"`
}

// LogConfig selects the log format and level.
type LogConfig struct {
	// Format is "text" (default) or "json".
	Format string `koanf:"format"`
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `koanf:"level"`
}

// AdminConf configures the admin page: a live table of the apps, their state, traffic,
// latency and memory.
type AdminConf struct {
	// Enabled serves the page at /_wasmwsgi/. Default false.
	Enabled bool `koanf:"enabled"`
	// Token is required when Enabled: the page answers 401 to clients that do not send
	// "Authorization: Bearer <token>" or have opened /_wasmwsgi/?token=<token> once.
	Token string `koanf:"token"`
}

// LimitsConf holds the limits: the per-request ones (the defaults of every app, which an
// app's own [limits] override) and two server-wide ones.
type LimitsConf struct {
	runtime.LimitsConfig `koanf:",squash"`
	// AppFiles caps the bytes of one app's files held in memory. Default "256MiB".
	AppFiles string `koanf:"app_files"`
	// Instances caps the instances running at once across all apps. Default 64.
	Instances int `koanf:"instances"`
}

var defaults = map[string]any{
	"addr":                 "127.0.0.1:8080",
	"apps_dir":             "apps",
	"cache_dir":            "",
	"admin_addr":           "",
	"admin.enabled":        false,
	"admin.token":          "",
	"log.format":           "text",
	"log.level":            "info",
	"limits.timeout":       "30s",
	"limits.memory":        "128MiB",
	"limits.max_body":      "16MiB",
	"limits.max_response":  "256MiB",
	"limits.concurrency":   8,
	"limits.queue":         64,
	"limits.queue_timeout": "10s",
	"limits.open_files":    256,
	"limits.scratch":       "16MiB",
	"limits.app_files":     "256MiB",
	"limits.instances":     64,
	"watch":                true,
}

// flagKeys maps each flag that sets a config key to that key.
var flagKeys = map[string]string{
	"addr":       "addr",
	"cache-dir":  "cache_dir",
	"log-format": "log.format",
	"log-level":  "log.level",
	"validate":   "validate",
	"timeout":    "limits.timeout",
	"memory":     "limits.memory",
	"tls-cert":   "tls_cert",
	"tls-key":    "tls_key",
	"h2c":        "h2c",
	"admin-addr": "admin_addr",

	"server-timing": "server_timing",
	"watch":         "watch",
}

// addConfigFlags defines the flags that map to config keys, plus --config.
func addConfigFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "TOML config file (keys as in the README)")
	fs.String("addr", "", "listen address, host:port (default 127.0.0.1:8080)")
	fs.String("cache-dir", "", "compilation cache folder (default $XDG_CACHE_HOME/wasmwsgi)")
	fs.String("log-format", "", "log format: text or json (default text)")
	fs.String("log-level", "", "log level: debug, info, warn, error (default info)")
	fs.Bool("validate", false, "wrap every app in wsgiref.validate (apps may opt out in wasmwsgi.toml)")
	fs.String("timeout", "", "wall-time limit per request, e.g. 30s (default 30s)")
	fs.String("memory", "", "linear memory limit per instance, e.g. 128MiB (default 128MiB)")
	fs.String("tls-cert", "", "PEM certificate (chain) file: serve HTTPS and HTTP/2 (needs --tls-key)")
	fs.String("tls-key", "", "PEM private key file of --tls-cert")
	fs.Bool("h2c", false, "also accept cleartext HTTP/2 with prior knowledge (for a proxy in front; not with TLS)")
	fs.Bool("server-timing", false, "add a Server-Timing header with guest time and peak memory (apps may opt out)")
	fs.Bool("watch", true, "reload apps when their files change (--watch=false turns it off)")
	fs.String("admin-addr", "", "serve the admin page and /_wasmwsgi/metrics on this host:port instead of --addr")
}

// loadConfig merges the sources in koanf's order and validates the result.
func loadConfig(fs *pflag.FlagSet, appsDirArg string) (Config, error) {
	cfg, _, err := loadConfigSources(fs, appsDirArg)
	return cfg, err
}

// loadConfigSources is loadConfig that also tells, for each key some source set, where
// the value in effect came from: "default", the config file's path, the WASMWSGI_*
// variable, the --flag or "argument DIR".
func loadConfigSources(fs *pflag.FlagSet, appsDirArg string) (Config, map[string]string, error) {
	var cfg Config
	k := koanf.New(".")
	sources := map[string]string{}
	// load merges one source over the ones before and notes the keys it set.
	load := func(p koanf.Provider, parser koanf.Parser, source func(key string) string) error {
		layer := koanf.New(".")
		if err := layer.Load(p, parser); err != nil {
			return err
		}
		for _, key := range layer.Keys() {
			sources[strings.ToLower(key)] = source(key)
		}
		return k.Merge(layer)
	}
	named := func(name string) func(string) string { return func(string) string { return name } }
	if err := load(confmap.Provider(defaults, "."), nil, named("default")); err != nil {
		return cfg, sources, err
	}
	path, _ := fs.GetString("config")
	if path != "" {
		if err := load(file.Provider(path), toml.Parser(), named(path)); err != nil {
			return cfg, sources, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	envVars := map[string]string{} // key -> the variable that set it
	err := load(env.Provider(".", env.Opt{
		Prefix: "WASMWSGI_",
		// WASMWSGI_LOG__FORMAT -> log.format: a double underscore nests.
		TransformFunc: func(name, value string) (string, any) {
			key := strings.ToLower(strings.TrimPrefix(name, "WASMWSGI_"))
			key = strings.ReplaceAll(key, "__", ".")
			envVars[key] = name
			return key, value
		},
	}), nil, func(key string) string { return envVars[key] })
	if err != nil {
		return cfg, sources, err
	}
	flags := map[string]string{} // key -> the flag that set it
	err = load(posflag.ProviderWithFlag(fs, ".", k, func(f *pflag.Flag) (string, any) {
		key, ok := flagKeys[f.Name]
		if !ok || !f.Changed {
			return "", nil
		}
		flags[key] = "--" + f.Name
		return key, posflag.FlagVal(fs, f)
	}), nil, func(key string) string { return flags[key] })
	if err != nil {
		return cfg, sources, err
	}
	if appsDirArg != "" {
		_ = k.Set("apps_dir", appsDirArg)
		sources["apps_dir"] = "argument DIR"
	}
	fileKeys := router.FileKeys(path, "remove it (the README's Configuration section lists the settings)")
	// keyOrigin names an unknown key the way its source wrote it: only the config file
	// and the environment can set one.
	keyOrigin := func(key string) router.KeyOrigin {
		if name := envVars[strings.ToLower(key)]; name != "" && sources[strings.ToLower(key)] == name {
			return router.KeyOrigin{Name: name, Spell: envVar,
				Fix: "unset it (the README's Configuration section lists the settings; " +
					"an app's own variables go under [env] in its wasmwsgi.toml)"}
		}
		return fileKeys(key)
	}
	err = router.Unmarshal(k, "", &cfg, keyOrigin)
	if unknown := new(router.UnknownKeyError); errors.As(err, &unknown) {
		return cfg, sources, err
	}
	if err != nil {
		return cfg, sources, fmt.Errorf("configuration: %w (the README lists the keys)", err)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = defaultCacheDir()
	}
	return cfg, sources, cfg.validate()
}

// envVar is the environment variable that sets key: limits.timeout is
// WASMWSGI_LIMITS__TIMEOUT.
func envVar(key string) string {
	return "WASMWSGI_" + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

func (c Config) validate() error {
	var errs []error
	if _, err := c.Limits.Apply(runtime.Limits{}); err != nil {
		errs = append(errs, err)
	}
	if c.Limits.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("limits.timeout must be positive, e.g. \"30s\""))
	}
	if _, err := runtime.ParseSize(c.Limits.AppFiles); err != nil {
		errs = append(errs, fmt.Errorf("limits.app_files: %w", err))
	}
	if _, err := c.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if c.Limits.Instances <= 0 {
		errs = append(errs, fmt.Errorf("limits.instances must be positive"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		errs = append(errs, fmt.Errorf("log.level %q must be debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format %q must be \"text\" or \"json\"", c.Log.Format))
	}
	if c.Admin.Enabled && strings.TrimSpace(c.Admin.Token) == "" {
		errs = append(errs, fmt.Errorf("admin.token must be set when admin.enabled is true: choose a long random "+
			"string (e.g. from `openssl rand -hex 32`) and set it as token under [admin] in the config file "+
			"or in WASMWSGI_ADMIN__TOKEN"))
	}
	errs = append(errs, c.validateTLS())
	return errors.Join(errs...)
}

// trustedProxies parses trusted_proxies; a bare address means just that address.
func (c Config) trustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted_proxies: %q is not a CIDR like \"10.0.0.0/8\" or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "wasmwsgi")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "wasmwsgi")
	}
	return filepath.Join(os.TempDir(), "wasmwsgi-cache")
}
