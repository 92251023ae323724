package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/runtime"
	"github.com/wasmwsgi/wasmwsgi/static"
)

// AppFile is the tenant's optional settings file in an app folder.
const AppFile = "wasmwsgi.toml"

// TenantFile is what an app's wasmwsgi.toml may set. Unknown keys are errors, and so
// are the operator's keys (Prefix, Hosts, DataDir), limits above the app's ceilings and
// share_snapshot = true where the operator's is false, unless the operator set
// trust_app_config.
type TenantFile struct {
	// Entrypoint is "module:callable" (a dotted path), "module:factory(literals)",
	// "module" or "file.wsgi[:callable]". Default: app.py, else wsgi.py, else the only
	// *.wsgi file, with `application`, `app`, `create_app()` or `make_app()` in it;
	// else a Django project's manage.py.
	Entrypoint string `koanf:"entrypoint"`
	// Prefix is the URL path the app is mounted at (trust_app_config only).
	Prefix string `koanf:"prefix"`
	// Hosts are virtual host names that route to this app (trust_app_config only).
	Hosts []string `koanf:"hosts"`
	// Limits narrow the app's ceilings.
	Limits Limits `koanf:"limits"`
	// Env are variables the guest sees (with the operator's, which win on a clash).
	Env map[string]string `koanf:"env"`
	// Validate wraps the app in wsgiref.validate (default: the server's validate).
	Validate *bool `koanf:"validate"`
	// ServerTiming adds a Server-Timing header to the app's responses (default: the
	// server's server_timing).
	ServerTiming *bool `koanf:"server_timing"`
	// DataDir is a host folder, relative to the app folder or absolute, that the app
	// sees read-write at /data (trust_app_config only).
	DataDir string `koanf:"data_dir"`
	// Isolation is "request" (default: every request starts from the app's snapshot)
	// or "instance" (an instance keeps its memory for up to max_requests requests).
	Isolation string `koanf:"isolation"`
	// MaxRequests bounds the requests of one instance in instance isolation; each
	// instance draws its bound from [max_requests/2, max_requests]. Default 1000.
	MaxRequests *int `koanf:"max_requests"`
	// Prewarm is how many restored instances wait for requests once the app is
	// loaded (at most limits.concurrency are kept). Default 1.
	Prewarm *int `koanf:"prewarm"`
	// Warmup are paths requested with GET before the snapshot is taken, each
	// runtime.WarmupRounds times, so that every request starts warm.
	Warmup []string `koanf:"warmup"`
	// Outbound narrows the app's outbound grant: entries each within one the operator
	// granted (any entry with trust_app_config). Default: the whole grant.
	Outbound []string `koanf:"outbound"`
	// Static maps URL paths below the app's mount to files and folders of the app,
	// which the host serves from the app's in-memory tree ("/static" = "static").
	// readTenantFile fills it: koanf would split its keys at their dots.
	Static map[string]string `koanf:"static"`
	// StaticCacheControl sets the Cache-Control of the files Static serves.
	StaticCacheControl StaticCacheConf `koanf:"static_cache_control"`
	// ShareSnapshot = false gives the app a random hash secret of its own and a
	// snapshot that shares no pages with byte-identical copies of it. true is refused
	// where the operator turned sharing off (share_snapshots, [apps.NAME]
	// share_snapshot), unless trust_app_config. Default: the operator's.
	ShareSnapshot *bool `koanf:"share_snapshot"`
}

// operatorKeys are the keys of TenantFile that only trust_app_config lets an app set,
// and how the operator grants each instead.
var operatorKeys = []struct{ key, grant string }{
	{"prefix", `the operator mounts the app elsewhere with [apps.%[1]s] prefix = "/path" in the server configuration (default "/%[1]s")`},
	{"hosts", `the operator gives the app virtual hosts with [apps.%[1]s] hosts = ["host.example"] in the server configuration`},
	{"data_dir", `the operator grants the app a data folder, <data_root>/%[1]s at /data, with [apps.%[1]s] data_dir = true in the server configuration`},
}

// App is one app folder and the settings it runs with: the operator's grant, the
// tenant's wasmwsgi.toml within it, and the defaults.
type App struct {
	// Name is the folder's name: the app's identity in routes, grants, logs and
	// metrics.
	Name string
	// Dir is the app folder.
	Dir string

	Entrypoint string
	// DjangoSettings is the settings module a Django project's manage.py names, when
	// the folder is one and sets no entrypoint: the app is its WSGI_APPLICATION.
	DjangoSettings string
	// Prefix is the mount path ("/" or "/x", no trailing slash), which becomes
	// SCRIPT_NAME ("" for "/"); Hosts the virtual hosts, lower case.
	Prefix string
	Hosts  []string
	Limits runtime.Limits
	// Env is the app's whole environment.
	Env          map[string]string
	Validate     bool
	ServerTiming bool
	// DataDir is the host folder the app sees read-write at /data, or "".
	DataDir     string
	Isolation   runtime.Isolation
	MaxRequests int
	Prewarm     int
	Warmup      []string
	// Outbound are the destinations the app may connect to (nil: none), and
	// OutboundLimits bound each request's connections. CAFile is outbound.ca_file.
	Outbound       []egress.Rule
	OutboundLimits egress.Limits
	CAFile         string
	// StaticFiles is the operator's switch: false leaves every path to the app, and
	// Static empty. Static are the tenant's [static] routes, checked; StaticCache the
	// Cache-Control values they are served with.
	StaticFiles bool
	Static      []static.Route
	StaticCache static.CacheControl
	// ShareSnapshot lets the app's snapshot share pages with byte-identical copies of
	// the app (runtime.AppSpec.ShareSnapshot): the grant's share_snapshot, else the
	// server's share_snapshots, which the tenant's file may turn off.
	ShareSnapshot bool

	// Sources tells, for each key of Settings, where its value came from.
	Sources map[string]string
	// Granted is what the operator's configuration gives the app, as text: the same
	// for two versions of the app when only the app's own files differ.
	Granted string
	// Shadowed is set when another app holds the app's mount: it is not routed.
	Shadowed bool
	// Err is set when the folder is an app but its settings are unusable; the app is
	// then served in the failed state (503).
	Err error
}

// Discover lists the apps of the folder apps.Dir: every direct subfolder holding
// app.py, wsgi.py, a *.wsgi file, a wasmwsgi.toml or a manage.py (folders starting
// with "." or "_" are ignored), in name order, each with its settings or the error
// that makes them unusable. It reads files and creates nothing.
func Discover(apps Operator) ([]App, error) {
	if apps.DataRoot != "" {
		if err := checkDataRoot(apps.DataRoot, apps.Dir); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(apps.Dir)
	if err != nil {
		return nil, fmt.Errorf("apps folder %s: %w (pass the folder that holds your app folders)", apps.Dir, err)
	}
	var list []App
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		dir := filepath.Join(apps.Dir, name)
		entry, wsgiFiles := defaultEntrypoint(dir)
		_, tomlErr := os.Stat(filepath.Join(dir, AppFile))
		manage := regularFile(filepath.Join(dir, ManageFile))
		if entry == "" && len(wsgiFiles) == 0 && tomlErr != nil && !manage {
			continue // not an app folder
		}
		list = append(list, apps.app(name, dir, entry, wsgiFiles, manage))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	checkDataDirs(list, apps)
	assignRoutes(list)
	return list, nil
}

// app reads the settings of the app folder dir.
func (apps Operator) app(name, dir, entry string, wsgiFiles []string, manage bool) App {
	g := apps.grant(name)
	file := filepath.Join(dir, AppFile)
	a := App{
		Name: name, Dir: dir, Limits: g.Limits, Validate: apps.Validate, ServerTiming: apps.ServerTiming,
		Isolation: runtime.IsolationRequest, MaxRequests: 1000, Prewarm: 1,
		Hosts: g.Hosts, Prefix: g.Prefix, DataDir: g.DataDir, Env: map[string]string{},
		Sources: map[string]string{}, Outbound: g.Outbound, OutboundLimits: g.OutboundLimits, CAFile: apps.CAFile,
		StaticFiles: apps.StaticFiles, StaticCache: static.CacheControl{Hashed: static.DefaultHashed, Other: static.DefaultOther},
		ShareSnapshot: apps.ShareSnapshots,
	}
	if g.StaticFiles != nil {
		a.StaticFiles = *g.StaticFiles
	}
	if g.ShareSnapshot != nil {
		a.ShareSnapshot = *g.ShareSnapshot
	}
	grant := func(key string) string { return "grant (" + apps.source("apps."+name+"."+key) + ")" }
	tenant := "tenant file (" + file + ")"
	a.Granted = fmt.Sprintf("hosts=%q prefix=%q data_dir=%q limits=%+v env=%q validate=%v server_timing=%v trust=%v "+
		"outbound=%v outbound_limits=%+v ca_file=%q static_files=%v share_snapshot=%v",
		g.Hosts, g.Prefix, g.DataDir, g.Limits, sortedEnv(g.Env), apps.Validate, apps.ServerTiming, apps.Trust,
		g.Outbound, g.OutboundLimits, apps.CAFile, a.StaticFiles, a.ShareSnapshot)

	// The defaults and the grant.
	a.Sources["entrypoint"] = "default"
	for _, k := range []string{"isolation", "max_requests", "prewarm", "warmup"} {
		a.Sources[k] = "default"
	}
	// serverDefault is the source of a value the server's own key gives every app.
	serverDefault := func(key string) string {
		if s := apps.source(key); s != "default" {
			return "default (" + key + " from " + s + ")"
		}
		return "default"
	}
	for _, k := range []string{"validate", "server_timing", "static_files"} {
		a.Sources[k] = serverDefault(k)
	}
	if g.StaticFiles != nil {
		a.Sources["static_files"] = grant("static_files")
	}
	a.Sources["share_snapshot"] = serverDefault("share_snapshots")
	if g.ShareSnapshot != nil {
		a.Sources["share_snapshot"] = grant("share_snapshot")
	}
	a.Sources["static_cache_control.hashed"], a.Sources["static_cache_control.other"] = "default", "default"
	for _, lk := range limitKeys {
		key := "limits." + lk.name
		if apps.source("apps."+name+"."+key) != "default" {
			a.Sources[key] = grant(key)
		} else {
			a.Sources[key] = serverDefault(key)
		}
	}
	switch {
	case g.Prefix != "":
		a.Sources["prefix"] = grant("prefix")
	case len(g.Hosts) > 0:
		a.Sources["prefix"] = "default (\"/\" with hosts)"
	default:
		a.Sources["prefix"] = "default (the folder's name)"
	}
	a.Sources["hosts"], a.Sources["data_dir"], a.Sources["outbound"] = "default", "default", "default"
	if len(g.Outbound) > 0 {
		a.Sources["outbound"] = grant("outbound")
	}
	for _, k := range []string{"max_open", "max_conns", "max_bytes_in", "max_bytes_out", "connect_timeout"} {
		if s := apps.source("apps." + name + ".outbound_limits." + k); s != "default" {
			a.Sources["outbound_limits."+k] = "grant (" + s + ")"
		} else {
			a.Sources["outbound_limits."+k] = serverDefault("outbound." + k)
		}
	}
	if len(g.Hosts) > 0 {
		a.Sources["hosts"] = grant("hosts")
	}
	if g.DataDir != "" {
		a.Sources["data_dir"] = grant("data_dir")
	}

	// The tenant's file, within the grant.
	t, set, err := readTenantFile(file)
	if err == nil {
		err = apps.applyTenant(&a, g, t, set, file, tenant)
	}
	for k, v := range g.Env {
		a.Env[k] = v
		a.Sources["env."+k] = grant("env." + k)
	}
	if a.Prefix == "" && len(a.Hosts) > 0 {
		a.Prefix = "/"
	}
	if a.Prefix == "" {
		a.Prefix = "/" + name
	}
	if err != nil {
		a.Err = err
		return a
	}
	if a.Entrypoint == "" {
		switch {
		case entry != "":
			a.Entrypoint = entry
			a.Sources["entrypoint"] = "default (" + entry + ".py: application, app, create_app() or make_app())"
		case len(wsgiFiles) == 1:
			a.Entrypoint = wsgiFiles[0]
			a.Sources["entrypoint"] = "default (the only *.wsgi file: application, app, create_app() or make_app())"
		case len(wsgiFiles) > 1:
			a.Err = fmt.Errorf("app %s has several *.wsgi files (%s): set entrypoint in %s",
				name, strings.Join(wsgiFiles, ", "), file)
		case manage:
			settings, err := djangoSettings(dir)
			if err != nil {
				a.Err = fmt.Errorf("app %s has no app.py, wsgi.py or *.wsgi file, and its manage.py does not make "+
					"it a Django project: %w", name, err)
				break
			}
			a.DjangoSettings = settings
			a.Sources["entrypoint"] = "default (a Django project: manage.py sets DJANGO_SETTINGS_MODULE = " +
				strconv.Quote(settings) + "; the app is its WSGI_APPLICATION)"
		default:
			a.Err = fmt.Errorf("app %s has no app.py, wsgi.py, *.wsgi file or Django manage.py: add one, or set "+
				"entrypoint = \"module:callable\" (or \"module:create_app()\") in %s", name, file)
		}
	}
	return a
}

// applyTenant sets what the tenant file t (whose keys are set) changes in a, within
// the grant g: it refuses the operator's keys and limits above g's ceilings unless
// apps.Trust.
func (apps Operator) applyTenant(a *App, g Grant, t TenantFile, set map[string]bool, file, tenant string) error {
	name := a.Name
	origin := FileKeys(file, "")
	where := func(key string) string { return origin(key).Where }
	var errs []error
	for _, ok := range operatorKeys {
		if set[ok.key] && !apps.Trust {
			errs = append(errs, fmt.Errorf("%s: %s is the server operator's to set, not the app's: remove it; %s "+
				"(a server that hosts only its operator's own apps may set trust_app_config = true instead)",
				where(ok.key), ok.key, fmt.Sprintf(ok.grant, name)))
		}
	}
	limits, err := t.Limits.Apply(g.Limits)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", file, err))
	}
	for _, lk := range limitKeys {
		if !lk.set(t.Limits) {
			continue
		}
		key := "limits." + lk.name
		if apps.Trust || err != nil || lk.value(limits) <= lk.value(g.Limits) {
			continue
		}
		ceiling := "limits." + lk.name + ", the server's"
		if apps.source("apps."+name+"."+key) != "default" {
			ceiling = "apps." + name + "." + key
		}
		errs = append(errs, fmt.Errorf("%s: %s = %s is above this app's ceiling of %s (%s): lower it, "+
			"or have the server's operator raise the ceiling with [apps.%s.limits] %s = %s in the server configuration",
			where(key), key, lk.toml(limits), lk.show(g.Limits), ceiling, name, lk.name, lk.toml(limits)))
	}
	if t.ShareSnapshot != nil && *t.ShareSnapshot && !a.ShareSnapshot && !apps.Trust {
		off := "share_snapshots = false, the server's"
		if g.ShareSnapshot != nil {
			off = "apps." + name + ".share_snapshot = false"
		}
		errs = append(errs, fmt.Errorf("%s: share_snapshot = true is more than this app is granted (%s): remove it, "+
			"or have the server's operator grant it with [apps.%s] share_snapshot = true in the server configuration",
			where("share_snapshot"), off, name))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	a.Limits = limits
	for _, lk := range limitKeys {
		if lk.set(t.Limits) {
			a.Sources["limits."+lk.name] = tenant
		}
	}

	if set["entrypoint"] {
		a.Entrypoint, a.Sources["entrypoint"] = t.Entrypoint, tenant
	}
	if t.Validate != nil {
		a.Validate, a.Sources["validate"] = *t.Validate, tenant
	}
	if t.ServerTiming != nil {
		a.ServerTiming, a.Sources["server_timing"] = *t.ServerTiming, tenant
	}
	if t.ShareSnapshot != nil {
		a.ShareSnapshot, a.Sources["share_snapshot"] = *t.ShareSnapshot, tenant
	}
	if set["isolation"] {
		switch runtime.Isolation(t.Isolation) {
		case runtime.IsolationRequest, runtime.IsolationInstance:
			a.Isolation, a.Sources["isolation"] = runtime.Isolation(t.Isolation), tenant
		default:
			return fmt.Errorf("%s: isolation = %q: use \"request\" (memory restored before every request) or \"instance\" (an instance is reused for up to max_requests requests)",
				where("isolation"), t.Isolation)
		}
	}
	if t.MaxRequests != nil {
		if *t.MaxRequests < 1 {
			return fmt.Errorf("%s: max_requests = %d must be at least 1", where("max_requests"), *t.MaxRequests)
		}
		a.MaxRequests, a.Sources["max_requests"] = *t.MaxRequests, tenant
	}
	if t.Prewarm != nil {
		if *t.Prewarm < 0 || *t.Prewarm > 64 {
			return fmt.Errorf("%s: prewarm = %d must be between 0 and 64", where("prewarm"), *t.Prewarm)
		}
		a.Prewarm, a.Sources["prewarm"] = *t.Prewarm, tenant
	}
	if set["warmup"] {
		for i, p := range t.Warmup {
			if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \r\n#") {
				return fmt.Errorf("%s: warmup[%d] = %q is not a path such as \"/\" or \"/page?x=1\"", where("warmup"), i, p)
			}
		}
		a.Warmup, a.Sources["warmup"] = t.Warmup, tenant
		if a.Warmup == nil {
			a.Warmup = []string{} // warmup = []: no automatic warm-up either
		}
	}
	if set["outbound"] {
		rules, err := checkTenantOutbound(t.Outbound, g, name, where("outbound"))
		if apps.Trust {
			rules, err = egress.Parse(t.Outbound)
			if err != nil {
				err = fmt.Errorf("%s: %w", where("outbound"), err)
			}
		}
		if err != nil {
			return err
		}
		a.Outbound, a.Sources["outbound"] = rules, tenant
	}
	if err := apps.applyStatic(a, t, set, where, tenant); err != nil {
		return err
	}
	if err := checkEnv(t.Env); err != nil {
		return fmt.Errorf("%s: [env] %w", file, err)
	}
	for k, v := range t.Env {
		if _, clash := g.Env[k]; !clash {
			a.Env[k] = v
			a.Sources["env."+k] = tenant
		}
	}

	// The operator's keys, which only a trusted tenant file gets here.
	if set["hosts"] {
		a.Hosts = nil
		for i, h := range t.Hosts {
			h = strings.ToLower(strings.TrimSpace(h))
			if h == "" || strings.ContainsAny(h, "/ ") {
				return fmt.Errorf("%s: hosts[%d] = %q is not a host name", where("hosts"), i, t.Hosts[i])
			}
			a.Hosts = append(a.Hosts, h)
		}
		a.Sources["hosts"] = tenant
		if !set["prefix"] && g.Prefix == "" {
			a.Prefix, a.Sources["prefix"] = "/", "default (\"/\" with hosts)"
		}
	}
	if set["prefix"] {
		if err := checkPrefix(t.Prefix); err != nil {
			return fmt.Errorf("%s: prefix %q %v", where("prefix"), t.Prefix, err)
		}
		a.Prefix, a.Sources["prefix"] = t.Prefix, tenant
	}
	if set["data_dir"] && t.DataDir != "" {
		d := t.DataDir
		if !filepath.IsAbs(d) {
			d = filepath.Join(a.Dir, d)
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return fmt.Errorf("%s: data_dir %q: %w", where("data_dir"), t.DataDir, err)
		}
		a.DataDir, a.Sources["data_dir"] = abs, tenant
	}
	return nil
}

// readTenantFile reads an app's wasmwsgi.toml, if there is one, and the keys it sets
// (lower case, dotted).
func readTenantFile(p string) (TenantFile, map[string]bool, error) {
	var t TenantFile
	set := map[string]bool{}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return t, set, nil
	}
	text, err := os.ReadFile(p)
	if err != nil {
		return t, set, fmt.Errorf("%s: %w", p, err)
	}
	raw, err := toml.Parser().Unmarshal(text)
	if err != nil {
		return t, set, fmt.Errorf("%s: %w", p, err)
	}
	staticEntries, hasStatic, err := staticTable(raw, p)
	if err != nil {
		return t, set, err
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(raw, ""), nil); err != nil {
		return t, set, fmt.Errorf("%s: %w", p, err)
	}
	err = Unmarshal(k, "", &t, FileKeys(p, `remove it (the README's "Per-app settings" section lists the settings of wasmwsgi.toml)`))
	if unknown, typed := new(UnknownKeyError), new(TypeError); errors.As(err, &unknown) || errors.As(err, &typed) {
		return t, set, err // names the file already
	}
	if err != nil {
		return t, set, fmt.Errorf("%s: %w", p, err)
	}
	for _, key := range k.Keys() {
		key = strings.ToLower(key)
		set[key] = true
		if top, _, ok := strings.Cut(key, "."); ok {
			set[top] = true
		}
	}
	if hasStatic {
		t.Static, set["static"] = staticEntries, true
	}
	return t, set, nil
}

// checkDataDirs refuses a data folder that is an app folder, lies inside one or holds
// one: app folders are copied into memory and served read-only, so a data folder
// inside one would be loaded as app files, and one around an app would let the app
// rewrite its own code (or another app's).
func checkDataDirs(list []App, apps Operator) {
	for i := range list {
		a := &list[i]
		if a.Err != nil || a.DataDir == "" {
			continue
		}
		data := realPath(a.DataDir)
		for _, b := range list {
			app := realPath(b.Dir)
			if !within(data, app) && !within(app, data) {
				continue
			}
			if strings.HasPrefix(a.Sources["data_dir"], "grant") {
				a.Err = fmt.Errorf("app %s: its data folder %s overlaps the app folder %s: make %s a folder "+
					"of its own outside apps_dir (data_root is %s)", a.Name, a.DataDir, b.Dir, a.DataDir, apps.DataRoot)
			} else {
				a.Err = fmt.Errorf("%s: data_dir %s overlaps the app folder %s: put it outside every app folder (for example ../.data/%s)",
					filepath.Join(a.Dir, AppFile), a.DataDir, b.Dir, a.Name)
			}
			break
		}
	}
}

// assignRoutes gives each app its mount: first the apps whose mount the operator
// granted, then the others, each in name order. An app whose mount another already
// holds is failed and not routed, so a granted mount always wins, whatever the order
// the folders are found or loaded in.
func assignRoutes(list []App) {
	taken := map[string]int{} // host+prefix -> index in list
	for _, grantedPass := range []bool{true, false} {
		for i := range list {
			a := &list[i]
			if routeGranted(*a) != grantedPass {
				continue
			}
			holder, host := -1, ""
			for _, h := range hostsOrAny(a.Hosts) {
				if j, dup := taken[h+a.Prefix]; dup {
					holder, host = j, h
					break
				}
			}
			if holder < 0 {
				for _, h := range hostsOrAny(a.Hosts) {
					taken[h+a.Prefix] = i
				}
				continue
			}
			b := list[holder]
			a.Shadowed = true
			if a.Err != nil {
				continue // already failed for its settings; it is not routed either
			}
			if !grantedPass && routeGranted(b) {
				a.Err = fmt.Errorf("app %s: its mount %s belongs to app %s, which the server configuration mounts "+
					"there: the operator mounts %s elsewhere with [apps.%s] prefix = \"/path\" in the server "+
					"configuration, or renames its folder", a.Name, showRoute(host, a.Prefix), b.Name, a.Name, a.Name)
				continue
			}
			a.Err = fmt.Errorf("app %s: its mount %s is already taken by app %s: give it another prefix",
				a.Name, showRoute(host, a.Prefix), b.Name)
			if strings.HasPrefix(a.Sources["prefix"], "tenant") {
				a.Err = fmt.Errorf("%w in %s", a.Err, filepath.Join(a.Dir, AppFile))
			}
		}
	}
}

// routeGranted reports whether the operator's grant sets a's mount.
func routeGranted(a App) bool {
	return strings.HasPrefix(a.Sources["prefix"], "grant") || strings.HasPrefix(a.Sources["hosts"], "grant")
}

// defaultEntrypoint picks app.py, then wsgi.py; it also returns the *.wsgi files.
func defaultEntrypoint(dir string) (string, []string) {
	wsgiFiles, _ := filepath.Glob(filepath.Join(dir, "*.wsgi"))
	for i, f := range wsgiFiles {
		wsgiFiles[i] = filepath.Base(f)
	}
	for _, f := range []string{"app.py", "wsgi.py"} {
		if regularFile(filepath.Join(dir, f)) {
			return strings.TrimSuffix(f, ".py"), wsgiFiles
		}
	}
	return "", wsgiFiles
}

// regularFile reports whether p is a regular file (a symlink is followed).
func regularFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// sortedEnv returns env as sorted "KEY=value" strings.
func sortedEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// EnvList is the app's environment as the runtime takes it: sorted "KEY=value".
func (a App) EnvList() []string { return sortedEnv(a.Env) }

// Setting is one of an app's effective settings and where its value came from.
type Setting struct {
	Key    string
	Value  any
	Source string
}

// Settings lists the app's effective settings in a fixed order (entrypoint, mount,
// data folder, the tenant's keys, the limits, then the environment by name).
func (a App) Settings() []Setting {
	dataDir := a.DataDir
	s := []Setting{
		{"entrypoint", a.Entrypoint, ""},
		{"prefix", a.Prefix, ""},
		{"hosts", nonNil(a.Hosts), ""},
		{"data_dir", dataDir, ""},
		{"validate", a.Validate, ""},
		{"server_timing", a.ServerTiming, ""},
		{"isolation", string(a.Isolation), ""},
		{"max_requests", a.MaxRequests, ""},
		{"prewarm", a.Prewarm, ""},
		{"warmup", nonNil(a.Warmup), ""},
		{"share_snapshot", a.ShareSnapshot, ""},
		{"static_files", a.StaticFiles, ""},
	}
	for _, r := range a.Static {
		s = append(s, Setting{"static." + strconv.Quote(r.Prefix), r.Target, ""})
	}
	s = append(s, Setting{"static_cache_control.hashed", a.StaticCache.Hashed, ""},
		Setting{"static_cache_control.other", a.StaticCache.Other, ""})
	for _, lk := range limitKeys {
		s = append(s, Setting{"limits." + lk.name, lk.setting(a.Limits), ""})
	}
	outbound := []string{}
	for _, r := range a.Outbound {
		outbound = append(outbound, r.String())
	}
	ol := a.OutboundLimits
	s = append(s, Setting{"outbound", outbound, ""},
		Setting{"outbound_limits.max_open", ol.MaxOpen, ""},
		Setting{"outbound_limits.max_conns", ol.MaxConns, ""},
		Setting{"outbound_limits.max_bytes_in", showBound(ol.MaxBytesIn), ""},
		Setting{"outbound_limits.max_bytes_out", showBound(ol.MaxBytesOut), ""},
		Setting{"outbound_limits.connect_timeout", showDuration(ol.ConnectTimeout), ""})
	names := make([]string, 0, len(a.Env))
	for k := range a.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		s = append(s, Setting{"env." + k, a.Env[k], ""})
	}
	for i := range s {
		s[i].Source = a.Sources[s[i].Key]
		if s[i].Source == "" {
			s[i].Source = "default"
		}
	}
	return s
}

// showBound writes a byte limit where 0 is no bound.
func showBound(n int64) string {
	if n == 0 {
		return "none"
	}
	return showSize(n)
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}
