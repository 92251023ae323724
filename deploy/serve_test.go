package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// buildServer compiles cmd/wasmwsgi the way the image does (no cgo) into a temporary
// folder.
func buildServer(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("../python-wasm/dist/python.wasm"); err != nil {
		t.Skip("python.wasm is not built: run `make build` first")
	}
	bin := filepath.Join(t.TempDir(), "wasmwsgi")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/wasmwsgi/wasmwsgi/cmd/wasmwsgi")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wasmwsgi: %v\n%s", err, out)
	}
	return bin
}

// serverEnv is the test's environment without WASMWSGI_* variables, which would
// override the configuration file under test.
func serverEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WASMWSGI_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home)
}

// logLines collects the server's stderr, one JSON object per line, and reports the
// address of the "listening" line.
type logLines struct {
	mu        sync.Mutex
	lines     []string
	notJSON   []string
	listening chan string
}

func (l *logLines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec map[string]any
		err := json.Unmarshal([]byte(line), &rec)
		l.mu.Lock()
		l.lines = append(l.lines, line)
		if err != nil {
			l.notJSON = append(l.notJSON, line)
		}
		l.mu.Unlock()
		if err != nil && strings.Contains(line, " msg=listening ") {
			// log.format = "text": go on, to fail on the format at the end.
			for _, field := range strings.Fields(line) {
				if a, ok := strings.CutPrefix(field, "addr="); ok {
					rec = map[string]any{"msg": "listening", "addr": a}
				}
			}
		}
		if addr, ok := rec["addr"].(string); ok && rec["msg"] == "listening" {
			select {
			case l.listening <- addr:
			default: // only the first one counts
			}
		}
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

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
	bin := buildServer(t)

	dir := t.TempDir()
	configPath := filepath.Join(dir, "wasmwsgi.toml")
	appDir := filepath.Join(dir, "apps", "hello")
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	app := "def application(environ, start_response):\n" +
		"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
		"    return [b'hello from the pod\\n']\n"
	if err := os.WriteFile(filepath.Join(appDir, "app.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configPath, []byte(cfg.text), 0o644); err != nil {
		t.Fatal(err)
	}

	args := slices.Clone(c.Args)
	args[slices.Index(args, "--config")+1] = configPath
	args = append(args, "--addr", "127.0.0.1:0", "--cache-dir", filepath.Join(dir, "cache"),
		"--data-root", filepath.Join(dir, "data"), filepath.Join(dir, "apps"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = serverEnv(dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logLines{listening: make(chan string, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readDone := make(chan struct{})
	go func() { logs.read(stderr); close(readDone) }()
	exited := make(chan error, 1)
	go func() { <-readDone; exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	var base string
	select {
	case addr := <-logs.listening:
		base = "http://" + addr
	case err := <-exited:
		stopped = true
		t.Fatalf("server exited before listening (%v); log:\n%s", err, logs)
	case <-ctx.Done():
		t.Fatalf("server did not listen; log:\n%s", logs)
	}

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
			t.Fatalf("GET %s = %d %q, want 503 while loading and then 200; log:\n%s", ready, code, body, logs)
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("server exited with %v after SIGTERM; log:\n%s", err, logs)
		}
	case <-time.After(grace):
		t.Fatalf("server still running %v after SIGTERM; log:\n%s", grace, logs)
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))

	// log.format = "json" took effect: every line the server wrote is JSON.
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.lines) == 0 {
		t.Error("server logged nothing")
	}
	if len(logs.notJSON) > 0 {
		t.Errorf("log lines that are not JSON (log.format in the ConfigMap is %v): %q", cfg.values["log.format"], logs.notJSON)
	}
	if !strings.Contains(strings.Join(logs.lines, "\n"), `"shutting down`) {
		t.Errorf("no shutdown line in the log:\n%s", strings.Join(logs.lines, "\n"))
	}
}
