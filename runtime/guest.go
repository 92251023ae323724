package runtime

import pythonwasm "github.com/wasmwsgi/wasmwsgi/python-wasm"

// Guest is the interpreter an Engine runs: python.wasm, the stdlib it imports from and
// the guest half of the WSGI server.
type Guest struct {
	// Wasm is CPython built as a WASI reactor by python-wasm/build.sh: it imports the
	// wasmwsgi host module and exports wasmwsgi_init, wasmwsgi_freeze and wasmwsgi_handle.
	Wasm []byte
	// Stdlib is a zip of the standard library, mounted read-only at GuestStdlib.
	Stdlib []byte
	// Shim is the source of _wasmwsgi_shim.py, added to the stdlib.
	Shim []byte
	// Zoneinfo is a zip of the IANA time zone database, mounted read-only at
	// GuestZoneinfo; nil leaves the guest without one.
	Zoneinfo []byte
}

// EmbeddedGuest returns the guest built into this binary (package python-wasm), or
// pythonwasm.ErrNotBuilt when python.wasm was not built before the binary.
func EmbeddedGuest() (*Guest, error) {
	wasm, err := pythonwasm.Wasm()
	if err != nil {
		return nil, err
	}
	stdlib, err := pythonwasm.Stdlib()
	if err != nil {
		return nil, err
	}
	zoneinfo, err := pythonwasm.Zoneinfo()
	if err != nil {
		return nil, err
	}
	return &Guest{Wasm: wasm, Stdlib: stdlib, Shim: pythonwasm.Shim(), Zoneinfo: zoneinfo}, nil
}
