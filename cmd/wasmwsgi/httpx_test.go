package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// httpxApp fetches, with httpx's async client inside asyncio.run, two pages at once
// (gather) and posts a body, from the server whose port the query names.
const httpxApp = `import asyncio, json
import httpx


async def fetch(base):
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        a, b = await asyncio.gather(client.get("/a", params={"n": "1"}), client.get("/b"))
        c = await client.post("/echo", content=b"sent from the sandbox")
        out = [[r.status_code, r.headers["x-path"], r.text] for r in (a, b, c)]
        try:
            await client.get(base.replace("http:", "https:"))
        except Exception as e:
            out.append([type(e).__name__, str(e)])
        return out


def application(environ, start_response):
    base = "http://127.0.0.1:%s" % environ["QUERY_STRING"]
    body = json.dumps(asyncio.run(fetch(base))).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
`

// TestHTTPXAsyncClient runs Debian's httpx (with httpcore, anyio, h11 and the rest of
// its dependencies, unmodified) in the sandbox: httpx.AsyncClient inside asyncio.run
// fetches from a loopback server the operator granted to the app.
func TestHTTPXAsyncClient(t *testing.T) {
	site := debSitePackages(t, "httpx", "python3-httpx", "python3-httpcore", "python3-anyio", "python3-sniffio",
		"python3-h11", "python3-certifi", "python3-idna", "python3-rfc3986")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Path", r.URL.Path)
		fmt.Fprintf(w, "%s %s?%s %s", r.Method, r.URL.Path, r.URL.RawQuery, body)
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	// httpx looks for ~/.netrc, so the app names a home folder, as a service's
	// environment would.
	apps := testkit.WriteTree(t, map[string]string{
		"hx/app.py":        httpxApp,
		"hx/wasmwsgi.toml": "warmup = []\n[env]\nHOME = \"/tmp\"\n",
	})
	if err := os.CopyFS(filepath.Join(apps, "hx", "site-packages"), os.DirFS(site)); err != nil {
		t.Fatal(err)
	}
	conf := testkit.ConfigFile(t, fmt.Sprintf("[apps.hx]\noutbound = [\"http://127.0.0.1:%d\"]\n", port))
	s := testkit.Start(t, apps, "--config", conf)

	code, body := fetch(t, fmt.Sprintf("%s/hx/?%d", s.Base, port))
	if code != 200 {
		t.Fatalf("GET /hx/: %d %s\n%s", code, body, grepLines(s.Log(), "rror"))
	}
	var got [][]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	want := [][]any{
		{200.0, "/a", "GET /a?n=1 "},
		{200.0, "/b", "GET /b? "},
		{200.0, "/echo", "POST /echo? sent from the sandbox"},
		// asyncio's TLS runs over memory buffers, which the host's TLS does not offer.
		{"SSLError", "TLS over memory BIOs (SSLContext.wrap_bio, which asyncio's and anyio's TLS streams use) " +
			"is not available in this sandbox: the host does TLS on connected sockets (SSLContext.wrap_socket)"},
	}
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("httpx answers %s, want %s", mustJSON(t, got), mustJSON(t, want))
	}
}
