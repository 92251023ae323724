//go:build !linux && !darwin

package guestfs

import "io/fs"

// fileIdentity is never filled where the file system's inode and change time are not
// at hand: an index then vouches for no file, and every file is read. Its fields are
// those of the other platforms, for the index's encoding.
type fileIdentity struct {
	Dev, Ino           uint64
	Size, Mtime, Ctime int64
}

func identityOf(fs.FileInfo) (fileIdentity, bool) { return fileIdentity{}, false }
