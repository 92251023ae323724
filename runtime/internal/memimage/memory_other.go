//go:build !linux

package memimage

// reserve returns no memory: Reallocate grows it in the Go heap as the guest asks.
func reserve(uint64) ([]byte, error) { return nil, nil }

func unreserve([]byte) {}
