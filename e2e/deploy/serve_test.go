package deploy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/wasmwsgi/wasmwsgi/internal/testkit"
)

// TestServeWithConfigMap runs the real server with the ConfigMap's file and the
// Deployment's arguments (only the listen address, the cache folder, data_root and the
// apps folder are overridden, by flags, as they name pod paths), then checks that the
// probes' paths answer as the probes expect and that SIGTERM drains and exits in
// time. The server rejects unknown keys and bad values, so this also proves the
// file is a configuration the server accepts.
func TestServeWithConfigMap(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server")
	}
	objs := loadAll(t)
	cfg := serverConfig(t, objs)
	d := the[*appsv1.Deployment](t, objs)
	c := serverContainer(t, d)
	if _, err := os.Stat(filepath.Join(testkit.RootOf(t), "python-wasm", "dist", "python.wasm")); err != nil {
		t.Skip("python.wasm is not built: run `make build` first")
	}
	// Built the way the image is (no cgo).
	bin, err := testkit.Build(t.TempDir(), "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	configPath := filepath.Join(dir, "wasmwsgi.toml")
	testkit.WriteFile(t, filepath.Join(dir, "apps", "hello", "app.py"),
		"def application(environ, start_response):\n"+
			"    start_response('200 OK', [('Content-Type', 'text/plain')])\n"+
			"    return [b'hello from the pod\\n']\n")
	testkit.WriteFile(t, configPath, cfg.text)

	args := slices.Clone(c.Args)
	args[slices.Index(args, "--config")+1] = configPath
	args = append(args, "--cache-dir", filepath.Join(dir, "cache"),
		"--data-root", filepath.Join(dir, "data"), filepath.Join(dir, "apps"))
	// The environment has no WASMWSGI_* variable, which would override the file under
	// test, and a HOME of its own.
	s := testkit.StartWith(t, testkit.Config{Args: args, Binary: bin, Env: testkit.Env(t, "HOME="+dir), Listening: true})
	base := s.Base
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	get := func(p string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// Liveness and startup: 200 as soon as the server listens, apps loaded or not.
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe} {
		if code, body := get(p.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("GET %s (liveness/startup) = %d %q, want 200", p.HTTPGet.Path, code, body)
		}
	}
	// Readiness: 200 once the apps are loaded, within the startup budget.
	ready := c.ReadinessProbe.HTTPGet.Path
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := get(ready)
		if code == http.StatusOK {
			if !strings.Contains(body, "hello") {
				t.Errorf("GET %s = 200 without the app: %q", ready, body)
			}
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET %s = %d %q, want 503 while loading and then 200", ready, code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The paths are the server's own, not ones anything would answer.
	if code, _ := get("/_wasmwsgi/no-such-endpoint"); code == http.StatusOK {
		t.Error("an unknown /_wasmwsgi/ path answers 200: the probe checks would prove nothing")
	}
	if code, body := get("/hello/"); code != http.StatusOK || body != "hello from the pod\n" {
		t.Errorf("GET /hello/ = %d %q", code, body)
	}

	// SIGTERM: the server drains and exits 0 well within the grace period.
	start := time.Now()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	select {
	case <-s.Done():
		if err := s.Err(); err != nil {
			t.Errorf("server exited with %v after SIGTERM", err)
		}
	case <-time.After(grace):
		t.Fatalf("server still running %v after SIGTERM", grace)
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))

	// log.format = "json" took effect: every line the server wrote is JSON.
	log := strings.TrimSuffix(s.Log(), "\n")
	if log == "" {
		t.Fatal("server logged nothing")
	}
	var notJSON []string
	for _, line := range strings.Split(log, "\n") {
		if !json.Valid([]byte(line)) {
			notJSON = append(notJSON, line)
		}
	}
	if len(notJSON) > 0 {
		t.Errorf("log lines that are not JSON (log.format in the ConfigMap is %v): %q", cfg.values["log.format"], notJSON)
	}
	if !strings.Contains(log, `"shutting down`) {
		t.Error("no shutdown line in the log")
	}
}
