//go:build linux || darwin

package guestfs

import (
	"io/fs"
	"syscall"
)

// fileIdentity is what tells a file on disk unchanged: the same file (device and
// inode), with the same size and times.
type fileIdentity struct {
	Dev   uint64
	Ino   uint64
	Size  int64
	Mtime int64
	Ctime int64
}

func identityOf(info fs.FileInfo) (fileIdentity, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdentity{}, false
	}
	return fileIdentity{Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: st.Size,
		Mtime: timespecNanos(statMtim(st)), Ctime: timespecNanos(statCtim(st))}, true
}

func timespecNanos(ts syscall.Timespec) int64 { return ts.Sec*1e9 + int64(ts.Nsec) }
