package router

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

var discard = slog.New(slog.DiscardHandler)

// waitFor polls cond for up to 10 s and fails the test with what when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClose checks Router.Close: it stops the watcher, closes every app once the
// request running on it has ended, leaves no goroutine of the router behind, and
// refuses to load or reload afterwards.
func TestClose(t *testing.T) {
	e := engine(t) // the shared engine's goroutines are not the router's
	before := goruntime.NumGoroutine()
	apps := testkit.WriteTree(t, map[string]string{"a/app.py": appSource("a"), "b/app.py": appSource("b")})
	root := t.TempDir()
	rt, err := New(e, Config{Apps: config.Operator{Dir: apps, DataRoot: root, Limits: testLimits,
		Grants: map[string]config.Grant{"b": {DataDir: filepath.Join(root, "b"), Limits: testLimits}}},
		MaxAppBytes: 64 << 20}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if failed := rt.LoadAll(context.Background()); failed != 0 {
		t.Fatalf("%d apps failed to load", failed)
	}
	w, err := rt.Watch(context.Background(), WatchConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mounts := rt.Mounts()

	// A request still running on b when Close is called: b is closed once it ends.
	slow := make(chan int, 1)
	go func() { slow <- call(rt, http.MethodGet, "/b/slow", nil).Code }()
	waitFor(t, "the slow request reaches b", func() bool { running, _ := rt.Mount("b").App.InFlight(); return running == 1 })
	closed := make(chan error, 1)
	go func() { closed <- rt.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a request runs", err)
	case <-time.After(200 * time.Millisecond):
	}
	waitFor(t, "the watcher stops once Close is called", func() bool {
		select {
		case <-w.Done():
			return true
		default:
			return false
		}
	})
	if code := call(rt, http.MethodGet, "/a/", nil).Code; code != http.StatusNotFound {
		t.Errorf("a request after Close: %d, want 404", code)
	}
	testkit.WriteFile(t, filepath.Join(root, "b", "go"), "")
	if code := <-slow; code != http.StatusOK {
		t.Errorf("the request running at Close: %d, want 200", code)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, m := range mounts {
		if state, _ := m.App.Status(); state != runtime.StateClosed {
			t.Errorf("app %s is %s after Close, want closed", m.Dir.Name, state)
		}
	}
	if !testkit.FlockFree(t, filepath.Join(root, "b")) {
		t.Error("b's data folder is still locked after Close")
	}
	if err := rt.Reload(context.Background()); err == nil {
		t.Error("Reload after Close succeeded")
	}
	if err := rt.Load(context.Background(), mounts[0]); err == nil {
		t.Error("Load after Close succeeded")
	}
	if _, err := rt.Watch(context.Background(), WatchConfig{}); err == nil {
		t.Error("Watch after Close succeeded")
	}
	if err := rt.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	waitFor(t, "the router's goroutines end", func() bool { return goruntime.NumGoroutine() <= before })
}

// TestCloseGivesUpAtDeadline checks that Close returns ctx's error while a request
// still runs, and that the app is closed once that request ends.
func TestCloseGivesUpAtDeadline(t *testing.T) {
	root := t.TempDir()
	apps := testkit.WriteTree(t, map[string]string{"b/app.py": appSource("b")})
	rt := newTestRouter(t, apps, map[string]config.Grant{"b": {DataDir: filepath.Join(root, "b")}}, AdminConfig{}, nil)
	rt.LoadAll(context.Background())
	app := rt.Mount("b").App
	slow := make(chan int, 1)
	go func() { slow <- call(rt, http.MethodGet, "/b/slow", nil).Code }()
	waitFor(t, "the slow request reaches b", func() bool { running, _ := app.InFlight(); return running == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := rt.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a request running past its deadline: %v, want the deadline's error", err)
	}
	testkit.WriteFile(t, filepath.Join(root, "b", "go"), "")
	<-slow
	waitClosed(t, app)
}

// TestRemovedAppReleasesDataDir checks that an app whose folder is renamed or removed
// gives up its data folder, flock included, once it is closed: another process (or
// another app) can take the folder while the server runs on.
func TestRemovedAppReleasesDataDir(t *testing.T) {
	root := t.TempDir()
	apps := testkit.WriteTree(t, map[string]string{"notes/app.py": appSource("notes"), "todo/app.py": appSource("todo")})
	grants := map[string]config.Grant{
		"notes": {DataDir: filepath.Join(root, "notes")},
		"todo":  {DataDir: filepath.Join(root, "todo")},
	}
	rt := newTestRouter(t, apps, grants, AdminConfig{}, nil)
	t.Cleanup(func() { rt.Close(context.Background()) })
	rt.LoadAll(context.Background())
	notes, todo := rt.Mount("notes").App, rt.Mount("todo").App
	for _, name := range []string{"notes", "todo"} {
		if testkit.FlockFree(t, filepath.Join(root, name)) {
			t.Fatalf("the data folder of %s is not locked while it is served", name)
		}
	}

	// notes is renamed (to an app without a grant), todo removed.
	if err := os.Rename(filepath.Join(apps, "notes"), filepath.Join(apps, "jots")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(apps, "todo")); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, notes)
	waitClosed(t, todo)
	for _, name := range []string{"notes", "todo"} {
		if !testkit.FlockFree(t, filepath.Join(root, name)) {
			t.Errorf("the data folder of the app %s that went away is still locked", name)
		}
	}
	if code := call(rt, http.MethodGet, "/jots/", nil).Code; code != http.StatusOK {
		t.Errorf("the renamed app: %d, want 200", code)
	}
}

// TestRecordersShrink checks that the admin page's figures of an app go with it: when
// a reload removes it, and for every app on Close.
func TestRecordersShrink(t *testing.T) {
	apps := testkit.WriteTree(t, map[string]string{"a/app.py": appSource("a"), "b/app.py": appSource("b")})
	rt := newTestRouter(t, apps, nil, AdminConfig{Enabled: true, Token: "t"}, nil)
	rt.LoadAll(context.Background())
	recorded := func() []string {
		rt.admin.mu.Lock()
		defer rt.admin.mu.Unlock()
		var names []string
		for name := range rt.admin.apps {
			names = append(names, name)
		}
		return names
	}
	for _, p := range []string{"/a/", "/b/"} {
		if code := call(rt, http.MethodGet, p, nil).Code; code != http.StatusOK {
			t.Fatalf("GET %s: %d", p, code)
		}
	}
	if got := recorded(); len(got) != 2 {
		t.Fatalf("recorders %q, want a and b", got)
	}
	b := rt.Mount("b").App
	if err := os.RemoveAll(filepath.Join(apps, "b")); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, b)
	if got := recorded(); len(got) != 1 || got[0] != "a" {
		t.Errorf("recorders after b was removed: %q, want only a", got)
	}
	if err := rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := recorded(); len(got) != 0 {
		t.Errorf("recorders after Close: %q, want none", got)
	}
}
