// Package pythonwasm owns the guest: CPython compiled to wasm32-wasi (python.wasm), its
// stdlib bundle, and the Python shim that speaks WSGI on the guest side of the
// wasmwsgi host ABI. The wasm and the stdlib are produced by build.sh in this folder
// (see README.md) and embedded into the binary so that wasmwsgi ships as one file.
package pythonwasm

import (
	"embed"
	"errors"
	"io/fs"
	"strings"
)

//go:embed dist/*
var dist embed.FS

//go:embed shim/_wasmwsgi_shim.py
var shim []byte

// ErrNotBuilt is returned when the binary was compiled before python-wasm/build.sh ran.
var ErrNotBuilt = errors.New("python.wasm is not embedded in this binary: run `make build` " +
	"(it runs python-wasm/build.sh before compiling the Go code)")

// Wasm returns python.wasm: CPython built as a WASI reactor exporting wasmwsgi_init and
// wasmwsgi_handle, with debug info stripped.
func Wasm() ([]byte, error) { return read("dist/python.wasm") }

// Stdlib returns the zip of the standard library (sources and unchecked-hash .pyc files)
// that is served read-only at /usr/local/lib/python3.11 inside the guest.
func Stdlib() ([]byte, error) { return read("dist/stdlib.zip") }

// Zoneinfo returns the zip of the IANA time zone database (from Debian's tzdata, built by
// zoneinfo.sh) that is served read-only at /usr/share/zoneinfo inside the guest.
func Zoneinfo() ([]byte, error) { return read("dist/zoneinfo.zip") }

// Shim returns the source of _wasmwsgi_shim, the guest-side WSGI server.
func Shim() []byte { return shim }

// BuildInfo returns the recipe hash and pinned versions recorded by build.sh.
func BuildInfo() string {
	b, err := read("dist/BUILDINFO")
	if err != nil {
		return "not built"
	}
	return strings.TrimSpace(string(b))
}

// CPythonVersion returns the CPython version python.wasm was built from, e.g. "3.11.2".
func CPythonVersion() string {
	for _, line := range strings.Split(BuildInfo(), "\n") {
		if v, ok := strings.CutPrefix(line, "cpython "); ok {
			version, _, _ := strings.Cut(v, " ")
			return version
		}
	}
	return "unknown"
}

func read(name string) ([]byte, error) {
	b, err := fs.ReadFile(dist, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotBuilt
	}
	return b, err
}
