package runtime

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLoadUsesTheFingerprintedFiles fingerprints an app, changes its file, and checks
// that Load serves the files the fingerprint read (the change is a later reload's), and
// that a fresh fingerprint tells the change.
func TestLoadUsesTheFingerprintedFiles(t *testing.T) {
	e := newTestEngine(t)
	dir := filepath.Join(t.TempDir(), "fp")
	write := func(body string) {
		t.Helper()
		src := "def app(environ, start_response):\n" +
			"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
			"    return [b'" + body + "']\n"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := AppSpec{Name: "fp", Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 20,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 1, Queue: 1,
			QueueTimeout: time.Second, OpenFiles: 64}}
	write("first")
	a := e.NewApp(spec)
	before, err := a.Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	write("second")
	if err := a.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.pool.drain)
	if got := get(t, a, "/"); got != "first" {
		t.Errorf("the app fingerprinted with body %q answers %q after its folder changed", "first", got)
	}
	after, err := e.NewApp(spec).Fingerprint()
	if err != nil {
		t.Fatal(err)
	}
	if after.Key == before.Key {
		t.Error("a changed app.py left the fingerprint as it was")
	}
}
