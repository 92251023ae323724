package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

func TestServeAdminNeedsToken(t *testing.T) {
	apps := t.TempDir()
	conf := testkit.ConfigFile(t, "[admin]\nenabled = true\n")
	for name, c := range map[string]struct {
		args []string
		env  []string
	}{
		"config file": {args: []string{"--config", conf}},
		"environment": {env: []string{"WASMWSGI_ADMIN__ENABLED=true", "WASMWSGI_ADMIN__TOKEN= "}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, testkit.Binary(t), append([]string{"serve", apps, "--addr", "127.0.0.1:0"}, c.args...)...)
			cmd.Env = append(os.Environ(), c.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("serve with the admin page on and no token: %v, want exit code 2; stderr:\n%s", err, &stderr)
			}
			if msg := stderr.String(); !strings.Contains(msg, "admin.token must be set") ||
				!strings.Contains(msg, "WASMWSGI_ADMIN__TOKEN") {
				t.Errorf("the error does not name admin.token and how to set it:\n%s", msg)
			}
		})
	}
}

var adminListening = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)

func TestServeAdminAddr(t *testing.T) {
	const token = "admin-addr-test-token"
	apps := testkit.WriteTree(t, map[string]string{"hello/app.py": "def application(environ, start_response):\n" +
		"    start_response('200 OK', [])\n" +
		"    return [b'hello']\n"})
	conf := testkit.ConfigFile(t, fmt.Sprintf("[admin]\nenabled = true\ntoken = %q\n", token))
	s := testkit.Start(t, apps, "--config", conf, "--admin-addr", "127.0.0.1:0")
	m := adminListening.FindStringSubmatch(s.Log())
	if m == nil {
		t.Fatalf("no admin listener in the log:\n%s", s.Log())
	}
	adminBase := "http://" + m[1]

	withToken := func(url string) *http.Request {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return req
	}
	// The main listener serves the apps and the health checks, not the admin side.
	for path, want := range map[string]int{
		"/hello/": 200, "/_wasmwsgi/healthz": 200, "/_wasmwsgi/ready": 200,
		"/_wasmwsgi/": 404, "/_wasmwsgi/api/apps": 404, "/_wasmwsgi/metrics": 404,
	} {
		if r := do(t, withToken(s.Base+path)); r.status != want {
			t.Errorf("main listener GET %s: status %d, want %d", path, r.status, want)
		}
	}
	// The admin listener serves the admin side and no app.
	for path, want := range map[string]int{
		"/_wasmwsgi/": 200, "/_wasmwsgi/api/apps": 200, "/_wasmwsgi/metrics": 200, "/hello/": 404,
	} {
		if r := do(t, withToken(adminBase+path)); r.status != want {
			t.Errorf("admin listener GET %s: status %d, want %d", path, r.status, want)
		}
	}
	if r := get(t, adminBase+"/_wasmwsgi/api/apps"); r.status != http.StatusUnauthorized {
		t.Errorf("admin listener without the token: status %d, want 401", r.status)
	}
	// The metrics and the API there count the request to the app. The server counts a
	// request when its handler returns, which may be just after the client has the
	// response: wait for it.
	var metrics, api string
	deadline := time.Now().Add(10 * time.Second)
	for {
		metrics = get(t, adminBase+"/_wasmwsgi/metrics").body
		api = do(t, withToken(adminBase+"/_wasmwsgi/api/apps")).body
		if strings.Contains(metrics, `wasmwsgi_requests_total{app="hello",class="2xx",handler="app"} 1`) &&
			strings.Contains(api, `"name":"hello"`) && strings.Contains(api, `"requests":1,`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin listener does not count the request to hello\nmetrics:\n%s\napi: %s", metrics, api)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
