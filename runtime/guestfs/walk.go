package guestfs

import (
	"fmt"
	"io/fs"
	"os"
	"time"
)

// A walkEntry is one entry below an app folder, as walkFolder finds it.
type walkEntry struct {
	base string // its name in the folder that holds it
	dir  bool   // a folder (not a link to one)
	// regular is set for a regular file (not a link to one); size, mtime and id are
	// then its status, from the walk's lstat.
	regular bool
	size    int64
	mtime   time.Time
	id      fileIdentity
	idKnown bool   // id was filled: never where the platform gives no inode
	in      folder // the folder that holds it, open: read a regular file through it
}

// setInfo fills e's kind and status from info, a Stat or Lstat.
func (e *walkEntry) setInfo(info fs.FileInfo) {
	e.dir, e.regular = info.IsDir(), info.Mode().IsRegular()
	e.size, e.mtime = info.Size(), info.ModTime()
	e.id, e.idKnown = identityOf(info)
}

// walkFunc is what walkFolder calls for each entry: with its slash-separated name from
// the folder's top and the entry, or, when a folder or an entry's status cannot be read,
// with its name, a nil entry and the error. It may return fs.SkipDir for a folder; any
// other error stops the walk.
type walkFunc func(name string, e *walkEntry, err error) error

// walkFolder calls fn for each entry below the folder at top (root is that folder,
// opened), depth first and in name order, as fs.WalkDir does. Every folder is entered
// without following a link, so the walk never leaves the folder: a link is passed to fn
// as an entry that is neither a folder nor a regular file, for fn to resolve inside
// root. Each level holds its folder open while it walks the ones below, so folders
// deeper than maxFolderDepth are passed to fn as an error and not walked.
//
// On Linux the walk makes one system call for each entry (its lstat, none for a folder
// the directory listing already says is one) and four for each folder (walk_linux.go):
// a restart of a thousand tenants walks every file each of them ships. Elsewhere it
// walks with os.Root (walk_other.go).
func walkFolder(root *os.Root, top string, fn walkFunc) error { return walkTop(root, top, fn) }

// maxFolderDepth is how deep an app folder's tree is walked: far past any import path
// (the guest's paths are limited to 4096 bytes), and few enough open folders that a
// tenant's deep tree cannot use up the server's file descriptors.
const maxFolderDepth = 64

// errTooDeep is what walkFolder passes for a folder at maxFolderDepth.
var errTooDeep = fmt.Errorf("folders nested more than %d deep are left out", maxFolderDepth)
