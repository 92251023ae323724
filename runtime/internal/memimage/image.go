package memimage

import "fmt"

// checkSize refuses an image file that cannot be a linear memory.
func checkSize(size int64) error {
	if size == 0 || size%WasmPage != 0 {
		return fmt.Errorf("size %d is not a whole number of wasm pages", size)
	}
	return nil
}

// errTooLarge is the error of a Restored memory whose Image exceeds its limit.
func errTooLarge(size, limit uint64) error {
	return fmt.Errorf("snapshot of %d bytes exceeds the memory limit of %d", size, limit)
}
