package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestAppBytecode checks that the guest imports an app's own __pycache__ bytecode and
// still validates it: a checked-hash .pyc of other source, or one that is not bytecode
// at all, is ignored in favour of the source. The .pyc files come from the host's
// python3, which must be the guest's version (3.11).
func TestAppBytecode(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on the host to compile bytecode with")
	}
	if tag, _ := exec.Command(py, "-c", "import sys; print(sys.implementation.cache_tag)").Output(); strings.TrimSpace(string(tag)) != GuestCacheTag {
		t.Skipf("host python3 is %s, not %s", strings.TrimSpace(string(tag)), GuestCacheTag)
	}
	e := newTestEngine(t)
	for _, tc := range []struct{ name, mode, want string }{
		{"unchecked", "UNCHECKED_HASH", "bytecode"}, // not validated: proves the .pyc is read
		{"checked", "CHECKED_HASH", "source"},       // validated against the real source
		{"garbage", "", "source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "app.py"), []byte("import mod\n\n"+
				"def application(environ, start_response):\n"+
				"    start_response('200 OK', [])\n"+
				"    return [mod.value.encode()]\n"), 0o644)
			os.WriteFile(filepath.Join(dir, "mod.py"), []byte("value = 'source'\n"), 0o644)
			pyc := filepath.Join(dir, "__pycache__", "mod."+GuestCacheTag+".pyc")
			os.MkdirAll(filepath.Dir(pyc), 0o755)
			if tc.mode == "" {
				os.WriteFile(pyc, []byte("not bytecode"), 0o644)
			} else {
				// Bytecode of different source, written where mod.py's belongs.
				other := filepath.Join(t.TempDir(), "mod.py")
				os.WriteFile(other, []byte("value = 'bytecode'\n"), 0o644)
				script := "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True, " +
					"invalidation_mode=py_compile.PycInvalidationMode." + tc.mode + ")"
				if out, err := exec.Command(py, "-c", script, other, pyc).CombinedOutput(); err != nil {
					t.Fatalf("py_compile: %v\n%s", err, out)
				}
			}
			a := loadApp(t, e, dir)
			if got := serveOnce(t, a, "/").Body.String(); got != tc.want {
				t.Errorf("body %q, want %q", got, tc.want)
			}
		})
	}
}

// TestAppDataDirLifecycle checks that an app holds its data folder, and the flock
// that keeps other processes out of it, from its load until it is closed, that two
// apps granted one folder share it until the last of them goes, and that an app that
// fails to load gives its folder back at once.
func TestAppDataDirLifecycle(t *testing.T) {
	e := newTestEngine(t)
	data := filepath.Join(t.TempDir(), "data")
	newApp := func(name, source string) *App {
		dir := filepath.Join(t.TempDir(), name)
		testkit.WriteFile(t, filepath.Join(dir, "app.py"), source)
		return e.NewApp(AppSpec{Name: name, Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 20, DataDir: data,
			Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 1, Queue: 1, QueueTimeout: time.Second, OpenFiles: 64}})
	}
	const hello = "def application(environ, start_response):\n" +
		"    start_response('200 OK', [])\n" +
		"    return [b'ok']\n"

	a, b := newApp("a", hello), newApp("b", hello)
	for _, app := range []*App{a, b} {
		if err := app.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if testkit.FlockFree(t, data) {
		t.Fatal("the data folder of a loaded app is not locked against other processes")
	}
	a.Close()
	if testkit.FlockFree(t, data) {
		t.Error("the data folder was given up while another app still uses it")
	}
	b.Close()
	b.Close() // Close is idempotent: the folder is released once
	if !testkit.FlockFree(t, data) {
		t.Error("the data folder is still locked once every app using it was closed")
	}

	broken := newApp("broken", "import no_such_module_here\n")
	if err := broken.Load(context.Background()); err == nil {
		t.Fatal("the broken app loaded")
	}
	if !testkit.FlockFree(t, data) {
		t.Error("an app that failed to load keeps its data folder locked")
	}
}
