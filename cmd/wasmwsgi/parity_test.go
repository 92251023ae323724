package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestGunicornParity sends the same requests to each framework example served by
// wasmwsgi and by Debian's gunicorn (2 sync workers, the same vendored packages, the
// same SCRIPT_NAME) and requires the same status, body and headers, except those that
// belong to the server (Date, Server, Connection, Transfer-Encoding) and the per-second
// signature inside a signed cookie.
func TestGunicornParity(t *testing.T) {
	gunicorn, err := exec.LookPath("gunicorn")
	if err != nil {
		t.Skip("gunicorn is not installed (apt-get install gunicorn; .ci/run installs it)")
	}
	appsDir, grants := testkit.BundledApps(t, "")
	for _, name := range frameworkApps {
		if _, err := os.Stat(filepath.Join(appsDir, name, "site-packages")); err != nil {
			t.Skip("apps/*/site-packages are missing: run `make vendor-apps`")
		}
	}
	s := testkit.Start(t, appsDir, append(grants, "--timeout", "60s")...)

	type req struct{ method, path, contentType, body string }
	notes := []req{
		{"GET", "/", "", ""},
		{"GET", "/notes", "", ""},
		{"GET", "/notes/1", "", ""},
		{"GET", "/notes/999", "", ""},
		{"POST", "/notes", "application/json", `{"text": "bad"`},
		{"POST", "/notes", "application/json", `{"text": ""}`},
		{"POST", "/notes", "application/x-www-form-urlencoded", "text=x"},
		// Last: gunicorn's worker keeps the created note, wasmwsgi's next request would not.
		{"POST", "/notes", "application/json", `{"text": "from the parity test", "tags": ["a"]}`},
	}
	requests := map[string][]req{
		"flask": {
			// Not "/" or "/api/info": they show sys.platform, which is "wasi" here.
			{"GET", "/hello?name=parity", "", ""},
			{"POST", "/hello", "application/x-www-form-urlencoded", "name=%3Cb%3Eparity%3C%2Fb%3E"},
			{"GET", "/old-home", "", ""},
			{"GET", "/visits", "", ""},
			{"GET", "/no-such-page", "", ""},
		},
		"bottle": notes, "falcon": notes, "pyramid": notes,
	}
	client := &http.Client{
		Timeout:       90 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// fetch returns the status, headers and body, with the server's own address in
	// absolute URLs replaced by BASE.
	fetch := func(t *testing.T, base string, r req) (int, http.Header, string) {
		t.Helper()
		hr, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.contentType != "" {
			hr.Header.Set("Content-Type", r.contentType)
		}
		resp, err := client.Do(hr)
		if err != nil {
			t.Fatalf("%s %s%s: %v", r.method, base, r.path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		origin := base[:strings.Index(base[len("http://"):], "/")+len("http://")]
		if loc := resp.Header.Get("Location"); loc != "" {
			resp.Header.Set("Location", strings.Replace(loc, origin, "BASE", 1))
		}
		return resp.StatusCode, resp.Header, strings.ReplaceAll(string(body), origin, "BASE")
	}
	signature := regexp.MustCompile(`=([^;]*)`)

	compare := func(t *testing.T, name, wbase, gbase string, reqs []req) {
		for _, r := range reqs {
			ws, wh, wb := fetch(t, wbase+"/"+name, r)
			gs, gh, gb := fetch(t, gbase+"/"+name, r)
			what := r.method + " " + r.path
			if ws != gs || wb != gb {
				// From a little before the first byte that differs.
				i := 0
				for i < len(wb) && i < len(gb) && wb[i] == gb[i] {
					i++
				}
				from := max(0, i-80)
				t.Errorf("%s: wasmwsgi %d, gunicorn %d, bodies differ at byte %d:\nwasmwsgi %.300q\ngunicorn %.300q",
					what, ws, gs, i, wb[from:], gb[from:])
			}
			for _, h := range []string{"Content-Type", "Content-Length", "Location", "Allow", "Vary", "Cache-Control"} {
				if wh.Get(h) != gh.Get(h) {
					t.Errorf("%s: header %s: wasmwsgi %q, gunicorn %q", what, h, wh.Get(h), gh.Get(h))
				}
			}
			wc := signature.ReplaceAllString(strings.Join(wh.Values("Set-Cookie"), "\n"), "=<value>")
			gc := signature.ReplaceAllString(strings.Join(gh.Values("Set-Cookie"), "\n"), "=<value>")
			if wc != gc {
				t.Errorf("%s: Set-Cookie: wasmwsgi %q, gunicorn %q", what, wc, gc)
			}
		}
	}
	for _, name := range frameworkApps {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(appsDir, name)
			gbase := startGunicorn(t, gunicorn, dir, "/"+name, gunicornCallable(dir))
			compare(t, name, s.Base, gbase, requests[name])
		})
	}

	t.Run("django", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(appsDir, "django", "site-packages", "django")); err != nil {
			t.Skip("apps/django/site-packages is missing: run `make vendor-apps`")
		}
		// Both servers start from an empty database of their own.
		tmp := t.TempDir()
		apps := filepath.Join(tmp, "apps")
		copyDjangoTree(t, filepath.Join(appsDir, "django"), filepath.Join(apps, "django"))
		toml, err := os.ReadFile(filepath.Join(appsDir, "django", "wasmwsgi.toml"))
		if err != nil {
			t.Fatal(err)
		}
		testkit.WriteFile(t, filepath.Join(apps, "django", "wasmwsgi.toml"), string(toml))
		gdata := filepath.Join(tmp, "gdata")
		if err := os.MkdirAll(gdata, 0o700); err != nil {
			t.Fatal(err)
		}
		// The checked-in grants, with a data_root of this test's own.
		_, grants := testkit.BundledApps(t, "")
		testkit.MigrateDjango(t, apps, grants...)
		migrate := exec.Command("python3", "manage.py", "migrate")
		migrate.Dir = filepath.Join(apps, "django")
		migrate.Env = append(os.Environ(), "DJANGO_DATABASE="+filepath.Join(gdata, "db.sqlite3"), "PYTHONDONTWRITEBYTECODE=1")
		if out, err := migrate.CombinedOutput(); err != nil {
			t.Fatalf("manage.py migrate for gunicorn: %v\n%s", err, out)
		}
		ws := testkit.Start(t, apps, append(grants, "--timeout", "120s")...)
		gbase := startGunicorn(t, gunicorn, filepath.Join(apps, "django"), "/django", "mysite.wsgi:application",
			"DJANGO_SETTINGS_MODULE=mysite.settings", "DJANGO_DATABASE="+filepath.Join(gdata, "db.sqlite3"))
		// Not "/": the list page shows sys.platform, which is "wasi" here. TIME_ZONE is
		// Europe/Paris: under gunicorn pytz reads the host's /usr/share/zoneinfo, in the
		// sandbox the guest's, and /time/ and the async view show fixed instants in it.
		// Django also puts TIME_ZONE in TZ and calls time.tzset(): /time/ shows the
		// instants as naive local times too (datetime.fromtimestamp, and time.strftime
		// of time.localtime), which come from the C library's zone on each side.
		compare(t, "django", ws.Base, gbase, []req{
			{"GET", "/notes.json", "", ""},
			{"GET", "/time/", "", ""},
			{"GET", "/stats.json?q=caf%C3%A9", "", ""}, // the async view
			{"GET", "/notes/999/", "", ""},
			{"GET", "/no-such-page/", "", ""},
		})
	})
}

// gunicornCallable names the WSGI callable of app.py the way wasmwsgi finds it.
func gunicornCallable(dir string) string {
	if src, _ := os.ReadFile(filepath.Join(dir, "app.py")); strings.Contains(string(src), "\napplication =") {
		return "app:application"
	}
	return "app:app"
}

var gunicornListening = regexp.MustCompile(`Listening at: (http://\S+)`)

// startGunicorn serves the app in dir with gunicorn on a free loopback port and returns
// its base URL. The app's site-packages come first on sys.path, as in wasmwsgi.
func startGunicorn(t *testing.T, gunicorn, dir, scriptName, callable string, env ...string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	// --preload imports the app once, before the workers fork, as wasmwsgi imports it
	// once for its snapshot.
	cmd := exec.Command(gunicorn, "--bind", "127.0.0.1:0", "--workers", "2", "--preload", "--chdir", abs, callable)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(abs, "site-packages"), "SCRIPT_NAME="+scriptName,
		"PYTHONDONTWRITEBYTECODE=1")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := make(chan string, 1)
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if m := gunicornListening.FindStringSubmatch(sc.Text()); m != nil {
				base <- m[1]
			}
		}
	}()
	select {
	case b := <-base:
		// gunicorn logs the address before its workers have imported the app.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := http.Get(b + scriptName + "/"); err == nil {
				resp.Body.Close()
				return b
			}
			time.Sleep(100 * time.Millisecond)
		}
		return b
	case <-time.After(30 * time.Second):
		t.Fatalf("gunicorn did not start:\n%s", log.String())
		return ""
	}
}
