package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
	pythonwasm "github.com/wasmwsgi/wasmwsgi/python-wasm"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

const testToken = "s3cret-admin-token-7f1c"

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var testEngine struct {
	once sync.Once
	e    *runtime.Engine
	err  error
}

// engine returns one engine with the real python.wasm, shared by the tests of the
// package (compiling it is the slow part).
func engine(t testing.TB) *runtime.Engine {
	t.Helper()
	testEngine.once.Do(func() {
		testEngine.e, testEngine.err = runtime.NewEngine(context.Background(), runtime.EngineConfig{
			CacheDir: filepath.Join(testkit.CacheHome(), "wasmwsgi"),
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	})
	if errors.Is(testEngine.err, pythonwasm.ErrNotBuilt) {
		t.Skip("python.wasm is not built; run make build")
	}
	if testEngine.err != nil {
		t.Fatal(testEngine.err)
	}
	return testEngine.e
}

// testLimits are the limits of the tests' apps.
var testLimits = runtime.Limits{Timeout: 30 * time.Second, Memory: 128 << 20, MaxBody: 1 << 20,
	MaxResponse: 16 << 20, Concurrency: 2, Queue: 8, QueueTimeout: 10 * time.Second, OpenFiles: 64,
	Scratch: 1 << 20}

// newTestRouter serves the apps of appsDir with the operator's grants (each grant's
// limits are testLimits) and the admin page configured as admin.
func newTestRouter(t *testing.T, appsDir string, grants map[string]config.Grant, admin AdminConfig, log io.Writer) *Router {
	t.Helper()
	for name, g := range grants {
		g.Limits = testLimits
		grants[name] = g
	}
	if log == nil {
		log = io.Discard
	}
	rt, err := New(engine(t), Config{Apps: config.Operator{Dir: appsDir, Limits: testLimits, Grants: grants},
		MaxAppBytes: 64 << 20, Admin: admin}, slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// call sends one request to h and returns the recorded response.
func call(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// emptyApps is an apps folder with no app: enough for the routes that load nothing.
func emptyApps(t *testing.T) string { return t.TempDir() }

func TestAdminOffByDefault(t *testing.T) {
	rt := newTestRouter(t, emptyApps(t), nil, AdminConfig{}, nil)
	for _, p := range []string{"/_wasmwsgi/", "/_wasmwsgi", "/_wasmwsgi/api/apps"} {
		if w := call(rt, http.MethodGet, p, bearer("anything")); w.Code != http.StatusNotFound {
			t.Errorf("GET %s with the admin page off: status %d, want 404", p, w.Code)
		}
	}
	if w := call(rt, http.MethodGet, "/_wasmwsgi/metrics", nil); w.Code != http.StatusOK {
		t.Errorf("GET /_wasmwsgi/metrics: status %d, want 200", w.Code)
	}
	// The admin listener's handler serves the metrics but not the page.
	admin := rt.AdminHandler()
	if w := call(admin, http.MethodGet, "/_wasmwsgi/", bearer("anything")); w.Code != http.StatusNotFound {
		t.Errorf("admin listener, page off: status %d, want 404", w.Code)
	}
}

func TestAdminToken(t *testing.T) {
	logs := &syncBuffer{}
	rt := newTestRouter(t, emptyApps(t), nil, AdminConfig{Enabled: true, Token: testToken}, logs)

	for name, h := range map[string]http.Header{
		"no credentials":   nil,
		"wrong token":      bearer(testToken + "x"),
		"empty token":      bearer(""),
		"other scheme":     {"Authorization": {"Basic " + testToken}},
		"forged cookie":    {"Cookie": {adminCookie + "=" + strings.Repeat("0", 64)}},
		"token as cookie":  {"Cookie": {adminCookie + "=" + testToken}},
		"token as a guess": {"Authorization": {"Bearer " + testToken[:len(testToken)-1]}},
	} {
		for _, p := range []string{"/_wasmwsgi/", "/_wasmwsgi/api/apps"} {
			w := call(rt, http.MethodGet, p, h)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("%s: GET %s: status %d, want 401", name, p, w.Code)
			}
			if !strings.Contains(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: GET %s: no WWW-Authenticate: Bearer header", name, p)
			}
			if !strings.Contains(w.Body.String(), "admin.token") {
				t.Errorf("%s: 401 body %q does not say how to sign in", name, w.Body)
			}
		}
	}
	if w := call(rt, http.MethodGet, "/_wasmwsgi/?token=wrong", nil); w.Code != http.StatusUnauthorized ||
		w.Header().Get("Set-Cookie") != "" {
		t.Errorf("wrong ?token=: status %d, Set-Cookie %q; want 401 and no cookie", w.Code, w.Header().Get("Set-Cookie"))
	}

	// The bearer token opens the page, which carries a policy allowing only itself.
	w := call(rt, http.MethodGet, "/_wasmwsgi/", bearer(testToken))
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("page with the bearer token: status %d, type %q", w.Code, w.Header().Get("Content-Type"))
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("page CSP %q", csp)
	}
	if !strings.Contains(w.Body.String(), "api/apps") {
		t.Errorf("the page does not poll api/apps")
	}

	// ?token= sets an HttpOnly, SameSite=Strict cookie and redirects to the clean address.
	w = call(rt, http.MethodGet, "/_wasmwsgi/?token="+testToken+"&view=x", nil)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("?token=: status %d, want 303", w.Code)
	}
	if loc := w.Header().Get("Location"); loc != "/_wasmwsgi/?view=x" {
		t.Errorf("?token= redirects to %q, want /_wasmwsgi/?view=x", loc)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != adminCookie || !cookies[0].HttpOnly ||
		cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("?token= cookies %v, want one HttpOnly SameSite=Strict %s", cookies, adminCookie)
	}
	if strings.Contains(cookies[0].Value, testToken) {
		t.Errorf("the cookie holds the token itself")
	}
	w = call(rt, http.MethodGet, "/_wasmwsgi/api/apps", http.Header{"Cookie": {cookies[0].String()}})
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("api with the cookie: status %d, type %q", w.Code, w.Header().Get("Content-Type"))
	}
	if strings.Contains(logs.String(), testToken) {
		t.Errorf("the token reached the log:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "token=REDACTED") {
		t.Errorf("the ?token= request is not in the access log, redacted:\n%s", logs)
	}

	// /_wasmwsgi leads to the page.
	if w := call(rt, http.MethodGet, "/_wasmwsgi", bearer(testToken)); w.Code != http.StatusSeeOther ||
		w.Header().Get("Location") != "/_wasmwsgi/" {
		t.Errorf("/_wasmwsgi: status %d, Location %q", w.Code, w.Header().Get("Location"))
	}
}

func TestAdminWithoutToken(t *testing.T) {
	// An enabled page with no token configured lets nobody in.
	rt := newTestRouter(t, emptyApps(t), nil, AdminConfig{Enabled: true}, nil)
	for _, h := range []http.Header{nil, bearer(""), {"Authorization": {"Bearer"}}} {
		if w := call(rt, http.MethodGet, "/_wasmwsgi/api/apps", h); w.Code != http.StatusUnauthorized {
			t.Errorf("no token configured, header %v: status %d, want 401", h, w.Code)
		}
	}
	if w := call(rt, http.MethodGet, "/_wasmwsgi/?token=", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("no token configured, empty ?token=: status %d, want 401", w.Code)
	}
}

func TestAdminOwnListener(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{"root/app.py": helloApp, "other/app.py": helloApp})
	rt := newTestRouter(t, dir, map[string]config.Grant{"root": {Prefix: "/"}},
		AdminConfig{Enabled: true, Token: testToken, OwnListener: true}, nil)
	rt.LoadAll(context.Background())
	admin := rt.AdminHandler()

	for _, p := range []string{"/_wasmwsgi/", "/_wasmwsgi/api/apps", "/_wasmwsgi/metrics"} {
		// On the main listener a root app would otherwise answer these paths: they must
		// be 404, not the app.
		if w := call(rt, http.MethodGet, p, bearer(testToken)); w.Code != http.StatusNotFound {
			t.Errorf("main listener GET %s: status %d, want 404", p, w.Code)
		}
		if w := call(admin, http.MethodGet, p, bearer(testToken)); w.Code != http.StatusOK {
			t.Errorf("admin listener GET %s: status %d, want 200", p, w.Code)
		}
	}
	if w := call(admin, http.MethodGet, "/_wasmwsgi/api/apps", nil); w.Code != http.StatusUnauthorized {
		t.Errorf("admin listener without the token: status %d, want 401", w.Code)
	}
	for _, p := range []string{"/_wasmwsgi/healthz", "/_wasmwsgi/ready"} {
		for name, h := range map[string]http.Handler{"main": rt, "admin": admin} {
			if w := call(h, http.MethodGet, p, nil); w.Code != http.StatusOK {
				t.Errorf("%s listener GET %s: status %d, want 200", name, p, w.Code)
			}
		}
	}
	// No app is reachable through the admin listener.
	for _, p := range []string{"/", "/other/", "/_wasmwsgi/x", "/_wasmwsgi/../other/"} {
		if w := call(admin, http.MethodGet, p, nil); w.Code != http.StatusNotFound {
			t.Errorf("admin listener GET %s: status %d, want 404", p, w.Code)
		}
	}
	if w := call(admin, http.MethodPost, "/_wasmwsgi/metrics", nil); w.Code != http.StatusNotFound {
		t.Errorf("admin listener POST: status %d, want 404", w.Code)
	}
	if w := call(rt, http.MethodGet, "/other/", nil); w.Code != http.StatusOK {
		t.Errorf("main listener GET /other/: status %d, want 200", w.Code)
	}
}

const helloApp = `
def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/boom":
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"boom"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + path.encode()]
`

func TestAdminAppsAPI(t *testing.T) {
	dir := testkit.WriteTree(t, map[string]string{
		"hello/app.py":  helloApp,
		"broken/app.py": "import not_a_module_anywhere\n",
		"quiet/app.py":  helloApp,
	})
	rt := newTestRouter(t, dir, nil, AdminConfig{Enabled: true, Token: testToken}, nil)
	if failed := rt.LoadAll(context.Background()); failed != 1 {
		t.Fatalf("%d apps failed to load, want 1 (broken)", failed)
	}
	// ServeHTTP returns after the access log has counted the request, so the figures
	// are complete when the API is asked.
	for i := range 5 {
		target, want := "/hello/x", http.StatusOK
		if i%2 == 1 {
			target, want = "/hello/boom", http.StatusInternalServerError
		}
		if w := call(rt, http.MethodGet, target, nil); w.Code != want {
			t.Fatalf("GET %s: status %d, want %d", target, w.Code, want)
		}
	}
	if w := call(rt, http.MethodGet, "/broken/", nil); w.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /broken/: status %d, want 503", w.Code)
	}
	// The server's own endpoints are counted for no app.
	call(rt, http.MethodGet, "/_wasmwsgi/healthz", nil)

	w := call(rt, http.MethodGet, "/_wasmwsgi/api/apps", bearer(testToken))
	if w.Code != http.StatusOK {
		t.Fatalf("api: status %d: %s", w.Code, w.Body)
	}
	var got struct {
		Time           time.Time `json:"time"`
		RecentRequests int       `json:"recent_requests"`
		RateSeconds    int       `json:"rate_seconds"`
		SparkSeconds   int       `json:"spark_seconds"`
		Apps           []struct {
			Name       string     `json:"name"`
			Prefix     string     `json:"prefix"`
			State      string     `json:"state"`
			Error      string     `json:"error"`
			Requests   int        `json:"requests"`
			Errors     int        `json:"errors"`
			RPS        float64    `json:"rps"`
			P50        *float64   `json:"p50_ms"`
			P99        *float64   `json:"p99_ms"`
			Running    *int       `json:"running"`
			Queued     *int       `json:"queued"`
			Idle       *int       `json:"idle"`
			Snapshot   uint64     `json:"snapshot_bytes"`
			PeakMemory uint64     `json:"peak_memory"`
			LastMemory uint64     `json:"last_memory"`
			Latency    []*float64 `json:"latency_ms"`
			Outbound   *struct {
				Connections *int64 `json:"connections"`
				BytesOut    *int64 `json:"bytes_out"`
				BytesIn     *int64 `json:"bytes_in"`
				Denied      *int64 `json:"denied"`
			} `json:"outbound"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("api body %s: %v", w.Body, err)
	}
	if got.Time.IsZero() || got.RateSeconds != adminRateSeconds || got.SparkSeconds != adminSparkSeconds ||
		got.RecentRequests != adminRecent {
		t.Errorf("api header fields: %+v", got)
	}
	var names []string
	for _, a := range got.Apps {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "broken,hello,quiet" {
		t.Fatalf("apps %v, want broken, hello, quiet in name order", names)
	}
	broken, hello, quiet := got.Apps[0], got.Apps[1], got.Apps[2]

	if broken.State != "failed" || !strings.Contains(broken.Error, "not_a_module_anywhere") ||
		!strings.Contains(broken.Error, "ModuleNotFoundError") {
		t.Errorf("broken: state %q, error %q; want failed with the ModuleNotFoundError", broken.State, broken.Error)
	}
	if broken.Requests != 1 || broken.Errors != 1 || broken.PeakMemory != 0 {
		t.Errorf("broken: requests %d errors %d memory %d; want its one 503 and no memory",
			broken.Requests, broken.Errors, broken.PeakMemory)
	}

	if hello.State != "ready" || hello.Error != "" || hello.Prefix != "/hello" {
		t.Errorf("hello: state %q error %q prefix %q", hello.State, hello.Error, hello.Prefix)
	}
	if hello.Requests != 5 || hello.Errors != 2 {
		t.Errorf("hello: requests %d errors %d, want 5 and 2", hello.Requests, hello.Errors)
	}
	if hello.P50 == nil || hello.P99 == nil || *hello.P50 <= 0 || *hello.P99 < *hello.P50 {
		t.Errorf("hello: p50 %v p99 %v, want 0 < p50 <= p99", hello.P50, hello.P99)
	}
	// Peak memory is the linear memory of a CPython instance: megabytes.
	if hello.PeakMemory < 1<<20 || hello.LastMemory == 0 || hello.LastMemory > hello.PeakMemory {
		t.Errorf("hello: peak memory %d, last %d", hello.PeakMemory, hello.LastMemory)
	}
	if hello.Running == nil || hello.Queued == nil || *hello.Running != 0 || *hello.Queued != 0 {
		t.Errorf("hello: running %v queued %v, want 0 and 0 when idle", hello.Running, hello.Queued)
	}
	// The pool keeps at least the instance that served the last request; the snapshot is
	// the interpreter's whole linear memory, megabytes.
	if hello.Idle == nil || *hello.Idle < 1 || hello.Snapshot < 1<<20 || hello.Snapshot%65536 != 0 {
		t.Errorf("hello: idle %v snapshot %d bytes, want >= 1 and whole wasm pages", hello.Idle, hello.Snapshot)
	}
	if o := hello.Outbound; o == nil || o.Connections == nil || o.BytesOut == nil || o.BytesIn == nil || o.Denied == nil ||
		*o.Connections != 0 || *o.BytesOut != 0 || *o.BytesIn != 0 || *o.Denied != 0 {
		t.Errorf("hello: outbound %+v, want every figure present and 0 (it has no grants)", o)
	}
	if len(hello.Latency) != adminSparkSeconds {
		t.Errorf("hello: %d sparkline points, want %d", len(hello.Latency), adminSparkSeconds)
	}

	if quiet.State != "ready" || quiet.Requests != 0 || quiet.P50 != nil || quiet.RPS != 0 || quiet.PeakMemory != 0 {
		t.Errorf("quiet app: %+v, want ready with no figures", quiet)
	}
	for i, v := range quiet.Latency {
		if v != nil {
			t.Errorf("quiet app: latency point %d is %v, want null", i, *v)
		}
	}
}

func TestAppRecorder(t *testing.T) {
	var r appRecorder
	t0 := time.Unix(1_700_000_000, 0)
	// Second t0: four requests of 10, 20, 30, 40 ms, one a 500.
	for i, status := range []int{200, 200, 500, 404} {
		r.add(t0.Add(time.Duration(i)*time.Millisecond), status, time.Duration(i+1)*10*time.Millisecond, uint64(i+1)<<20)
	}
	// Second t0+5: one request of 100 ms that ran no instance (no memory).
	r.add(t0.Add(5*time.Second), 503, 100*time.Millisecond, 0)

	st := r.stats(t0.Add(6*time.Second + 500*time.Millisecond))
	if st.Requests != 5 || st.Errors != 2 {
		t.Errorf("requests %d errors %d, want 5 and 2", st.Requests, st.Errors)
	}
	if st.RPS != 0.5 {
		t.Errorf("rps %v, want 5 requests / 10 s = 0.5", st.RPS)
	}
	if st.P50 == nil || *st.P50 != 30 || st.P99 == nil || *st.P99 != 100 {
		t.Errorf("p50 %v p99 %v, want 30 and 100", deref(st.P50), deref(st.P99))
	}
	if st.PeakMemory != 4<<20 || st.LastMemory != 4<<20 {
		t.Errorf("peak memory %d last %d, want 4 MiB both", st.PeakMemory, st.LastMemory)
	}
	// The sparkline ends with the last whole second (t0+5): the mean of t0 sits 6
	// points from the end, t0+5's one point from the end.
	n := len(st.Latency)
	for i, v := range st.Latency {
		switch i {
		case n - 6:
			if v == nil || *v != 25 {
				t.Errorf("latency point %d = %v, want the mean of second t0, 25 ms", i, deref(v))
			}
		case n - 1:
			if v == nil || *v != 100 {
				t.Errorf("latency point %d = %v, want 100 ms", i, deref(v))
			}
		default:
			if v != nil {
				t.Errorf("latency point %d = %v, want null (no requests that second)", i, *v)
			}
		}
	}

	// A minute later the windows are empty but the totals and the recent samples stay.
	st = r.stats(t0.Add(2 * time.Minute))
	if st.RPS != 0 || st.Requests != 5 || st.P50 == nil {
		t.Errorf("after a minute: rps %v requests %d p50 %v", st.RPS, st.Requests, deref(st.P50))
	}
	for i, v := range st.Latency {
		if v != nil {
			t.Errorf("after a minute: latency point %d = %v, want null", i, *v)
		}
	}

	// A stale ring slot is reset, not added to: 64 s after t0 lands in t0's slot.
	r.add(t0.Add(64*time.Second), 200, 7*time.Millisecond, 0)
	st = r.stats(t0.Add(65 * time.Second))
	if v := st.Latency[len(st.Latency)-1]; v == nil || *v != 7 {
		t.Errorf("reused slot: latency %v, want 7 ms", deref(v))
	}
	if st.RPS != 0.1 {
		t.Errorf("reused slot: rps %v, want 0.1", st.RPS)
	}

	// Only the latest adminRecent requests make the percentiles.
	for range adminRecent {
		r.add(t0.Add(70*time.Second), 200, time.Millisecond, 0)
	}
	st = r.stats(t0.Add(71 * time.Second))
	if *st.P99 != 1 || st.PeakMemory != 0 || st.LastMemory != 4<<20 {
		t.Errorf("after %d fast requests: p99 %v peak %d last %d, want 1 ms, 0, 4 MiB",
			adminRecent, *st.P99, st.PeakMemory, st.LastMemory)
	}
}

func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
