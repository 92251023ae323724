package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// staticApp writes an apps folder whose app "site" answers every path itself ("app
// saw PATH", also printed to the log) and serves a [static] table: a folder, a file
// and a precompressed stylesheet. It returns the apps folder and the stylesheet.
func staticApp(t *testing.T) (string, string) {
	t.Helper()
	css := strings.Repeat("body { color: #333; }\n", 40)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, css)
	zw.Close()
	apps := testkit.WriteTree(t, map[string]string{
		"site/app.py": `
def application(environ, start_response):
    path = environ["PATH_INFO"]
    print("app saw " + path)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("app saw " + path).encode()]
`,
		"site/wasmwsgi.toml": `
[static]
"/static" = "static"
"/favicon.ico" = "static/favicon.ico"

[static_cache_control]
other = "public, max-age=5"
`,
		"site/static/style.css":              css,
		"site/static/style.css.gz":           gz.String(),
		"site/static/style.css.br":           "not really brotli, but what a client asking for br gets",
		"site/static/app.0123456789ab.css":   "h1 { font-weight: bold; }\n",
		"site/static/favicon.ico":            "\x00\x00\x01\x00icon",
		"site/static/sub/page.html":          "<p>below</p>\n",
		"site/static/.secret":                "a dot file",
		"site/secret.py":                     "TOKEN = 'never served'\n",
		"outside/passwd":                     "root:x:0:0\n",
		"site/static/data.bin":               "0123456789abcdefghij",
		"site/static/no-extension":           "<html><body>sniffed</body></html>",
		"site/static/sub/deeper/readme.txt":  "deep\n",
		"site/static/sub/deeper/empty.txt":   "",
		"site/static/sub/deeper/.hidden.txt": "hidden\n",
	})
	// A symbolic link out of the app folder: the app never holds its target.
	if err := os.Symlink(filepath.Join(apps, "outside", "passwd"), filepath.Join(apps, "site", "static", "link-out")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(apps, "site", "static", "style.css"), old, old); err != nil {
		t.Fatal(err)
	}
	return apps, css
}

// rawGet sends target exactly as written (no client-side cleaning) and returns the
// status and body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestStaticFiles(t *testing.T) {
	apps, css := staticApp(t)
	s := testkit.Start(t, apps)
	base := s.Base + "/site"
	req := func(method, path string, header ...string) response {
		t.Helper()
		r, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return do(t, r)
	}

	var etag string
	t.Run("a file, its type and caching headers", func(t *testing.T) {
		r := req("GET", "/static/style.css", "Accept-Encoding", "identity")
		if r.status != 200 || r.body != css {
			t.Fatalf("status %d, body %q", r.status, r.body)
		}
		for k, want := range map[string]string{
			"Content-Type":           "text/css; charset=utf-8",
			"Cache-Control":          "public, max-age=5", // the tenant's [static_cache_control] other
			"Last-Modified":          "Fri, 02 Jan 2026 03:04:05 GMT",
			"Vary":                   "Accept-Encoding",
			"X-Content-Type-Options": "nosniff",
			"Content-Length":         fmt.Sprint(len(css)),
			"Content-Encoding":       "",
		} {
			if got := r.header.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		etag = r.header.Get("ETag")
		if len(etag) != 34 || etag[0] != '"' || strings.HasPrefix(etag, `W/`) {
			t.Errorf("ETag %q is not a strong tag of the content hash", etag)
		}
		if r := req("GET", "/static/app.0123456789ab.css"); r.header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("a hashed name's Cache-Control is %q", r.header.Get("Cache-Control"))
		}
		if r := req("GET", "/favicon.ico"); r.status != 200 || r.body != "\x00\x00\x01\x00icon" || r.header.Get("Content-Type") != "image/vnd.microsoft.icon" {
			t.Errorf("/favicon.ico: %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
		}
		if r := req("GET", "/static/no-extension"); r.header.Get("Content-Type") != "text/html; charset=utf-8" {
			t.Errorf("a file without an extension is sent as %q", r.header.Get("Content-Type"))
		}
		if r := req("GET", "/static/sub/deeper/empty.txt"); r.status != 200 || r.body != "" {
			t.Errorf("an empty file: %d %q", r.status, r.body)
		}
	})

	t.Run("conditional requests", func(t *testing.T) {
		if r := req("GET", "/static/style.css", "If-None-Match", etag, "Accept-Encoding", "identity"); r.status != 304 || r.body != "" {
			t.Errorf("If-None-Match with the ETag: %d %q", r.status, r.body)
		}
		if r := req("GET", "/static/style.css", "If-None-Match", `"other"`, "Accept-Encoding", "identity"); r.status != 200 {
			t.Errorf("If-None-Match with another tag: %d", r.status)
		}
		if r := req("GET", "/static/style.css", "If-Modified-Since", "Sat, 03 Jan 2026 00:00:00 GMT", "Accept-Encoding", "identity"); r.status != 304 {
			t.Errorf("If-Modified-Since after the file's time: %d", r.status)
		}
		if r := req("GET", "/static/style.css", "If-Modified-Since", "Thu, 01 Jan 2026 00:00:00 GMT", "Accept-Encoding", "identity"); r.status != 200 {
			t.Errorf("If-Modified-Since before the file's time: %d", r.status)
		}
	})

	t.Run("HEAD and ranges", func(t *testing.T) {
		r := req("HEAD", "/static/style.css", "Accept-Encoding", "identity")
		if r.status != 200 || r.body != "" || r.header.Get("Content-Length") != fmt.Sprint(len(css)) || r.header.Get("ETag") != etag {
			t.Errorf("HEAD: %d, %q, headers %v", r.status, r.body, r.header)
		}
		r = req("GET", "/static/data.bin", "Range", "bytes=5-9")
		if r.status != 206 || r.body != "56789" || r.header.Get("Content-Range") != "bytes 5-9/20" {
			t.Errorf("a single range: %d %q %q", r.status, r.body, r.header.Get("Content-Range"))
		}
		r = req("GET", "/static/data.bin", "Range", "bytes=-3")
		if r.status != 206 || r.body != "hij" {
			t.Errorf("a suffix range: %d %q", r.status, r.body)
		}
		r = req("GET", "/static/data.bin", "Range", "bytes=50-60")
		if r.status != 416 || r.header.Get("Content-Range") != "bytes */20" {
			t.Errorf("a range past the end: %d %q", r.status, r.header.Get("Content-Range"))
		}
	})

	t.Run("precompressed siblings", func(t *testing.T) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		io.WriteString(zw, css)
		zw.Close()
		for _, c := range []struct{ accept, encoding, body string }{
			{"gzip", "gzip", gz.String()},
			{"gzip, br", "br", "not really brotli, but what a client asking for br gets"},
			{"br;q=0.5, gzip", "gzip", gz.String()},
			{"br;q=0, gzip;q=0", "", css},
			{"deflate", "", css},
			{"*", "br", "not really brotli, but what a client asking for br gets"},
		} {
			r := req("GET", "/static/style.css", "Accept-Encoding", c.accept)
			if r.status != 200 || r.header.Get("Content-Encoding") != c.encoding || r.body != c.body ||
				r.header.Get("Vary") != "Accept-Encoding" || r.header.Get("Content-Type") != "text/css; charset=utf-8" {
				t.Errorf("Accept-Encoding %q: %d, Content-Encoding %q, Vary %q, type %q, %d bytes", c.accept, r.status,
					r.header.Get("Content-Encoding"), r.header.Get("Vary"), r.header.Get("Content-Type"), len(r.body))
			}
			if c.encoding != "" && r.header.Get("ETag") == etag {
				t.Errorf("Accept-Encoding %q: the %s body has the plain file's ETag", c.accept, c.encoding)
			}
		}
		if r := req("GET", "/static/data.bin", "Accept-Encoding", "gzip"); r.header.Get("Vary") != "" || r.header.Get("Content-Encoding") != "" {
			t.Errorf("a file without siblings: Vary %q, Content-Encoding %q", r.header.Get("Vary"), r.header.Get("Content-Encoding"))
		}
	})

	t.Run("hostile and missing paths", func(t *testing.T) {
		for _, c := range []struct {
			target string
			status int
		}{
			{"/site/static/../secret.py", 400},
			{"/site/static/%2e%2e/secret.py", 400},
			{"/site/static/%2E%2E/secret.py", 400},
			{"/site/static/..%2fsecret.py", 400},
			{"/site/static/sub%2f..%2f..%2fsecret.py", 400},
			{"/site/static/..%5csecret.py", 400},
			{`/site/static/..\secret.py`, 400},
			{"/site/static/sub/./page.html", 400},
			{"/site/static/style.css%00.png", 400},
			{"/site/static/%c0%ae%c0%ae/secret.py", 400}, // overlong UTF-8 for ".."
			{"/site/static/" + strings.Repeat("a", 300) + ".css", 404},
			{"/site/static/" + strings.Repeat("a/", 3000) + "x", 404},
			{"/site/static/" + strings.Repeat("a", 9000), 414},
			{"/site/static/.secret", 404},
			{"/site/static/sub/deeper/.hidden.txt", 404},
			{"/site/static/link-out", 404},
			{"/site/static/nope.css", 404},
			{"/site/static/sub", 404},
			{"/site/static/sub/", 404},
			{"/site/static/", 404},
			{"/site/static", 404},
			{"/site/static//style.css", 404},
			{"/site/favicon.ico/x", 200}, // not below a file: the app's
		} {
			status, body := rawGet(t, s.Addr, c.target)
			if status != c.status {
				t.Errorf("GET %.80s: %d, want %d (%.80q)", c.target, status, c.status, body)
			}
			if strings.Contains(body, "never served") || strings.Contains(body, "root:x") || strings.Contains(body, "page.html") {
				t.Errorf("GET %.80s showed %.80q", c.target, body)
			}
		}
		if r := req("POST", "/static/style.css"); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST: %d, Allow %q", r.status, r.header.Get("Allow"))
		}
	})

	t.Run("the app keeps every other path", func(t *testing.T) {
		for _, p := range []string{"/", "/staticx/style.css", "/favicon.ico/x", "/other"} {
			if r := req("GET", p); r.status != 200 || r.body != "app saw "+p {
				t.Errorf("GET %s: %d %q", p, r.status, r.body)
			}
		}
	})

	t.Run("static hits never reach the app, and are labelled", func(t *testing.T) {
		// An access log line is written once its response is out: wait for the last.
		s.WaitLog(t, `handler=app method=GET path=/site/other status=200`)
		log := s.Log()
		if strings.Contains(log, "app saw /static/") || strings.Contains(log, `"app saw /favicon.ico" `) {
			t.Errorf("a static request reached the app:\n%s", grepLines(log, "app saw"))
		}
		if !strings.Contains(log, `handler=static method=GET path=/site/static/style.css status=200`) ||
			!strings.Contains(log, `handler=app method=GET path=/site/other status=200`) {
			t.Errorf("the access log does not tell static hits from app requests:\n%s", grepLines(log, "msg=request"))
		}
		metrics := get(t, s.Base+"/_wasmwsgi/metrics").body
		for _, want := range []string{
			`wasmwsgi_requests_total{app="site",class="2xx",handler="static"} `,
			`wasmwsgi_requests_total{app="site",class="4xx",handler="static"} `,
			`wasmwsgi_requests_total{app="site",class="2xx",handler="app"} `,
			`wasmwsgi_request_duration_seconds_count{app="site",handler="static"} `,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "wasmwsgi_requests_total"))
			}
		}
	})
}

// The operator turns static files off server-wide (flag, variable) or for one app (its
// grant); the app then answers those paths itself.
func TestStaticFilesOff(t *testing.T) {
	apps, css := staticApp(t)
	testkit.WriteFile(t, filepath.Join(apps, "other", "app.py"), `
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"other"]
`)
	testkit.WriteFile(t, filepath.Join(apps, "other", "wasmwsgi.toml"), "[static]\n\"/static\" = \"static\"\n")
	testkit.WriteFile(t, filepath.Join(apps, "other", "static", "x.css"), css)
	conf := testkit.ConfigFile(t, "[apps.site]\nstatic_files = false\n")
	s := testkit.Start(t, apps, "--config", conf)
	if r := get(t, s.Base+"/site/static/style.css"); r.body != "app saw /static/style.css" {
		t.Errorf("[apps.site] static_files = false: the host answered %d %q", r.status, r.body)
	}
	if r := get(t, s.Base+"/other/static/x.css"); r.body != css {
		t.Errorf("another app lost its static files: %d %q", r.status, r.body)
	}
	s.Stop(t)

	s = testkit.Start(t, apps, "--static-files=false")
	for _, p := range []string{"/site/static/style.css", "/other/static/x.css"} {
		if r := get(t, s.Base+p); r.body == css {
			t.Errorf("--static-files=false: the host answered %s", p)
		}
	}
}

// A [static] entry that leaves the app folder or names nothing fails the app's load,
// with the file, the line and the key.
func TestStaticFilesRefused(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{
		"bad/app.py":          "def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n",
		"bad/static/ok.css":   "x",
		"secrets/id_rsa.txt":  "key",
		"bad/wasmwsgi.toml":   "[static]\n\"/ok\" = \"static\"\n\"/up\" = \"../secrets\"\n\"/gone\" = \"missing\"\n\"/link\" = \"out\"\n",
		"good/app.py":         "def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n",
		"good/static/app.css": "x",
		"good/wasmwsgi.toml":  "[static]\n\"/s\" = \"static\"\n",
	})
	if err := os.Symlink(filepath.Join(apps, "secrets"), filepath.Join(apps, "bad", "out")); err != nil {
		t.Fatal(err)
	}
	out, _, code := runBinary(t, "check", apps)
	if code != 1 {
		t.Errorf("check exited %d, want 1", code)
	}
	file := filepath.Join(apps, "bad", "wasmwsgi.toml")
	for _, want := range []string{
		file + `, line 3: [static] "/up" = "../secrets": the value points outside the app folder`,
		file + `, line 4: [static] "/gone" = "missing": the value names nothing in the app folder`,
		file + `, line 5: [static] "/link" = "out": the value leaves the app folder through a symbolic link`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^good +ready`).MatchString(out) {
		t.Errorf("the good app did not load:\n%s", out)
	}
}
