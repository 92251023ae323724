package router

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"

	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// AppConfigFile is the optional per-app settings file inside an app folder.
const AppConfigFile = "wasmwsgi.toml"

// AppConfig is what wasmwsgi.toml may set for one app. Unknown keys are errors.
type AppConfig struct {
	// Entrypoint is "module:callable" (or "module", or "file.wsgi"). Default: app.py,
	// else wsgi.py, else the only *.wsgi file; callable `application`, else `app`.
	Entrypoint string `koanf:"entrypoint"`
	// Prefix is the URL path the app is mounted at; default "/<folder>", or "/" when
	// hosts is set. It becomes SCRIPT_NAME ("" for "/").
	Prefix string `koanf:"prefix"`
	// Hosts are virtual host names (Host header, port ignored) that route to this app.
	Hosts []string `koanf:"hosts"`
	// Limits override the server's [limits] for this app.
	Limits runtime.LimitsConfig `koanf:"limits"`
	// Env is the app's whole environment: the guest sees these variables and no others.
	Env map[string]string `koanf:"env"`
	// Validate wraps the app in wsgiref.validate (default: the server's validate).
	Validate *bool `koanf:"validate"`
	// ServerTiming adds a Server-Timing header to the app's responses (default: the
	// server's server_timing).
	ServerTiming *bool `koanf:"server_timing"`
	// DataDir is a host folder, relative to the app folder or absolute, that the app
	// sees read-write at /data; created when missing. It may not overlap an app
	// folder. After discovery it holds the absolute path.
	DataDir string `koanf:"data_dir"`
	// Isolation is "request" (default: every request starts from the app's snapshot)
	// or "instance" (an instance keeps its memory for up to max_requests requests).
	Isolation string `koanf:"isolation"`
	// MaxRequests bounds the requests of one instance in instance isolation; each
	// instance draws its bound from [max_requests/2, max_requests]. Default 1000.
	MaxRequests *int `koanf:"max_requests"`
	// Prewarm is how many restored instances wait for requests once the app is
	// loaded. Default 1.
	Prewarm *int `koanf:"prewarm"`
	// Warmup are paths requested with GET before the snapshot is taken, each
	// runtime.WarmupRounds times, so that every request starts warm.
	Warmup []string `koanf:"warmup"`
}

// ServerTimingOr is the app's server_timing, or def when wasmwsgi.toml does not set it.
func (c AppConfig) ServerTimingOr(def bool) bool {
	if c.ServerTiming != nil {
		return *c.ServerTiming
	}
	return def
}

// intOr returns *p, or def when the setting is absent.
func intOr(p *int, def int) int {
	if p != nil {
		return *p
	}
	return def
}

// AppDir is one discovered app folder and its settings.
type AppDir struct {
	Name   string
	Dir    string
	Config AppConfig
	// Err is set when the folder is an app but its settings are unusable; the app is
	// then mounted in the failed state so that it answers 503.
	Err error
}

// Discover lists the apps in dir: every direct subfolder holding app.py, wsgi.py, a
// *.wsgi file or a wasmwsgi.toml. Folders starting with "." or "_" are ignored.
func Discover(dir string) ([]AppDir, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("apps folder %s: %w (pass the folder that holds your app folders)", dir, err)
	}
	var apps []AppDir
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		appDir := filepath.Join(dir, name)
		entry, wsgiFiles := defaultEntrypoint(appDir)
		_, tomlErr := os.Stat(filepath.Join(appDir, AppConfigFile))
		if entry == "" && len(wsgiFiles) == 0 && tomlErr != nil {
			continue // not an app folder
		}
		a := AppDir{Name: name, Dir: appDir}
		a.Config, a.Err = readAppConfig(appDir)
		if a.Err == nil {
			a.Err = finish(&a, entry, wsgiFiles)
		}
		apps = append(apps, a)
	}
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	checkDataDirs(apps)
	return apps, nil
}

// resolveDataDir makes an app's data_dir absolute (relative paths are relative to the
// app folder).
func resolveDataDir(a *AppDir) error {
	d := a.Config.DataDir
	if d == "" {
		return nil
	}
	if !filepath.IsAbs(d) {
		d = filepath.Join(a.Dir, d)
	}
	abs, err := filepath.Abs(d)
	if err != nil {
		return fmt.Errorf("%s: data_dir %q: %w", filepath.Join(a.Dir, AppConfigFile), a.Config.DataDir, err)
	}
	a.Config.DataDir = abs
	return nil
}

// checkDataDirs refuses a data_dir that is an app folder, lies inside one or holds one:
// app folders are copied into memory and served read-only, so a data folder inside one
// would be loaded as app files, and one around an app would let the app rewrite its
// own code (or another app's).
func checkDataDirs(apps []AppDir) {
	for i := range apps {
		a := &apps[i]
		if a.Err != nil || a.Config.DataDir == "" {
			continue
		}
		data := realPath(a.Config.DataDir)
		for _, b := range apps {
			app := realPath(b.Dir)
			if within(data, app) || within(app, data) {
				a.Err = fmt.Errorf("%s: data_dir %s overlaps the app folder %s: put it outside every app folder (for example ../.data/%s)",
					filepath.Join(a.Dir, AppConfigFile), a.Config.DataDir, b.Dir, a.Name)
				break
			}
		}
	}
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

// defaultEntrypoint picks app.py, then wsgi.py; it also returns the *.wsgi files.
func defaultEntrypoint(dir string) (string, []string) {
	wsgiFiles, _ := filepath.Glob(filepath.Join(dir, "*.wsgi"))
	for i, f := range wsgiFiles {
		wsgiFiles[i] = filepath.Base(f)
	}
	for _, f := range []string{"app.py", "wsgi.py"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Mode().IsRegular() {
			return strings.TrimSuffix(f, ".py"), wsgiFiles
		}
	}
	return "", wsgiFiles
}

func readAppConfig(dir string) (AppConfig, error) {
	var cfg AppConfig
	p := filepath.Join(dir, AppConfigFile)
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	k := koanf.New(".")
	if err := k.Load(file.Provider(p), toml.Parser()); err != nil {
		return cfg, fmt.Errorf("%s: %w", p, err)
	}
	err := Unmarshal(k, "", &cfg, FileKeys(p, `remove it (the README's "Per-app settings" section lists the settings of wasmwsgi.toml)`))
	if unknown := new(UnknownKeyError); errors.As(err, &unknown) {
		return cfg, err // names the file already
	}
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", p, err)
	}
	return cfg, nil
}

// finish fills the defaults and checks the settings of one app.
func finish(a *AppDir, entry string, wsgiFiles []string) error {
	c := &a.Config
	file := filepath.Join(a.Dir, AppConfigFile)
	if c.Entrypoint == "" {
		switch {
		case entry != "":
			c.Entrypoint = entry
		case len(wsgiFiles) == 1:
			c.Entrypoint = wsgiFiles[0]
		case len(wsgiFiles) > 1:
			return fmt.Errorf("app %s has several *.wsgi files (%s): set entrypoint in %s",
				a.Name, strings.Join(wsgiFiles, ", "), file)
		default:
			return fmt.Errorf("app %s has no app.py, wsgi.py or *.wsgi file: add one, or set entrypoint = \"module:callable\" in %s",
				a.Name, file)
		}
	}
	for i, h := range c.Hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || strings.ContainsAny(h, "/ ") {
			return fmt.Errorf("%s: hosts[%d] = %q is not a host name", file, i, c.Hosts[i])
		}
		c.Hosts[i] = h
	}
	switch {
	case c.Prefix == "" && len(c.Hosts) > 0:
		c.Prefix = "/"
	case c.Prefix == "":
		c.Prefix = "/" + a.Name
	}
	if !strings.HasPrefix(c.Prefix, "/") || path.Clean(c.Prefix) != c.Prefix {
		return fmt.Errorf("%s: prefix %q must be a clean absolute path like \"/shop\" (no trailing slash)", file, c.Prefix)
	}
	if strings.HasPrefix(c.Prefix, "/_wasmwsgi") {
		return fmt.Errorf("%s: prefix %q is reserved for the server's own endpoints", file, c.Prefix)
	}
	if err := resolveDataDir(a); err != nil {
		return err
	}
	switch runtime.Isolation(c.Isolation) {
	case "", runtime.IsolationRequest, runtime.IsolationInstance:
	default:
		return fmt.Errorf("%s: isolation = %q: use \"request\" (memory restored before every request) or \"instance\" (an instance is reused for up to max_requests requests)",
			file, c.Isolation)
	}
	if c.MaxRequests != nil && *c.MaxRequests < 1 {
		return fmt.Errorf("%s: max_requests = %d must be at least 1", file, *c.MaxRequests)
	}
	if c.Prewarm != nil && (*c.Prewarm < 0 || *c.Prewarm > 64) {
		return fmt.Errorf("%s: prewarm = %d must be between 0 and 64", file, *c.Prewarm)
	}
	for i, p := range c.Warmup {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \r\n#") {
			return fmt.Errorf("%s: warmup[%d] = %q is not a path such as \"/\" or \"/page?x=1\"", file, i, p)
		}
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%s: [env] name %q must be non-empty and contain no '=' or NUL", file, k)
		}
		if strings.ContainsRune(c.Env[k], 0) {
			return fmt.Errorf("%s: [env] %s contains a NUL byte", file, k)
		}
	}
	return nil
}
