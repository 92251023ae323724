package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris where the host has no tz database

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestDataDir serves a plain-sqlite3 app (testdata/datadir-apps/notes) whose data
// folder the operator grants under a temporary data_root: concurrent writers lose
// nothing, and the folder is made when the app starts, private and confined.
func TestDataDir(t *testing.T) {
	tmp := t.TempDir()
	apps := filepath.Join(tmp, "apps")
	data := filepath.Join(tmp, "data") // data_root
	copyDjangoTree(t, "testdata/datadir-apps/notes", filepath.Join(apps, "notes"))
	// The same app under a short time limit, with a data folder of its own.
	copyDjangoTree(t, "testdata/datadir-apps/notes", filepath.Join(apps, "stuck"))
	conf := filepath.Join(tmp, "server.toml")
	testkit.WriteFile(t, conf, fmt.Sprintf(`data_root = %q

[apps.notes]
data_dir = true
[apps.notes.limits]
timeout = "120s"
queue_timeout = "120s"
concurrency = 6

[apps.stuck]
data_dir = true
[apps.stuck.limits]
timeout = "3s"
`, data))
	// A symlink the host left in the app's data folder, pointing out of it.
	notes, stuck := filepath.Join(data, "notes"), filepath.Join(data, "stuck")
	if err := os.MkdirAll(notes, 0o700); err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(tmp, "secret"), "host secret\n")
	if err := os.Symlink(filepath.Join(tmp, "secret"), filepath.Join(notes, "outside-link")); err != nil {
		t.Fatal(err)
	}

	s := testkit.Start(t, apps, "--config", conf)
	base := s.Base + "/notes"
	client := &http.Client{Timeout: 180 * time.Second}
	getJSON := func(t *testing.T, path string) map[string]any {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET %s: %q: %v", path, body, err)
		}
		return m
	}

	t.Run("one folder per app under data_root", func(t *testing.T) {
		entries, err := os.ReadDir(data)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if strings.Join(names, " ") != "notes stuck" {
			t.Errorf("data_root holds %v, want the folders of notes and stuck", names)
		}
		if st, err := os.Stat(stuck); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("the data folder the server made: %v, %v", st, err)
		}
	})

	t.Run("concurrent writers lose nothing", func(t *testing.T) {
		const requests, rowsEach = 24, 25
		var wg sync.WaitGroup
		errs := make(chan string, requests)
		for i := 0; i < requests; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(fmt.Sprintf("%s/insert?rows=%d&tag=r%d", base, rowsEach, i))
				if err != nil {
					errs <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Sprintf("request %d: %d %s", i, resp.StatusCode, body)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		m := getJSON(t, "/count")
		if m["rows"] != float64(requests*rowsEach) || m["counter"] != float64(requests) || m["tags"] != float64(requests) {
			t.Errorf("after %d requests of %d rows: %v", requests, rowsEach, m)
		}
		if m["integrity"] != "ok" {
			t.Errorf("integrity_check: %v", m["integrity"])
		}
	})

	t.Run("a request stopped mid-transaction is rolled back", func(t *testing.T) {
		stuckJSON := func(t *testing.T) map[string]any {
			t.Helper()
			r := get(t, s.Base+"/stuck/count")
			var m map[string]any
			if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &m) != nil {
				t.Fatalf("GET /stuck/count: %d %q", r.status, r.body)
			}
			return m
		}
		before := stuckJSON(t)
		r, err := client.Get(s.Base + "/stuck/stuck")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("stuck request: %d, want 504", r.StatusCode)
		}
		if _, err := os.Stat(filepath.Join(stuck, "notes.sqlite3-journal")); err != nil {
			t.Errorf("no hot journal after the stopped transaction: %v", err)
		}
		after := stuckJSON(t)
		if after["rows"] != before["rows"] || after["integrity"] != "ok" {
			t.Errorf("before %v, after %v", before, after)
		}
		if _, err := os.Stat(filepath.Join(stuck, "notes.sqlite3-journal")); err == nil {
			t.Error("the journal is still there after the next request")
		}
	})

	t.Run("journal modes", func(t *testing.T) {
		// No shared memory in WASI: WAL is refused and the rollback journal stays.
		m := getJSON(t, "/journal")
		if m["wal"] != "delete" || m["truncate"] != "truncate" || m["delete"] != "delete" {
			t.Errorf("journal modes: %v", m)
		}
	})

	t.Run("confinement", func(t *testing.T) {
		m := getJSON(t, "/probe")
		ok := func(key string) {
			if v, _ := m[key].(string); !strings.HasPrefix(v, "ok") {
				t.Errorf("%s: %v, want ok", key, m[key])
			}
		}
		refused := func(key string, errs ...string) {
			v, _ := m[key].(string)
			for _, e := range errs {
				if strings.HasPrefix(v, e+":") {
					return
				}
			}
			t.Errorf("%s: %v, want one of %v", key, m[key], errs)
		}
		ok("write_data")
		ok("read_data")
		ok("mkdir_data")
		ok("listdir_data")
		// ".." past the mount is refused before the host's folder is asked (and would
		// stop at the mount there).
		refused("dotdot_read", "PermissionError", "FileNotFoundError")
		refused("dotdot_write", "PermissionError")
		refused("symlink", "PermissionError")
		refused("hardlink", "PermissionError")
		refused("write_app", "OSError", "PermissionError", "FileNotFoundError")
		refused("write_root", "OSError", "PermissionError", "FileNotFoundError")
		refused("host_link_out", "PermissionError")
		// WASI has no chmod: wasi-libc's answers success and changes nothing (checked
		// below on the host).
		if _, err := os.Stat(filepath.Join(data, "escaped.txt")); err == nil {
			t.Error("a file was written next to the data folder")
		}
		if b, _ := os.ReadFile(filepath.Join(tmp, "secret")); string(b) != "host secret\n" {
			t.Errorf("the secret outside changed: %q", b)
		}
		if st, _ := os.Stat(notes); st.Mode().Perm() != 0o700 {
			t.Errorf("the data folder's mode is %v", st.Mode().Perm())
		}
		if _, err := os.Lstat(filepath.Join(notes, "link")); err == nil {
			t.Error("the guest made a symlink")
		}
	})

	t.Run("second process refused", func(t *testing.T) {
		other := testkit.Start(t, apps, "--config", conf)
		if st := readyStates(t, other.Base)["notes"]; st.State != "failed" || !strings.Contains(st.Error, "in use by another process") {
			t.Errorf("a second server uses the same data_dir: %+v", st)
		}
	})
}

// TestDjango serves apps/django (Django from Debian, vendored by `make vendor-apps`)
// from a copy, under the checked-in operator configuration (server.toml) with more
// time to spare on a busy machine, so its data folder is in a temporary data_root.
func TestDjango(t *testing.T) {
	if st, err := os.Stat("../../apps/django/site-packages/django"); err != nil || !st.IsDir() {
		t.Skip("apps/django/site-packages is missing: run `make vendor-apps` to vendor Django from Debian")
	}
	tmp := t.TempDir()
	apps := filepath.Join(tmp, "apps")
	copyDjangoTree(t, "../../apps/django", filepath.Join(apps, "django"))
	toml, err := os.ReadFile("../../apps/django/wasmwsgi.toml")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(apps, "django", "wasmwsgi.toml"), string(toml))
	// server.toml with the django grant's time limit raised, and data_root relative to
	// the copy: tmp/.data.
	server, err := os.ReadFile("../../server.toml")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(server), "\ntimeout = \"60s\"\n", "\ntimeout = \"120s\"\nqueue_timeout = \"120s\"\n", 1)
	if conf == string(server) {
		t.Fatal(`server.toml no longer grants django timeout = "60s"`)
	}
	testkit.WriteFile(t, filepath.Join(tmp, "server.toml"), conf)
	data := filepath.Join(tmp, ".data", "django")
	grants := []string{"--config", filepath.Join(tmp, "server.toml")}

	var notes int // rows expected in the database
	t.Run("serve", func(t *testing.T) {
		if out := testkit.MigrateDjango(t, apps, grants...); !strings.Contains(out, "Applying notes.0001_initial... OK") {
			t.Errorf("manage.py migrate did not create the table:\n%s", out)
		}
		s := testkit.Start(t, apps, append(grants, "--validate")...)
		t.Cleanup(func() {
			if log := s.Log(); strings.Contains(log, "WSGIWarning") || strings.Contains(log, "AssertionError") {
				t.Errorf("wsgiref.validate complained about the Django app")
			}
		})
		c := newDjangoClient(t, s.Base+"/django")

		t.Run("list page", func(t *testing.T) {
			r := c.do(t, "GET", "/", nil)
			c.expect(t, r, http.StatusOK, "text/html; charset=utf-8",
				"<title>Notes · Django on wasmwsgi</title>", "<h1>Notes</h1>", "0 notes", "on wasi",
				`<link rel="stylesheet" href="/django/static/notes/style.`, // SCRIPT_NAME in STATIC_URL
				`<form method="post" action="/django/">`, `name="csrfmiddlewaretoken"`, "No notes yet.")
		})

		t.Run("static file", func(t *testing.T) {
			// {% static %} names the copy collectstatic made under a content-hashed
			// name, which the server answers from [static] with a long Cache-Control.
			page := c.do(t, "GET", "/", nil).body
			m := regexp.MustCompile(`href="/django(/static/notes/style\.[0-9a-f]{12}\.css)"`).FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("the list page links no hashed stylesheet:\n%s", page)
			}
			r := c.do(t, "GET", m[1], nil)
			c.expect(t, r, http.StatusOK, "text/css; charset=utf-8", "the Django example's only stylesheet")
			if r.header.Get("Cache-Control") != "public, max-age=31536000, immutable" || r.header.Get("Etag") == "" {
				t.Errorf("caching headers of a hashed name: %v", r.header)
			}
			r = c.do(t, "GET", "/static/notes/style.css", nil)
			c.expect(t, r, http.StatusOK, "text/css; charset=utf-8", "the Django example's only stylesheet")
			if r.header.Get("Cache-Control") != "public, max-age=60" {
				t.Errorf("caching headers of the plain name: %v", r.header)
			}
			c.expect(t, c.do(t, "GET", "/static/notes/nope.css", nil), http.StatusNotFound, "", "Not Found")
		})

		t.Run("404 page", func(t *testing.T) {
			r := c.do(t, "GET", "/no/such/page", nil)
			c.expect(t, r, http.StatusNotFound, "text/html; charset=utf-8",
				"<h1>Not found</h1>", "<code>/django/no/such/page</code>")
			c.expect(t, c.do(t, "GET", "/notes/999/", nil), http.StatusNotFound, "", "<h1>Not found</h1>")
		})

		t.Run("POST creates a row a later request lists", func(t *testing.T) {
			r := c.post(t, url.Values{"author": {"ada"}, "text": {"first <note> from the test"}})
			if r.status != http.StatusFound || !regexp.MustCompile(`^/django/notes/\d+/$`).MatchString(r.header.Get("Location")) {
				t.Fatalf("POST: %d Location %q %s", r.status, r.header.Get("Location"), r.body)
			}
			notes++
			loc := strings.TrimPrefix(r.header.Get("Location"), "/django")
			c.expect(t, c.do(t, "GET", loc, nil), http.StatusOK, "", "first &lt;note&gt; from the test", "ada")
			c.expect(t, c.do(t, "GET", "/", nil), http.StatusOK, "", "1 note ", "first &lt;note&gt; from the test")
			if n := c.count(t); n != notes {
				t.Errorf("notes.json counts %d, want %d", n, notes)
			}
		})

		t.Run("async view", func(t *testing.T) {
			// Run by Django under WSGI through asgiref's async_to_sync, the ORM through
			// sync_to_async: one event loop and no thread in the sandbox.
			r := c.do(t, "GET", "/stats.json?q=x", nil)
			c.expect(t, r, http.StatusOK, "application/json", fmt.Sprintf(`{"count": %d, "authors": ["ada"], `, notes),
				`"squares": [0, 1, 4, 9, 16], "wait_for": "in time", "q": "x", "time_zone": "Europe/Paris", `+
					`"dst": ["2024-03-31T01:30:00+01:00", "2024-03-31T03:30:00+02:00", `+
					`"2024-10-27T02:30:00+02:00", "2024-10-27T02:30:00+01:00"]}`)
		})

		t.Run("times in Paris", func(t *testing.T) {
			// TIME_ZONE = "Europe/Paris" with USE_TZ: Debian's pytz reads the guest's
			// /usr/share/zoneinfo, and the template filters show each instant at the
			// offset Paris had then, on both sides of the 2024 changes (02:30 came twice
			// on 27 October).
			r := c.do(t, "GET", "/time/", nil)
			c.expect(t, r, http.StatusOK, "text/html; charset=utf-8", "<th>Europe/Paris</th>",
				"<tr><td>2024-03-31 00:30 UTC</td><td>2024-03-31 01:30 CET (+0100)</td><td>2024-03-31T01:30:00+01:00</td></tr>",
				"<tr><td>2024-03-31 01:30 UTC</td><td>2024-03-31 03:30 CEST (+0200)</td><td>2024-03-31T03:30:00+02:00</td></tr>",
				"<tr><td>2024-10-27 00:30 UTC</td><td>2024-10-27 02:30 CEST (+0200)</td><td>2024-10-27T02:30:00+02:00</td></tr>",
				"<tr><td>2024-10-27 01:30 UTC</td><td>2024-10-27 02:30 CET (+0100)</td><td>2024-10-27T02:30:00+01:00</td></tr>")
			// Django put TIME_ZONE in TZ and called time.tzset(): naive local times,
			// from the C library, are Paris's too, as under gunicorn.
			c.expect(t, r, http.StatusOK, "text/html; charset=utf-8",
				"<tr><td>2024-03-31T01:30:00</td><td>2024-03-31 01:30:00 CET +0100</td></tr>",
				"<tr><td>2024-03-31T03:30:00</td><td>2024-03-31 03:30:00 CEST +0200</td></tr>",
				"<tr><td>2024-10-27T02:30:00</td><td>2024-10-27 02:30:00 CEST +0200</td></tr>",
				"<tr><td>2024-10-27T02:30:00</td><td>2024-10-27 02:30:00 CET +0100</td></tr>")
			// A note's creation time, stored in UTC, is listed at Paris's offset of that
			// moment, as the host's own tz database has it.
			paris, err := time.LoadLocation("Europe/Paris")
			if err != nil {
				t.Fatal(err)
			}
			var got struct{ Notes []struct{ Created string } }
			if r := c.do(t, "GET", "/notes.json", nil); json.Unmarshal([]byte(r.body), &got) != nil || len(got.Notes) == 0 {
				t.Fatalf("notes.json: %d %q", r.status, r.body)
			}
			for _, n := range got.Notes {
				created, err := time.Parse(time.RFC3339Nano, n.Created)
				if err != nil {
					t.Fatalf("created %q: %v", n.Created, err)
				}
				if want := created.In(paris).Format("-07:00"); !strings.HasSuffix(n.Created, want) {
					t.Errorf("created %q, want Paris's offset then, %s", n.Created, want)
				}
			}
		})

		t.Run("invalid POSTs create nothing", func(t *testing.T) {
			r := c.post(t, url.Values{"author": {"x"}, "text": {""}})
			c.expect(t, r, http.StatusOK, "", "This field is required.")
			r = c.do(t, "POST", "/", strings.NewReader("author=x&text=no+token"))
			if r.status != http.StatusForbidden {
				t.Errorf("POST without the CSRF token: %d", r.status)
			}
			if n := c.count(t); n != notes {
				t.Errorf("notes.json counts %d, want %d", n, notes)
			}
		})

		t.Run("concurrent POSTs lose nothing", func(t *testing.T) {
			const n = 16
			token := c.csrfToken(t)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					form := url.Values{"author": {"load"}, "text": {fmt.Sprintf("concurrent note %d", i)},
						"csrfmiddlewaretoken": {token}}
					r, err := c.send("POST", "/", strings.NewReader(form.Encode()))
					if err != nil || r.status != http.StatusFound {
						t.Errorf("POST %d: %v %d %s", i, err, r.status, r.body)
					}
				}()
			}
			wg.Wait()
			notes += n
			var got struct {
				Count int
				Notes []struct{ Text string }
			}
			r := c.do(t, "GET", "/notes.json", nil)
			if err := json.Unmarshal([]byte(r.body), &got); err != nil {
				t.Fatalf("notes.json: %q: %v", r.body, err)
			}
			if got.Count != notes || len(got.Notes) != notes {
				t.Errorf("after %d concurrent POSTs: count %d, %d notes listed, want %d", n, got.Count, len(got.Notes), notes)
			}
			seen := map[string]bool{}
			for _, note := range got.Notes {
				seen[note.Text] = true
			}
			for i := 0; i < n; i++ {
				if !seen[fmt.Sprintf("concurrent note %d", i)] {
					t.Errorf("concurrent note %d is missing", i)
				}
			}
		})
	})

	t.Run("restart keeps the data and migrates nothing", func(t *testing.T) {
		if out := testkit.MigrateDjango(t, apps, grants...); !strings.Contains(out, "No migrations to apply.") {
			t.Errorf("manage.py migrate on the migrated database:\n%s", out)
		}
		s := testkit.Start(t, apps, grants...)
		c := newDjangoClient(t, s.Base+"/django")
		if n := c.count(t); n != notes {
			t.Errorf("after a restart notes.json counts %d, want %d", n, notes)
		}
	})
	if _, err := os.Stat(filepath.Join(data, "db.sqlite3")); err != nil {
		t.Errorf("the database is not in the data folder: %v", err)
	}
}

// readyStates returns each app's state from /_wasmwsgi/ready.
func readyStates(t *testing.T, base string) map[string]appState {
	t.Helper()
	r := get(t, base+"/_wasmwsgi/ready")
	var ready struct{ Apps map[string]appState }
	if err := json.Unmarshal([]byte(r.body), &ready); err != nil {
		t.Fatalf("ready: %q: %v", r.body, err)
	}
	return ready.Apps
}

// djangoClient keeps the CSRF cookie, as a browser would.
type djangoClient struct {
	base  string
	http  *http.Client
	token string
}

func newDjangoClient(t *testing.T, base string) *djangoClient {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &djangoClient{base: base, http: &http.Client{
		Jar:     jar,
		Timeout: 180 * time.Second,
		// The POST tests look at the redirect itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var csrfInput = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

// send makes one request (a form body when body is set); safe from any goroutine.
func (c *djangoClient) send(method, path string, body io.Reader) (response, error) {
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b), err}, nil
}

func (c *djangoClient) do(t *testing.T, method, path string, body io.Reader) response {
	t.Helper()
	r, err := c.send(method, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// csrfToken returns the CSRF token of the list page, fetched once (the cookie that goes
// with it stays in the jar).
func (c *djangoClient) csrfToken(t *testing.T) string {
	t.Helper()
	if c.token == "" {
		m := csrfInput.FindStringSubmatch(c.do(t, "GET", "/", nil).body)
		if m == nil {
			t.Fatal("the list page has no CSRF token")
		}
		c.token = m[1]
	}
	return c.token
}

// post sends the form with the CSRF token.
func (c *djangoClient) post(t *testing.T, form url.Values) response {
	t.Helper()
	form.Set("csrfmiddlewaretoken", c.csrfToken(t))
	return c.do(t, "POST", "/", strings.NewReader(form.Encode()))
}

func (c *djangoClient) count(t *testing.T) int {
	t.Helper()
	r := c.do(t, "GET", "/notes.json", nil)
	var got struct{ Count int }
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &got) != nil {
		t.Fatalf("notes.json: %d %q", r.status, r.body)
	}
	return got.Count
}

func (c *djangoClient) expect(t *testing.T, r response, status int, ctype string, contains ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
	if ctype != "" && r.header.Get("Content-Type") != ctype {
		t.Errorf("Content-Type %q, want %q", r.header.Get("Content-Type"), ctype)
	}
	for _, want := range contains {
		if !strings.Contains(r.body, want) {
			t.Errorf("body lacks %q:\n%s", want, r.body)
		}
	}
}

// copyDjangoTree copies an app folder (hard links where it can), leaving out
// __pycache__ folders and the app's own wasmwsgi.toml (the tests write their own).
func copyDjangoTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir() && d.Name() == "__pycache__":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case rel == "wasmwsgi.toml":
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		}
		if os.Link(p, dst) == nil {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runDjango runs `wasmwsgi run django --apps apps flags... -- args...` and returns its
// exit code and what it printed (stdout, then stderr).
func runDjango(t *testing.T, apps string, flags []string, args ...string) (int, string) {
	t.Helper()
	argv := append(append([]string{"run", "django", "--apps", apps}, flags...), append([]string{"--"}, args...)...)
	cmd := exec.Command(testkit.Binary(t), argv...)
	cmd.Env = testkit.Env(t)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("wasmwsgi %s: %v", strings.Join(argv, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String() + stderr.String()
}

// djangoCopy copies apps/django, with its wasmwsgi.toml, into a new apps folder; it
// skips the test when Django (and PyMySQL) are not vendored.
func djangoCopy(t *testing.T) string {
	t.Helper()
	for _, pkg := range []string{"django", "pymysql"} {
		if st, err := os.Stat("../../apps/django/site-packages/" + pkg); err != nil || !st.IsDir() {
			t.Skipf("apps/django/site-packages/%s is missing: run `make vendor-apps` to vendor it from Debian", pkg)
		}
	}
	apps := filepath.Join(t.TempDir(), "apps")
	copyDjangoTree(t, "../../apps/django", filepath.Join(apps, "django"))
	toml, err := os.ReadFile("../../apps/django/wasmwsgi.toml")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WriteFile(t, filepath.Join(apps, "django", "wasmwsgi.toml"), string(toml))
	return apps
}

// TestDjangoDatabaseURL reads the Django example's settings in its sandbox under one
// DATABASE_URL after another: SQLite in /data without one, Django's mysql backend on
// PyMySQL for mysql:// and mariadb://, and an error naming DATABASE_URL and the forms
// it takes for anything else.
func TestDjangoDatabaseURL(t *testing.T) {
	apps := djangoCopy(t)
	const code = `import importlib, json, os, sys
from django.core.exceptions import ImproperlyConfigured
for url in sys.argv[1:]:
    os.environ["DATABASE_URL"] = url
    sys.modules.pop("mysite.settings", None)
    try:
        db = importlib.import_module("mysite.settings").DATABASES["default"]
        print(json.dumps(db, sort_keys=True), "MySQLdb=" + getattr(sys.modules.get("MySQLdb"), "__name__", "none"))
    except ImproperlyConfigured as e:
        print("ImproperlyConfigured:", e)
`
	forms := "write it as mysql://USER:PASSWORD@HOST[:PORT]/NAME or mariadb://USER:PASSWORD@HOST[:PORT]/NAME " +
		"(port 3306 by default; percent-encode @ : / % in USER and PASSWORD)"
	cases := []struct{ url, want string }{
		{"", `{"ENGINE": "django.db.backends.sqlite3", "NAME": "/data/db.sqlite3"} MySQLdb=none`},
		{"mysql://dj%40ngo:p%40ss%3Aw%2Frd%25@db.example:3307/no%74es",
			`{"ENGINE": "django.db.backends.mysql", "HOST": "db.example", "NAME": "notes", "OPTIONS": {"charset": "utf8mb4"}, ` +
				`"PASSWORD": "p@ss:w/rd%", "PORT": 3307, "USER": "dj@ngo"} MySQLdb=pymysql`},
		{"mariadb://shop:pw@10.0.4.7/shop",
			`{"ENGINE": "django.db.backends.mysql", "HOST": "10.0.4.7", "NAME": "shop", "OPTIONS": {"charset": "utf8mb4"}, ` +
				`"PASSWORD": "pw", "PORT": 3306, "USER": "shop"} MySQLdb=pymysql`},
		{"postgres://u:s3cret@db/shop", "ImproperlyConfigured: DATABASE_URL has the scheme 'postgres', and this app knows only " +
			"mysql:// and mariadb://: " + forms + ", or leave DATABASE_URL unset for SQLite in /data/db.sqlite3"},
		{"/data/other.sqlite3", "ImproperlyConfigured: DATABASE_URL has the scheme '', and this app knows only " +
			"mysql:// and mariadb://: " + forms + ", or leave DATABASE_URL unset for SQLite in /data/db.sqlite3"},
		{"mysql://u:pw@db:33o6/shop", "ImproperlyConfigured: DATABASE_URL has a port that is not a number: " + forms},
		{"mysql://u:pw@db", "ImproperlyConfigured: DATABASE_URL lacks the host or the database name: " + forms},
		{"mysql://u:pw@/shop", "ImproperlyConfigured: DATABASE_URL lacks the host or the database name: " + forms},
		{"mysql://u:pw@db/shop?ssl=1", "ImproperlyConfigured: DATABASE_URL takes no ?options or #fragment: " + forms},
	}
	args := []string{"-c", code}
	for _, c := range cases {
		args = append(args, c.url)
	}
	status, out := runDjango(t, apps, nil, args...)
	if status != 0 {
		t.Fatalf("exit %d:\n%s", status, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(cases) {
		t.Fatalf("%d lines for %d URLs:\n%s", len(lines), len(cases), out)
	}
	for i, c := range cases {
		if lines[i] != c.want {
			t.Errorf("DATABASE_URL=%q:\n got %s\nwant %s", c.url, lines[i], c.want)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Error("an error quotes the password of the DATABASE_URL")
	}

	t.Run("a refused URL stops the app at load", func(t *testing.T) {
		conf := testkit.ConfigFile(t, "[apps.django.env]\nDATABASE_URL = \"postgres://u:s3cret@db/shop\"\n")
		s := testkit.Start(t, apps, "--config", conf)
		st := readyStates(t, s.Base)["django"]
		if st.State != "failed" || !strings.Contains(st.Error, "ImproperlyConfigured: DATABASE_URL has the scheme 'postgres'") {
			t.Errorf("django under a postgres:// DATABASE_URL: %+v", st)
		}
		if strings.Contains(st.Error, "s3cret") || strings.Contains(s.Log(), "s3cret") {
			t.Error("the error or the log quotes the password of the DATABASE_URL")
		}
	})
}

// TestDjangoMariaDB runs the Django example on a MariaDB server the test starts, as an
// operator would: the server configuration grants the app an outbound connection to it
// and a DATABASE_URL, and no data folder. manage.py migrate makes the tables in
// MariaDB, a note made through the app's form is read back through the app and in
// MariaDB itself, and a restarted server still lists it.
func TestDjangoMariaDB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB")
	}
	apps := djangoCopy(t)
	maria := startMariaDB(t)
	if maria == nil {
		unavailable(t, "MariaDB is not installed")
	}
	// A user whose name and password need percent-encoding in the URL, and a database
	// that stores all of Unicode, as apps/django/README.md asks of the operator.
	maria.query(t, fmt.Sprintf(`ALTER DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER 'dj@ngo'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('p@ss:w/rd%%');
GRANT ALL ON %s.* TO 'dj@ngo'@'127.0.0.1'`, maria.database, maria.database))
	confText := fmt.Sprintf(`[apps.django]
outbound = ["mysql://127.0.0.1:%d"]

[apps.django.env]
DATABASE_URL = "mysql://dj%%40ngo:p%%40ss%%3Aw%%2Frd%%25@127.0.0.1:%d/%s"

[apps.django.limits]
timeout = "120s"
queue_timeout = "120s"
`, maria.port, maria.port, maria.database)
	grants := []string{"--config", testkit.ConfigFile(t, confText)}

	// The URL alone reaches nothing: the connection needs the outbound grant too.
	noOutbound := strings.Replace(confText, "outbound = ", "# outbound = ", 1)
	status, out := runDjango(t, apps, []string{"--config", testkit.ConfigFile(t, noOutbound)}, "manage.py", "migrate")
	if want := fmt.Sprintf("127.0.0.1:%d is not granted to this app", maria.port); status != 1 || !strings.Contains(out, want) {
		t.Errorf("migrate without the outbound grant: exit %d, want 1 and %q:\n%s", status, want, out)
	}

	if out := testkit.MigrateDjango(t, apps, grants...); !strings.Contains(out, "Applying notes.0001_initial... OK") {
		t.Fatalf("manage.py migrate did not create the table:\n%s", out)
	}
	tables := maria.query(t, "SELECT table_name FROM information_schema.tables WHERE table_schema = '"+maria.database+"' ORDER BY table_name")
	if tables != "django_migrations\nnotes_note" {
		t.Errorf("tables in MariaDB after migrate: %q", tables)
	}
	if got := maria.query(t, "SELECT app, name FROM "+maria.database+".django_migrations"); got != "notes\t0001_initial" {
		t.Errorf("migrations recorded in MariaDB: %q", got)
	}

	// A note with a character beyond the Basic Multilingual Plane: MariaDB's three-byte
	// "utf8" would refuse it, utf8mb4 keeps it.
	const author, text = "grace", "tea \U0001F375 at <five>"
	var detail string
	t.Run("a note made through the form is in MariaDB", func(t *testing.T) {
		s := testkit.Start(t, apps, grants...)
		defer s.Stop(t)
		c := newDjangoClient(t, s.Base+"/django")
		c.expect(t, c.do(t, "GET", "/", nil), http.StatusOK, "", "0 notes", "No notes yet.")
		r := c.post(t, url.Values{"author": {author}, "text": {text}})
		m := regexp.MustCompile(`^/django/notes/(\d+)/$`).FindStringSubmatch(r.header.Get("Location"))
		if r.status != http.StatusFound || m == nil {
			t.Fatalf("POST: %d Location %q %s\n%s", r.status, r.header.Get("Location"), r.body, grepLines(s.Log(), "rror"))
		}
		detail = strings.TrimPrefix(m[0], "/django")
		escaped := "tea \U0001F375 at &lt;five&gt;"
		c.expect(t, c.do(t, "GET", detail, nil), http.StatusOK, "", escaped, author)
		c.expect(t, c.do(t, "GET", "/", nil), http.StatusOK, "", "1 note ", escaped)
		if n := c.count(t); n != 1 {
			t.Errorf("notes.json counts %d, want 1", n)
		}
		if got := maria.query(t, "SELECT id, author, text FROM "+maria.database+".notes_note"); got != m[1]+"\t"+author+"\t"+text {
			t.Errorf("the note in MariaDB: %q, want id %s, %q, %q", got, m[1], author, text)
		}
		if !strings.Contains(s.Log(), "outbound_conns=") {
			t.Errorf("no request of the app opened an outbound connection:\n%s", s.Log())
		}
	})
	if detail == "" {
		return
	}

	t.Run("a restarted server reads it from MariaDB", func(t *testing.T) {
		if out := testkit.MigrateDjango(t, apps, grants...); !strings.Contains(out, "No migrations to apply.") {
			t.Errorf("manage.py migrate on the migrated database:\n%s", out)
		}
		s := testkit.Start(t, apps, grants...)
		c := newDjangoClient(t, s.Base+"/django")
		c.expect(t, c.do(t, "GET", detail, nil), http.StatusOK, "", "tea \U0001F375 at &lt;five&gt;", author)
		if n := c.count(t); n != 1 {
			t.Errorf("after a restart notes.json counts %d, want 1", n)
		}
	})
}
