package static

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
	"time"
)

func TestHashed(t *testing.T) {
	for name, want := range map[string]bool{
		"style.0123456789ab.css":          true, // Django's ManifestStaticFilesStorage
		"admin/css/base.5af66c1b1797.css": true,
		"main.3b1f9c2e8a7d4f6b1c2d.js":    true, // webpack's [name].[contenthash].js
		"main.3b1f9c2e.js":                true, // [contenthash:8]
		"vendor-3b1f9c2e.js":              true,
		"main.3b1f9c2e.js.map":            true,
		"style.css":                       false,
		"style.min.css":                   false,
		"jquery-3.6.0.js":                 false,
		"app.1234567.js":                  false, // 7 digits: too short to be a hash
		"0123456789ab.css":                false, // nothing before the hash
		".0123456789ab.css":               false,
		"style.0123456789AB.css":          false, // hashes are written in lower case
		"style.0123456789ab":              false, // no extension after it
		"notes.0123456789abx.css":         false,
	} {
		if got := Hashed(name); got != want {
			t.Errorf("Hashed(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestMatch(t *testing.T) {
	routes := []Route{{Prefix: "/static", Target: "static", Dir: true}, {Prefix: "/favicon.ico", Target: "f.ico"}}
	for p, want := range map[string]bool{
		"/static": true, "/static/": true, "/static/a/b.css": true, "/static/..": true,
		"/staticx": false, "/stat": false, "/favicon.ico": true, "/favicon.ico/x": false, "/": false, "": false,
	} {
		if got := Match(routes, p); got != want {
			t.Errorf("Match(%q) = %v, want %v", p, got, want)
		}
	}
}

// The precompressed sibling chosen for each Accept-Encoding, with both present and
// with only one.
func TestSiblingChoice(t *testing.T) {
	now := time.Now()
	both := fstest.MapFS{
		"s/a.css":    {Data: []byte("plain"), ModTime: now},
		"s/a.css.gz": {Data: []byte("gz"), ModTime: now},
		"s/a.css.br": {Data: []byte("br"), ModTime: now},
		"s/b.css":    {Data: []byte("plain"), ModTime: now},
		"s/b.css.gz": {Data: []byte("gz"), ModTime: now},
	}
	h := New([]Route{{Prefix: "/s", Target: "s", Dir: true}}, CacheControl{}, both)
	for _, c := range []struct{ file, accept, body string }{
		{"a.css", "", "plain"},
		{"a.css", "gzip", "gz"},
		{"a.css", "br", "br"},
		{"a.css", "gzip, br", "br"},
		{"a.css", "gzip;q=1, br;q=0.9", "gz"},
		{"a.css", "br;q=0", "plain"},
		{"a.css", "*;q=0.5, br;q=0", "gz"},
		{"a.css", "GZIP", "gz"},
		{"a.css", "br;q=nonsense, gzip", "gz"},
		{"b.css", "br, gzip;q=0.1", "gz"}, // br is preferred but missing
		{"b.css", "br", "plain"},
	} {
		r := httptest.NewRequest("GET", "/s/"+c.file, nil)
		if c.accept != "" {
			r.Header.Set("Accept-Encoding", c.accept)
		}
		w := httptest.NewRecorder()
		h.Serve(w, r, "/s/"+c.file)
		if w.Code != http.StatusOK || w.Body.String() != c.body || w.Header().Get("Vary") != "Accept-Encoding" {
			t.Errorf("%s with %q: %d %q, Vary %q, want %q", c.file, c.accept, w.Code, w.Body.String(), w.Header().Get("Vary"), c.body)
		}
		if w.Header().Get("Content-Type") != "text/css; charset=utf-8" {
			t.Errorf("%s with %q: Content-Type %q", c.file, c.accept, w.Header().Get("Content-Type"))
		}
	}
}

// Defaults fill what a CacheControl leaves empty; a hashed name gets the long one.
func TestCacheControlDefaults(t *testing.T) {
	files := fstest.MapFS{"s/x.css": {Data: []byte("x")}, "s/x.0123456789ab.css": {Data: []byte("x")}}
	h := New([]Route{{Prefix: "/s", Target: "s", Dir: true}}, CacheControl{Other: "no-cache"}, files)
	for file, want := range map[string]string{"x.css": "no-cache", "x.0123456789ab.css": DefaultHashed} {
		w := httptest.NewRecorder()
		h.Serve(w, httptest.NewRequest("GET", "/s/"+file, nil), "/s/"+file)
		if got := w.Header().Get("Cache-Control"); got != want {
			t.Errorf("%s: Cache-Control %q, want %q", file, got, want)
		}
		if w.Header().Get("Last-Modified") != "" {
			t.Errorf("%s: Last-Modified %q for a file without a time", file, w.Header().Get("Last-Modified"))
		}
	}
}
