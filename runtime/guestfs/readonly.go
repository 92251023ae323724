package guestfs

import (
	"crypto/rand"
	"io/fs"
	"path"
	"strings"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// ReadOnly returns m as the file system of one instance's mount, its open files
// counted in c. It answers as a read-only mount does on Linux: a change to the tree
// (opening a file for writing, creating, removing, renaming, chmod) fails with EROFS,
// or with ENOENT or ENOTDIR when the folder it names does not exist; a missing file is
// ENOENT. The tree's character devices (NewRootTree's) take what is written to them
// and read as Linux's do: dev/null empty, dev/zero zeros, dev/random and dev/urandom
// random bytes.
func (m *MemFS) ReadOnly(c *OpenFiles) experimentalsys.FS {
	return &readOnlyFS{AdaptFS: &sysfs.AdaptFS{FS: m.Limited(c)}, m: m, c: c}
}

type readOnlyFS struct {
	// AdaptFS serves the reads: opening, stat and reading folders.
	*sysfs.AdaptFS
	m *MemFS
	c *OpenFiles
}

// missing returns the error for a path that does not exist: ENOTDIR when one of the
// folders on its way is a file, else ENOENT.
func (r *readOnlyFS) missing(name string) experimentalsys.Errno {
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if n, ok := r.m.nodes[d]; ok {
			if !n.mode.IsDir() {
				return experimentalsys.ENOTDIR
			}
			break
		}
	}
	return experimentalsys.ENOENT
}

// refuse returns the error a change at name gets: EROFS, unless the folder it is in
// does not exist.
func (r *readOnlyFS) refuse(name string) experimentalsys.Errno {
	if name == "." {
		return experimentalsys.EROFS
	}
	dir := path.Dir(name)
	if n, ok := r.m.nodes[dir]; !ok {
		return r.missing(dir)
	} else if !n.mode.IsDir() {
		return experimentalsys.ENOTDIR
	}
	return experimentalsys.EROFS
}

// OpenFile implements experimentalsys.FS.
func (r *readOnlyFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	name := clean(p)
	n, ok := r.m.nodes[name]
	writable := flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR) != 0
	switch {
	case !ok && flag&experimentalsys.O_CREAT != 0:
		return nil, r.refuse(name)
	case !ok:
		return nil, r.missing(name)
	case flag&experimentalsys.O_CREAT != 0 && flag&experimentalsys.O_EXCL != 0:
		return nil, experimentalsys.EEXIST
	case n.device != notDevice:
		if r.c != nil {
			if err := r.c.acquire(false); err != nil {
				return nil, errnoOf(err)
			}
		}
		return &deviceFile{node: n, c: r.c}, 0
	case n.mode.IsDir() && writable:
		return nil, experimentalsys.EISDIR
	case writable || flag&experimentalsys.O_TRUNC != 0:
		return nil, experimentalsys.EROFS
	case flag&experimentalsys.O_DIRECTORY != 0 && !n.mode.IsDir():
		return nil, experimentalsys.ENOTDIR
	}
	return r.AdaptFS.OpenFile(name, experimentalsys.O_RDONLY, 0)
}

// Readlink implements experimentalsys.FS: the tree has no links.
func (r *readOnlyFS) Readlink(p string) (string, experimentalsys.Errno) {
	name := clean(p)
	if _, ok := r.m.nodes[name]; !ok {
		return "", r.missing(name)
	}
	return "", experimentalsys.EINVAL
}

// Mkdir implements experimentalsys.FS.
func (r *readOnlyFS) Mkdir(p string, _ fs.FileMode) experimentalsys.Errno {
	name := clean(p)
	if _, ok := r.m.nodes[name]; ok {
		return experimentalsys.EEXIST
	}
	return r.refuse(name)
}

// Chmod implements experimentalsys.FS.
func (r *readOnlyFS) Chmod(p string, _ fs.FileMode) experimentalsys.Errno {
	return r.change(p)
}

// Utimens implements experimentalsys.FS.
func (r *readOnlyFS) Utimens(p string, _, _ int64) experimentalsys.Errno { return r.change(p) }

// change is the error of a change to an existing entry (chmod, utimes).
func (r *readOnlyFS) change(p string) experimentalsys.Errno {
	name := clean(p)
	if _, ok := r.m.nodes[name]; !ok {
		return r.missing(name)
	}
	return experimentalsys.EROFS
}

// Rename implements experimentalsys.FS.
func (r *readOnlyFS) Rename(from, to string) experimentalsys.Errno {
	if errno := r.refuse(clean(from)); errno != experimentalsys.EROFS {
		return errno
	}
	return r.refuse(clean(to))
}

// Rmdir implements experimentalsys.FS.
func (r *readOnlyFS) Rmdir(p string) experimentalsys.Errno { return r.refuse(clean(p)) }

// Unlink implements experimentalsys.FS.
func (r *readOnlyFS) Unlink(p string) experimentalsys.Errno { return r.refuse(clean(p)) }

// Link implements experimentalsys.FS.
func (r *readOnlyFS) Link(from, to string) experimentalsys.Errno {
	name := clean(from)
	if _, ok := r.m.nodes[name]; !ok {
		return r.missing(name)
	}
	return r.refuse(clean(to))
}

// Symlink implements experimentalsys.FS.
func (r *readOnlyFS) Symlink(_, link string) experimentalsys.Errno { return r.refuse(clean(link)) }

// deviceFile is an open character device. It takes every write; it reads as empty
// (null), as zeros (zero) or as bytes from the host's random source (random and
// urandom, which on Linux read the same once the pool is ready).
type deviceFile struct {
	experimentalsys.UnimplementedFile
	node   *memNode
	c      *OpenFiles
	closed bool
}

func (f *deviceFile) Dev() (uint64, experimentalsys.Errno)    { return 0, 0 }
func (f *deviceFile) Ino() (sys.Inode, experimentalsys.Errno) { return 0, 0 }
func (f *deviceFile) IsDir() (bool, experimentalsys.Errno)    { return false, 0 }
func (f *deviceFile) IsAppend() bool                          { return false }
func (f *deviceFile) SetAppend(bool) experimentalsys.Errno    { return 0 }
func (f *deviceFile) Stat() (sys.Stat_t, experimentalsys.Errno) {
	return sys.NewStat_t(memInfo{f.node}), 0
}

func (f *deviceFile) Read(p []byte) (int, experimentalsys.Errno) {
	switch f.node.device {
	case zeroDevice:
		clear(p)
		return len(p), 0
	case randomDevice:
		rand.Read(p) // never fails (crypto/rand)
		return len(p), 0
	}
	return 0, 0
}

func (f *deviceFile) Pread(p []byte, _ int64) (int, experimentalsys.Errno) { return f.Read(p) }
func (f *deviceFile) Seek(int64, int) (int64, experimentalsys.Errno)       { return 0, 0 }
func (f *deviceFile) Write(p []byte) (int, experimentalsys.Errno)          { return len(p), 0 }
func (f *deviceFile) Pwrite(p []byte, _ int64) (int, experimentalsys.Errno) {
	return len(p), 0
}
func (f *deviceFile) Truncate(int64) experimentalsys.Errno { return 0 }
func (f *deviceFile) Sync() experimentalsys.Errno          { return 0 }
func (f *deviceFile) Datasync() experimentalsys.Errno      { return 0 }
func (f *deviceFile) Close() experimentalsys.Errno {
	if !f.closed && f.c != nil {
		f.c.release(false)
	}
	f.closed = true
	return 0
}

// Executable is sys.executable's path in the guest, without the leading slash.
const Executable = "usr/local/bin/python3"

const executableNote = "# The sandbox's python: a child process started with this path runs in a new\n" +
	"# instance of the app's interpreter.\n"

// NewRootTree returns the tree the guest sees at "/": the folders leading to each of
// mountPoints (empty here: the mount in front of each shows its content), the
// character devices dev/null, dev/zero, dev/random and dev/urandom, the file at
// Executable, and each tree of grafts placed at its path. A graft's files are shared
// with it, not copied.
func NewRootTree(mountPoints []string, grafts map[string]*MemFS) *MemFS {
	m := newMemFS()
	for _, p := range mountPoints {
		m.add(strings.Trim(p, "/"), nil, true, time.Time{})
	}
	for name, d := range map[string]device{"dev/null": nullDevice, "dev/zero": zeroDevice, "dev/random": randomDevice,
		"dev/urandom": randomDevice} {
		m.add(name, nil, false, time.Time{})
		n := m.nodes[name]
		n.mode, n.device = fs.ModeDevice|fs.ModeCharDevice|0o666, d
	}
	// sys.executable: the interpreter's path, as python's start-up under /usr/local
	// gives it. Code runs a child there, or in its folder; the file holds no program
	// (the program is the sandbox's python.wasm).
	m.add(Executable, []byte(executableNote), false, time.Time{})
	m.nodes[Executable].mode = 0o555
	for at, sub := range grafts {
		at = strings.Trim(at, "/")
		m.add(at, nil, true, time.Time{})
		m.nodes[at].entries = sub.nodes["."].entries
		for name, n := range sub.nodes {
			if name != "." {
				m.nodes[at+"/"+name] = n
			}
		}
		m.size += sub.size
	}
	m.finish()
	return m
}
