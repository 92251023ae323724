package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"
)

// TestSpinningGuestLetsGoStop runs a guest that spins without calling the host and
// collects garbage while it spins: the collections stop the world, which finishes only
// because the guest's loop checks give its goroutine back to Go when Go asks (through
// wazero's preemption import, or every wasmbin.YieldEvery iterations where the build
// has no such import). The time limit then stops the guest at a loop head. Two Ps, so
// that this goroutine runs beside the guest: with one, a collection started while the
// guest spins finished only after the guest ended, with either kind of check (not
// explained yet).
func TestSpinningGuestLetsGoStop(t *testing.T) {
	e := newTestEngine(t)
	if want := map[bool]string{true: "preemption", false: "counter"}[e.preempting]; e.LoopChecks() != want || !e.interruptible {
		t.Fatalf("LoopChecks() = %q, want %q", e.LoopChecks(), want)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte("def application(environ, start_response):\n"+
		"    start_response('200 OK', [])\n    return [b'']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := e.NewApp(AppSpec{Name: "spin", Dir: dir, Entrypoint: "app", MaxFileBytes: 1 << 30,
		Limits: Limits{Timeout: 30 * time.Second, Memory: 128 << 20, Concurrency: 1, Queue: 1, QueueTimeout: time.Second, OpenFiles: 64}})
	t.Cleanup(func() { a.Close() })

	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(2))
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var out strings.Builder
		close(started)
		_, err := a.Run(context.Background(), Command{Argv: []string{"-c", "while True: pass"},
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Timeout: 3 * time.Second})
		done <- err
	}()
	<-started
	time.Sleep(500 * time.Millisecond) // the guest is spinning by now, on the only P
	for range 3 {
		goruntime.GC()
	}
	select {
	case err := <-done:
		t.Fatalf("the guest ended before the collections finished (%v): they waited for it", err)
	default:
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("the spinning guest ended with %v, want ErrTimeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the time limit did not stop the spinning guest")
	}
}
