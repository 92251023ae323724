//go:build !wazero_released

// Package preemption names the import through which the engine lets the guest read
// whether Go asks for its goroutine back (third_party/wazero-patches/0009), in the
// builds that have it: every build of this repo except one against wazero as
// released, which takes -tags wazero_released and gets preemption_released.go instead.
package preemption

import "github.com/tetratelabs/wazero/experimental"

// Import returns the module and name of an immutable i32 global whose reads compile to
// a test of the running goroutine's preemption request, and ok = true.
func Import() (module, name string, ok bool) {
	return experimental.PreemptImportModule, experimental.PreemptImportName, true
}
