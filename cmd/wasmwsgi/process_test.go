package main

import (
	"os"
	"testing"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestChildProcesses runs subprocess through the server: python command lines started
// by a request run in new instances of the app's interpreter, under the operator's
// limits.processes.
func TestChildProcesses(t *testing.T) {
	src, err := os.ReadFile("testdata/processes/app.py")
	if err != nil {
		t.Fatal(err)
	}
	apps := testkit.WriteTree(t, map[string]string{
		"kids/app.py":   string(src),
		"nokids/app.py": string(src),
		// A tenant may narrow the grant, not widen it.
		"greedy/app.py":          string(src),
		"greedy/wasmwsgi.toml":   "[limits]\nprocesses = 9\n",
		"narrower/app.py":        string(src),
		"narrower/wasmwsgi.toml": "[limits]\nprocesses = 1\n",
	})
	conf := testkit.ConfigFile(t, `
[limits]
timeout = "60s"
[apps.kids.limits]
processes = 3
memory = "64MiB"
[apps.greedy.limits]
processes = 3
[apps.narrower.limits]
processes = 3
`)
	s := testkit.Start(t, apps, "--config", conf)

	for _, c := range []struct{ name, path, want string }{
		{"import", "/kids/", `'refused'`},
		{"argv, env, cwd, status, streams", "/kids/run", `[3, "['a', 'b'] True 42 False", 'to stderr']`},
		{"the parent's /tmp", "/kids/files", `[0, 'ababab']`},
		{"pipes", "/kids/pipes", `['HELLO\nWORLD', None, 0, ['1', '2', '3'], 'line one\n', 0]`},
		{"other programs", "/kids/missing",
			`['ls', '/bin/sh', '/usr/bin/python3', 'preexec_fn']`},
		{"timeout", "/kids/timeout", `['started\n', -9, 'started\n']`},
		{"killed before it ran", "/kids/killed", `[-9, False]`},
		{"memory limit", "/kids/memory", `[1, 'MemoryError']`},
		{"asyncio", "/kids/aio", `"asyncio's subprocesses run beside the event loop, and a child process ` +
			`here runs only while its parent waits: use subprocess.run"`},
		{"limits.processes", "/kids/limit",
			`[0, '7', 'this request started as many processes as limits.processes allows']`},
		{"each request its own count", "/kids/limit",
			`[0, '7', 'this request started as many processes as limits.processes allows']`},
		{"not granted", "/nokids/run",
			`"PermissionError: [Errno 63] starting a process is not granted to this app: ` +
				`the server's operator grants it with limits.processes"`},
		{"narrowed", "/narrower/limit", `[0, 'this request started as many processes as limits.processes allows']`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := fetch(t, s.Base+c.path)
			if code != 200 || body != c.want {
				t.Fatalf("%d %s\nwant %s", code, body, c.want)
			}
		})
	}
	if code, _ := fetch(t, s.Base+"/greedy/"); code == 200 {
		t.Errorf("greedy asked for more processes than granted and loaded")
	}
	s.WaitLog(t, "limits.processes = 9 is above this app's ceiling of 3")
}
