//go:build !linux

package guestfs

import "os"

// dropCached does nothing where posix_fadvise is not available.
func dropCached(*os.File) {}
