package router

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestSplitPath(t *testing.T) {
	cases := []struct {
		prefix, path, script, info string
		ok                         bool
	}{
		{"/app", "/app/x", "/app", "/x", true},
		{"/app", "/app", "/app", "", true},
		{"/app", "/app/", "/app", "/", true},
		{"/app", "/application", "", "", false},
		{"/app", "/other", "", "", false},
		{"/", "/", "", "/", true},
		{"/", "/x/y", "", "/x/y", true},
		{"/a/b", "/a/b/c", "/a/b", "/c", true},
	}
	for _, c := range cases {
		script, info, ok := splitPath(c.prefix, c.path)
		if script != c.script || info != c.info || ok != c.ok {
			t.Errorf("splitPath(%q, %q) = (%q, %q, %v), want (%q, %q, %v)",
				c.prefix, c.path, script, info, ok, c.script, c.info, c.ok)
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
