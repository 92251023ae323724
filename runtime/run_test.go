package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRun runs command lines in an app's sandbox through App.Run: the app is not
// imported, the streams and the exit status are the command's, the time limit and the
// context stop it, and the app still loads and serves afterwards.
func TestRun(t *testing.T) {
	e := newTestEngine(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte("print('imported')\n\n"+
		"def application(environ, start_response):\n"+
		"    start_response('200 OK', [])\n"+
		"    return [b'served']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := e.NewApp(AppSpec{Name: "cmd", Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 30,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 1, Queue: 1, QueueTimeout: time.Second, OpenFiles: 64}})
	t.Cleanup(func() { a.Close() })
	run := func(ctx context.Context, stdin string, timeout time.Duration, argv ...string) (int, string, string, error) {
		var stdout, stderr strings.Builder
		status, err := a.Run(ctx, Command{Argv: argv, Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
			Timeout: timeout})
		return status, stdout.String(), stderr.String(), err
	}

	status, out, errOut, err := run(context.Background(), "abc",
		0, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper() + ' ' + ' '.join(sys.argv)); raise SystemExit(7)", "x")
	if err != nil || status != 7 || out != "ABC -c x" {
		t.Errorf("Run = %d, %v; stdout %q, stderr %q; want 7 and \"ABC -c x\" (the app not imported)", status, err, out, errOut)
	}

	if _, _, _, err := run(context.Background(), "", 200*time.Millisecond, "-c", "while True: pass"); !errors.Is(err, ErrTimeout) {
		t.Errorf("an endless command with a time limit: %v, want ErrTimeout", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	if _, _, _, err := run(ctx, "", 0, "-c", "import time\nwhile True: time.sleep(0.01)"); !errors.Is(err, context.Canceled) {
		t.Errorf("an endless command whose context ends: %v, want context.Canceled", err)
	}

	if err := a.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := serveOnce(t, a, "/").Body.String(); got != "served" {
		t.Errorf("after the commands the app serves %q", got)
	}
}
