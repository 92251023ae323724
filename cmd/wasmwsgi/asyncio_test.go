package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestAsyncio runs asyncio through the server: the event loop (whose self-pipe is a
// socket pair held in guest memory), streams on the host's connections, and executors
// and asgiref, whose threads only wait for their own work.
func TestAsyncio(t *testing.T) {
	echo := testkit.StartTCP(t, testkit.Echo)
	sink := testkit.StartTCP(t, testkit.Sink)
	src, err := os.ReadFile("testdata/asyncio/app.py")
	if err != nil {
		t.Fatal(err)
	}
	apps := testkit.WriteTree(t, map[string]string{"aio/app.py": string(src)})
	site := debSitePackages(t, "asgiref", "python3-asgiref")
	if err := os.CopyFS(filepath.Join(apps, "aio", "site-packages"), os.DirFS(site)); err != nil {
		t.Fatal(err)
	}
	conf := testkit.ConfigFile(t, fmt.Sprintf(`
[limits]
timeout = "20s"
[apps.aio]
outbound = ["tcp://127.0.0.1:%d", "tcp://127.0.0.1:%d"]
`, echo.Port, sink.Port))
	s := testkit.Start(t, apps, "--config", conf)

	for _, c := range []struct{ name, path, want string }{
		{"loop", "/aio/basics",
			`[['a', 'b'], 'wait_for timed out', 'threadsafe', [0, 1, 2], 0] 'new loop'`},
		{"select loop", "/aio/select-loop", `[['a', 'b'], 'wait_for timed out', 'threadsafe', [0, 1, 2], 0]`},
		// The loop's poll of its self-pipe alone waits in the host: one call for the
		// whole sleep, not a spin.
		{"sleep", "/aio/sleep", "slept=True polls=1"},
		{"streams", fmt.Sprintf("/aio/echo?port=%d", echo.Port),
			`['reading', 'sending', 'got ping', 100000, '127.0.0.1']`},
		{"read timeout", fmt.Sprintf("/aio/silent?port=%d", sink.Port), "read timed out"},
		// A blocking recv on an empty pair could only wait forever: it raises.
		{"socket pair", "/aio/pair", `[b'xy', b'z', 'EDEADLK', 'timed out', 'would block', b'', 'broken pipe']`},
		{"signals", "/aio/signals", `[64, True, 'Signals', [True, True, False], 'signal number out of range', ` +
			`'the fd N must be in non-blocking mode', [-1, True]]`},
		{"executors", "/aio/threads",
			`[1024, [1, 2], 'ZeroDivisionError', (6, True), 'this would wait forever', 'this would wait forever', ` +
				`'this would wait forever', False, "Thread.start: can't start new thread"]`},
		{"asgiref", "/aio/asgiref", `[42, [2, 2], [6, 6], "KeyError 'k'", 'nested: this would wait forever']`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := fetch(t, s.Base+c.path)
			if code != 200 || body != c.want {
				t.Fatalf("%d %q, want %q", code, body, c.want)
			}
		})
	}
	waitFor(t, "the echo server sees its connection closed", func() bool { return echo.Open() == 0 })
}
