//go:build linux || darwin

package guestfs

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Open flags a data folder passes through to the host as they are.
const (
	oDSync     = syscall.O_DSYNC
	oDirectory = syscall.O_DIRECTORY
)

// errFolderInUse is lockFolder's error when another open file description, another
// process's, holds the folder.
var errFolderInUse = errors.New("in use")

// lockFolder takes flock(LOCK_EX) on the open folder f without waiting. The lock lasts
// until f is closed.
func lockFolder(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errFolderInUse
	}
	return err
}
