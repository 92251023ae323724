package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// These tests build the real binary (python.wasm embedded), start it on a loopback port
// and talk HTTP to it (testkit).

func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }

type response struct {
	status int
	header http.Header
	body   string
	err    error // error while reading the body
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(body), err}
}

func get(t *testing.T, url string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func echoOf(t *testing.T, r response) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %q", r.status, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("echo body %q: %v", r.body, err)
	}
	return m
}

func testApps(t *testing.T) string {
	dir, err := filepath.Abs("testdata/apps")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// testAppsGrants are the flags that give testApps the operator's grants of
// testdata/apps.toml (the virtual host of the vhost app).
func testAppsGrants(t *testing.T) []string {
	file, err := filepath.Abs("testdata/apps.toml")
	if err != nil {
		t.Fatal(err)
	}
	return []string{"--config", file}
}

func TestServeWSGI(t *testing.T) {
	s := testkit.Start(t, testApps(t), testAppsGrants(t)...)
	app := s.Base + "/wsgitest"

	t.Run("GET environ", func(t *testing.T) {
		m := echoOf(t, get(t, app+"/echo?a=1&b=%20x"))
		want := map[string]any{
			"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/wsgitest", "PATH_INFO": "/echo",
			"QUERY_STRING": "a=1&b=%20x", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
			"REMOTE_ADDR": "127.0.0.1", "SERVER_NAME": "127.0.0.1", "body": "",
			"wsgi.multithread": false, "wsgi.multiprocess": true, "wsgi.run_once": true,
			"environ_is_dict": true,
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("environ[%q] = %#v, want %#v", k, m[k], v)
			}
		}
		if v, ok := m["wsgi.version"].([]any); !ok || len(v) != 2 || v[0] != 1.0 || v[1] != 0.0 {
			t.Errorf("wsgi.version = %v", m["wsgi.version"])
		}
		if _, ok := m["CONTENT_LENGTH"]; ok {
			t.Errorf("GET without a body has CONTENT_LENGTH %v", m["CONTENT_LENGTH"])
		}
		if !strings.HasPrefix(m["HTTP_HOST"].(string), "127.0.0.1:") || m["SERVER_PORT"] == "" {
			t.Errorf("HTTP_HOST %v SERVER_PORT %v", m["HTTP_HOST"], m["SERVER_PORT"])
		}
	})

	t.Run("path decoding", func(t *testing.T) {
		m := echoOf(t, get(t, app+"/caf%C3%A9"))
		// PEP 3333: the percent-decoded bytes, each byte one latin-1 character.
		if m["PATH_INFO"] != "/caf\u00c3\u00a9" {
			t.Errorf("PATH_INFO = %q, want %q", m["PATH_INFO"], "/caf\u00c3\u00a9")
		}
		if m["REQUEST_URI"] != "/wsgitest/caf%C3%A9" {
			t.Errorf("REQUEST_URI = %q", m["REQUEST_URI"])
		}
		m = echoOf(t, get(t, app))
		if m["SCRIPT_NAME"] != "/wsgitest" || m["PATH_INFO"] != "" {
			t.Errorf("bare prefix: SCRIPT_NAME %q PATH_INFO %q", m["SCRIPT_NAME"], m["PATH_INFO"])
		}
		if r := get(t, s.Base+"/wsgitestx/echo"); r.status != http.StatusNotFound {
			t.Errorf("/wsgitestx matched the /wsgitest mount: %d", r.status)
		}
	})

	t.Run("headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, app+"/echo", nil)
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		req.Header["X_Spoofed"] = []string{"evil"}
		req.Header.Set("X-Latin", "caf\xe9")
		m := echoOf(t, do(t, req))
		if m["HTTP_X_MULTI"] != "a,b" {
			t.Errorf("HTTP_X_MULTI = %q, want a,b", m["HTTP_X_MULTI"])
		}
		if _, ok := m["HTTP_X_SPOOFED"]; ok {
			t.Error("a header with an underscore reached the app")
		}
		if m["HTTP_X_LATIN"] != "caf\u00e9" {
			t.Errorf("HTTP_X_LATIN = %q", m["HTTP_X_LATIN"])
		}
	})

	t.Run("POST with Content-Length", func(t *testing.T) {
		body := strings.Repeat("0123456789", 20000) // 200 kB: several input_read calls
		req, _ := http.NewRequest(http.MethodPost, app+"/echo", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		m := echoOf(t, do(t, req))
		if m["body"] != body || m["CONTENT_LENGTH"] != "200000" || m["CONTENT_TYPE"] != "text/plain" {
			t.Errorf("body %d bytes, CONTENT_LENGTH %v, CONTENT_TYPE %v", len(m["body"].(string)), m["CONTENT_LENGTH"], m["CONTENT_TYPE"])
		}
		if _, ok := m["HTTP_CONTENT_LENGTH"]; ok {
			t.Error("HTTP_CONTENT_LENGTH present")
		}
	})

	t.Run("POST chunked", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < 3; i++ {
				fmt.Fprintf(pw, "part%d;", i)
				time.Sleep(10 * time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, app+"/echo", pr)
		req.TransferEncoding = []string{"chunked"}
		m := echoOf(t, do(t, req))
		if m["body"] != "part0;part1;part2;" {
			t.Errorf("chunked body = %q", m["body"])
		}
		if _, ok := m["CONTENT_LENGTH"]; ok {
			t.Errorf("chunked request has CONTENT_LENGTH %v", m["CONTENT_LENGTH"])
		}
		if m["wsgi.input_terminated"] != true {
			t.Error("wsgi.input_terminated is not True")
		}
	})

	t.Run("readline and iteration", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, app+"/lines", strings.NewReader("first\nsecond\nthird\nlast"))
		r := do(t, req)
		want := `["first\n", "sec", ["ond\n", "third\n", "last"], ""]`
		if r.body != want {
			t.Errorf("lines = %s, want %s", r.body, want)
		}
	})

	t.Run("streamed response", func(t *testing.T) {
		r := get(t, app+"/stream")
		if r.status != 200 || r.body != "one\ntwo\nthree\n" {
			t.Errorf("stream: %d %q", r.status, r.body)
		}
		if r.header.Get("Content-Length") != "" {
			t.Errorf("multi-chunk response has Content-Length %q; want chunked", r.header.Get("Content-Length"))
		}
	})

	t.Run("write callable", func(t *testing.T) {
		r := get(t, app+"/write")
		if r.status != 200 || r.body != "0123456789" {
			t.Errorf("write(): %d %q", r.status, r.body)
		}
	})

	t.Run("close called", func(t *testing.T) {
		token := fmt.Sprintf("tok%d", time.Now().UnixNano())
		r := get(t, app+"/close?"+token)
		if r.body != "closing body" {
			t.Errorf("body %q", r.body)
		}
		s.WaitLog(t, "close-called token="+token)
		if n := strings.Count(s.Log(), "close-called token="+token); n != 1 {
			t.Errorf("close() logged %d times, want 1", n)
		}
	})

	t.Run("exc_info replaces headers not yet sent", func(t *testing.T) {
		r := get(t, app+"/excinfo")
		if r.status != 500 || r.body != "replaced" || r.header.Get("X-First") != "" {
			t.Errorf("got %d %q X-First=%q; want 500 \"replaced\" without X-First", r.status, r.body, r.header.Get("X-First"))
		}
	})

	t.Run("single chunk gets Content-Length", func(t *testing.T) {
		r := get(t, app+"/counter")
		if r.header.Get("Content-Length") != "1" {
			t.Errorf("Content-Length %q, want 1", r.header.Get("Content-Length"))
		}
	})

	t.Run("failures before headers are 500", func(t *testing.T) {
		for _, p := range []string{"/raise", "/str", "/not-iterable", "/header-injection", "/status-injection", "/no-start-response"} {
			r := get(t, app+p)
			if r.status != http.StatusInternalServerError {
				t.Errorf("%s: status %d, want 500", p, r.status)
			}
			if r.body != "Internal Server Error\n" {
				t.Errorf("%s: body %q leaks app output", p, r.body)
			}
			if r.header.Get("X-Bad") != "" || r.header.Get("Set-Cookie") != "" {
				t.Errorf("%s: injected header reached the client", p)
			}
			// The next request works.
			if r := get(t, app+"/counter"); r.status != 200 {
				t.Errorf("after %s: next request got %d", p, r.status)
			}
		}
		if !strings.Contains(s.Log(), "secret-traceback-text") {
			t.Error("the traceback of /raise is not in the server log")
		}
	})

	t.Run("failure after headers aborts", func(t *testing.T) {
		r := get(t, app+"/raise-late")
		if r.err == nil {
			t.Errorf("client read a complete response %q; want a truncated one", r.body)
		}
		if !strings.HasPrefix(r.body, "partial") {
			t.Errorf("body %q", r.body)
		}
	})

	t.Run("no state between requests", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if r := get(t, app+"/counter"); r.body != "1" {
				t.Fatalf("request %d: counter = %q, want 1", i, r.body)
			}
		}
	})

	t.Run("no request sees another's data", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			r := get(t, fmt.Sprintf("%s/leak?token%d", app, i))
			want := `{"stash": [], "environ": null, "builtins": null, "buffer": ""}`
			if r.body != want {
				t.Fatalf("request %d saw %s", i, r.body)
			}
		}
	})

	t.Run("real entropy and clocks", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 3; i++ {
			var e struct {
				Urandom string
				Random  float64
				Time    float64
			}
			if err := json.Unmarshal([]byte(get(t, app+"/entropy").body), &e); err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("%s/%v", e.Urandom, e.Random)
			if seen[e.Urandom] || seen[key] {
				t.Fatalf("request %d repeated os.urandom or random.random(): %s", i, key)
			}
			seen[e.Urandom], seen[key] = true, true
			if d := time.Since(time.Unix(int64(e.Time), 0)); d < -time.Minute || d > time.Minute {
				t.Errorf("guest time.time() is %v off the host clock", d)
			}
		}
	})

	t.Run("wsgi file and virtual host", func(t *testing.T) {
		if r := get(t, s.Base+"/wsgifile/"); r.body != "from a .wsgi file" {
			t.Errorf("wsgifile: %d %q", r.status, r.body)
		}
		req, _ := http.NewRequest(http.MethodGet, s.Base+"/some/path", nil)
		req.Host = "tenant.example"
		if r := do(t, req); r.body != "vhost tenant.example script='' path='/some/path'" {
			t.Errorf("vhost: %d %q", r.status, r.body)
		}
		if r := get(t, s.Base+"/vhost/"); r.status != http.StatusNotFound {
			t.Errorf("vhost app is also served by path: %d", r.status)
		}
	})
}

func TestTimeLimit(t *testing.T) {
	s := testkit.Start(t, testApps(t), "--timeout", "1s")
	for _, p := range []string{"/wsgitest/sleep?60", "/wsgitest/spin"} {
		start := time.Now()
		r := get(t, s.Base+p)
		if r.status != http.StatusGatewayTimeout {
			t.Errorf("%s: status %d, want 504", p, r.status)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: took %v with a 1s limit", p, d)
		}
	}
	if r := get(t, s.Base+"/wsgitest/sleep?0.01"); r.status != 200 || r.body != "woke up" {
		t.Errorf("short sleep: %d %q", r.status, r.body)
	}
	if !strings.Contains(s.Log(), "time limit of 1s exceeded") {
		t.Error("the log does not say which limit fired")
	}
}

// TestClientDisconnect hangs up in the middle of requests. A client that goes away is
// the client's doing: the request is logged at info with its id, shows 499 in the
// access log and counts in wasmwsgi_client_disconnects_total, not as a trap, a timeout
// or a 5xx. A real trap and a real timeout on the same server still count as those.
func TestClientDisconnect(t *testing.T) {
	s := testkit.Start(t, testApps(t), "--timeout", "4s")
	send := func(t *testing.T, id, path string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\n\r\n", path, id)
		return c, bufio.NewReader(c)
	}
	// linesOf returns the server's log lines about request id, once its access log
	// line is there.
	linesOf := func(t *testing.T, id string) []string {
		t.Helper()
		s.WaitLog(t, "msg=request request_id="+id+" ")
		var lines []string
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, "request_id="+id+" ") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	checkGone := func(t *testing.T, id, path string) {
		t.Helper()
		var gone, access bool
		for _, l := range linesOf(t, id) {
			switch {
			case strings.Contains(l, `msg="client went away: request abandoned"`):
				gone = true
				if !strings.Contains(l, "level=INFO") {
					t.Errorf("the disconnect is not logged at info: %s", l)
				}
			case strings.Contains(l, "msg=request "):
				access = true
				if !strings.Contains(l, "path="+path+" status=499 ") {
					t.Errorf("access log line without status 499: %s", l)
				}
			case strings.Contains(l, "level=ERROR") && !strings.Contains(l, "stream=wsgi.errors"),
				strings.Contains(l, "level=WARN"):
				// The app's own traceback (its write failed) is its output; the
				// server has nothing to warn about.
				t.Errorf("the disconnect is logged as a failure: %s", l)
			}
		}
		if !gone || !access {
			t.Errorf("log lines of %s: disconnect logged %v, access logged %v", id, gone, access)
		}
	}

	t.Run("busy loop before the response", func(t *testing.T) {
		c, _ := send(t, "gone-spin", "/wsgitest/spin")
		time.Sleep(300 * time.Millisecond)
		start := time.Now()
		c.Close()
		checkGone(t, "gone-spin", "/wsgitest/spin")
		// Stopped about the disconnect grace (1 s) later, well before the 4 s limit.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the instance ran %v after the client left", d)
		}
	})

	t.Run("slow generator after the response started", func(t *testing.T) {
		c, br := send(t, "gone-stream", "/wsgitest/close?gone-stream&slow")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		first := make([]byte, len("tick 0\n"))
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "tick 0\n" {
			t.Fatalf("status %d, first chunk %q (%v)", resp.StatusCode, first, err)
		}
		c.Close()
		checkGone(t, "gone-stream", "/wsgitest/close?gone-stream&slow")
		s.WaitLog(t, "close-called token=gone-stream")
	})

	metrics := get(t, s.Base+"/_wasmwsgi/metrics").body
	for _, want := range []string{
		`wasmwsgi_client_disconnects_total{app="wsgitest"} 2` + "\n",
		`wasmwsgi_requests_total{app="wsgitest",class="4xx",handler="app"} 2` + "\n",
		`wasmwsgi_traps_total{app="wsgitest"} 0` + "\n",
		`wasmwsgi_timeouts_total{app="wsgitest"} 0` + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("after the disconnects, metrics lack %q", want)
		}
	}
	for _, unwanted := range []string{`app="wsgitest",class="5xx"`, `app="wsgitest",class="aborted"`} {
		if strings.Contains(metrics, unwanted) {
			t.Errorf("a disconnect counted as %s", unwanted)
		}
	}

	// What the app does still counts as before: a trap (the guest exits) and a request
	// past the time limit, both with their request id in the log.
	for _, c := range []struct{ id, path, reason string }{
		{"trap-exit", "/wsgitest/exit", "the guest exited with code 3"},
		{"time-limit", "/wsgitest/spin", "time limit of 4s exceeded"},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.Base+c.path, nil)
		req.Header.Set("X-Request-Id", c.id)
		r := do(t, req)
		if r.status != 500 && r.status != 504 {
			t.Errorf("%s: status %d", c.path, r.status)
		}
		failed := false
		for _, l := range linesOf(t, c.id) {
			failed = failed || strings.Contains(l, "level=ERROR msg=\"request failed\"") && strings.Contains(l, c.reason)
		}
		if !failed {
			t.Errorf("%s: no error line with request_id=%s and %q", c.path, c.id, c.reason)
		}
	}
	metrics = get(t, s.Base+"/_wasmwsgi/metrics").body
	for _, want := range []string{
		`wasmwsgi_traps_total{app="wsgitest"} 1` + "\n",
		`wasmwsgi_timeouts_total{app="wsgitest"} 1` + "\n",
		`wasmwsgi_requests_total{app="wsgitest",class="5xx",handler="app"} 2` + "\n",
		`wasmwsgi_client_disconnects_total{app="wsgitest"} 2` + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("after a trap and a timeout, metrics lack %q", want)
		}
	}
}

func TestBrokenApps(t *testing.T) {
	s := testkit.Start(t, testApps(t))
	resp, err := http.Get(s.Base + "/_wasmwsgi/ready")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct {
		Ready bool
		Apps  map[string]struct{ State, Error string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := map[string]string{
		"wsgitest":      "ready",
		"broken-syntax": "failed", "broken-import": "failed",
		"no-entrypoint": "failed", "badconfig": "failed",
	}
	for name, state := range want {
		if got := ready.Apps[name].State; got != state {
			t.Errorf("app %s: state %q, want %q", name, got, state)
		}
	}
	if e := ready.Apps["broken-import"].Error; !strings.Contains(e, "ModuleNotFoundError") {
		t.Errorf("ready names the broken-import error as %q", e)
	}
	if e := ready.Apps["badconfig"].Error; !strings.Contains(e, "prefixx") {
		t.Errorf("ready does not name the unknown key: %q", e)
	}
	for _, p := range []string{"/broken-syntax/", "/broken-import/x", "/no-entrypoint/", "/badconfig/"} {
		r := get(t, s.Base+p)
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", p, r.status)
		}
	}
	log := s.Log()
	for _, want := range []string{
		"SyntaxError", "broken-syntax", // the traceback and the folder
		"No module named 'module_that_does_not_exist'",
		"has no app.py, wsgi.py, *.wsgi file or Django manage.py",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("server log lacks %q", want)
		}
	}
	// The healthy app is unaffected.
	if r := get(t, s.Base+"/wsgitest/counter"); r.status != 200 {
		t.Errorf("healthy app: %d", r.status)
	}
}

func TestTrustedProxies(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "wasmwsgi.toml")
	if err := os.WriteFile(cfg, []byte("trusted_proxies = [\"127.0.0.1\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	proxied := testkit.Start(t, testApps(t), "--config", cfg)
	direct := testkit.Start(t, testApps(t))
	for _, s := range []*testkit.Server{proxied, direct} {
		req, _ := http.NewRequest(http.MethodGet, s.Base+"/wsgitest/echo", nil)
		req.Header.Set("X-Forwarded-For", "198.51.100.9, 203.0.113.7")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "shop.example")
		m := echoOf(t, do(t, req))
		got := fmt.Sprint(m["REMOTE_ADDR"], " ", m["wsgi.url_scheme"], " ", m["HTTP_HOST"], " ", m["SERVER_NAME"])
		want := "203.0.113.7 https shop.example shop.example"
		if s == direct {
			want = fmt.Sprintf("127.0.0.1 http %s 127.0.0.1", strings.TrimPrefix(s.Base, "http://"))
		}
		if got != want {
			t.Errorf("trusted=%v: got %q, want %q", s == proxied, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	s := testkit.Start(t, testApps(t), "--validate")
	// wsgiref.validate requires read(size): the echo route's read() fails under it.
	if r := get(t, s.Base+"/wsgitest/echo"); r.status != 500 {
		t.Errorf("a PEP 3333 violation passed wsgiref.validate: %d", r.status)
	}
	s.WaitLog(t, "AssertionError")
	for _, p := range []string{"/wsgitest/stream", "/wsgitest/write", "/wsgitest/counter", "/wsgitest/close?validated", "/wsgitest/file-wrapper"} {
		if r := get(t, s.Base+p); r.status != 200 {
			t.Errorf("%s under wsgiref.validate: %d", p, r.status)
		}
	}
}

func TestHelloApp(t *testing.T) {
	apps, grants := testkit.BundledApps(t, "")
	s := testkit.Start(t, apps, append(grants, "--validate")...)
	r := get(t, s.Base+"/hello/")
	if r.status != 200 || !strings.HasPrefix(r.body, "Hello, world!") || !strings.Contains(r.body, "on wasi") {
		t.Fatalf("hello: %d %q", r.status, r.body)
	}
	var info map[string]string
	if err := json.Unmarshal([]byte(get(t, s.Base+"/hello/info").body), &info); err != nil {
		t.Fatal(err)
	}
	if info["platform"] != "wasi" {
		t.Errorf("sys.platform = %q, want wasi", info["platform"])
	}
	for i := 0; i < 3; i++ {
		if r := get(t, s.Base+"/hello/counter"); r.body != "1" {
			t.Fatalf("counter = %q on request %d, want 1", r.body, i)
		}
	}
	if r := get(t, s.Base+"/_wasmwsgi/healthz"); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if log := s.Log(); strings.Contains(log, "WSGIWarning") || strings.Contains(log, "AssertionError") {
		t.Errorf("wsgiref.validate complained:\n%s", log)
	}
	if !regexp.MustCompile(`app=hello handler=app method=GET path=/hello/counter status=200 bytes=1 duration=\S+ guest_time=\S+ peak_memory=\d+`).MatchString(s.Log()) {
		t.Error("the access log lacks guest_time and peak_memory")
	}
	metrics := get(t, s.Base+"/_wasmwsgi/metrics").body
	for _, want := range []string{
		`wasmwsgi_requests_total{app="hello",class="2xx",handler="app"} 5`,
		`wasmwsgi_request_duration_seconds_count{app="hello",handler="app"} 5`,
		`wasmwsgi_instances_running{app="hello"} 0`,
		`wasmwsgi_guest_seconds_count{app="hello"} 5`,
		`wasmwsgi_peak_memory_bytes_count{app="hello"} 5`,
		`wasmwsgi_traps_total{app="hello"} 0`,
		`wasmwsgi_limit_hits_total{app="hello",limit="queue"} 0`,
		"process_resident_memory_bytes", "go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Sequential requests reuse the pre-warmed instance (or one made before it was).
	if !regexp.MustCompile(`wasmwsgi_instances_idle\{app="hello"\} [12]\n`).MatchString(metrics) {
		t.Errorf("metrics lack wasmwsgi_instances_idle for hello with 1 or 2 instances")
	}
	// The first instances of a new server map the snapshot: no instance closed yet.
	if !regexp.MustCompile(`wasmwsgi_instances_made_total\{app="hello",memory="mapped"\} [12]\n`).MatchString(metrics) ||
		!strings.Contains(metrics, `wasmwsgi_instances_made_total{app="hello",memory="spare"} 0`) {
		t.Errorf("metrics lack wasmwsgi_instances_made_total for hello: 1 or 2 mapped, none over a spare")
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(testkit.Binary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "wasmwsgi ") || !strings.Contains(string(out), "CPython 3.11.") {
		t.Errorf("version output %q", out)
	}
	// The binary is built through the go.work of `make wazero`: it names the patched
	// wazero's folder, which keys its compilation cache (runtime.WazeroBuild).
	root, err := testkit.Root()
	if err != nil {
		t.Fatal(err)
	}
	work, err := os.ReadFile(filepath.Join(root, "go.work"))
	if err != nil {
		t.Fatalf("no go.work at the repo root (%v): run `make wazero`", err)
	}
	m := regexp.MustCompile(`(?m)^replace github.com/tetratelabs/wazero \S+ => (\S+)$`).FindSubmatch(work)
	if m == nil {
		t.Fatalf("go.work does not replace wazero:\n%s", work)
	}
	if want := "\nengine " + filepath.Base(string(m[1])) + "\n"; !strings.Contains(string(out), want) {
		t.Errorf("version output %q lacks %q", out, want)
	}
}

func TestBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(cfg, []byte("adr = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testkit.Binary(t), "serve", "--config", cfg).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("serve with an unknown key: %v, %s", err, out)
	}
	if !strings.Contains(string(out), "adr") {
		t.Errorf("the error does not name the key: %s", out)
	}
}

func TestSnapshotCache(t *testing.T) {
	apps, cache := filepath.Join(t.TempDir(), "apps"), t.TempDir()
	src, err := os.ReadFile("../../apps/hello/app.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(apps, "hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(content string) {
		if err := os.WriteFile(filepath.Join(apps, "hello", "app.py"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	serveOnce := func(wantCached bool, wantBody string) {
		t.Helper()
		s := testkit.Start(t, apps, "--cache-dir", cache)
		// The log reaches the test through a pipe: wait for the line that follows the
		// restore or the import before looking for the restore.
		s.WaitLog(t, `msg="app ready" app=hello`)
		if cached := strings.Contains(s.Log(), "snapshot restored from the cache"); cached != wantCached {
			t.Errorf("restored from the cache: %v, want %v", cached, wantCached)
		}
		if r := get(t, s.Base+"/hello/?name=cache"); !strings.HasPrefix(r.body, wantBody) {
			t.Errorf("body %q, want %q", r.body, wantBody)
		}
		for i := 0; i < 2; i++ {
			if r := get(t, s.Base+"/hello/counter"); r.body != "1" {
				t.Errorf("counter %q after a cached start", r.body)
			}
		}
		s.Stop(t)
	}
	write(string(src))
	serveOnce(false, "Hello, cache!")
	serveOnce(true, "Hello, cache!")
	// Any change to the app's files makes a new snapshot.
	write(strings.Replace(string(src), "Hello, %s!", "Howdy, %s!", 1))
	serveOnce(false, "Howdy, cache!")
	if snaps, _ := filepath.Glob(filepath.Join(cache, "snapshots", "hello-*.mem")); len(snaps) != 1 {
		t.Errorf("cached snapshots: %v, want only the newest", snaps)
	}
}

// TestReadyBeforeRestoredApps: a restart reports ready before it loads the app an
// earlier start loaded with the same cache, loads it right after, and a request sent
// at ready is answered by it; with check_before_ready, ready waits for the app.
func TestReadyBeforeRestoredApps(t *testing.T) {
	apps, cache := filepath.Join(t.TempDir(), "apps"), t.TempDir()
	testkit.WriteFile(t, filepath.Join(apps, "early", "app.py"), `
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"early"]
`)
	start := func(flags ...string) *testkit.Server {
		return testkit.StartWith(t, testkit.Config{Args: append([]string{"serve", apps, "--cache-dir", cache}, flags...),
			ReadyOnly: true})
	}
	s := start()
	if strings.Contains(s.Log(), "after ready") {
		t.Errorf("a first start left an app for after ready:\n%s", s.Log())
	}
	s.Stop(t)

	s = start()
	if r := get(t, s.Base+"/early/"); r.status != 200 || r.body != "early" {
		t.Errorf("at ready: %d %q", r.status, r.body)
	}
	s.WaitLog(t, `msg="apps loaded after ready" apps=1 failed=0`)
	log := s.Log()
	marked := strings.Index(log, `msg="loading the apps an earlier start loaded, after ready" apps=1`)
	if loaded := strings.Index(log, `msg="app ready" app=early`); marked < 0 || loaded < marked {
		t.Errorf("the restart did not load the app after ready:\n%s", log)
	}
	s.Stop(t)

	s = start("--check-before-ready")
	if st := readyStates(t, s.Base)["early"]; st.State != "ready" {
		t.Errorf("with --check-before-ready, the app is %q at ready", st.State)
	}
	if strings.Contains(s.Log(), "after ready") {
		t.Errorf("with --check-before-ready, an app was left for after ready:\n%s", s.Log())
	}
}

// TestSharedSnapshot serves three byte-identical copies of an app, the third with
// share_snapshot = false in its grant, and checks what shared snapshot pages promise:
// the two sharing copies have one hash secret and cached snapshots of a few pages
// layered on one base image; the third has a secret of its own and a whole snapshot;
// entropy drawn at import is every copy's own; and a restart from the cache answers
// the same, with the module's state as it was after import.
func TestSharedSnapshot(t *testing.T) {
	apps, cache := filepath.Join(t.TempDir(), "apps"), t.TempDir()
	for _, name := range []string{"c1", "c2", "c3"} {
		testkit.WriteFile(t, filepath.Join(apps, name, "app.py"), `
import os

SALT = os.urandom(16).hex()
HASH = hash("wasmwsgi shared snapshot")
count = 0

def app(environ, start_response):
    global count
    count += 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{HASH} {SALT} {count}".encode()]
`)
	}
	cfg := testkit.ConfigFile(t, "[apps.c3]\nshare_snapshot = false\n")
	answers := func() map[string][]string {
		t.Helper()
		s := testkit.Start(t, apps, "--cache-dir", cache, "--config", cfg)
		got := map[string][]string{}
		for _, name := range []string{"c1", "c2", "c3"} {
			s.WaitLog(t, `msg="app ready" app=`+name)
			for range 2 {
				r := get(t, s.Base+"/"+name+"/")
				f := strings.Fields(r.body)
				if r.status != 200 || len(f) != 3 || f[2] != "1" {
					t.Fatalf("%s answered %d %q, want the hash, the salt and a count of 1", name, r.status, r.body)
				}
				got[name] = f[:2]
			}
		}
		s.Stop(t)
		return got
	}
	first := answers()
	if first["c1"][0] != first["c2"][0] {
		t.Errorf("copies sharing their snapshot have hash secrets of their own: %s, %s", first["c1"][0], first["c2"][0])
	}
	if first["c3"][0] == first["c1"][0] {
		t.Errorf("the copy granted share_snapshot = false has the sharing copies' hash secret")
	}
	if first["c1"][1] == first["c2"][1] || first["c1"][1] == first["c3"][1] || first["c2"][1] == first["c3"][1] {
		t.Errorf("copies drew the same entropy at import: %v", first)
	}
	layered := func(name string) (bool, int64) {
		t.Helper()
		b, err := os.ReadFile(cachedSnapshot(t, cache, name))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.HasPrefix(b, []byte("wasmwsgi layered image v1\n")), int64(len(b))
	}
	for _, name := range []string{"c1", "c2"} {
		if ok, size := layered(name); !ok || size > 1<<20 {
			t.Errorf("%s's cached snapshot: layered %v, %d bytes; want a layered image of under 1 MiB", name, ok, size)
		}
	}
	if ok, _ := layered("c3"); ok {
		t.Error("c3's cached snapshot is layered, though its grant says share_snapshot = false")
	}
	if bases, _ := filepath.Glob(filepath.Join(cache, "snapshots", "_base-*.mem")); len(bases) != 1 {
		t.Errorf("base images: %v, want one for the two sharing copies", bases)
	}
	again := answers()
	for _, name := range []string{"c1", "c2", "c3"} {
		if !slices.Equal(again[name], first[name]) {
			t.Errorf("%s after a restart from the cache: %v, want %v", name, again[name], first[name])
		}
	}
}

// TestSnapshotCacheIsPerTenant gives two tenants their own copy of one framework
// package, changes the copy of one, and checks that only that tenant is imported
// again: the other's cached snapshot, file and content, stays as it was.
func TestSnapshotCacheIsPerTenant(t *testing.T) {
	apps, cache := filepath.Join(t.TempDir(), "apps"), t.TempDir()
	framework := func(tenant, greeting string) {
		t.Helper()
		testkit.WriteFile(t, filepath.Join(apps, tenant, "site-packages", "fw", "__init__.py"),
			"GREETING = "+strconv.Quote(greeting)+"\n")
	}
	for _, tenant := range []string{"a", "b"} {
		testkit.WriteFile(t, filepath.Join(apps, tenant, "app.py"), `
import fw

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [fw.GREETING.encode()]
`)
		framework(tenant, "hello from fw 1.0")
	}
	snapshot := func(tenant string) (string, []byte) {
		t.Helper()
		path := cachedSnapshot(t, cache, tenant)
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return path, content
	}
	serve := func(wantImported []string, want map[string]string) {
		t.Helper()
		s := testkit.Start(t, apps, "--cache-dir", cache)
		s.WaitLog(t, `msg="app ready" app=a`)
		s.WaitLog(t, `msg="app ready" app=b`)
		for tenant, body := range want {
			if r := get(t, s.Base+"/"+tenant+"/"); r.body != body {
				t.Errorf("%s answers %q, want %q", tenant, r.body, body)
			}
		}
		s.Stop(t)
		for _, line := range strings.Split(s.Log(), "\n") {
			if !strings.Contains(line, "snapshot restored from the cache") {
				continue
			}
			for _, tenant := range wantImported {
				if strings.Contains(line, "app="+tenant+" ") {
					t.Errorf("%s was restored from the cache after its framework changed: %s", tenant, line)
				}
			}
		}
	}
	serve([]string{"a", "b"}, map[string]string{"a": "hello from fw 1.0", "b": "hello from fw 1.0"})
	pathA, before := snapshot("a")
	bases := func() map[string]string {
		got := map[string]string{}
		paths, _ := filepath.Glob(filepath.Join(cache, "snapshots", "_base-*.mem"))
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				got[filepath.Base(p)] = fmt.Sprintf("%x", sha256.Sum256(b))
			}
		}
		return got
	}
	baseBefore := bases()
	framework("b", "hello from fw 1.1")
	serve([]string{"b"}, map[string]string{"a": "hello from fw 1.0", "b": "hello from fw 1.1"})
	pathAfter, after := snapshot("a")
	if pathAfter != pathA || !bytes.Equal(after, before) {
		t.Errorf("another tenant's framework change altered a's snapshot: %s (%d bytes) became %s (%d bytes)",
			pathA, len(before), pathAfter, len(after))
	}
	// Both copies shared a base image at first; a's snapshot still reads its pages
	// from it, so the base must be there and unchanged too.
	baseAfter := bases()
	if len(baseBefore) == 0 {
		t.Error("the two copies of one framework release share no base image")
	}
	for name, sum := range baseBefore {
		if baseAfter[name] != sum {
			t.Errorf("base image %s, which a's snapshot reads, is gone or changed after b changed", name)
		}
	}
}

// TestIdenticalCopiesImportOnce serves byte-identical copies of an app and checks that
// one of them is imported and the others take its snapshot, with nothing of it that
// would not have been theirs: no app's name in any snapshot, `random` fresh in every
// request. A copy with one file changed, copies whose warm-up reads entropy and copies
// refused a connection at import import for themselves.
func TestIdenticalCopiesImportOnce(t *testing.T) {
	apps, cache := filepath.Join(t.TempDir(), "apps"), t.TempDir()
	const plain = `
import random

HASH = hash("wasmwsgi one import")
count = 0

def app(environ, start_response):
    global count
    # The warm-up draws from random too.
    number = random.random()
    if environ["PATH_INFO"] != "/warm":
        count += 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{HASH} {count} {number} {GREETING}".encode()]
`
	copies := []string{"copy-alpha-5e1d", "copy-bravo-83c2", "copy-charlie-0a97"}
	for _, name := range append(slices.Clone(copies), "copy-delta-41f0") {
		greeting := "hi"
		if name == "copy-delta-41f0" {
			greeting = "ho"
		}
		testkit.WriteFile(t, filepath.Join(apps, name, "app.py"), plain+"GREETING = '"+greeting+"'\n")
		testkit.WriteFile(t, filepath.Join(apps, name, "wasmwsgi.toml"), "warmup = [\"/warm\"]\n")
	}
	const drawing = `
import os

TOKEN = None

def app(environ, start_response):
    global TOKEN
    TOKEN = TOKEN or os.urandom(8).hex()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [TOKEN.encode()]
`
	for _, name := range []string{"draw-echo-9b3a", "draw-foxtrot-27cc"} {
		testkit.WriteFile(t, filepath.Join(apps, name, "app.py"), drawing)
		testkit.WriteFile(t, filepath.Join(apps, name, "wasmwsgi.toml"), "warmup = [\"/\"]\n")
	}
	// A connection refused at import: a copy granted the destination would have made
	// another import.
	const refused = `
import socket

try:
    socket.create_connection(("127.0.0.1", 9), timeout=1)
    REACHED = "yes"
except OSError:
    REACHED = "no"

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [REACHED.encode()]
`
	for _, name := range []string{"deny-golf-6d21", "deny-hotel-c4e8"} {
		testkit.WriteFile(t, filepath.Join(apps, name, "app.py"), refused)
	}
	own := []string{"copy-delta-41f0", "draw-echo-9b3a", "draw-foxtrot-27cc", "deny-golf-6d21", "deny-hotel-c4e8"}
	all := append(slices.Clone(copies), own...)

	s := testkit.Start(t, apps, "--cache-dir", cache)
	for _, name := range all {
		s.WaitLog(t, `msg="app ready" app=`+name)
	}
	body := map[string][]string{}
	for _, name := range all {
		for range 2 {
			r := get(t, s.Base+"/"+name+"/")
			if r.status != 200 {
				t.Fatalf("%s answered %d %q", name, r.status, r.body)
			}
			body[name] = append(body[name], r.body)
		}
	}
	s.Stop(t)
	log := s.Log()

	takenIn := func(log, name string) bool {
		return regexp.MustCompile(`msg="snapshot taken from the import of an identical copy; [^"]*" app=` + name + ` `).MatchString(log)
	}
	taken := func(name string) bool { return takenIn(log, name) }
	var imported []string
	for _, name := range copies {
		if !taken(name) {
			imported = append(imported, name)
		}
	}
	if len(imported) != 1 {
		t.Errorf("copies imported: %v, want one, the others taking its snapshot", imported)
	}
	for _, name := range own {
		if taken(name) {
			t.Errorf("%s took a copy's snapshot", name)
		}
	}
	fields := func(name string, i int) []string {
		f := strings.Fields(body[name][i])
		if len(f) != 4 || f[1] != "1" {
			t.Fatalf("%s answered %q, want the hash, a count of 1, a random number and a greeting", name, body[name][i])
		}
		return f
	}
	seen := map[string]string{}
	for _, name := range append(slices.Clone(copies), "copy-delta-41f0") {
		for i := range 2 {
			f := fields(name, i)
			if other, ok := seen[f[2]]; ok {
				t.Errorf("%s and %s drew the same random number %s", name, other, f[2])
			}
			seen[f[2]] = name
		}
	}
	if a, b := fields(copies[0], 0), fields(copies[2], 0); a[0] != b[0] {
		t.Errorf("identical copies hash differently: %s, %s", a[0], b[0])
	}
	echo, fox := body["draw-echo-9b3a"], body["draw-foxtrot-27cc"]
	if echo[0] != echo[1] || fox[0] != fox[1] || echo[0] == fox[0] {
		t.Errorf("tokens drawn at warm-up: %v and %v; want one for each copy, the same in each of its requests", echo, fox)
	}

	leader := filepath.Join(cache, "snapshots", imported[0])
	snapOf := func(name string) os.FileInfo {
		t.Helper()
		st, err := os.Stat(cachedSnapshot(t, cache, name))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, name := range copies {
		if !os.SameFile(snapOf(name), snapOf(imported[0])) {
			t.Errorf("%s's cached snapshot is not the file %s imported into (%s)", name, imported[0], leader)
		}
	}
	files, _ := filepath.Glob(filepath.Join(cache, "snapshots", "*.mem"))
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range all {
			if bytes.Contains(b, []byte(name)) {
				t.Errorf("the snapshot file %s holds the name of app %s", filepath.Base(path), name)
			}
		}
	}

	// A copy added to the server once its copies were restored from the cache takes
	// the snapshot they offer; a new copy of an app that drew entropy imports.
	s = testkit.Start(t, apps, "--cache-dir", cache)
	for _, name := range all {
		s.WaitLog(t, `msg="app ready" app=`+name)
	}
	later := "copy-kilo-77aa"
	testkit.WriteFile(t, filepath.Join(apps, later, "app.py"), plain+"GREETING = 'hi'\n")
	testkit.WriteFile(t, filepath.Join(apps, later, "wasmwsgi.toml"), "warmup = [\"/warm\"]\n")
	testkit.WriteFile(t, filepath.Join(apps, "draw-lima-5c0e", "app.py"), drawing)
	testkit.WriteFile(t, filepath.Join(apps, "draw-lima-5c0e", "wasmwsgi.toml"), "warmup = [\"/\"]\n")
	s.WaitLog(t, `msg="app ready" app=`+later)
	s.WaitLog(t, `msg="app ready" app=draw-lima-5c0e`)
	r := get(t, s.Base+"/"+later+"/")
	lima := get(t, s.Base+"/draw-lima-5c0e/")
	s.Stop(t)
	if f := strings.Fields(r.body); r.status != 200 || len(f) != 4 || f[1] != "1" || f[3] != "hi" {
		t.Errorf("%s answered %d %q", later, r.status, r.body)
	}
	if !takenIn(s.Log(), later) {
		t.Errorf("%s, added to the running server, did not take its copies' snapshot", later)
	} else if !os.SameFile(snapOf(later), snapOf(imported[0])) {
		t.Errorf("%s's cached snapshot is not the file its copies share", later)
	}
	if takenIn(s.Log(), "draw-lima-5c0e") || lima.body == echo[0] || lima.body == fox[0] {
		t.Errorf("a new copy of the app that draws a token at warm-up took a copy's snapshot (token %q)", lima.body)
	}
}

// cachedSnapshot returns the path of app name's snapshot in the cache folder cache,
// and fails unless there is exactly one.
func cachedSnapshot(t *testing.T, cache, name string) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(cache, "snapshots", name+"-*.mem"))
	if len(paths) != 1 {
		t.Fatalf("cached snapshots of %s: %v, want one", name, paths)
	}
	return paths[0]
}
