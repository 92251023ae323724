package config

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/wasmwsgi/wasmwsgi/egress"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// GrantConf is one [apps.NAME] table of the server configuration as written: what the
// operator grants the app whose folder is named NAME.
type GrantConf struct {
	// Hosts are the virtual hosts (Host header, port ignored) the app answers.
	Hosts []string `koanf:"hosts"`
	// Prefix is the URL path the app is mounted at: default "/NAME", or "/" with hosts.
	Prefix string `koanf:"prefix"`
	// DataDir grants the app the folder <data_root>/NAME, read-write at /data.
	DataDir bool `koanf:"data_dir"`
	// Limits are the app's ceilings; a key not set here is the server's [limits].
	Limits Limits `koanf:"limits"`
	// Env are variables the app sees, such as its secrets; on a clash with the app's
	// own [env] they win.
	Env map[string]string `koanf:"env"`
	// Outbound are the destinations the app may connect to, `scheme://host[:port]`
	// entries (package egress). Default none.
	Outbound []string `koanf:"outbound"`
	// OutboundLimits are the app's own outbound limits; a key not set is the server's
	// [outbound].
	OutboundLimits OutboundLimitsConf `koanf:"outbound_limits"`
	// StaticFiles, when set, turns the host's serving of the app's [static] table on
	// or off for this app, over the server's static_files.
	StaticFiles *bool `koanf:"static_files"`
	// ShareSnapshot, when set, lets this app's snapshot share pages with byte-identical
	// copies of it, or not, over the server's share_snapshots.
	ShareSnapshot *bool `koanf:"share_snapshot"`
}

// Grant is what the operator grants one app, checked.
type Grant struct {
	// Hosts are the app's virtual hosts, lower case; nil when not granted.
	Hosts []string
	// Prefix is the app's mount path; "" when not granted.
	Prefix string
	// DataDir is the app's data folder, <data_root>/NAME; "" when not granted.
	DataDir string
	// Limits are the app's ceilings: the server's [limits] with the grant's over them.
	Limits runtime.Limits
	// Env are the operator's variables for the app.
	Env map[string]string
	// Outbound are the destinations the app may connect to; nil when none.
	Outbound []egress.Rule
	// OutboundLimits bound each request's outbound connections.
	OutboundLimits egress.Limits
	// StaticFiles is the grant's static_files, or nil to follow the server's.
	StaticFiles *bool
	// ShareSnapshot is the grant's share_snapshot, or nil to follow the server's.
	ShareSnapshot *bool
}

// routed reports whether the grant sets the app's mount.
func (g Grant) routed() bool { return g.Prefix != "" || len(g.Hosts) > 0 }

// checkGrants checks the [apps.NAME] tables and fills c.Grants.
func (c *Config) checkGrants() error {
	c.Grants = map[string]Grant{}
	var errs []error
	names := make([]string, 0, len(c.Apps))
	for name := range c.Apps {
		names = append(names, name)
	}
	sort.Strings(names)
	routes := map[string]string{} // host+prefix -> the app granted it
	for _, name := range names {
		gc := c.Apps[name]
		key := func(k string) string { return "apps." + name + "." + k }
		fail := func(k, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s%s"+format, append([]any{c.where(key(k)), key(k)}, args...)...))
		}
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || strings.ContainsAny(name, `/\`) {
			errs = append(errs, fmt.Errorf("%sapps.%s: no app folder has that name (folders whose name starts "+
				"with \".\" or \"_\" are not apps): use the name of the app's folder", c.where("apps."+name), name))
			continue
		}
		g := Grant{Prefix: gc.Prefix, Env: gc.Env, StaticFiles: gc.StaticFiles, ShareSnapshot: gc.ShareSnapshot}
		for i, h := range gc.Hosts {
			h = strings.ToLower(strings.TrimSpace(h))
			if h == "" || strings.ContainsAny(h, "/ ") {
				fail("hosts", "[%d] = %q is not a host name", i, gc.Hosts[i])
				continue
			}
			g.Hosts = append(g.Hosts, h)
		}
		if gc.Prefix != "" {
			if err := checkPrefix(gc.Prefix); err != nil {
				fail("prefix", " = %q %v", gc.Prefix, err)
			}
		}
		if gc.DataDir {
			if c.DataRoot == "" {
				fail("data_dir", " = true needs data_root: set data_root to a folder outside apps_dir "+
					"(for example data_root = \"/var/lib/wasmwsgi\"), where the app's data folder is made")
			} else {
				g.DataDir = filepath.Join(c.DataRoot, name)
			}
		}
		limits, err := gc.Limits.Apply(c.AppLimits)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				errs = append(errs, fmt.Errorf("%sapps.%s.%s", c.where(key("limits")), name, line))
			}
		}
		g.Limits = limits
		if err := checkEnv(gc.Env); err != nil {
			fail("env", ": %v", err)
		}
		rules, err := egress.Parse(gc.Outbound)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				fail("outbound", ": %s", line)
			}
		}
		g.Outbound = rules
		g.OutboundLimits, err = gc.OutboundLimits.apply(c.OutboundLimits, "apps."+name+".outbound_limits")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s%v", c.where(key("outbound_limits")), err))
		}
		if g.routed() {
			for _, h := range hostsOrAny(g.Hosts) {
				r := h + routePrefix(g, name)
				if other, dup := routes[r]; dup {
					errs = append(errs, fmt.Errorf("%sapps.%s and apps.%s both mount their app at %s: give one "+
						"another prefix or other hosts", c.where(key("prefix")), other, name, showRoute(h, routePrefix(g, name))))
				}
				routes[r] = name
			}
		}
		c.Grants[name] = g
	}
	return errors.Join(errs...)
}

// Operator is the operator's part of every app's settings: what Discover needs to read
// the apps folder and check each tenant file.
type Operator struct {
	// Dir is the apps folder.
	Dir string
	// Limits are the server's [limits]: the ceilings of an app with no grant of its own.
	Limits runtime.Limits
	// Validate and ServerTiming are the defaults of the apps' own settings.
	Validate, ServerTiming bool
	// StaticFiles is static_files: whether apps' [static] tables are served by the
	// host, unless a grant says otherwise.
	StaticFiles bool
	// ShareSnapshots is share_snapshots: whether apps' snapshots share pages with
	// byte-identical copies, unless a grant says otherwise.
	ShareSnapshots bool
	// DataRoot is the absolute data_root, or "".
	DataRoot string
	// Trust is trust_app_config: tenant files may then set everything.
	Trust bool
	// Grants are the operator's grants by app folder name.
	Grants map[string]Grant
	// OutboundLimits are the server's [outbound] limits: an app's unless its grant
	// sets its own. CAFile is outbound.ca_file.
	OutboundLimits egress.Limits
	CAFile         string
	// Source tells where an operator key got its value; nil says "default" for all.
	Source func(key string) string
}

// Operator returns the part of c that Discover needs.
func (c *Config) Operator() Operator {
	return Operator{
		Dir: c.AppsDir, Limits: c.AppLimits, Validate: c.Validate, ServerTiming: c.ServerTiming, StaticFiles: c.StaticFiles,
		DataRoot: c.DataRoot, Trust: c.TrustAppConfig, Grants: c.Grants, Source: c.Source,
		OutboundLimits: c.OutboundLimits, CAFile: c.Outbound.CAFile, ShareSnapshots: c.ShareSnapshots,
	}
}

// grant is the grant of the app named name: with no [apps.NAME] table, the server's
// limits as its ceilings and nothing else.
func (a Operator) grant(name string) Grant {
	if g, ok := a.Grants[name]; ok {
		return g
	}
	return Grant{Limits: a.Limits, OutboundLimits: a.outboundLimits()}
}

// outboundLimits are the server's outbound limits, with their defaults.
func (a Operator) outboundLimits() egress.Limits {
	if a.OutboundLimits == (egress.Limits{}) {
		return defaultOutboundLimits
	}
	return a.OutboundLimits
}

// source is where the operator key got its value.
func (a Operator) source(key string) string {
	if a.Source == nil {
		return "default"
	}
	return a.Source(key)
}

// checkPrefix checks a mount path.
func checkPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return errors.New(`must be a clean absolute path like "/shop" (no trailing slash)`)
	}
	if strings.HasPrefix(p, "/_wasmwsgi") {
		return errors.New("is reserved for the server's own endpoints")
	}
	return nil
}

// checkEnv checks the names and values of an [env] table.
func checkEnv(env map[string]string) error {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("name %q must be non-empty and contain no '=' or NUL", k)
		}
		if strings.ContainsRune(env[k], 0) {
			return fmt.Errorf("%s contains a NUL byte", k)
		}
	}
	return nil
}

// routePrefix is the prefix of an app whose grant sets its route.
func routePrefix(g Grant, name string) string {
	switch {
	case g.Prefix != "":
		return g.Prefix
	case len(g.Hosts) > 0:
		return "/"
	}
	return "/" + name
}

// hostsOrAny returns hosts, or the one "any host" entry ("") when there are none.
func hostsOrAny(hosts []string) []string {
	if len(hosts) == 0 {
		return []string{""}
	}
	return hosts
}

// showRoute writes a mount for a message: "/shop", or "shop.example.com/shop".
func showRoute(host, prefix string) string {
	if host == "" {
		return prefix
	}
	return host + prefix
}
