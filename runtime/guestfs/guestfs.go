// Package guestfs holds the file systems a sandboxed instance sees, and nothing else:
// no path a guest names reaches the host beyond them.
//
//   - MemFS: a read-only tree held in memory (the stdlib, and each app's own files,
//     copied in at load: no host directory is mounted), mounted through ReadOnly,
//     which answers changes as a read-only mount does. NewRootTree makes the tree
//     mounted at "/": the folders leading to the other mounts, /dev's null, zero,
//     random and urandom, and the time zone database.
//   - ScratchFS: an instance's private, writable /tmp, in memory and capped in size.
//   - DataDir and DataFS: a host folder granted to an app, opened under an os.Root and
//     a write lock shared by the app's instances (datadir.go). DataDirs opens each
//     folder once and closes it, flock included, when its last user releases it.
//
// Each instance counts the files it holds open across all its mounts in one OpenFiles.
package guestfs

import (
	"errors"
	"io/fs"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// OpenFiles counts the files one instance holds open across its mounts and refuses to
// open more than its limit (EMFILE), so a guest cannot grow the host's file table
// without bound. An instance makes one call at a time, so it needs no lock.
type OpenFiles struct {
	open, limit int
	// roots counts the open mount roots among open: the runtime opens each mount's
	// root once, on its first use, and keeps it for the instance's life.
	roots int
}

// NewOpenFiles returns a count that refuses the file past limit (no limit when limit
// is 0 or less).
func NewOpenFiles(limit int) *OpenFiles {
	if limit <= 0 {
		limit = 1 << 30
	}
	return &OpenFiles{limit: limit}
}

func (c *OpenFiles) acquire(root bool) error {
	if c.open >= c.limit {
		return syscall.EMFILE
	}
	c.open++
	if root {
		c.roots++
	}
	return nil
}

func (c *OpenFiles) release(root bool) {
	c.open--
	if root {
		c.roots--
	}
}

// LeftOpen reports whether the guest holds files open beyond the mount roots, one
// each of mounts, that the runtime itself keeps.
func (c *OpenFiles) LeftOpen(mounts int) bool {
	return c.open > c.roots || c.roots > mounts
}

// errnoOf turns an os error into the guest's errno.
func errnoOf(err error) experimentalsys.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		return experimentalsys.UnwrapOSError(errno)
	case errors.Is(err, fs.ErrNotExist):
		return experimentalsys.ENOENT
	case errors.Is(err, fs.ErrExist):
		return experimentalsys.EEXIST
	case errors.Is(err, fs.ErrClosed):
		return experimentalsys.EBADF
	}
	// What is left is os.Root refusing a path that leaves the folder (through a
	// symlink) or a mode it does not take.
	return experimentalsys.EPERM
}
