package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

func TestMountRoutes(t *testing.T) {
	r := chi.NewRouter()
	type hit struct{ mount, script, pathInfo string }
	var got hit
	for _, prefix := range []string{"/", "/app", "/a/b"} {
		mountRoutes(r, prefix, func(w http.ResponseWriter, _ *http.Request, script, pathInfo string) {
			got = hit{prefix, script, pathInfo}
		})
	}
	cases := []struct {
		target string
		want   hit
	}{
		// An authority-form target has no path at all.
		{"example.com:443", hit{"/", "", ""}},
		{"/app/x", hit{"/app", "/app", "/x"}},
		{"/app", hit{"/app", "/app", ""}},
		{"/app/", hit{"/app", "/app", "/"}},
		{"/app//x/", hit{"/app", "/app", "//x/"}},
		{"/a/b/c", hit{"/a/b", "/a/b", "/c"}},
		{"/a/bc", hit{"/", "", "/a/bc"}},
		// Segment boundaries: /application is not below /app.
		{"/application", hit{"/", "", "/application"}},
		{"/", hit{"/", "", "/"}},
		{"/x/y", hit{"/", "", "/x/y"}},
		// PATH_INFO is percent-decoded, whether or not Go keeps the escaped path.
		{"/app/caf%C3%A9", hit{"/app", "/app", "/caf\u00e9"}},
		{"/app/a%2Fb", hit{"/app", "/app", "/a/b"}},
		{"/app/100%25", hit{"/app", "/app", "/100%"}},
		{"/x%2Fy", hit{"/", "", "/x/y"}},
	}
	for _, c := range cases {
		got = hit{}
		w := httptest.NewRecorder()
		method := http.MethodGet
		if !strings.HasPrefix(c.target, "/") {
			method = http.MethodConnect
		}
		r.ServeHTTP(w, httptest.NewRequest(method, c.target, nil))
		if got != c.want {
			t.Errorf("GET %s: mount %q SCRIPT_NAME %q PATH_INFO %q, want %q %q %q (status %d)",
				c.target, got.mount, got.script, got.pathInfo, c.want.mount, c.want.script, c.want.pathInfo, w.Code)
		}
	}
}

func TestForwarded(t *testing.T) {
	rt := &Router{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"),
	}}}
	cases := []struct {
		peer, xff, proto, host string
		client, scheme, vhost  string
	}{
		{"10.1.2.3:5000", "203.0.113.7", "https", "shop.example", "203.0.113.7", "https", "shop.example"},
		// The client forged an entry to the left: the first untrusted hop from the right wins.
		{"127.0.0.1:1", "1.1.1.1, 203.0.113.7, 10.9.9.9", "", "", "203.0.113.7", "", ""},
		// An untrusted peer changes nothing.
		{"192.0.2.1:1", "203.0.113.7", "https", "evil.example", "", "", ""},
		// Garbage in the chain stops the walk; bad proto and host values are ignored.
		{"10.0.0.1:1", "not-an-ip, 10.0.0.2", "gopher", "a b", "10.0.0.2", "", ""},
		{"[::ffff:10.0.0.1]:1", "2001:db8::1", "http", "", "2001:db8::1", "http", ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", c.xff)
		r.Header.Set("X-Forwarded-Proto", c.proto)
		r.Header.Set("X-Forwarded-Host", c.host)
		client, scheme, host := rt.forwarded(r)
		if client != c.client || scheme != c.scheme || host != c.vhost {
			t.Errorf("peer %s xff %q: got (%q, %q, %q), want (%q, %q, %q)",
				c.peer, c.xff, client, scheme, host, c.client, c.scheme, c.vhost)
		}
	}
}

// TestMethodsReachApps checks that every method reaches the app with the path it was
// sent to: chi's own, the extension methods registered with chi (WebDAV's PROPFIND and
// MKCOL, ...) and tokens no registry lists; the server's own endpoints still answer
// 405 to them.
func TestMethodsReachApps(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{"echo/app.py": `
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(environ["REQUEST_METHOD"] + " " + environ["SCRIPT_NAME"] + " " + environ["PATH_INFO"]).encode()]
`})
	rt := newTestRouter(t, apps, nil, AdminConfig{}, nil)
	rt.LoadAll(context.Background())
	for _, method := range []string{"GET", "DELETE", "QUERY", "PROPFIND", "MKCOL", "VERSION-CONTROL", "BREW", "-BLARGH"} {
		w := call(rt, method, "/echo/x/y", nil)
		if want := method + " /echo /x/y"; w.Code != http.StatusOK || w.Body.String() != want {
			t.Errorf("%s /echo/x/y: %d %q, want 200 %q", method, w.Code, w.Body, want)
		}
		if method == "GET" {
			continue
		}
		if w := call(rt, method, "/_wasmwsgi/healthz", nil); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /_wasmwsgi/healthz: %d, want 405", method, w.Code)
		}
	}
}
