//go:build !linux

package memimage

// reserve returns no memory: Reallocate grows it in the Go heap as the guest asks.
func reserve(uint64, bool) ([]byte, error) { return nil, nil }

func unreserve([]byte) {}

// guarded says a Memory's reservation is guarded (Memory.Guarded): not here, where a
// memory is a Go slice.
const guarded = false

func (m *Memory) setAccessible(uint64) error { return nil }
