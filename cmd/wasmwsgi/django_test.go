package main

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

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
				`<link rel="stylesheet" href="/django/static/notes/style.css">`, // SCRIPT_NAME in STATIC_URL
				`<form method="post" action="/django/">`, `name="csrfmiddlewaretoken"`, "No notes yet.")
		})

		t.Run("static file", func(t *testing.T) {
			r := c.do(t, "GET", "/static/notes/style.css", nil)
			c.expect(t, r, http.StatusOK, `text/css; charset="utf-8"`, "the Django example's only stylesheet")
			if r.header.Get("Cache-Control") == "" || r.header.Get("Etag") == "" {
				t.Errorf("WhiteNoise's caching headers are missing: %v", r.header)
			}
			c.expect(t, c.do(t, "GET", "/static/notes/nope.css", nil), http.StatusNotFound, "", "Not found")
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
