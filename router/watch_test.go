package router

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// bodyApp answers the content of /app/<file>, read at import, or "none".
func bodyApp(file string) string {
	return `import os
p = "/app/` + file + `"
BODY = open(p).read() if os.path.exists(p) else "none"

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [BODY.encode()]
`
}

// waitBody polls GET path until it answers 200 with body.
func (tr *reloadRouter) waitBody(t *testing.T, path, body string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var code int
	var got string
	for time.Now().Before(deadline) {
		if code, got = tr.get(t, path); code == 200 && got == body {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET %s: %d %q after 30s, want 200 %q", path, code, got, body)
}

// waitReloads waits until the log shows at least n finished reloads.
func (tr *reloadRouter) waitReloads(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Count(tr.log.String(), `msg="reload done"`) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d reloads after 30s", n)
}

func TestWatchReloadsChangedFiles(t *testing.T) {
	tr := newReloadRouter(t, map[string]string{
		"hot/app.py":       bodyApp("pkg/body.txt"),
		"hot/pkg/body.txt": "v1",
		"deep/app.py":      bodyApp("newdir/body.txt"),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := tr.Watch(ctx, WatchConfig{Debounce: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tr.waitBody(t, "/hot/", "v1")

	// A file in a subfolder that existed at the start.
	testkit.WriteFile(t, filepath.Join(tr.dir, "hot", "pkg", "body.txt"), "v2")
	tr.waitBody(t, "/hot/", "v2")

	// A new app folder.
	testkit.WriteFile(t, filepath.Join(tr.dir, "later", "app.py"), bodyApp("x"))
	tr.waitBody(t, "/later/", "none")

	// A file in a subfolder created after the start: the new folder is watched too.
	before := strings.Count(tr.log.String(), `msg="reload done"`)
	if err := os.Mkdir(filepath.Join(tr.dir, "deep", "newdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tr.waitReloads(t, before+1)
	testkit.WriteFile(t, filepath.Join(tr.dir, "deep", "newdir", "body.txt"), "v3")
	tr.waitBody(t, "/deep/", "v3")

	cancel()
	select {
	case <-w.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the watcher did not stop within 30s of its context ending")
	}
}

func TestWatchIgnores(t *testing.T) {
	root := t.TempDir()
	rt := &Router{}
	data := filepath.Join(root, "data")
	rt.dataDirs.Store(&[]string{data})
	w := &Watcher{rt: rt, root: root, ignore: []string{filepath.Join(root, "cache")}}
	cases := map[string]bool{
		"app/app.py":                          false,
		"app/.env":                            false,
		"app/pkg/mod.py":                      false,
		"newapp":                              false,
		"app/__pycache__":                     true,
		"app/__pycache__/app.cpython-311.pyc": true,
		"app/.app.py.swp":                     true,
		"app/4913":                            true,
		"app/app.py~":                         true,
		"app/.#app.py":                        true,
		"app/#app.py#":                        true,
		"app/app.py___jb_tmp___":              true,
		"app/.git/index":                      true,
		".cache/snapshots/x.mem":              true,
		"_skipped/app.py":                     true,
		"cache/wazero/x":                      true,
		"data/db.sqlite3":                     true,
		"data":                                true,
	}
	for rel, want := range cases {
		if got := w.skipped(filepath.Join(root, rel)); got != want {
			t.Errorf("skipped(%s) = %v, want %v", rel, got, want)
		}
	}
	if w.skipped(root) {
		t.Error("the apps folder itself is skipped")
	}
	if w.skipped(filepath.Dir(root)) == false {
		t.Error("a folder outside the apps folder is not skipped")
	}
	if w.relevant(fsnotify.Event{Name: filepath.Join(root, "app", "app.py"), Op: fsnotify.Chmod}) {
		t.Error("a mode change counts as a change")
	}
	if !w.relevant(fsnotify.Event{Name: filepath.Join(root, "app", "app.py"), Op: fsnotify.Write}) {
		t.Error("a write to app.py does not count")
	}
}
