// Package testkit holds what the tests of several packages share: files and app
// folders written for a test, and the real wasmwsgi binary, built once and run as a
// server process (server.go), and loopback servers for apps to connect to (tcp.go).
// Only tests import it, the tests of the nested e2e module included, and the soak
// (benchmarks/soak), which serves apps the same way.
package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ModulePath is the module whose root Root finds.
const ModulePath = "github.com/wasmwsgi/wasmwsgi"

// Root returns the repository's root: the closest folder, from the working directory
// up, whose go.mod is ModulePath's (a test runs in its package's folder).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module "+ModulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of " + ModulePath + " above the working directory")
		}
		dir = parent
	}
}

// RootOf is Root for a test: it fails the test when there is no root.
func RootOf(t testing.TB) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// WriteFile writes content to path, making its folders.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WriteTree makes a temporary folder holding files (slash-separated path below the
// folder -> content), such as an apps folder, and returns it.
func WriteTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		WriteFile(t, filepath.Join(dir, filepath.FromSlash(name)), content)
	}
	return dir
}

// ConfigFile writes text as a server configuration file in a temporary folder and
// returns its path.
func ConfigFile(t testing.TB, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wasmwsgi.toml")
	WriteFile(t, p, text)
	return p
}

// CacheHome is the XDG_CACHE_HOME the tests' servers and engines share, so that
// python.wasm is compiled once for all of them.
func CacheHome() string { return filepath.Join(os.TempDir(), "wasmwsgi-test-cache") }

// Env is the environment a test runs wasmwsgi in: this process's, without any
// WASMWSGI_* variable (the server would read it as configuration), with the shared
// CacheHome, and extra added (a later value of a variable wins).
func Env(t testing.TB, extra ...string) []string {
	t.Helper()
	if err := os.MkdirAll(CacheHome(), 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WASMWSGI_") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "XDG_CACHE_HOME="+CacheHome()), extra...)
}

// Build compiles cmd/wasmwsgi (python.wasm embedded) into dir with env added to the
// build's environment (CGO_ENABLED=0 builds it as the container image does), and
// returns the binary's path.
func Build(dir string, env ...string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "wasmwsgi")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/wasmwsgi")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/wasmwsgi: %v\n%s", err, out)
	}
	return bin, nil
}

// binary is the binary Main built.
var binary string

// Main builds the binary for a package's tests (see Build), runs them and removes the
// binary; its result is the exit code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
func Main(m *testing.M, buildEnv ...string) int {
	dir, err := os.MkdirTemp("", "wasmwsgi-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if binary, err = Build(dir, buildEnv...); err != nil {
		fmt.Fprintln(os.Stderr, "building wasmwsgi failed:", err)
		return 1
	}
	return m.Run()
}

// Binary returns the binary Main built.
func Binary(t testing.TB) string {
	t.Helper()
	if binary == "" {
		t.Fatal("no wasmwsgi binary: call testkit.Main from the package's TestMain")
	}
	return binary
}

// BundledApps returns the folder of the bundled examples and the flags that serve them
// under the checked-in operator configuration, server.toml, with their data folders in
// a temporary data_root. extra, when not "", is more TOML for that configuration
// (which then is a copy of server.toml with extra added).
func BundledApps(t testing.TB, extra string) (string, []string) {
	t.Helper()
	root := RootOf(t)
	file := filepath.Join(root, "server.toml")
	if extra != "" {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		file = filepath.Join(t.TempDir(), "server.toml")
		WriteFile(t, file, string(text)+"\n"+extra)
	}
	return filepath.Join(root, "apps"), []string{"--config", file, "--data-root", t.TempDir()}
}

// MigrateDjango brings the database of the Django example in appsDir up to date, as
// `make serve` does before it serves: `wasmwsgi run django --apps appsDir flags... --
// manage.py migrate`, where flags are the server's (its grants). It returns what the
// command printed, and fails the test when it fails. Without Django vendored it does
// nothing: the tests that need Django skip.
func MigrateDjango(t testing.TB, appsDir string, flags ...string) string {
	t.Helper()
	if st, err := os.Stat(filepath.Join(appsDir, "django", "site-packages", "django")); err != nil || !st.IsDir() {
		return ""
	}
	args := append(append([]string{"run", "django", "--apps", appsDir}, flags...), "--", "manage.py", "migrate")
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = Env(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wasmwsgi %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
