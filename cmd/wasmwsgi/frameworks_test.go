package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestFrameworks serves the example apps in apps/ (Flask, Bottle, Falcon, Pyramid, with
// their packages vendored from Debian by `make vendor-apps`) through the real binary,
// and asks every bundled example, hello and Django included, for its root page.

var frameworkApps = []string{"flask", "bottle", "falcon", "pyramid"}

func TestFrameworks(t *testing.T) {
	appsDir, grants := testkit.BundledApps(t, "")
	vendored := map[string]bool{}
	for _, name := range frameworkApps {
		st, err := os.Stat(filepath.Join(appsDir, name, "site-packages"))
		vendored[name] = err == nil && st.IsDir()
	}
	if !vendored["flask"] && !vendored["bottle"] && !vendored["falcon"] && !vendored["pyramid"] {
		t.Skip("apps/*/site-packages are missing: run `make vendor-apps` to vendor Flask, Bottle, Falcon and Pyramid from Debian")
	}
	testkit.MigrateDjango(t, appsDir, grants...) // as make serve does
	// Every example runs under wsgiref.validate: any PEP 3333 violation fails a request.
	s := testkit.Start(t, appsDir, append(grants, "--timeout", "60s", "--validate")...)
	t.Cleanup(func() {
		if log := s.Log(); strings.Contains(log, "WSGIWarning") || strings.Contains(log, "AssertionError") {
			t.Errorf("wsgiref.validate complained about an example app")
		}
	})
	c := &frameworkClient{t: t, base: s.Base, http: &http.Client{
		Timeout: 90 * time.Second,
		// The redirect test looks at the 302 itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	states := c.appStates()

	run := func(name string, f func(t *testing.T, c *frameworkClient)) {
		t.Run(name, func(t *testing.T) {
			if !vendored[name] {
				t.Skipf("apps/%s/site-packages is missing: run `make vendor-apps`", name)
			}
			if st := states[name]; st.State != "ready" {
				t.Fatalf("app %s is %q: %s", name, st.State, st.Error)
			}
			f(t, &frameworkClient{t: t, base: c.base + "/" + name, http: c.http})
		})
	}
	run("flask", testFlask)
	for _, name := range []string{"bottle", "falcon", "pyramid"} {
		run(name, testNotesAPI)
	}
	t.Run("root pages", func(t *testing.T) { testRootPages(t, c, states) })

	// The access log's durations, for the record (run with -v to see them). The log
	// line of the last request may trail its response by a moment.
	time.Sleep(200 * time.Millisecond)
	for app, d := range requestDurations(s.Log()) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		t.Logf("%s: %d requests, duration min %v median %v max %v", app, len(d), d[0], d[len(d)/2], d[len(d)-1])
	}
}

func testFlask(t *testing.T, c *frameworkClient) {
	t.Run("template", func(t *testing.T) {
		r := c.get("/", nil)
		c.expect(r, http.StatusOK, "text/html; charset=utf-8")
		for _, want := range []string{
			"<title>Home · Flask on wasmwsgi</title>",         // the base layout
			"<h1>Flask on wasmwsgi</h1>",                      // the page's block
			"on wasi",                                         // a template variable
			`<a href="/flask/hello">`,                         // url_for honours SCRIPT_NAME
			"Rendered by Jinja inside a WebAssembly sandbox.", // the layout's footer
			`<link rel="stylesheet" href="/flask/static/style.css">`,
		} {
			if !strings.Contains(r.body, want) {
				t.Errorf("page lacks %q:\n%s", want, r.body)
			}
		}
	})

	t.Run("stylesheet from [static]", func(t *testing.T) {
		r := c.get("/static/style.css", nil)
		c.expect(r, http.StatusOK, "text/css; charset=utf-8")
		if !strings.Contains(r.body, "The Flask example's stylesheet") || r.header.Get("ETag") == "" ||
			r.header.Get("Cache-Control") != "public, max-age=60" {
			t.Errorf("stylesheet: %v\n%s", r.header, r.body)
		}
	})

	t.Run("json", func(t *testing.T) {
		r := c.get("/api/info", nil)
		c.expect(r, http.StatusOK, "application/json")
		var info map[string]string
		if err := json.Unmarshal([]byte(r.body), &info); err != nil {
			t.Fatalf("%q: %v", r.body, err)
		}
		want := map[string]string{"framework": "flask", "platform": "wasi", "script_root": "/flask", "path": "/api/info"}
		for k, v := range want {
			if info[k] != v {
				t.Errorf("%s = %q, want %q", k, info[k], v)
			}
		}
	})

	t.Run("form post", func(t *testing.T) {
		form := url.Values{"name": {"Ada <b>"}}.Encode()
		r := c.post("/hello", "application/x-www-form-urlencoded", form)
		c.expect(r, http.StatusOK, "text/html; charset=utf-8")
		// The field comes back, escaped by Jinja's autoescaping.
		if !strings.Contains(r.body, "<h1>Hello, Ada &lt;b&gt;!</h1>") {
			t.Errorf("the form field is not echoed (escaped):\n%s", r.body)
		}
		if r := c.get("/hello", nil); r.status != http.StatusOK || strings.Contains(r.body, "<h1>Hello") {
			t.Errorf("GET /hello: %d\n%s", r.status, r.body)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		r := c.get("/old-home", nil)
		if r.status != http.StatusFound {
			t.Fatalf("status %d, want 302", r.status)
		}
		if loc := r.header.Get("Location"); loc != "/flask/" && loc != c.base+"/" {
			t.Errorf("Location %q, want /flask/", loc)
		}
	})

	t.Run("session cookie", func(t *testing.T) {
		visits := func(cookie string) (int, string) {
			t.Helper()
			h := http.Header{}
			if cookie != "" {
				h.Set("Cookie", cookie)
			}
			r := c.get("/visits", h)
			c.expect(r, http.StatusOK, "application/json")
			var v struct{ Visits int }
			if err := json.Unmarshal([]byte(r.body), &v); err != nil {
				t.Fatalf("%q: %v", r.body, err)
			}
			var sent string
			for _, sc := range (&http.Response{Header: r.header}).Cookies() {
				if sc.Name == "session" {
					sent = sc.Name + "=" + sc.Value
					if !sc.HttpOnly {
						t.Error("the session cookie is not HttpOnly")
					}
				}
			}
			if sent == "" {
				t.Fatalf("no session cookie in %q", r.header.Values("Set-Cookie"))
			}
			return v.Visits, sent
		}
		n, cookie := visits("")
		if n != 1 {
			t.Fatalf("first visit: %d, want 1", n)
		}
		n, cookie2 := visits(cookie)
		if n != 2 {
			t.Fatalf("with the cookie of visit 1: %d, want 2", n)
		}
		if n, _ := visits(cookie2); n != 3 {
			t.Errorf("with the cookie of visit 2: %d, want 3", n)
		}
		// The state is in the cookie, not in the server: without it the count restarts,
		// and a cookie whose signature does not match is ignored.
		if n, _ := visits(""); n != 1 {
			t.Errorf("without a cookie: %d, want 1", n)
		}
		forged := strings.Replace(cookie2, ".", "x.", 1)
		if n, _ := visits(forged); n != 1 {
			t.Errorf("with a tampered cookie: %d, want 1", n)
		}
	})

	t.Run("custom 404", func(t *testing.T) {
		r := c.get("/no/such/page", nil)
		c.expect(r, http.StatusNotFound, "text/html; charset=utf-8")
		for _, want := range []string{"<h1>Page not found</h1>", "<code>/no/such/page</code>", "Flask on wasmwsgi</title>"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("404 page lacks %q:\n%s", want, r.body)
			}
		}
	})
}

// testRootPages checks that every bundled example answers 200 at its root (the URL the
// README's quick start shows) with a page that links to the app's routes.
func testRootPages(t *testing.T, c *frameworkClient, states map[string]appState) {
	pages := []struct {
		app, ctype string
		links      []string
	}{
		{"hello", "text/plain", []string{"/hello/info", "/hello/counter", "/hello/echo"}},
		{"flask", "text/html", []string{`<a href="/flask/hello">`, `<a href="/flask/api/info">`, `<a href="/flask/visits">`}},
		{"bottle", "text/html", []string{`<a href="/bottle/notes">`, `<a href="/bottle/notes/1">`}},
		{"falcon", "text/html", []string{`<a href="/falcon/notes">`, `<a href="/falcon/notes/1">`}},
		{"pyramid", "text/html", []string{`<a href="/pyramid/notes">`, `<a href="/pyramid/notes/1">`}},
		{"django", "text/html", []string{`<a href="/django/notes.json">`, `<form method="post" action="/django/">`}},
	}
	for _, p := range pages {
		t.Run(p.app, func(t *testing.T) {
			if st := states[p.app]; st.State != "ready" {
				if _, err := os.Stat(filepath.Join("../../apps", p.app, "site-packages")); err != nil && p.app != "hello" {
					t.Skipf("apps/%s/site-packages is missing: run `make vendor-apps`", p.app)
				}
				t.Fatalf("app %s is %q: %s", p.app, st.State, st.Error)
			}
			app := &frameworkClient{t: t, base: c.base + "/" + p.app, http: c.http}
			r := app.get("/", nil)
			app.expect(r, http.StatusOK, p.ctype)
			for _, link := range p.links {
				if !strings.Contains(r.body, link) {
					t.Errorf("GET /%s/ lacks %s:\n%s", p.app, link, r.body)
				}
			}
		})
	}
}

// testNotesAPI checks the notes resource that the Bottle, Falcon and Pyramid examples
// share: GET list, GET one, and a JSON POST that validates its input.
func testNotesAPI(t *testing.T, c *frameworkClient) {
	t.Run("list", func(t *testing.T) {
		r := c.get("/notes", nil)
		c.expect(r, http.StatusOK, "application/json")
		var list struct {
			Notes []note
			Count int
		}
		c.decode(r, &list)
		if list.Count != 2 || len(list.Notes) != 2 || list.Notes[0].ID != 1 || list.Notes[0].Text == "" {
			t.Errorf("list: %s", r.body)
		}
	})

	t.Run("one", func(t *testing.T) {
		r := c.get("/notes/2", nil)
		c.expect(r, http.StatusOK, "application/json")
		var n note
		c.decode(r, &n)
		if n.ID != 2 {
			t.Errorf("GET /notes/2: %s", r.body)
		}
		r = c.get("/notes/99", nil)
		c.expect(r, http.StatusNotFound, "application/json")
		if !strings.Contains(r.body, "no note with id 99") {
			t.Errorf("404 body %q", r.body)
		}
	})

	t.Run("create", func(t *testing.T) {
		r := c.post("/notes", "application/json", `{"text": "  buy milk ", "tags": ["home", "café"]}`)
		c.expect(r, http.StatusCreated, "application/json")
		var n note
		c.decode(r, &n)
		if n.ID != 3 || n.Text != "buy milk" || len(n.Tags) != 2 || n.Tags[1] != "café" {
			t.Errorf("created note %s", r.body)
		}
		if loc := r.header.Get("Location"); !strings.HasSuffix(loc, c.prefix()+"/notes/3") {
			t.Errorf("Location %q, want …%s/notes/3", loc, c.prefix())
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			name, ctype, body string
			status            int
		}{
			{"not JSON", "application/json", `{"text": "unterminated`, http.StatusBadRequest},
			{"empty text", "application/json", `{"text": "   "}`, http.StatusUnprocessableEntity},
			{"not an object", "application/json", `["text"]`, http.StatusUnprocessableEntity},
			{"bad tags", "application/json", `{"text": "x", "tags": "home"}`, http.StatusUnprocessableEntity},
			{"form body", "application/x-www-form-urlencoded", "text=hello", http.StatusUnsupportedMediaType},
		} {
			r := c.post("/notes", tc.ctype, tc.body)
			if r.status != tc.status {
				t.Errorf("%s: status %d, want %d; body %q", tc.name, r.status, tc.status, r.body)
				continue
			}
			// Every framework here answers its errors in JSON.
			var m map[string]any
			if err := json.Unmarshal([]byte(r.body), &m); err != nil || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("%s: error body is not JSON (%s): %q", tc.name, r.header.Get("Content-Type"), r.body)
			}
		}
	})
}

type note struct {
	ID   int
	Text string
	Tags []string
}

type frameworkClient struct {
	t    *testing.T
	base string // http://host:port/app
	http *http.Client
}

func (c *frameworkClient) prefix() string {
	u, err := url.Parse(c.base)
	if err != nil {
		c.t.Fatal(err)
	}
	return u.Path
}

func (c *frameworkClient) do(method, path, ctype, body string, h http.Header) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, req.URL, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *frameworkClient) get(path string, h http.Header) response {
	c.t.Helper()
	return c.do(http.MethodGet, path, "", "", h)
}

func (c *frameworkClient) post(path, ctype, body string) response {
	c.t.Helper()
	return c.do(http.MethodPost, path, ctype, body, nil)
}

// expect checks the status and the media type (the part before any ';' unless want has one).
func (c *frameworkClient) expect(r response, status int, ctype string) {
	c.t.Helper()
	if r.status != status {
		c.t.Fatalf("status %d, want %d; body %q", r.status, status, r.body)
	}
	got := r.header.Get("Content-Type")
	if !strings.Contains(ctype, ";") {
		got, _, _ = strings.Cut(got, ";")
	}
	if got != ctype {
		c.t.Errorf("Content-Type %q, want %q", r.header.Get("Content-Type"), ctype)
	}
}

func (c *frameworkClient) decode(r response, v any) {
	c.t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		c.t.Fatalf("body %q: %v", r.body, err)
	}
}

type appState struct {
	State, Error string
	ReloadError  string `json:"reload_error"`
}

func (c *frameworkClient) appStates() map[string]appState {
	c.t.Helper()
	r := c.get("/_wasmwsgi/ready", nil)
	var ready struct{ Apps map[string]appState }
	c.decode(r, &ready)
	return ready.Apps
}

var accessLine = regexp.MustCompile(`msg=request .*\bapp=(\w+) .*\bduration=(\S+)`)

// requestDurations collects the access log's durations by app.
func requestDurations(log string) map[string][]time.Duration {
	out := map[string][]time.Duration{}
	for _, line := range strings.Split(log, "\n") {
		m := accessLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if d, err := time.ParseDuration(m[2]); err == nil {
			out[m[1]] = append(out[m[1]], d)
		}
	}
	return out
}
