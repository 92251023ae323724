// Package static answers the requests an app's [static] table names from the app's
// in-memory file tree (the read-only copy its sandbox sees at /app), without running
// the app: no instance, no interpreter, and no read of the host's file system.
//
// net/http's ServeContent does the conditional requests (If-None-Match,
// If-Modified-Since), HEAD and ranges; this package chooses the file, refuses paths
// that could leave its folder, picks a precompressed sibling (.br, .gz) by
// Accept-Encoding and sets the caching headers: a strong ETag from the content's
// SHA-256, Last-Modified from the file, and Cache-Control by whether the file's name
// carries a content hash.
package static

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Route maps a URL path below an app's mount to a file or a folder of the app.
type Route struct {
	// Prefix is the path below the mount: "/static" (a folder: /static/x.css is its
	// file x.css) or "/favicon.ico" (a file). Clean, with no trailing slash.
	Prefix string
	// Target is the file or folder in the app's tree, slash-separated and relative to
	// the app folder ("static", "static/favicon.ico").
	Target string
	// Dir is set when Target is a folder.
	Dir bool
}

// CacheControl holds the Cache-Control values of the files an app serves.
type CacheControl struct {
	// Hashed is sent with files whose name carries a content hash (Hashed reports
	// which): such a name changes whenever the content does, so it may be cached
	// for long.
	Hashed string
	// Other is sent with every other file.
	Other string
}

// The default Cache-Control values: a year, the longest RFC 9111 section 5.2.2.1's
// advice suggests, and immutable (RFC 8246) for hashed names; a minute otherwise, as
// WhiteNoise does for unhashed names, so that a changed file is seen soon while
// browsers still revalidate a page's assets cheaply with the ETag.
const (
	DefaultHashed = "public, max-age=31536000, immutable"
	DefaultOther  = "public, max-age=60"
)

// MaxNameBytes is the longest path segment served: longer names cannot exist on the
// file systems app folders come from (Linux's NAME_MAX).
const MaxNameBytes = 255

// hashedName matches file names that carry a content hash before their extension:
// Django's ManifestStaticFilesStorage (style.0123456789ab.css, 12 hex digits), webpack's
// [name].[contenthash].js (20 by default, often cut to 8) and names written with a
// dash (main-3b1f9c2e.js). A source map of one (main.3b1f9c2e.js.map) counts too.
var hashedName = regexp.MustCompile(`^[^.].*[.-][0-9a-f]{8,64}(\.[A-Za-z0-9]+)+$`)

// Hashed reports whether the file name (its last segment) carries a content hash.
func Hashed(name string) bool { return hashedName.MatchString(path.Base(name)) }

// Handler serves the routes of one app from one file tree. It keeps, per file, the
// content's hash and type once it has computed them; the tree must not change.
type Handler struct {
	routes []Route // longest prefix first
	cache  CacheControl
	files  fs.FS
	meta   sync.Map // name -> *fileMeta
}

// New returns the handler of routes over files (the app's tree).
func New(routes []Route, cache CacheControl, files fs.FS) *Handler {
	rs := append([]Route(nil), routes...)
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].Prefix) > len(rs[j].Prefix) })
	if cache.Hashed == "" {
		cache.Hashed = DefaultHashed
	}
	if cache.Other == "" {
		cache.Other = DefaultOther
	}
	return &Handler{routes: rs, cache: cache, files: files}
}

// Match reports whether pathInfo, the decoded path below the app's mount, is one the
// routes own: the prefix itself or, for a folder, anything below it. Such a request
// is Serve's, whatever becomes of it (a file, 404, 400); any other is the app's.
func Match(routes []Route, pathInfo string) bool {
	_, _, ok := match(routes, pathInfo)
	return ok
}

// match returns the route that owns pathInfo and the part of pathInfo below its
// prefix ("" for the prefix itself, else starting with "/").
func match(routes []Route, pathInfo string) (Route, string, bool) {
	for _, r := range routes {
		if pathInfo == r.Prefix {
			return r, "", true
		}
		if r.Dir && strings.HasPrefix(pathInfo, r.Prefix) && pathInfo[len(r.Prefix)] == '/' {
			return r, pathInfo[len(r.Prefix):], true
		}
	}
	return Route{}, "", false
}

// Match reports whether the request whose decoded path below the mount is pathInfo
// is this handler's (see the function Match).
func (h *Handler) Match(pathInfo string) bool { return Match(h.routes, pathInfo) }

// Serve answers a request for pathInfo, the decoded path below the app's mount, that
// Match gave to the handler: the file, or 404 (no such file, a folder, a name starting
// with "."), 400 (a path that tries to leave its folder, or is not one: "..", an
// encoded slash or backslash, a backslash, a NUL byte, invalid UTF-8) or 405 (a method
// other than GET and HEAD).
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, pathInfo string) {
	route, rest, ok := match(h.routes, pathInfo)
	if !ok {
		plain(w, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		plain(w, http.StatusMethodNotAllowed)
		return
	}
	name, status := h.resolve(r, route, rest)
	if status != 0 {
		plain(w, status)
		return
	}
	f, err := h.files.Open(name)
	if err != nil {
		plain(w, http.StatusNotFound)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		plain(w, http.StatusNotFound) // a folder: no listings
		return
	}
	meta, err := h.metaOf(name, f)
	if err != nil {
		plain(w, http.StatusNotFound)
		return
	}
	content, ok := f.(io.ReadSeeker)
	if !ok {
		plain(w, http.StatusNotFound)
		return
	}

	// The header values are fileMeta's own slices, made once per file (each of
	// length and capacity 1, so that an Add elsewhere copies rather than shares).
	hdr := w.Header()
	etag, modTime := meta.etag, info.ModTime()
	if meta.siblings {
		if enc, sib := h.sibling(r, name); sib != nil {
			defer sib.file.Close()
			content, etag, modTime = sib.content, sib.meta.etag, sib.info.ModTime()
			hdr["Content-Encoding"] = []string{enc}
		}
		hdr["Vary"] = varyAcceptEncoding
	}
	if meta.contentType != nil {
		hdr["Content-Type"] = meta.contentType
	}
	hdr["X-Content-Type-Options"] = nosniff
	hdr["Etag"] = etag
	hdr["Cache-Control"] = meta.cacheControl
	http.ServeContent(w, r, "", modTime, content)
}

// resolve returns the name in the tree of the file a request asks for, or the status
// that refuses it.
func (h *Handler) resolve(r *http.Request, route Route, rest string) (string, int) {
	// The path as sent: an encoded slash, backslash or NUL byte is never part of a
	// file's name here, only of a way around a check. (RawPath is set whenever the
	// path was escaped otherwise than Go would have, which an encoded slash always is.)
	if raw := strings.ToLower(r.URL.RawPath); raw != "" &&
		(strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%00")) {
		return "", http.StatusBadRequest
	}
	if !utf8.ValidString(rest) || strings.ContainsAny(rest, "\\\x00") {
		return "", http.StatusBadRequest
	}
	if rest == "" {
		if route.Dir {
			return "", http.StatusNotFound // the folder itself: no listings
		}
		return route.Target, 0
	}
	for segments := rest[1:]; ; {
		s, next, more := strings.Cut(segments, "/")
		switch {
		case s == "." || s == "..":
			return "", http.StatusBadRequest
		case s == "", strings.HasPrefix(s, "."), len(s) > MaxNameBytes:
			return "", http.StatusNotFound
		}
		if !more {
			break
		}
		segments = next
	}
	name := route.Target + rest
	if !fs.ValidPath(name) {
		return "", http.StatusBadRequest
	}
	return name, 0
}

// fileMeta is what Serve keeps about a file of the tree: its response headers' values.
type fileMeta struct {
	etag         []string
	contentType  []string // nil to let ServeContent choose
	cacheControl []string
	siblings     bool // a .br or .gz sibling exists
}

// Header values every file shares.
var (
	varyAcceptEncoding = []string{"Accept-Encoding"}
	nosniff            = []string{"nosniff"}
)

// metaOf returns name's fileMeta, computing it on the first request for the file.
func (h *Handler) metaOf(name string, f fs.File) (*fileMeta, error) {
	if m, ok := h.meta.Load(name); ok {
		return m.(*fileMeta), nil
	}
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		return nil, fs.ErrInvalid
	}
	sum := sha256.New()
	head := make([]byte, 512)
	n, _ := io.ReadFull(rs, head)
	sum.Write(head[:n])
	if _, err := io.Copy(sum, rs); err != nil {
		return nil, err
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	m := &fileMeta{etag: []string{`"` + hex.EncodeToString(sum.Sum(nil)[:16]) + `"`}, cacheControl: []string{h.cache.Other}}
	if Hashed(name) {
		m.cacheControl = []string{h.cache.Hashed}
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" && n > 0 {
		// The precompressed siblings share this type, which ServeContent could not
		// sniff from their compressed bytes.
		ctype = http.DetectContentType(head[:n])
	}
	if ctype != "" {
		m.contentType = []string{ctype}
	}
	for _, enc := range encodings {
		if st, err := fs.Stat(h.files, name+enc.suffix); err == nil && st.Mode().IsRegular() {
			m.siblings = true
		}
	}
	actual, _ := h.meta.LoadOrStore(name, m)
	return actual.(*fileMeta), nil
}

// encodings are the precompressed siblings looked for, in the order preferred when a
// client accepts both with the same weight.
var encodings = []struct{ name, suffix string }{{"br", ".br"}, {"gzip", ".gz"}}

// openSibling is a precompressed sibling chosen for a request.
type openSibling struct {
	file    fs.File
	content io.ReadSeeker
	info    fs.FileInfo
	meta    *fileMeta
}

// sibling opens the precompressed sibling of name that the request's Accept-Encoding
// prefers (br before gzip at the same weight; never one whose weight is 0), and
// returns its Content-Encoding; nil when none fits.
func (h *Handler) sibling(r *http.Request, name string) (string, *openSibling) {
	accept := r.Header.Values("Accept-Encoding")
	if len(accept) == 0 {
		return "", nil
	}
	weights := acceptedEncodings(accept)
	order := make([]int, 0, len(encodings))
	for i, enc := range encodings {
		if weights.of(enc.name) > 0 {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		return weights.of(encodings[order[a]].name) > weights.of(encodings[order[b]].name)
	})
	for _, i := range order {
		if s := h.openSibling(name + encodings[i].suffix); s != nil {
			return encodings[i].name, s
		}
	}
	return "", nil
}

func (h *Handler) openSibling(name string) *openSibling {
	f, err := h.files.Open(name)
	if err != nil {
		return nil
	}
	info, err := f.Stat()
	rs, ok := f.(io.ReadSeeker)
	if err != nil || !ok || !info.Mode().IsRegular() {
		f.Close()
		return nil
	}
	meta, err := h.metaOf(name, f)
	if err != nil {
		f.Close()
		return nil
	}
	return &openSibling{file: f, content: rs, info: info, meta: meta}
}

// weights are the q-values of an Accept-Encoding header (RFC 9110 section 12.5.3).
type weights map[string]float64

func acceptedEncodings(values []string) weights {
	w := weights{}
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil && f >= 0 && f <= 1 {
						q = f
					} else {
						q = 0
					}
				}
			}
			w[name] = q
		}
	}
	return w
}

// of is the weight of the coding name: its own, else that of "*", else 0.
func (w weights) of(name string) float64 {
	if q, ok := w[name]; ok {
		return q
	}
	return w["*"]
}

// plain answers status with its text, as a static server does.
func plain(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(http.StatusText(status))+1))
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status)+"\n")
}
