//go:build !linux && !darwin

package guestfs

import (
	"errors"
	"os"
)

// Open flags: the weaker O_DSYNC is served by O_SYNC; O_DIRECTORY is checked after the
// open (DataFS.OpenFile) instead. No folder opens here anyway (lockFolder).
const (
	oDSync     = os.O_SYNC
	oDirectory = 0
)

var errFolderInUse = errors.New("in use")

// lockFolder refuses every data folder: without flock, a second server process could
// write the folder at the same time.
func lockFolder(*os.File) error {
	return errors.New("data folders need flock, which wasmwsgi uses only on Linux and macOS")
}
