// Package config reads wasmwsgi's configuration and checks it.
//
// There are two kinds of settings. The operator's live in the server configuration
// (a TOML file, WASMWSGI_* variables and flags, all outside every app folder) and
// grant each app what reaches the host: its routes, a data folder, its ceilings and
// secrets. A tenant's live in the app's own wasmwsgi.toml and may only narrow what the
// operator granted. Load reads the operator's configuration; Discover finds the apps
// and checks each tenant file against the grants. Both hand typed values to the router
// and the runtime, and neither creates anything: no folder, no lock.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// Server is the operator's configuration as written. Sources, each overriding the one
// before: defaults < config file (--config, TOML) < WASMWSGI_* environment < flags.
type Server struct {
	// Addr is the listen address. Default "127.0.0.1:8080"; use ":8080" to listen on
	// every interface.
	Addr string `koanf:"addr"`
	// AppsDir is the folder whose subfolders are apps. Default "apps"; the positional
	// argument of `serve` sets it too.
	AppsDir string `koanf:"apps_dir"`
	// CacheDir holds the wazero compilation cache. Default $XDG_CACHE_HOME/wasmwsgi
	// (~/.cache/wasmwsgi).
	CacheDir string `koanf:"cache_dir"`
	// DataRoot holds the data folder of every app granted one: <data_root>/<app>. It
	// lies outside apps_dir. Relative to the config file's folder when the file sets
	// it. Default none.
	DataRoot string `koanf:"data_root"`
	// TrustAppConfig lets every app's wasmwsgi.toml set what only the operator sets
	// otherwise (prefix, hosts, a data_dir path, limits above the ceilings), for a
	// server that hosts only its operator's own apps. Default false.
	TrustAppConfig bool `koanf:"trust_app_config"`
	// Validate wraps every app in wsgiref.validate unless its wasmwsgi.toml says
	// otherwise. Default false.
	Validate bool `koanf:"validate"`
	// Watch reloads an app when its files change (and mounts or unmounts app folders as
	// they appear or go). Default true.
	Watch bool `koanf:"watch"`
	// CheckBeforeReady loads every app before the server reports ready, the ones an
	// earlier start loaded with this cache included. By default those load right after
	// ready (their load reads every file of the folder and restores the snapshot it
	// made, or imports the app if a file changed), and a request to one waits for its
	// load. Default false.
	CheckBeforeReady bool `koanf:"check_before_ready"`
	// GuardPages has the guest's code compiled without bounds checks on its loads and
	// stores: each instance's memory is a reservation of 8 GiB of address space in
	// which only its length is accessible, and a fault past it is the guest's out of
	// bounds trap. It takes effect on linux/amd64; elsewhere the checks stay. Default
	// true.
	GuardPages bool `koanf:"guard_pages"`
	// IdleTimeout is how long an app may go without a request before it keeps no
	// instance at all, its pre-warmed ones included: an idle tenant then holds only its
	// snapshot, and its next request restores an instance from it. "0s" keeps the
	// pre-warmed instances for as long as the app is served. Default "5m".
	IdleTimeout time.Duration `koanf:"idle_timeout"`
	// TrustedProxies are CIDRs ("10.0.0.0/8", "127.0.0.1/32") whose X-Forwarded-For,
	// -Proto and -Host headers set REMOTE_ADDR, wsgi.url_scheme and HTTP_HOST. Default
	// none: the headers change nothing.
	TrustedProxies []string `koanf:"trusted_proxies"`
	// AdminAddr, when set, is a listen address of its own for the admin page and
	// /_wasmwsgi/metrics, which the main address then no longer serves. Default none.
	AdminAddr string `koanf:"admin_addr"`
	// Admin is the admin page at /_wasmwsgi/. Default off.
	Admin Admin `koanf:"admin"`
	// TLSCert and TLSKey are PEM files; set both to serve HTTPS (HTTP/2 by ALPN).
	TLSCert string `koanf:"tls_cert"`
	TLSKey  string `koanf:"tls_key"`
	// H2C accepts cleartext HTTP/2 with prior knowledge (RFC 9113 section 3.3) next to
	// HTTP/1.1, for a proxy in front that speaks HTTP/2 to its backends. Default false.
	H2C bool `koanf:"h2c"`
	// ServerTiming adds a Server-Timing header (guest time, peak memory) to every app
	// response unless the app's wasmwsgi.toml says otherwise. Default false.
	ServerTiming bool `koanf:"server_timing"`
	// StaticFiles lets the host answer the paths of each app's [static] table from the
	// app's files in memory, without running the app, unless the app's grant says
	// otherwise ([apps.NAME] static_files). false leaves every path to the apps.
	// Default true.
	StaticFiles bool `koanf:"static_files"`
	// ShareSnapshots lets each app's cached snapshot share its memory pages with
	// byte-identical copies of the app on this server (the same files, settings and
	// environment), unless the app's grant says otherwise ([apps.NAME] share_snapshot)
	// or its wasmwsgi.toml sets share_snapshot = false. Such copies share a hash secret,
	// derived from those inputs and a key of the server's: a tenant holding a
	// byte-identical copy of another's app, the operator's env for it included, could
	// compute hash collisions against it; apps that differ in any byte never share a
	// secret. false gives every app a random hash secret of its own and no sharing.
	// Default true.
	ShareSnapshots bool         `koanf:"share_snapshots"`
	Log            Log          `koanf:"log"`
	Limits         ServerLimits `koanf:"limits"`
	// Outbound holds how apps' outbound connections are brokered: a CA file and the
	// per-request limits (grants are per app: [apps.NAME] outbound).
	Outbound OutboundConf `koanf:"outbound"`
	// Apps are the operator's grants, one [apps.NAME] table per app folder name.
	Apps map[string]GrantConf `koanf:"apps"`
}

// Log selects the log format and level.
type Log struct {
	// Format is "text" (default) or "json".
	Format string `koanf:"format"`
	// Level is "debug", "info" (default), "warn" or "error".
	Level string `koanf:"level"`
}

// Admin configures the admin page: a live table of the apps, their state, traffic,
// latency and memory.
type Admin struct {
	// Enabled serves the page at /_wasmwsgi/. Default false.
	Enabled bool `koanf:"enabled"`
	// Token is required when Enabled: the page answers 401 to clients that do not send
	// "Authorization: Bearer <token>" or have opened /_wasmwsgi/?token=<token> once.
	Token string `koanf:"token"`
}

// ServerLimits holds the server's [limits]: the per-request ones, which are every
// app's ceilings (and values) unless its grant says otherwise, and two server-wide
// ones.
type ServerLimits struct {
	Limits `koanf:",squash"`
	// AppFiles caps the bytes of one app's files held in memory. Default "256MiB".
	AppFiles string `koanf:"app_files"`
	// Instances caps the instances running at once across all apps. Default 64.
	Instances int `koanf:"instances"`
	// IdleInstances caps the idle instances kept ready across all apps: past it, the
	// one that has waited longest is closed. Default 256; 0 is no cap.
	IdleInstances int `koanf:"idle_instances"`
}

// Config is the operator's configuration, loaded and checked: the settings as written
// (with the defaults filled in, data_root made absolute) and their typed values.
type Config struct {
	Server
	// File is the config file given with --config, or "".
	File string
	// AppLimits are the server's [limits], typed: every app's ceilings unless its
	// grant says otherwise.
	AppLimits runtime.Limits
	// MaxAppBytes is limits.app_files in bytes.
	MaxAppBytes int64
	// Proxies are trusted_proxies, parsed.
	Proxies []netip.Prefix
	// LogLevel is log.level, parsed.
	LogLevel slog.Level
	// Grants are the [apps.NAME] tables, checked, by app folder name.
	Grants map[string]Grant
	// OutboundLimits are the [outbound] limits, typed.
	OutboundLimits egress.Limits

	values  map[string]any    // every key set by a source, flat: what Reloaded merges
	sources map[string]string // lower-case key -> where its value came from
}

var defaults = map[string]any{
	"addr":                  "127.0.0.1:8080",
	"apps_dir":              "apps",
	"cache_dir":             "",
	"admin_addr":            "",
	"admin.enabled":         false,
	"admin.token":           "",
	"log.format":            "text",
	"log.level":             "info",
	"limits.timeout":        "30s",
	"limits.memory":         "128MiB",
	"limits.max_body":       "16MiB",
	"limits.max_response":   "256MiB",
	"limits.concurrency":    8,
	"limits.queue":          64,
	"limits.queue_timeout":  "10s",
	"limits.open_files":     256,
	"limits.scratch":        "16MiB",
	"limits.processes":      0,
	"limits.app_files":      "256MiB",
	"limits.instances":      64,
	"limits.idle_instances": 256,
	"watch":                 true,
	"check_before_ready":    false,
	"guard_pages":           true,
	"idle_timeout":          "5m",
	"static_files":          true,
	"share_snapshots":       true,
}

// flagKeys maps each flag that sets a config key to that key.
var flagKeys = map[string]string{
	"addr":       "addr",
	"cache-dir":  "cache_dir",
	"data-root":  "data_root",
	"log-format": "log.format",
	"log-level":  "log.level",
	"validate":   "validate",
	"timeout":    "limits.timeout",
	"memory":     "limits.memory",
	"tls-cert":   "tls_cert",
	"tls-key":    "tls_key",
	"h2c":        "h2c",
	"admin-addr": "admin_addr",

	"server-timing":      "server_timing",
	"idle-timeout":       "idle_timeout",
	"watch":              "watch",
	"check-before-ready": "check_before_ready",
	"guard-pages":        "guard_pages",
	"trust-app-config":   "trust_app_config",
	"static-files":       "static_files",
}

// AddFlags defines the flags that set config keys, plus --config.
func AddFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "TOML config file (keys as in the README)")
	fs.String("addr", "", "listen address, host:port (default 127.0.0.1:8080)")
	fs.String("cache-dir", "", "compilation cache folder (default $XDG_CACHE_HOME/wasmwsgi)")
	fs.String("data-root", "", "folder of the data folders granted to apps, <data-root>/<app>, outside the apps folder")
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
	fs.Bool("check-before-ready", false, "load every app before reporting ready, the ones a restart "+
		"restores from the cache included (by default those load right after ready)")
	fs.Bool("guard-pages", true, "compile the guest without bounds checks, faults past each memory's length trapping "+
		"(linux/amd64; --guard-pages=false keeps the checks)")
	fs.Bool("static-files", true, "serve each app's [static] files from memory without running the app (--static-files=false leaves every path to the apps)")
	fs.String("idle-timeout", "", "an app with no request for this long keeps no instance, e.g. 5m (default 5m; 0s keeps them)")
	fs.String("admin-addr", "", "serve the admin page and /_wasmwsgi/metrics on this host:port instead of --addr")
	fs.Bool("trust-app-config", false, "let every app's wasmwsgi.toml set routes, data_dir paths and limits "+
		"(only for a server that hosts its operator's own apps)")
}

// Load merges the operator's sources (defaults < the --config file < WASMWSGI_*
// environment < flags, then appsDir, the command's DIR argument, when not "") and
// checks the result. An unknown key is an *UnknownKeyError naming it as written.
func Load(fs *pflag.FlagSet, appsDir string) (*Config, error) {
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
		return nil, err
	}
	path, _ := fs.GetString("config")
	if path != "" {
		if err := load(file.Provider(path), toml.Parser(), named(path)); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	envVars := map[string]string{} // lower-case key -> the variable that set it
	err := load(env.Provider(".", env.Opt{
		Prefix: "WASMWSGI_",
		TransformFunc: func(name, value string) (string, any) {
			if name == BuildCacheVar {
				return "", nil // the build's, not the server's
			}
			key := envKey(name)
			envVars[strings.ToLower(key)] = name
			return key, value
		},
	}), nil, func(key string) string { return envVars[strings.ToLower(key)] })
	if err != nil {
		return nil, err
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
		return nil, err
	}
	if appsDir != "" {
		_ = k.Set("apps_dir", appsDir)
		sources["apps_dir"] = "argument DIR"
	}
	fileKeys := FileKeys(path, "remove it (the README's Configuration section lists the settings)")
	// origin names an unknown key the way its source wrote it: only the config file and
	// the environment can set one.
	origin := func(key string) KeyOrigin {
		lower := strings.ToLower(key)
		if name := envVars[lower]; name != "" && sources[lower] == name {
			return KeyOrigin{Name: name, Spell: EnvVar,
				Fix: "unset it (the README's Configuration section lists the settings; " +
					"an app's own variables go under [env] in its wasmwsgi.toml)"}
		}
		return fileKeys(key)
	}
	return decode(k, path, sources, origin)
}

// BuildCacheVar names the folder where python-wasm/build.sh keeps its outputs. It
// shares the WASMWSGI_ prefix but is not a server setting, so the server ignores it
// instead of refusing it as unknown.
const BuildCacheVar = "WASMWSGI_CACHE"

// envKey is the key a WASMWSGI_* variable sets: a double underscore nests, so
// WASMWSGI_LOG__FORMAT is log.format. Keys are lower case, except the variable names
// of an app's environment (WASMWSGI_APPS__SHOP__ENV__DATABASE_URL is
// apps.shop.env.DATABASE_URL).
func envKey(name string) string {
	parts := strings.SplitN(strings.TrimPrefix(name, "WASMWSGI_"), "__", 4)
	for i := range parts {
		if !(i == 3 && strings.EqualFold(parts[0], "apps") && strings.EqualFold(parts[2], "env")) {
			parts[i] = strings.ToLower(parts[i])
		}
	}
	return strings.Join(parts, ".")
}

// EnvVar is the environment variable that sets key: limits.timeout is
// WASMWSGI_LIMITS__TIMEOUT.
func EnvVar(key string) string {
	return "WASMWSGI_" + strings.ToUpper(strings.ReplaceAll(key, ".", "__"))
}

// decode unmarshals the merged keys of k and checks them.
func decode(k *koanf.Koanf, path string, sources map[string]string, origin func(string) KeyOrigin) (*Config, error) {
	c := &Config{File: path, values: k.All(), sources: sources}
	err := Unmarshal(k, "", &c.Server, origin)
	if unknown, typed := new(UnknownKeyError), new(TypeError); errors.As(err, &unknown) || errors.As(err, &typed) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("configuration: %w (the README lists the keys)", err)
	}
	if c.CacheDir == "" {
		c.CacheDir = defaultCacheDir()
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Source tells where the value of key came from: "default", the config file's path,
// the WASMWSGI_* variable, the --flag or "argument DIR".
func (c *Config) Source(key string) string {
	if s := c.sources[strings.ToLower(key)]; s != "" {
		return s
	}
	return "default"
}

// where prefixes a message about key with the place that set it (the config file or
// the variable), or with nothing for a flag or a default.
func (c *Config) where(key string) string {
	switch s := c.Source(key); {
	case s == "default", strings.HasPrefix(s, "--"), s == "argument DIR":
		return ""
	default:
		return s + ": "
	}
}

// check fills the typed values from the settings, or says what is wrong with them.
func (c *Config) check() error {
	var errs []error
	limits, err := c.Limits.Limits.Apply(runtime.Limits{})
	if err != nil {
		errs = append(errs, err)
	}
	c.AppLimits = limits
	if c.OutboundLimits, err = c.Outbound.apply(defaultOutboundLimits, "outbound"); err != nil {
		errs = append(errs, err)
	}
	if c.Outbound.CAFile != "" {
		if _, err := egress.LoadRoots(c.Outbound.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("%w: give a readable PEM file of CA certificates", err))
		}
	}
	if c.Limits.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("limits.timeout must be positive, e.g. \"30s\""))
	}
	if n, err := ParseSize(c.Limits.AppFiles); err != nil {
		errs = append(errs, fmt.Errorf("limits.app_files: %w", err))
	} else {
		c.MaxAppBytes = int64(n)
	}
	if c.Proxies, err = parseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.Limits.Instances <= 0 {
		errs = append(errs, fmt.Errorf("limits.instances must be positive"))
	}
	if c.Limits.IdleInstances < 0 {
		errs = append(errs, fmt.Errorf("limits.idle_instances = %d must be 0 (no cap) or more", c.Limits.IdleInstances))
	}
	if err := c.LogLevel.UnmarshalText([]byte(c.Log.Level)); err != nil {
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
	errs = append(errs, c.checkTLS())
	if c.DataRoot != "" {
		root := c.DataRoot
		if !filepath.IsAbs(root) && c.File != "" && c.Source("data_root") == c.File {
			root = filepath.Join(filepath.Dir(c.File), root)
		}
		if abs, err := filepath.Abs(root); err == nil {
			c.DataRoot = abs
		}
		if err := checkDataRoot(c.DataRoot, c.AppsDir); err != nil {
			errs = append(errs, fmt.Errorf("%s%w", c.where("data_root"), err))
		}
	}
	errs = append(errs, c.checkGrants())
	return errors.Join(errs...)
}

// checkTLS checks that tls_cert and tls_key come as a pair and that h2c, which is
// about cleartext connections, is not combined with them.
func (c *Config) checkTLS() error {
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return fmt.Errorf("tls_cert is set (%s) but tls_key is not: set both (--tls-cert and --tls-key) or neither", c.TLSCert)
	case c.TLSCert == "" && c.TLSKey != "":
		return fmt.Errorf("tls_key is set (%s) but tls_cert is not: set both (--tls-cert and --tls-key) or neither", c.TLSKey)
	case c.TLSCert != "" && c.H2C:
		return errors.New("h2c is for cleartext connections and cannot be combined with tls_cert/tls_key: " +
			"HTTPS already offers HTTP/2; unset h2c")
	}
	return nil
}

// checkDataRoot refuses a data_root inside the apps folder (its folders would be
// discovered as apps, and the apps' files would be the data of others) or around it
// (a data folder could then be an app folder, and its app rewrite its own code).
func checkDataRoot(root, appsDir string) error {
	r, a := realPath(root), realPath(appsDir)
	switch {
	case within(r, a):
		return fmt.Errorf("data_root %s lies inside apps_dir %s: put it outside the apps folder "+
			"(for example /var/lib/wasmwsgi)", root, appsDir)
	case within(a, r):
		return fmt.Errorf("data_root %s holds apps_dir %s: put the data folders and the app folders "+
			"in separate places (for example /var/lib/wasmwsgi and /srv/apps)", root, appsDir)
	}
	return nil
}

// parseProxies parses trusted_proxies; a bare address means just that address.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
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

// realPath resolves the symlinks of p's longest existing prefix and keeps the rest.
func realPath(p string) string {
	p, _ = filepath.Abs(p)
	var rest []string
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	r, err := filepath.Rel(dir, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}
