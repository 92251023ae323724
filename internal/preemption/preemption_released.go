//go:build wazero_released

package preemption

// Import reports ok = false: wazero as released has no preemption import, and the
// guest's loop checks count iterations instead.
func Import() (module, name string, ok bool) { return "", "", false }
