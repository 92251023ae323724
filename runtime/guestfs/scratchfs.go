package guestfs

import (
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// ScratchFS is the guest's private /tmp: a writable file tree held in memory for one
// instance and dropped with it. It holds at most limit bytes of file content (EIO
// past it). It has hard and symbolic links with Linux's errors (link.go's resolve);
// a symbolic link that leads out of the tree is followed in the guest's own view
// (SetView), never on the host. Its times change as Linux's do: adding, removing or
// renaming an entry changes its folder's (both folders' for a rename) modification
// and change times; writing to a file or truncating it changes both of its own;
// linking, unlinking, renaming, chmod or setting its times changes only its change
// time; reading changes neither.
type ScratchFS struct {
	nodes       map[string]*scratchNode
	used, limit int64
	nextIno     sys.Inode
	// files, when set, counts the tree's open files with the instance's others.
	files *OpenFiles
	// mount is where the guest sees the tree; view finds the file system of a guest
	// path outside it (both set by SetView).
	mount string
	view  View
	// root is the tree's root as NewScratchFS made it, with its times, which Reset
	// puts back.
	root scratchNode
}

type scratchNode struct {
	ino                 sys.Inode
	dir                 bool
	link                string // a symbolic link's target; "" for files and folders
	nlink               uint64 // names of a file (hard links)
	data                []byte
	mode                fs.FileMode
	atime, mtime, ctime int64 // access, modification and status change, ns since 1970
}

// errCrossTree is what a link or a rename between two file systems gets. Linux says
// EXDEV, which wazero's errors cannot carry; wazero itself answers ENOSYS when the two
// names are in different mounts, so the guest shim turns ENOSYS from os.link and
// os.rename into EXDEV, and this tree answers the same when a link leads out of it.
const errCrossTree = experimentalsys.ENOSYS

// View finds the file system, and the path within it, of a guest path outside a
// ScratchFS, as the guest's libc picks a mount: the longest mount point that is a
// prefix of the path. ok is false when no mount holds the path.
type View func(guestPath string) (fsys experimentalsys.FS, rel string, ok bool)

// NewScratchFS returns an empty tree that holds at most limit bytes; its open files
// count in files (when not nil).
func NewScratchFS(limit int64, files *OpenFiles) *ScratchFS {
	s := &ScratchFS{nodes: map[string]*scratchNode{}, limit: limit, files: files, mount: "/tmp"}
	s.nodes["."] = s.newNode(true, 0o777)
	s.root = *s.nodes["."]
	return s
}

// SetView says where the guest sees the tree (mount, an absolute path) and how to
// reach the rest of the guest's files, for symbolic links that lead out of the tree.
// Without a view such links lead nowhere (ENOENT).
func (s *ScratchFS) SetView(mount string, view View) {
	s.mount, s.view = path.Clean(mount), view
}

// HasView tells whether SetView was called: a child process's instance shares its
// parent's tree, and follows its links through the parent's mounts.
func (s *ScratchFS) HasView() bool { return s.view != nil }

// Reset empties the tree, for the next request of a pooled instance, and puts the
// root's times back: nothing shows when or whether an earlier request used it. No
// file may be open (OpenFiles.LeftOpen tells).
func (s *ScratchFS) Reset() {
	if len(s.nodes) > 1 {
		s.nodes = map[string]*scratchNode{".": s.nodes["."]}
		s.used = 0
	}
	*s.nodes["."] = s.root
	// Inode numbers start again too: a file's number would otherwise count the files
	// earlier requests made.
	s.nextIno = s.root.ino
}

func (s *ScratchFS) newNode(dir bool, perm fs.FileMode) *scratchNode {
	s.nextIno++
	now := time.Now().UnixNano()
	return &scratchNode{ino: s.nextIno, dir: dir, nlink: 1, mode: perm.Perm(), atime: now, mtime: now, ctime: now}
}

// modified marks a node's content (a folder's entries) as changed at now: its
// modification and change times.
func (n *scratchNode) modified(now int64) { n.mtime, n.ctime = now, now }

// entriesChanged marks the folder that holds key as modified at now, as Linux does
// when an entry is added to it or removed from it.
func (s *ScratchFS) entriesChanged(key string, now int64) {
	if key != "." {
		s.nodes[path.Dir(key)].modified(now)
	}
}

// clean maps a guest path relative to the mount to a key of nodes.
func clean(p string) string {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "."
	}
	return c
}

// OpenFile implements experimentalsys.FS. As on Linux, O_CREAT|O_EXCL fails on any
// existing name, a dangling link included; O_NOFOLLOW fails on a link (ELOOP); a
// name written with a trailing slash must be a folder (EISDIR when creating).
func (s *ScratchFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	create := flag&experimentalsys.O_CREAT != 0
	excl := create && flag&experimentalsys.O_EXCL != 0
	if create && strings.HasSuffix(p, "/") && clean(p) != "." {
		// Linux refuses before it looks the last name up.
		if _, errno := s.resolve(strings.TrimSuffix(p, "/"), false); errno != 0 {
			return nil, errno
		}
		return nil, experimentalsys.EISDIR
	}
	r, errno := s.resolve(p, !excl && flag&experimentalsys.O_NOFOLLOW == 0)
	switch {
	case errno != 0:
		return nil, errno
	case r.outside != "":
		return foreignOp(s, r, func(o experimentalsys.FS, rel string) (experimentalsys.File, experimentalsys.Errno) {
			return o.OpenFile(rel, flag, perm)
		})
	case excl && r.n != nil:
		return nil, experimentalsys.EEXIST
	case r.n != nil && r.n.link != "":
		return nil, experimentalsys.ELOOP // O_NOFOLLOW on a link
	case r.n == nil && !create:
		return nil, experimentalsys.ENOENT
	case r.n == nil:
		r.n = s.newNode(false, perm)
		s.nodes[r.key] = r.n
		s.entriesChanged(r.key, r.n.mtime)
	}
	n := r.n
	if flag&experimentalsys.O_DIRECTORY != 0 && !n.dir {
		return nil, experimentalsys.ENOTDIR
	}
	writable := flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR) != 0
	if n.dir && writable {
		return nil, experimentalsys.EISDIR
	}
	if flag&experimentalsys.O_TRUNC != 0 && writable {
		s.used -= int64(len(n.data))
		n.data = nil
		n.modified(time.Now().UnixNano()) // Linux does, even when it was empty
	}
	if s.files != nil {
		if err := s.files.acquire(r.key == "."); err != nil {
			return nil, errnoOf(err)
		}
	}
	return &scratchFile{fs: s, name: r.key, n: n, append: flag&experimentalsys.O_APPEND != 0,
		readable: flag&experimentalsys.O_WRONLY == 0, writable: writable}, 0
}

// stat is Stat (follow) and Lstat (not following the last link).
func (s *ScratchFS) stat(p string, follow bool) (sys.Stat_t, experimentalsys.Errno) {
	r, errno := s.resolve(p, follow)
	switch {
	case errno != 0:
		return sys.Stat_t{}, errno
	case r.outside != "":
		return foreignOp(s, r, func(o experimentalsys.FS, rel string) (sys.Stat_t, experimentalsys.Errno) {
			return o.Stat(rel)
		})
	case r.n == nil:
		return sys.Stat_t{}, experimentalsys.ENOENT
	}
	return r.n.stat(), 0
}

// Stat implements experimentalsys.FS.
func (s *ScratchFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) { return s.stat(p, true) }

// Lstat implements experimentalsys.FS: a link is described, not followed.
func (s *ScratchFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) { return s.stat(p, false) }

// Mkdir implements experimentalsys.FS.
func (s *ScratchFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	r, errno := s.resolve(p, false)
	switch {
	case errno != 0:
		return errno
	case r.outside != "":
		return s.foreignErr(r, func(o experimentalsys.FS, rel string) experimentalsys.Errno { return o.Mkdir(rel, perm) })
	case r.n != nil:
		return experimentalsys.EEXIST
	}
	n := s.newNode(true, perm)
	s.nodes[r.key] = n
	s.entriesChanged(r.key, n.mtime)
	return 0
}

// Rmdir implements experimentalsys.FS.
func (s *ScratchFS) Rmdir(p string) experimentalsys.Errno {
	r, errno := s.resolve(p, false)
	switch {
	case errno != 0:
		return errno
	case r.outside != "":
		return s.foreignErr(r, func(o experimentalsys.FS, rel string) experimentalsys.Errno { return o.Rmdir(rel) })
	case r.n == nil:
		return experimentalsys.ENOENT
	case !r.n.dir:
		return experimentalsys.ENOTDIR
	case r.key == ".":
		return experimentalsys.EPERM // Linux's EBUSY, which wazero cannot pass
	case len(s.children(r.key)) > 0:
		return experimentalsys.ENOTEMPTY
	}
	delete(s.nodes, r.key)
	s.entriesChanged(r.key, time.Now().UnixNano())
	return 0
}

// Unlink implements experimentalsys.FS. A file's content is freed with its last name.
// A trailing slash does not follow a link to a folder (ENOTDIR), as on Linux.
func (s *ScratchFS) Unlink(p string) experimentalsys.Errno {
	r, errno := s.resolve(strings.TrimSuffix(p, "/"), false)
	r.slash = strings.HasSuffix(p, "/")
	switch {
	case errno != 0:
		return errno
	case r.outside != "":
		return s.foreignErr(r, func(o experimentalsys.FS, rel string) experimentalsys.Errno { return o.Unlink(rel) })
	case r.n == nil:
		return experimentalsys.ENOENT
	case r.n.dir:
		return experimentalsys.EISDIR
	case r.slash:
		return experimentalsys.ENOTDIR
	}
	now := time.Now().UnixNano()
	s.dropName(r.key, now)
	s.entriesChanged(r.key, now)
	return 0
}

// dropName removes one name of a file or link, at now: the file's change time.
func (s *ScratchFS) dropName(key string, now int64) {
	n := s.nodes[key]
	delete(s.nodes, key)
	n.ctime = now
	if n.nlink--; n.nlink == 0 {
		s.used -= int64(len(n.data))
	}
}

// Rename implements experimentalsys.FS. A link is renamed, not followed; a name
// outside the tree is errCrossTree.
func (s *ScratchFS) Rename(from, to string) experimentalsys.Errno {
	src, dst, errno := s.resolvePair(from, to)
	switch {
	case errno != 0:
		return errno
	case src.key == "." || dst.key == "." || strings.HasPrefix(dst.key, src.key+"/"):
		return experimentalsys.EINVAL
	case dst.n == src.n:
		return 0 // two names of one file: nothing to do
	case (src.slash || dst.slash) && !src.n.dir:
		return experimentalsys.ENOTDIR
	}
	n, now := src.n, time.Now().UnixNano()
	if old := dst.n; old != nil {
		switch {
		case n.dir && !old.dir:
			return experimentalsys.ENOTDIR
		case !n.dir && old.dir:
			return experimentalsys.EISDIR
		case old.dir && len(s.children(dst.key)) > 0:
			return experimentalsys.ENOTEMPTY
		}
		if old.dir {
			delete(s.nodes, dst.key)
		} else {
			s.dropName(dst.key, now)
		}
	}
	moved := map[string]*scratchNode{dst.key: n}
	for _, child := range s.descendants(src.key) {
		moved[dst.key+strings.TrimPrefix(child, src.key)] = s.nodes[child]
		delete(s.nodes, child)
	}
	delete(s.nodes, src.key)
	for k, v := range moved {
		s.nodes[k] = v
	}
	n.ctime = now
	s.entriesChanged(src.key, now)
	s.entriesChanged(dst.key, now)
	return 0
}

// resolvePair resolves the two names of a Rename or a Link, neither followed: both in
// the tree (errCrossTree otherwise) and the first one existing (ENOENT).
func (s *ScratchFS) resolvePair(from, to string) (src, dst resolved, errno experimentalsys.Errno) {
	if src, errno = s.resolve(from, false); errno != 0 {
		return src, dst, errno
	}
	if dst, errno = s.resolve(to, false); errno != 0 {
		return src, dst, errno
	}
	switch {
	case src.outside != "" || dst.outside != "":
		return src, dst, errCrossTree
	case src.n == nil:
		return src, dst, experimentalsys.ENOENT
	}
	return src, dst, 0
}

// Link implements experimentalsys.FS: a second name for a file (or for a link, which
// is not followed). Folders cannot be linked (EPERM), nor names outside the tree
// (errCrossTree).
func (s *ScratchFS) Link(from, to string) experimentalsys.Errno {
	src, dst, errno := s.resolvePair(from, to)
	switch {
	case errno != 0:
		return errno
	case dst.n != nil:
		return experimentalsys.EEXIST
	case src.n.dir:
		return experimentalsys.EPERM
	case src.slash || dst.slash:
		return experimentalsys.ENOTDIR
	}
	now := time.Now().UnixNano()
	src.n.nlink++
	src.n.ctime = now
	s.nodes[dst.key] = src.n
	s.entriesChanged(dst.key, now)
	return 0
}

// Symlink implements experimentalsys.FS. The target is kept as written and read
// only when the link is followed. It is copied: wazero passes it in guest memory.
func (s *ScratchFS) Symlink(target, link string) experimentalsys.Errno {
	r, errno := s.resolve(link, false)
	switch {
	case errno != 0:
		return errno
	case r.outside != "":
		return s.foreignErr(r, func(o experimentalsys.FS, rel string) experimentalsys.Errno { return o.Symlink(target, rel) })
	case r.n != nil:
		return experimentalsys.EEXIST
	case target == "":
		return experimentalsys.ENOENT
	case r.slash:
		return experimentalsys.ENOENT
	}
	n := s.newNode(false, 0o777)
	n.link = strings.Clone(target)
	s.nodes[r.key] = n
	s.entriesChanged(r.key, n.mtime)
	return 0
}

// Readlink implements experimentalsys.FS.
func (s *ScratchFS) Readlink(p string) (string, experimentalsys.Errno) {
	r, errno := s.resolve(p, false)
	switch {
	case errno != 0:
		return "", errno
	case r.outside != "":
		return foreignOp(s, r, func(o experimentalsys.FS, rel string) (string, experimentalsys.Errno) { return o.Readlink(rel) })
	case r.n == nil:
		return "", experimentalsys.ENOENT
	case r.n.link == "":
		return "", experimentalsys.EINVAL
	}
	return r.n.link, 0
}

// Chmod implements experimentalsys.FS.
func (s *ScratchFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	r, errno := s.resolve(p, true)
	switch {
	case errno != 0:
		return errno
	case r.outside != "":
		return s.foreignErr(r, func(o experimentalsys.FS, rel string) experimentalsys.Errno { return o.Chmod(rel, perm) })
	case r.n == nil:
		return experimentalsys.ENOENT
	}
	r.n.mode = perm.Perm()
	r.n.ctime = time.Now().UnixNano()
	return 0
}

// Utimens implements experimentalsys.FS.
func (s *ScratchFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	r, errno := s.resolve(p, true)
	switch {
	case errno != 0:
		return errno
	case r.outside != "":
		return s.foreignErr(r, func(o experimentalsys.FS, rel string) experimentalsys.Errno { return o.Utimens(rel, atim, mtim) })
	case r.n == nil:
		return experimentalsys.ENOENT
	}
	r.n.setTimes(atim, mtim)
	return 0
}

// foreignErr is foreignOp for an operation that returns only an Errno.
func (s *ScratchFS) foreignErr(r resolved, op func(experimentalsys.FS, string) experimentalsys.Errno) experimentalsys.Errno {
	_, errno := foreignOp(s, r, func(o experimentalsys.FS, rel string) (struct{}, experimentalsys.Errno) {
		return struct{}{}, op(o, rel)
	})
	return errno
}

// setTimes sets the times given, leaving those that are UTIME_OMIT; the change time
// becomes now, as on Linux, unless both are left.
func (n *scratchNode) setTimes(atim, mtim int64) {
	if atim == experimentalsys.UTIME_OMIT && mtim == experimentalsys.UTIME_OMIT {
		return
	}
	if atim != experimentalsys.UTIME_OMIT {
		n.atime = atim
	}
	if mtim != experimentalsys.UTIME_OMIT {
		n.mtime = mtim
	}
	n.ctime = time.Now().UnixNano()
}

// children returns the names of a directory's direct entries, sorted.
func (s *ScratchFS) children(dir string) []string {
	var out []string
	for name := range s.nodes {
		if name != "." && path.Dir(name) == dir {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (s *ScratchFS) descendants(dir string) []string {
	var out []string
	for name := range s.nodes {
		if strings.HasPrefix(name, dir+"/") {
			out = append(out, name)
		}
	}
	return out
}

func (n *scratchNode) stat() sys.Stat_t {
	mode, size := n.mode, int64(len(n.data))
	switch {
	case n.dir:
		mode |= fs.ModeDir
	case n.link != "":
		mode |= fs.ModeSymlink
		size = int64(len(n.link))
	}
	return sys.Stat_t{Ino: n.ino, Mode: mode, Nlink: n.nlink, Size: size, Atim: n.atime, Mtim: n.mtime, Ctim: n.ctime}
}

// scratchFile is an open file or directory of a ScratchFS.
type scratchFile struct {
	experimentalsys.UnimplementedFile
	fs                         *ScratchFS
	name                       string
	n                          *scratchNode
	off                        int64
	append, readable, writable bool
	dirents                    []experimentalsys.Dirent // remaining entries of a directory read
	dirRead                    bool
	closed                     bool
}

func (f *scratchFile) Dev() (uint64, experimentalsys.Errno)      { return 0, 0 }
func (f *scratchFile) Ino() (sys.Inode, experimentalsys.Errno)   { return f.n.ino, 0 }
func (f *scratchFile) IsDir() (bool, experimentalsys.Errno)      { return f.n.dir, 0 }
func (f *scratchFile) IsAppend() bool                            { return f.append }
func (f *scratchFile) Stat() (sys.Stat_t, experimentalsys.Errno) { return f.n.stat(), 0 }
func (f *scratchFile) Sync() experimentalsys.Errno               { return 0 }
func (f *scratchFile) Datasync() experimentalsys.Errno           { return 0 }

func (f *scratchFile) Close() experimentalsys.Errno {
	if !f.closed && f.fs.files != nil {
		f.fs.files.release(f.name == ".")
	}
	f.closed = true
	return 0
}

func (f *scratchFile) SetAppend(enable bool) experimentalsys.Errno {
	f.append = enable
	return 0
}

func (f *scratchFile) Utimens(atim, mtim int64) experimentalsys.Errno {
	f.n.setTimes(atim, mtim)
	return 0
}

func (f *scratchFile) Read(p []byte) (int, experimentalsys.Errno) {
	n, errno := f.Pread(p, f.off)
	f.off += int64(n)
	return n, errno
}

func (f *scratchFile) Pread(p []byte, off int64) (int, experimentalsys.Errno) {
	switch {
	case f.n.dir:
		return 0, experimentalsys.EISDIR
	case !f.readable:
		return 0, experimentalsys.EBADF
	case off < 0:
		return 0, experimentalsys.EINVAL
	case off >= int64(len(f.n.data)):
		return 0, 0
	}
	return copy(p, f.n.data[off:]), 0
}

func (f *scratchFile) Seek(offset int64, whence int) (int64, experimentalsys.Errno) {
	if f.n.dir {
		if offset != 0 || whence != io.SeekStart {
			return 0, experimentalsys.EINVAL
		}
		f.dirRead, f.dirents = false, nil
		return 0, 0
	}
	base := map[int]int64{io.SeekStart: 0, io.SeekCurrent: f.off, io.SeekEnd: int64(len(f.n.data))}
	b, ok := base[whence]
	if !ok || b+offset < 0 {
		return f.off, experimentalsys.EINVAL
	}
	f.off = b + offset
	return f.off, 0
}

func (f *scratchFile) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if !f.n.dir {
		return nil, experimentalsys.EBADF
	}
	if !f.dirRead {
		f.dirRead = true
		for _, name := range f.fs.children(f.name) {
			c := f.fs.nodes[name]
			var typ fs.FileMode
			switch {
			case c.dir:
				typ = fs.ModeDir
			case c.link != "":
				typ = fs.ModeSymlink
			}
			f.dirents = append(f.dirents, experimentalsys.Dirent{Ino: c.ino, Name: path.Base(name), Type: typ})
		}
	}
	if n <= 0 || n > len(f.dirents) {
		n = len(f.dirents)
	}
	out := f.dirents[:n]
	f.dirents = f.dirents[n:]
	return out, 0
}

func (f *scratchFile) Write(p []byte) (int, experimentalsys.Errno) {
	if f.append {
		f.off = int64(len(f.n.data))
	}
	n, errno := f.Pwrite(p, f.off)
	f.off += int64(n)
	return n, errno
}

func (f *scratchFile) Pwrite(p []byte, off int64) (int, experimentalsys.Errno) {
	switch {
	case f.n.dir:
		return 0, experimentalsys.EISDIR
	case !f.writable:
		return 0, experimentalsys.EBADF
	case off < 0:
		return 0, experimentalsys.EINVAL
	}
	if len(p) == 0 {
		return 0, 0 // Linux changes no time for an empty write
	}
	end := off + int64(len(p))
	if grow := end - int64(len(f.n.data)); grow > 0 {
		if errno := f.resize(end); errno != 0 {
			return 0, errno
		}
	}
	f.n.modified(time.Now().UnixNano())
	return copy(f.n.data[off:], p), 0
}

func (f *scratchFile) Truncate(size int64) experimentalsys.Errno {
	switch {
	case f.n.dir:
		return experimentalsys.EISDIR
	case !f.writable:
		return experimentalsys.EBADF
	case size < 0:
		return experimentalsys.EINVAL
	}
	if errno := f.resize(size); errno != 0 {
		return errno
	}
	f.n.modified(time.Now().UnixNano()) // as Linux's ftruncate, even to the same size
	return 0
}

// resize sets the file's length, counting the change against the tree's limit.
func (f *scratchFile) resize(size int64) experimentalsys.Errno {
	delta := size - int64(len(f.n.data))
	if f.fs.used+delta > f.fs.limit {
		return experimentalsys.EIO // WASI preview 1 as wazero maps it has no ENOSPC
	}
	f.fs.used += delta
	if size <= int64(cap(f.n.data)) {
		old := len(f.n.data)
		f.n.data = f.n.data[:size]
		if size > int64(old) {
			clear(f.n.data[old:])
		}
	} else {
		grown := make([]byte, size, max(size, min(2*int64(cap(f.n.data)), f.fs.limit)))
		copy(grown, f.n.data)
		f.n.data = grown
	}
	return 0
}
