package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// An app that lists no warmup paths is warmed up with GET / before its snapshot, with
// no network, and the warm-up is kept only when the app's own state did not change and
// it answered below 500 the same way every time; otherwise the snapshot is taken
// without it and the log says why. warmup = [] turns it off.
func TestAutomaticWarmup(t *testing.T) {
	// GET / imports a module lazily; /seen tells whether a request before this one did.
	const lazy = `import sys
def app(environ, start_response):
    if environ["PATH_INFO"] == "/":
        import json  # noqa: F401
    body = b"json imported before: %s" % str("json" in sys.modules).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
`
	files := map[string]string{
		"lazy/app.py":          lazy,
		"off/app.py":           lazy,
		"off/wasmwsgi.toml":    "warmup = []\n",
		"listed/app.py":        lazy,
		"listed/wasmwsgi.toml": "warmup = [\"/other\"]\n",
		"counter/app.py": `n = 0
def app(environ, start_response):
    global n
    n += 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"count %d" % n]
`,
		"append/app.py": `calls = []
def app(environ, start_response):
    calls.append(environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"calls %d" % len(calls)]
`,
		"varies/app.py": `import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.urandom(8).hex().encode()]
`,
		"net/app.py": `import socket
def app(environ, start_response):
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    except OSError:
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"tried"]
`,
		"fails/app.py": `def app(environ, start_response):
    if environ["PATH_INFO"] == "/":
        raise RuntimeError("not on the first request")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fine"]
`,
		"missing/app.py": `import json
def app(environ, start_response):
    if environ["PATH_INFO"] == "/":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"nothing here"]
    import sys
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`,
	}
	// Each run's apps are new to the snapshot cache, so every one is imported and
	// warmed up here, and logs its reason.
	for name, src := range files {
		if strings.HasSuffix(name, ".py") {
			files[name] = src + "# " + t.Name() + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n"
		}
	}
	s := testkit.Start(t, testkit.WriteTree(t, files))
	get := func(path string) string {
		t.Helper()
		code, body := fetch(t, s.Base+path)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		return body
	}
	for path, want := range map[string]string{
		"/lazy/x":   "json imported before: True", // the warm-up's import is in the snapshot
		"/off/x":    "json imported before: False",
		"/listed/x": "json imported before: False", // its own paths replace GET /
		"/counter/": "count 1",
		"/append/":  "calls 1",
		"/fails/x":  "fine",
		"/net/":     "tried",
	} {
		for range 2 {
			if body := get(path); body != want {
				t.Errorf("GET %s: %q, want %q", path, body, want)
			}
		}
	}
	log := s.Log()
	for app, reason := range map[string]string{
		"counter": "GET / changed app.n, so the app keeps state between requests",
		"append":  "GET / changed app.calls, so the app keeps state between requests",
		"varies":  "GET / answered differently the 16th time than the first",
		"net":     "GET / tried to connect to 127.0.0.1:9, and the automatic warm-up has no network",
		"fails":   "warm-up request GET / failed",
	} {
		line := grepLines(log, "app="+app+" reason=")
		if !strings.Contains(line, "snapshot taken without the automatic warm-up") || !strings.Contains(line, reason) {
			t.Errorf("app %s: log line %q, want the reason %q", app, line, reason)
		}
	}
	for _, app := range []string{"lazy", "off", "listed", "missing"} {
		if line := grepLines(log, "app="+app+" reason="); line != "" {
			t.Errorf("app %s: %s", app, line)
		}
	}
	// The two requests above were denied; the warm-up's attempts are not the app's.
	if _, metrics := fetch(t, s.Base+"/_wasmwsgi/metrics"); !strings.Contains(metrics, `wasmwsgi_outbound_denied_total{app="net"} 2`+"\n") {
		t.Errorf("denials: %s", grepLines(metrics, `wasmwsgi_outbound_denied_total{app="net"}`))
	}
}
