package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// These tests run real apps on python.wasm, in apps folders of their own.

// appSource is a WSGI app answering body; /slow first waits (up to 20s) for the file
// /data/go when the app has a data folder.
func appSource(body string) string {
	return fmt.Sprintf(`import os, time

def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        deadline = time.time() + 20
        while not os.path.exists("/data/go") and time.time() < deadline:
            time.sleep(0.02)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [%q.encode()]
`, body)
}

type reloadRouter struct {
	*Router
	srv *httptest.Server
	log *syncBuffer
	dir string
}

// newReloadRouter serves the apps of dir (files: path -> content, written first) and
// waits until they have loaded.
func newReloadRouter(t *testing.T, files map[string]string) *reloadRouter {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		testkit.WriteFile(t, filepath.Join(dir, name), content)
	}
	return serveApps(t, dir, false)
}

// serveApps serves the apps of dir and returns once LoadAll has: with
// loadKnownAfterReady, the apps a router before it loaded are still loading.
func serveApps(t *testing.T, dir string, loadKnownAfterReady bool) *reloadRouter {
	t.Helper()
	logs := &syncBuffer{}
	rt, err := New(engine(t), Config{
		Apps: config.Operator{Dir: dir, Limits: runtime.Limits{
			Timeout: 30 * time.Second, Memory: 128 << 20, MaxBody: 1 << 20, MaxResponse: 1 << 20,
			Concurrency: 4, Queue: 64, QueueTimeout: 10 * time.Second, OpenFiles: 64, Scratch: 1 << 20,
		}},
		MaxAppBytes:         64 << 20,
		LoadKnownAfterReady: loadKnownAfterReady,
	}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	rt.LoadAll(context.Background())
	t.Cleanup(func() { rt.Close(context.Background()) })
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	tr := &reloadRouter{Router: rt, srv: srv, log: logs, dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("router log:\n%s", logs.String())
		}
	})
	return tr
}

// get returns the status and body of GET path.
func (tr *reloadRouter) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(tr.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (tr *reloadRouter) reload(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return tr.Reload(ctx)
}

// readyApps returns the apps of /_wasmwsgi/ready.
func (tr *reloadRouter) readyApps(t *testing.T) map[string]appStatus {
	t.Helper()
	code, body := tr.get(t, "/_wasmwsgi/ready")
	if code != http.StatusOK {
		t.Fatalf("ready: %d %s", code, body)
	}
	var r struct {
		Apps map[string]appStatus `json:"apps"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("ready: %v in %s", err, body)
	}
	return r.Apps
}

// metricLines returns the lines of /_wasmwsgi/metrics that start with name.
func (tr *reloadRouter) metricLines(t *testing.T, name string) []string {
	t.Helper()
	code, body := tr.get(t, "/_wasmwsgi/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name) {
			out = append(out, l)
		}
	}
	return out
}

// waitClosed waits until app is closed: a replaced or removed app is released once
// the requests on it have ended.
func waitClosed(t *testing.T, app *runtime.App) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if state, _ := app.Status(); state == runtime.StateClosed {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	state, _ := app.Status()
	t.Fatalf("app %s is %s 10s after it was dropped, want closed", app.Spec.Name, state)
}

func TestReloadChangedAppWithoutFailedRequests(t *testing.T) {
	tr := newReloadRouter(t, map[string]string{"hot/app.py": appSource("v1"), "other/app.py": appSource("other")})
	if code, body := tr.get(t, "/hot/"); code != 200 || body != "v1" {
		t.Fatalf("before the change: %d %q", code, body)
	}
	oldHot, oldOther := tr.Mount("hot").App, tr.Mount("other").App

	// Clients run through the whole switch; every answer must be a 200 from one version.
	var (
		mu      sync.Mutex
		bad     []string
		seen    = map[string]int{}
		stop    = make(chan struct{})
		sawV1   = make(chan struct{})
		v1Once  sync.Once
		clients sync.WaitGroup
		total   atomic.Int64
	)
	for range 3 {
		clients.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			end := time.Now().Add(2 * time.Minute) // bound, should stop be never closed
			for time.Now().Before(end) {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(tr.srv.URL + "/hot/")
				if err != nil {
					mu.Lock()
					bad = append(bad, err.Error())
					mu.Unlock()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				total.Add(1)
				mu.Lock()
				if resp.StatusCode != 200 || (string(b) != "v1" && string(b) != "v2") {
					bad = append(bad, fmt.Sprintf("%d %q", resp.StatusCode, b))
				}
				seen[string(b)]++
				mu.Unlock()
				if string(b) == "v1" {
					v1Once.Do(func() { close(sawV1) })
				}
			}
		})
	}
	<-sawV1
	testkit.WriteFile(t, filepath.Join(tr.dir, "hot", "app.py"), appSource("v2"))
	if err := tr.reload(t); err != nil {
		t.Fatalf("reload: %v", err)
	}
	// Let the clients see the new version for a while before they stop.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := seen["v2"]
		mu.Unlock()
		if n >= 20 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	clients.Wait()
	if len(bad) > 0 {
		t.Errorf("%d of %d requests during the reload went wrong, first: %s", len(bad), total.Load(), bad[0])
	}
	if seen["v1"] == 0 || seen["v2"] < 20 {
		t.Errorf("answers seen during the switch: %v; want both versions", seen)
	}
	if code, body := tr.get(t, "/hot/"); code != 200 || body != "v2" {
		t.Errorf("after the reload: %d %q, want 200 v2", code, body)
	}
	if tr.Mount("other").App != oldOther {
		t.Error("the unchanged app was loaded again; it should keep its App")
	}
	if tr.Mount("hot").App == oldHot {
		t.Error("the changed app kept its old App")
	}
	waitClosed(t, oldHot)
	if state, _ := oldOther.Status(); state != runtime.StateReady {
		t.Errorf("unchanged app is %s", state)
	}
}

func TestReloadInFlightRequestFinishesOnOldVersion(t *testing.T) {
	tr := newReloadRouter(t, map[string]string{"hot/app.py": appSource("v1")})
	// The operator grants the app a data folder, where /slow waits for a file.
	root := t.TempDir()
	data := filepath.Join(root, "hot")
	cfg := tr.settings()
	cfg.Apps.DataRoot = root
	cfg.Apps.Grants = map[string]config.Grant{"hot": {DataDir: data, Limits: cfg.Apps.Limits}}
	tr.SetConfig(cfg)
	if err := tr.reload(t); err != nil {
		t.Fatal(err)
	}
	old := tr.Mount("hot").App

	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := http.Get(tr.srv.URL + "/hot/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{resp.StatusCode, string(b), err}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for running, _ := old.InFlight(); running == 0; running, _ = old.InFlight() {
		if time.Now().After(deadline) {
			t.Fatal("the slow request never reached the app")
		}
		time.Sleep(5 * time.Millisecond)
	}

	testkit.WriteFile(t, filepath.Join(tr.dir, "hot", "app.py"), appSource("v2"))
	if err := tr.reload(t); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if code, body := tr.get(t, "/hot/"); code != 200 || body != "v2" {
		t.Fatalf("new requests after the reload: %d %q, want the new version", code, body)
	}
	// The old version still runs the slow request: it must not be released under it.
	if state, _ := old.Status(); state != runtime.StateReady {
		t.Fatalf("the old version is %s while a request still runs on it", state)
	}
	testkit.WriteFile(t, filepath.Join(data, "go"), "")
	r := <-slow
	if r.err != nil || r.code != 200 || r.body != "v1" {
		t.Fatalf("in-flight request: %d %q %v; want 200 from the old version v1", r.code, r.body, r.err)
	}
	waitClosed(t, old)
}

func TestReloadBrokenAppKeepsServingOldVersion(t *testing.T) {
	tr := newReloadRouter(t, map[string]string{"hot/app.py": appSource("v1")})
	testkit.WriteFile(t, filepath.Join(tr.dir, "hot", "app.py"), "def application(environ, start_response:\n    pass\n")
	err := tr.reload(t)
	if err == nil || !strings.Contains(err.Error(), "hot") {
		t.Fatalf("reload of a broken app: %v, want an error naming the app", err)
	}
	if code, body := tr.get(t, "/hot/"); code != 200 || body != "v1" {
		t.Fatalf("broken new version: %d %q, want the old version still serving", code, body)
	}
	st := tr.readyApps(t)["hot"]
	if st.State != runtime.StateReady || !strings.Contains(st.ReloadError, "SyntaxError") ||
		!strings.Contains(st.ReloadError, "app.py") {
		t.Errorf("ready shows %+v; want state ready and a reload_error naming app.py and the SyntaxError", st)
	}
	if log := tr.log.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "reload failed") ||
		!strings.Contains(log, "app=hot") {
		t.Errorf("no error-level log line about the failed reload of hot:\n%s", log)
	}
	failures := func() string {
		lines := tr.metricLines(t, `wasmwsgi_reload_failures_total{app="hot"}`)
		if len(lines) != 1 {
			t.Fatalf("metric lines %q", lines)
		}
		return strings.Fields(lines[0])[1]
	}
	if n := failures(); n != "1" {
		t.Errorf("wasmwsgi_reload_failures_total = %s, want 1", n)
	}
	// The same broken version is not tried again.
	if err := tr.reload(t); err != nil {
		t.Errorf("second reload without a change: %v", err)
	}
	if n := failures(); n != "1" {
		t.Errorf("after a reload without a change wasmwsgi_reload_failures_total = %s, want still 1", n)
	}
	if st := tr.readyApps(t)["hot"]; st.ReloadError == "" {
		t.Error("the reload error vanished while the app is still broken")
	}

	testkit.WriteFile(t, filepath.Join(tr.dir, "hot", "app.py"), appSource("v3"))
	if err := tr.reload(t); err != nil {
		t.Fatalf("reload of the fixed app: %v", err)
	}
	if code, body := tr.get(t, "/hot/"); code != 200 || body != "v3" {
		t.Errorf("fixed app: %d %q, want v3", code, body)
	}
	if st := tr.readyApps(t)["hot"]; st.ReloadError != "" {
		t.Errorf("reload_error %q stays after the fix", st.ReloadError)
	}
}

func TestReloadAddsMovesAndRemovesApps(t *testing.T) {
	tr := newReloadRouter(t, map[string]string{"hot/app.py": appSource("hot"), "stay/app.py": appSource("stay")})
	hot := tr.Mount("hot").App

	testkit.WriteFile(t, filepath.Join(tr.dir, "fresh", "app.py"), appSource("fresh"))
	if code, _ := tr.get(t, "/fresh/"); code != http.StatusNotFound {
		t.Fatalf("an app folder is served before the reload: %d", code)
	}
	if err := tr.reload(t); err != nil {
		t.Fatal(err)
	}
	if code, body := tr.get(t, "/fresh/"); code != 200 || body != "fresh" {
		t.Errorf("added app: %d %q", code, body)
	}
	if st, ok := tr.readyApps(t)["fresh"]; !ok || st.State != runtime.StateReady {
		t.Errorf("ready does not list the added app as ready: %+v", st)
	}
	if lines := tr.metricLines(t, `wasmwsgi_instances_running{app="fresh"}`); len(lines) != 1 {
		t.Errorf("no instances_running gauge for the added app: %q", lines)
	}

	// A prefix the operator grants moves the app.
	cfg := tr.settings()
	cfg.Apps.Grants = map[string]config.Grant{"stay": {Prefix: "/moved", Limits: cfg.Apps.Limits}}
	tr.SetConfig(cfg)
	if err := os.RemoveAll(filepath.Join(tr.dir, "hot")); err != nil {
		t.Fatal(err)
	}
	// Until the reload the app serves on from memory; the request counts in
	// wasmwsgi_requests_total, whose series must go with the app.
	if code, body := tr.get(t, "/hot/"); code != 200 || body != "hot" {
		t.Fatalf("hot before the reload: %d %q", code, body)
	}
	if err := tr.reload(t); err != nil {
		t.Fatal(err)
	}
	if code, _ := tr.get(t, "/hot/"); code != http.StatusNotFound {
		t.Errorf("removed app still answers: %d", code)
	}
	if _, ok := tr.readyApps(t)["hot"]; ok || tr.Mount("hot") != nil {
		t.Error("removed app is still listed")
	}
	// Released once the requests on it have ended, and so are its metrics.
	waitClosed(t, hot)
	for _, name := range []string{`wasmwsgi_instances_running{app="hot"}`, `wasmwsgi_requests_total{app="hot"`} {
		if lines := tr.metricLines(t, name); len(lines) != 0 {
			t.Errorf("metrics of the removed app remain: %q", lines)
		}
	}
	if code, body := tr.get(t, "/moved/"); code != 200 || body != "stay" {
		t.Errorf("moved app: %d %q", code, body)
	}
	if code, _ := tr.get(t, "/stay/"); code != http.StatusNotFound {
		t.Errorf("moved app still answers at its old prefix: %d", code)
	}
}

func TestReloadAppliesNewSettings(t *testing.T) {
	tr := newReloadRouter(t, map[string]string{"hot/app.py": appSource("v1")})
	post := func() int {
		resp, err := http.Post(tr.srv.URL+"/hot/", "text/plain", strings.NewReader(strings.Repeat("x", 100)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != 200 {
		t.Fatalf("100-byte body before the change: %d", code)
	}
	cfg := tr.settings()
	cfg.Apps.Limits.MaxBody = 10
	tr.SetConfig(cfg)
	if err := tr.reload(t); err != nil {
		t.Fatal(err)
	}
	if code := post(); code != http.StatusRequestEntityTooLarge {
		t.Errorf("100-byte body after limits.max_body became 10: %d, want 413", code)
	}
}

// TestLoadKnownAfterReady: a router over folders another router loaded with the same
// cache is ready before it loads them, and a request to one waits for its load and is
// answered by the app as its folder is now. A file changed between the two routers is
// read again (the app is imported again), never served from the first one's snapshot;
// an app no router loaded before loads before ready.
func TestLoadKnownAfterReady(t *testing.T) {
	tag := time.Now().UnixNano() // the cache is shared with other tests and packages
	dir := t.TempDir()
	testkit.WriteFile(t, filepath.Join(dir, "later-same", "app.py"), appSource(fmt.Sprintf("same %d", tag)))
	testkit.WriteFile(t, filepath.Join(dir, "later-changed", "app.py"), appSource(fmt.Sprintf("before %d", tag)))
	first := serveApps(t, dir, true) // nothing known yet: everything loads before ready
	for app, want := range map[string]string{"later-same": "same", "later-changed": "before"} {
		if code, body := first.get(t, "/"+app+"/"); code != 200 || body != fmt.Sprintf("%s %d", want, tag) {
			t.Fatalf("first router, %s: %d %q", app, code, body)
		}
	}
	if strings.Contains(first.log.String(), "after ready") {
		t.Errorf("the first router loaded apps after ready:\n%s", first.log.String())
	}
	first.Close(context.Background())

	testkit.WriteFile(t, filepath.Join(dir, "later-changed", "app.py"), appSource(fmt.Sprintf("after %d", tag)))
	testkit.WriteFile(t, filepath.Join(dir, "later-new", "app.py"), appSource(fmt.Sprintf("new %d", tag)))
	second := serveApps(t, dir, true)
	log := second.log.String()
	if !strings.Contains(log, `msg="loading the apps an earlier start loaded, after ready" apps=2`) {
		t.Errorf("the second router did not leave its two known apps for after ready:\n%s", log)
	}
	if !strings.Contains(log, `msg="app ready" app=later-new`) {
		t.Errorf("the new app was not loaded before ready:\n%s", log)
	}
	for app, want := range map[string]string{"later-changed": "after", "later-same": "same", "later-new": "new"} {
		if code, body := second.get(t, "/"+app+"/"); code != 200 || body != fmt.Sprintf("%s %d", want, tag) {
			t.Errorf("second router, %s: %d %q, want %q", app, code, body, fmt.Sprintf("%s %d", want, tag))
		}
	}
	waitFor(t, "the apps loaded after ready", func() bool {
		return strings.Contains(second.log.String(), `msg="apps loaded after ready" apps=2 failed=0`)
	})
	log = second.log.String()
	for _, want := range []string{
		`msg="app loading" app=later-same phase="restoring a cached snapshot"`,
		`msg="app loading" app=later-changed phase=importing`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the second router's log lacks %q:\n%s", want, log)
		}
	}
	if err := second.reload(t); err != nil {
		t.Errorf("reload after the loads: %v", err)
	}
}

// TestCloseWhileLoadingAfterReady: Close waits for the loads left for after ready and
// starts none; the apps it did not load are failed, and nothing hangs.
func TestCloseWhileLoadingAfterReady(t *testing.T) {
	tag := time.Now().UnixNano()
	files := map[string]string{}
	for i := range 6 {
		files[fmt.Sprintf("close-later-%d/app.py", i)] = appSource(fmt.Sprintf("%d %d", i, tag))
	}
	dir := newReloadRouter(t, files).dir
	second := serveApps(t, dir, true)
	mounts := second.Mounts()
	if len(mounts) != 6 {
		t.Fatalf("%d apps mounted, want 6", len(mounts))
	}
	done := make(chan error, 1)
	go func() { done <- second.Close(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, m := range mounts {
		if state, _ := m.App.Status(); state == runtime.StateLoading {
			t.Errorf("%s is still loading after Close", m.Dir.Name)
		}
	}
}

// TestLoadAllLogsPhases: its app has a name no other test's app has, since the tests
// of other packages share the cache folder, and a load of another app of the same name
// replaces its cached snapshot.
func TestLoadAllLogsPhases(t *testing.T) {
	files := map[string]string{"phases/app.py": appSource(fmt.Sprintf("phases %d", time.Now().UnixNano())),
		"broken/app.py": "import missing_module\n"}
	tr := newReloadRouter(t, files)
	log := tr.log.String()
	for _, want := range []string{
		`msg="app loading" app=phases phase=importing`,
		`msg="app ready" app=phases`,
		`msg="app failed" app=broken`,
		"ModuleNotFoundError",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("startup log lacks %q:\n%s", want, log)
		}
	}
	// The same app again: its snapshot is in the cache now.
	again := newReloadRouter(t, map[string]string{"phases/app.py": files["phases/app.py"]})
	if log := again.log.String(); !strings.Contains(log, `msg="app loading" app=phases phase="restoring a cached snapshot"`) {
		t.Errorf("second start does not restore the cached snapshot:\n%s", log)
	}
}

func TestErrorSummary(t *testing.T) {
	cases := map[string]string{
		"app x: importing \"app\" failed:\nTraceback (most recent call last):\n  File \"<frozen importlib._bootstrap>\", line 1\n" +
			"  File \"/app/app.py\", line 3, in <module>\n    boom()\nNameError: name 'boom' is not defined\n": `File "/app/app.py", line 3, in <module>: NameError: name 'boom' is not defined`,
		"app x: reading /a: permission denied": "app x: reading /a: permission denied",
	}
	for in, want := range cases {
		if got := errorSummary(in); got != want {
			t.Errorf("errorSummary(%q) = %q, want %q", in, got, want)
		}
	}
}
