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
// past it) and has no links, so nothing in it can point outside it.
type ScratchFS struct {
	experimentalsys.UnimplementedFS // Link, Symlink and Readlink stay ENOSYS
	nodes                           map[string]*scratchNode
	used, limit                     int64
	nextIno                         sys.Inode
	// files, when set, counts the tree's open files with the instance's others.
	files *OpenFiles
}

type scratchNode struct {
	ino   sys.Inode
	dir   bool
	data  []byte
	mode  fs.FileMode
	mtime int64
}

// NewScratchFS returns an empty tree that holds at most limit bytes; its open files
// count in files (when not nil).
func NewScratchFS(limit int64, files *OpenFiles) *ScratchFS {
	s := &ScratchFS{nodes: map[string]*scratchNode{}, limit: limit, files: files}
	s.nodes["."] = s.newNode(true, 0o777)
	return s
}

// Reset empties the tree, for the next request of a pooled instance. No file may be
// open (OpenFiles.LeftOpen tells).
func (s *ScratchFS) Reset() {
	if len(s.nodes) > 1 {
		s.nodes = map[string]*scratchNode{".": s.nodes["."]}
		s.used = 0
	}
}

func (s *ScratchFS) newNode(dir bool, perm fs.FileMode) *scratchNode {
	s.nextIno++
	return &scratchNode{ino: s.nextIno, dir: dir, mode: perm.Perm(), mtime: time.Now().UnixNano()}
}

// clean maps a guest path relative to the mount to a key of nodes.
func clean(p string) string {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "."
	}
	return c
}

// parentOf returns the directory that must exist for name to be created.
func (s *ScratchFS) parentOf(name string) (*scratchNode, experimentalsys.Errno) {
	parent, ok := s.nodes[path.Dir(name)]
	switch {
	case !ok:
		return nil, experimentalsys.ENOENT
	case !parent.dir:
		return nil, experimentalsys.ENOTDIR
	}
	return parent, 0
}

// OpenFile implements experimentalsys.FS.
func (s *ScratchFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	name := clean(p)
	n, ok := s.nodes[name]
	switch {
	case ok && flag&experimentalsys.O_CREAT != 0 && flag&experimentalsys.O_EXCL != 0:
		return nil, experimentalsys.EEXIST
	case !ok && flag&experimentalsys.O_CREAT == 0:
		return nil, experimentalsys.ENOENT
	case !ok:
		if _, errno := s.parentOf(name); errno != 0 {
			return nil, errno
		}
		n = s.newNode(false, perm)
		s.nodes[name] = n
	}
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
	}
	if s.files != nil {
		if err := s.files.acquire(name == "."); err != nil {
			return nil, errnoOf(err)
		}
	}
	return &scratchFile{fs: s, name: name, n: n, append: flag&experimentalsys.O_APPEND != 0,
		readable: flag&experimentalsys.O_WRONLY == 0, writable: writable}, 0
}

// Stat implements experimentalsys.FS.
func (s *ScratchFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	n, ok := s.nodes[clean(p)]
	if !ok {
		return sys.Stat_t{}, experimentalsys.ENOENT
	}
	return n.stat(), 0
}

// Lstat implements experimentalsys.FS; there are no links, so it is Stat.
func (s *ScratchFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) { return s.Stat(p) }

// Mkdir implements experimentalsys.FS.
func (s *ScratchFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	name := clean(p)
	if _, ok := s.nodes[name]; ok {
		return experimentalsys.EEXIST
	}
	if _, errno := s.parentOf(name); errno != 0 {
		return errno
	}
	s.nodes[name] = s.newNode(true, perm)
	return 0
}

// Rmdir implements experimentalsys.FS.
func (s *ScratchFS) Rmdir(p string) experimentalsys.Errno {
	name := clean(p)
	n, ok := s.nodes[name]
	switch {
	case !ok:
		return experimentalsys.ENOENT
	case !n.dir:
		return experimentalsys.ENOTDIR
	case name == ".":
		return experimentalsys.EPERM
	case len(s.children(name)) > 0:
		return experimentalsys.ENOTEMPTY
	}
	delete(s.nodes, name)
	return 0
}

// Unlink implements experimentalsys.FS.
func (s *ScratchFS) Unlink(p string) experimentalsys.Errno {
	name := clean(p)
	n, ok := s.nodes[name]
	switch {
	case !ok:
		return experimentalsys.ENOENT
	case n.dir:
		return experimentalsys.EISDIR
	}
	s.used -= int64(len(n.data))
	delete(s.nodes, name)
	return 0
}

// Rename implements experimentalsys.FS.
func (s *ScratchFS) Rename(from, to string) experimentalsys.Errno {
	src, dst := clean(from), clean(to)
	n, ok := s.nodes[src]
	if !ok {
		return experimentalsys.ENOENT
	}
	if src == "." || dst == "." || strings.HasPrefix(dst, src+"/") {
		return experimentalsys.EINVAL
	}
	if _, errno := s.parentOf(dst); errno != 0 {
		return errno
	}
	if old, ok := s.nodes[dst]; ok {
		if old.dir != n.dir || (old.dir && len(s.children(dst)) > 0) {
			return experimentalsys.EEXIST
		}
		s.used -= int64(len(old.data))
	}
	moved := map[string]*scratchNode{dst: n}
	for _, child := range s.descendants(src) {
		moved[dst+strings.TrimPrefix(child, src)] = s.nodes[child]
		delete(s.nodes, child)
	}
	delete(s.nodes, src)
	for k, v := range moved {
		s.nodes[k] = v
	}
	return 0
}

// Chmod implements experimentalsys.FS.
func (s *ScratchFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	n, ok := s.nodes[clean(p)]
	if !ok {
		return experimentalsys.ENOENT
	}
	n.mode = perm.Perm()
	return 0
}

// Utimens implements experimentalsys.FS.
func (s *ScratchFS) Utimens(p string, _, mtim int64) experimentalsys.Errno {
	n, ok := s.nodes[clean(p)]
	if !ok {
		return experimentalsys.ENOENT
	}
	if mtim != experimentalsys.UTIME_OMIT {
		n.mtime = mtim
	}
	return 0
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
	mode := n.mode
	if n.dir {
		mode |= fs.ModeDir
	}
	return sys.Stat_t{Ino: n.ino, Mode: mode, Nlink: 1, Size: int64(len(n.data)), Atim: n.mtime, Mtim: n.mtime, Ctim: n.mtime}
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

func (f *scratchFile) Utimens(_, mtim int64) experimentalsys.Errno {
	if mtim != experimentalsys.UTIME_OMIT {
		f.n.mtime = mtim
	}
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
			if c.dir {
				typ = fs.ModeDir
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
	end := off + int64(len(p))
	if grow := end - int64(len(f.n.data)); grow > 0 {
		if errno := f.resize(end); errno != 0 {
			return 0, errno
		}
	}
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
	return f.resize(size)
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
	f.n.mtime = time.Now().UnixNano()
	return 0
}
