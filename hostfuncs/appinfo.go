package hostfuncs

import "strings"

// AppInfo is what app_info tells the guest about its app. Encode gives the pairs the
// guest reads; the package doc lists each key.
type AppInfo struct {
	// Name is the app's name ("name", left out when empty). Only a command line
	// (Run) is told it: an import's memory holds nothing that names the app, so that
	// identical copies of it can share their snapshots.
	Name string
	// Entrypoint names the app's callable ("entrypoint"): "module", "module:callable",
	// "module:factory(literals)" or "file.wsgi[:callable]", relative to AppDir.
	Entrypoint string
	// DjangoSettings is the settings module of a Django project folder, read from its
	// manage.py ("django_settings", left out when empty); with no Entrypoint the guest
	// loads the project's WSGI_APPLICATION, as manage.py runserver does.
	DjangoSettings string
	// AppDir is the guest path of the app folder, first on sys.path ("app_dir").
	AppDir string
	// SitePackages is a guest path put second on sys.path ("site_packages", left out
	// when empty).
	SitePackages string
	// Validate wraps the app in wsgiref.validate ("validate" = "1", left out when false).
	Validate bool
	// Isolation is "request" or "instance" ("isolation", left out when empty): the
	// guest's wsgi.run_once is False only in instance isolation.
	Isolation string
	// Run makes the guest run a Python command line instead of importing the app
	// (wasmwsgi run): Argv are python's arguments after the interpreter's name ("argv",
	// each argument followed by a NUL byte; left out when Run is false, empty for an
	// interactive prompt).
	Run  bool
	Argv []string
	// Main makes the guest set up the sandbox without importing the app, for
	// wasmwsgi_main, which runs WASI's command line as python's own main does: a child
	// process ("main" = "1", left out when false).
	Main bool
	// Cwd is the working folder a child process starts in ("cwd", left out when empty:
	// the app folder).
	Cwd string
}

// Encode returns the pairs encoding of the AppInfo, in the order of its fields.
func (i AppInfo) Encode() []byte {
	var ps []Pair
	if i.Name != "" {
		ps = append(ps, Pair{Name: "name", Value: i.Name})
	}
	ps = append(ps, Pair{Name: "entrypoint", Value: i.Entrypoint})
	if i.DjangoSettings != "" {
		ps = append(ps, Pair{Name: "django_settings", Value: i.DjangoSettings})
	}
	ps = append(ps, Pair{Name: "app_dir", Value: i.AppDir})
	if i.SitePackages != "" {
		ps = append(ps, Pair{Name: "site_packages", Value: i.SitePackages})
	}
	if i.Validate {
		ps = append(ps, Pair{Name: "validate", Value: "1"})
	}
	if i.Isolation != "" {
		ps = append(ps, Pair{Name: "isolation", Value: i.Isolation})
	}
	if i.Run {
		var argv strings.Builder
		for _, a := range i.Argv {
			argv.WriteString(a)
			argv.WriteByte(0)
		}
		ps = append(ps, Pair{Name: "argv", Value: argv.String()})
	}
	if i.Main {
		ps = append(ps, Pair{Name: "main", Value: "1"})
	}
	if i.Cwd != "" {
		ps = append(ps, Pair{Name: "cwd", Value: i.Cwd})
	}
	return AppendPairs(nil, ps)
}
