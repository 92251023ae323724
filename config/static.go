package config

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/wasmwsgi/wasmwsgi/static"
)

// StaticCacheConf is a tenant's [static_cache_control] table: the Cache-Control
// values of the files its [static] table serves.
type StaticCacheConf struct {
	// Hashed is sent with files whose name carries a content hash
	// (style.0123456789ab.css). Default static.DefaultHashed.
	Hashed string `koanf:"hashed"`
	// Other is sent with every other file. Default static.DefaultOther.
	Other string `koanf:"other"`
}

// maxStaticRoutes bounds the entries of a [static] table: each request to the app is
// matched against all of them.
const maxStaticRoutes = 64

// maxCacheControl bounds a Cache-Control value a tenant writes.
const maxCacheControl = 256

// staticTable takes the [static] table out of a tenant file's tree (the parsed TOML),
// before koanf sees it: its keys are URL paths, whose dots koanf would read as nested
// tables. Each value must be text.
func staticTable(raw map[string]any, file string) (map[string]string, bool, error) {
	var key string
	for k := range raw {
		if strings.EqualFold(k, "static") {
			key = k
		}
	}
	if key == "" {
		return nil, false, nil
	}
	v := raw[key]
	delete(raw, key)
	origin := FileKeys(file, "")
	table, ok := v.(map[string]any)
	if !ok {
		return nil, true, fmt.Errorf("%s: static = %v is not a table: write it as [static] with one "+
			"\"/url-path\" = \"folder-or-file\" line per entry, such as \"/static\" = \"static\"",
			origin("static").Where, v)
	}
	out := make(map[string]string, len(table))
	names := make([]string, 0, len(table))
	for k := range table {
		names = append(names, k)
	}
	sort.Strings(names)
	var errs []error
	for _, k := range names {
		s, ok := table[k].(string)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: [static] %s = %v is not text: write the path of a file or folder "+
				"of the app, such as \"static\"", origin("static."+k).Where, strconv.Quote(k), table[k]))
			continue
		}
		out[k] = s
	}
	return out, true, errors.Join(errs...)
}

// checkStatic checks a tenant's [static] entries against the app folder dir and returns
// them as routes, in prefix order: each key a URL path below the app's mount, each
// value a file or folder inside the app folder that exists, is loaded into the app's
// tree and is reached without leaving the folder (os.Root refuses a symbolic link that
// leaves it).
func checkStatic(dir string, entries map[string]string, where func(key string) string) ([]static.Route, error) {
	if len(entries) > maxStaticRoutes {
		return nil, fmt.Errorf("%s: [static] has %d entries, more than %d: serve a folder instead of its files one by one",
			where("static"), len(entries), maxStaticRoutes)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("[static]: app folder %s: %w", dir, err)
	}
	defer root.Close()
	prefixes := make([]string, 0, len(entries))
	for p := range entries {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	var routes []static.Route
	var errs []error
	for _, prefix := range prefixes {
		target := entries[prefix]
		entry := fmt.Sprintf("%s: [static] %s = %s", where("static."+prefix), strconv.Quote(prefix), strconv.Quote(target))
		if why := checkStaticPrefix(prefix); why != "" {
			errs = append(errs, fmt.Errorf("%s: the key %s: write a URL path below the app's mount, such as \"/static\" or \"/favicon.ico\"", entry, why))
			continue
		}
		name, why := staticTarget(target)
		if why != "" {
			errs = append(errs, fmt.Errorf("%s: the value %s", entry, why))
			continue
		}
		info, err := root.Stat(filepath.FromSlash(name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("%s: the value names nothing in the app folder %s: create it, or fix the path (relative to the app folder)", entry, dir))
			continue
		case err != nil && strings.Contains(err.Error(), "escapes"):
			errs = append(errs, fmt.Errorf("%s: the value leaves the app folder through a symbolic link: only files inside the app folder are served", entry))
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %v", entry, err))
			continue
		case !info.IsDir() && !info.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("%s: the value is neither a file nor a folder", entry))
			continue
		}
		routes = append(routes, static.Route{Prefix: prefix, Target: name, Dir: info.IsDir()})
	}
	return routes, errors.Join(errs...)
}

// checkStaticPrefix says what is wrong with a [static] key, or "".
func checkStaticPrefix(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "does not start with /"
	case p == "/":
		return "is the app's whole mount, which would leave nothing to the app"
	case len(p) > 1024:
		return "is longer than 1024 bytes"
	case strings.ContainsAny(p, "\\?#%"):
		return "holds a \\, ?, # or %: write the path as it is decoded, without a query"
	case strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return "holds a control character"
	case path.Clean(p) != p:
		return "is not a clean path (no trailing slash, no //, . or ..)"
	}
	return ""
}

// staticTarget returns a [static] value as a name in the app's tree, or what is wrong
// with it.
func staticTarget(v string) (string, string) {
	switch {
	case v == "":
		return "", "is empty: name a file or folder of the app, such as \"static\""
	case strings.ContainsAny(v, "\\\x00"):
		return "", "holds a backslash or a NUL byte: write a path with / between its parts"
	case strings.HasPrefix(v, "/") || filepath.IsAbs(v):
		return "", "is an absolute path: write a path relative to the app folder, such as \"static\" (only the app's own files are served)"
	}
	name := path.Clean(v)
	switch {
	case name == "." || name == "..":
		return "", "names the app folder itself, whose code and settings are not static files: put them in a folder of their own, such as \"static\""
	case !filepath.IsLocal(filepath.FromSlash(name)):
		return "", "points outside the app folder: only files inside the app folder are served"
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") || part == "__pycache__" {
			return "", fmt.Sprintf("goes through %s, which is not loaded with the app (folders starting with \".\" and __pycache__): move the files elsewhere", part)
		}
	}
	return name, ""
}

// checkCacheControl says what is wrong with a Cache-Control value a tenant wrote, or "".
func checkCacheControl(v string) string {
	switch {
	case strings.TrimSpace(v) == "":
		return "is empty: leave the key out for the default"
	case len(v) > maxCacheControl:
		return fmt.Sprintf("is longer than %d bytes", maxCacheControl)
	case strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		return "holds a character a header may not carry (control characters, non-ASCII)"
	}
	return ""
}

// applyStatic sets a's static routes and their Cache-Control from the tenant file t,
// when the operator lets the app serve static files; otherwise the table is not
// looked at and every path goes to the app.
func (apps Operator) applyStatic(a *App, t TenantFile, set map[string]bool, where func(string) string, tenant string) error {
	if !a.StaticFiles {
		if set["static"] {
			a.Sources["static"] = "off: static_files is false (" + a.Sources["static_files"] + ")"
		}
		return nil
	}
	var errs []error
	if set["static"] {
		routes, err := checkStatic(a.Dir, t.Static, where)
		if err != nil {
			errs = append(errs, err)
		}
		a.Static = routes
		for _, r := range routes {
			a.Sources["static."+strconv.Quote(r.Prefix)] = tenant
		}
	}
	for _, c := range []struct {
		key   string
		value string
		set   *string
	}{
		{"hashed", t.StaticCacheControl.Hashed, &a.StaticCache.Hashed},
		{"other", t.StaticCacheControl.Other, &a.StaticCache.Other},
	} {
		key := "static_cache_control." + c.key
		if !set[key] {
			continue
		}
		if why := checkCacheControl(c.value); why != "" {
			errs = append(errs, fmt.Errorf("%s: %s = %s %s", where(key), key, strconv.Quote(c.value), why))
			continue
		}
		*c.set, a.Sources[key] = c.value, tenant
	}
	return errors.Join(errs...)
}
