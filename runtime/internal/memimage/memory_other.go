//go:build !linux

package memimage

// reserve returns no memory: Reallocate grows it in the Go heap as the guest asks.
func reserve(uint64) []byte { return nil }

func unreserve([]byte) {}
