package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	pythonwasm "github.com/wasmwsgi/wasmwsgi/python-wasm"
)

// guest writes the embedded python.wasm and the stdlib folder (stdlib.zip extracted, the
// shim added) that the micro-suite's hosts run.
func guest(t *testing.T) (wasmPath, stdlib string) {
	t.Helper()
	wasm, err := pythonwasm.Wasm()
	if errors.Is(err, pythonwasm.ErrNotBuilt) {
		t.Skip("python.wasm is not built; run make build")
	}
	if err != nil {
		t.Fatal(err)
	}
	zipped, err := pythonwasm.Stdlib()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wasmPath = filepath.Join(dir, "python.wasm")
	if err := os.WriteFile(wasmPath, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	stdlib = filepath.Join(dir, "stdlib")
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(stdlib, filepath.FromSlash(f.Name)), b)
	}
	writeFile(t, filepath.Join(stdlib, "_wasmwsgi_shim.py"), pythonwasm.Shim())
	return wasmPath, stdlib
}

// microApp stages the suite's app folder as run.sh does: app.py, suite.py and the .py
// files of Jinja2 and MarkupSafe.
func microApp(t *testing.T) string {
	t.Helper()
	site := filepath.Join("..", "..", "..", "apps", "flask", "site-packages")
	if _, err := os.Stat(filepath.Join(site, "jinja2")); err != nil {
		t.Skip("Jinja2 is not vendored; run make vendor-apps")
	}
	app := t.TempDir()
	for src, dst := range map[string]string{"../app/app.py": "app.py", "../suite.py": "suite.py"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(app, dst), b)
	}
	for _, pkg := range []string{"jinja2", "markupsafe"} {
		err := filepath.WalkDir(filepath.Join(site, pkg), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".py") {
				return err
			}
			rel, _ := filepath.Rel(site, p)
			b, err := os.ReadFile(p)
			if err == nil {
				writeFile(t, filepath.Join(app, "site-packages", rel), b)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return app
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunMicroSuite(t *testing.T) {
	wasmPath, stdlib := guest(t)
	app := microApp(t)
	cache, err := wazero.NewCompilationCacheWithDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rc := wazero.NewRuntimeConfig().WithCompilationCache(cache)

	t.Run("subset", func(t *testing.T) {
		var out bytes.Buffer
		code, err := run(context.Background(), rc, wasmPath, stdlib, app, "repeat=2&only=dict,jinja2", &out)
		if code != 0 || err != nil {
			t.Fatalf("exit %d, %v; body %s", code, err, out.String())
		}
		var res struct {
			Platform   string
			Repeat     int
			Benchmarks []struct {
				Name   string
				Median float64
				Times  []float64
				Check  string
			}
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("body is not the suite's JSON: %v\n%s", err, out.String())
		}
		if res.Platform != "wasi" || res.Repeat != 2 || len(res.Benchmarks) != 2 {
			t.Fatalf("want 2 benchmarks run twice on wasi, got %+v", res)
		}
		for i, name := range []string{"dict", "jinja2"} {
			b := res.Benchmarks[i]
			if b.Name != name || len(b.Times) != 2 || b.Median <= 0 || len(b.Check) != 8 {
				t.Errorf("benchmark %d: want %s timed twice with a checksum, got %+v", i, name, b)
			}
		}
	})

	t.Run("bad parameter", func(t *testing.T) {
		var out bytes.Buffer
		code, err := run(context.Background(), rc, wasmPath, stdlib, app, "only=nosuch", &out)
		if code != 1 || err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("want exit 1 for a 400 answer, got %d, %v", code, err)
		}
		if !strings.Contains(out.String(), "unknown benchmark(s) nosuch") {
			t.Errorf("body does not say which name is unknown: %s", out.String())
		}
	})
}
