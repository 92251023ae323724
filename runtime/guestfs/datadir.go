package guestfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// A data folder is the one place where an app's instances write to the host and
// where what they write outlives the request. Two things make it safe:
//
// Confinement. Every path the guest names is resolved by an os.Root opened on the
// folder: "..", absolute paths and symlinks (also ones placed there by the host) cannot
// reach outside it. The guest cannot create symlinks or hard links (EPERM), and the
// modes it sets are limited to the permission bits.
//
// The write lock. WASI has no file locks, so two instances of an app could interleave
// their writes to one SQLite database and corrupt it. Each data folder has one lock in
// the server process, taken by an instance on its first access and held until the
// instance ends: exclusively by an instance that opens a file for writing, creates,
// removes, renames or changes anything, shared by one that only opens files for
// reading. Listing folders and stat do not lock. So the instances of an app that write
// to /data run one after the other (the others wait, within their time limit), and
// what one request does there is all-or-nothing with respect to the others. SQLite
// opens its database read-write even to read it, so every request that touches a
// database holds the lock exclusively: database requests of one app are serialised,
// requests that do not touch /data still run side by side.
//
// An instance holding the lock shared that wants it exclusively waits for the other
// readers to end; if another reader is already waiting for the same, the second gets
// EAGAIN at once rather than wait for ever (each would wait for the other).
//
// The lock is per server process; a second wasmwsgi process cannot use the same folder
// (the first holds flock(LOCK_EX) on it while any of its apps uses the folder), so two
// servers never write it at once.

// DataDir is one data folder opened by this process, shared by every app granted it.
type DataDir struct {
	path  string
	root  *os.Root
	guard *os.File // holds flock(LOCK_EX): no other process uses the folder
	lock  dataLock

	owner *DataDirs
	refs  int // users of the folder; owner.mu guards it
}

// DataDirs opens data folders for the apps that use them, each folder once however
// many apps name it and under whatever name (symlinks are resolved), and closes it,
// flock included, when its last user releases it.
type DataDirs struct {
	mu   sync.Mutex
	open map[string]*DataDir // by real path
}

// NewDataDirs returns an owner with no folder open.
func NewDataDirs() *DataDirs { return &DataDirs{open: map[string]*DataDir{}} }

// Open creates the folder dir (mode 0700) if it is missing and returns it opened for
// this process, counted as used once more: every Open is paired with a Release. It
// fails when another process uses the folder.
func (p *DataDirs) Open(dir string) (*DataDir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", abs, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", abs, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.open[real]
	if !ok {
		if d, err = openDataDir(real); err != nil {
			return nil, err
		}
		d.owner = p
		p.open[real] = d
	}
	d.refs++
	return d, nil
}

// Release counts one user of d less. The last one closes the folder and gives up its
// flock, so that another process, or a later Open, can take it. Instances still
// running on it get EBADF.
func (d *DataDir) Release() {
	p := d.owner
	p.mu.Lock()
	defer p.mu.Unlock()
	if d.refs <= 0 {
		return
	}
	d.refs--
	if d.refs == 0 {
		delete(p.open, d.path)
		d.close()
	}
}

// Path returns the folder's path with symlinks resolved.
func (d *DataDir) Path() string { return d.path }

// openDataDir opens a folder that exists and locks it against other processes.
func openDataDir(dir string) (*DataDir, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("data_dir %s is not a folder", dir)
	}
	guard, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	if err := lockFolder(guard); err != nil {
		guard.Close()
		if errors.Is(err, errFolderInUse) {
			return nil, fmt.Errorf("data_dir %s is in use by another process (another wasmwsgi serving it?)", dir)
		}
		return nil, fmt.Errorf("data_dir %s: flock: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		guard.Close()
		return nil, fmt.Errorf("data_dir %s: %w", dir, err)
	}
	return &DataDir{path: dir, root: root, guard: guard, lock: dataLock{wake: make(chan struct{})}}, nil
}

// close closes the folder; closing the guard gives up its flock.
func (d *DataDir) close() {
	d.root.Close()
	d.guard.Close()
}

// Mount returns one instance's view of the folder (DataFS). The instance keeps the
// folder's lock until ctx ends, which must be when the instance ends; files counts
// the host files it holds open with the instance's others.
func (d *DataDir) Mount(ctx context.Context, files *OpenFiles) *DataFS {
	f := &DataFS{dir: d, ctx: ctx, files: files}
	context.AfterFunc(ctx, f.release)
	return f
}

// ---- the lock ------------------------------------------------------------------------

type lockMode int

const (
	unlocked lockMode = iota
	sharedLock
	exclusiveLock
)

// dataLock is a readers-writer lock whose waits end with a context. Waiting writers
// keep new readers out, so a stream of readers cannot starve a writer.
type dataLock struct {
	mu             sync.Mutex
	readers        int
	writer         bool
	writersWaiting int
	upgrading      bool          // a reader waits to become the writer
	wake           chan struct{} // closed, and replaced, whenever the lock may have freed
}

// acquire takes the lock in mode want for a holder that has it in mode have (unlocked
// or shared). It returns EAGAIN when ctx ends first, or at once when the upgrade from
// shared to exclusive would deadlock with another such upgrade.
func (l *dataLock) acquire(ctx context.Context, have, want lockMode) experimentalsys.Errno {
	l.mu.Lock()
	upgrade := have == sharedLock && want == exclusiveLock
	switch {
	case upgrade && l.upgrading:
		l.mu.Unlock()
		return experimentalsys.EAGAIN
	case upgrade:
		l.upgrading = true
	case want == exclusiveLock:
		l.writersWaiting++
	}
	for {
		var ok bool
		switch {
		case upgrade:
			ok = l.readers == 1
		case want == exclusiveLock:
			ok = !l.writer && l.readers == 0 && !l.upgrading
		default:
			ok = !l.writer && l.writersWaiting == 0 && !l.upgrading
		}
		if ok {
			switch {
			case upgrade:
				l.upgrading, l.readers, l.writer = false, 0, true
			case want == exclusiveLock:
				l.writersWaiting--
				l.writer = true
			default:
				l.readers++
			}
			l.mu.Unlock()
			return 0
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
			l.mu.Lock()
		case <-ctx.Done():
			l.mu.Lock()
			switch {
			case upgrade:
				l.upgrading = false
			case want == exclusiveLock:
				l.writersWaiting--
			}
			l.broadcast() // a reader may have waited behind this writer
			l.mu.Unlock()
			return experimentalsys.EAGAIN
		}
	}
}

func (l *dataLock) release(have lockMode) {
	l.mu.Lock()
	switch have {
	case sharedLock:
		l.readers--
	case exclusiveLock:
		l.writer = false
	}
	l.broadcast()
	l.mu.Unlock()
}

// broadcast wakes every waiter; l.mu is held.
func (l *dataLock) broadcast() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// ---- the file system -----------------------------------------------------------------

// DataFS is an instance's view of a data folder: an experimentalsys.FS over an
// os.Root that takes the folder's lock as described above.
type DataFS struct {
	dir   *DataDir
	ctx   context.Context
	files *OpenFiles

	// gate fences every operation against the release at the end of the instance:
	// operations hold it shared, the release exclusively, and after the release
	// every operation but Close fails with EBADF.
	gate     sync.RWMutex
	released bool
	held     lockMode
}

// release gives the lock back once the instance has ended.
func (f *DataFS) release() {
	f.gate.Lock()
	defer f.gate.Unlock()
	if f.released {
		return
	}
	f.released = true
	if f.held != unlocked {
		f.dir.lock.release(f.held)
		f.held = unlocked
	}
}

// enter starts an operation that needs the lock in mode want (or none).
func (f *DataFS) enter(want lockMode) experimentalsys.Errno {
	if f.ctx.Err() != nil {
		// The instance has ended even if release, run by context.AfterFunc on a
		// goroutine of its own, has not yet.
		f.release()
		return experimentalsys.EBADF
	}
	f.gate.RLock()
	if f.released {
		f.gate.RUnlock()
		return experimentalsys.EBADF
	}
	if want > f.held {
		// The gate is shared, so two host calls of one instance could race here; the
		// guest has no threads and makes one call at a time.
		if errno := f.dir.lock.acquire(f.ctx, f.held, want); errno != 0 {
			f.gate.RUnlock()
			return errno
		}
		f.held = want
	}
	return 0
}

func (f *DataFS) leave() { f.gate.RUnlock() }

// dataPath maps a guest path below the mount to a path relative to the root; ".." cannot
// climb above the mount (like "/.." is "/").
func dataPath(p string) string {
	c := path.Clean("/" + p)
	if c == "/" {
		return "."
	}
	return c[1:]
}

const writeFlags = experimentalsys.O_WRONLY | experimentalsys.O_RDWR | experimentalsys.O_CREAT |
	experimentalsys.O_TRUNC | experimentalsys.O_APPEND

// OpenFile implements experimentalsys.FS.
func (f *DataFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	name := dataPath(p)
	writing := flag&writeFlags != 0
	want := unlocked
	if writing {
		want = exclusiveLock
	}
	if errno := f.enter(want); errno != 0 {
		return nil, errno
	}
	defer f.leave()
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		if st, err := f.dir.root.Lstat(name); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return nil, experimentalsys.ELOOP
		}
	}
	if err := f.files.acquire(false); err != nil {
		return nil, errnoOf(err)
	}
	osf, err := f.dir.root.OpenFile(name, osFlags(flag), perm.Perm())
	if err != nil {
		f.files.release(false)
		return nil, errnoOf(err)
	}
	st, err := osf.Stat()
	if err != nil {
		osf.Close()
		f.files.release(false)
		return nil, errnoOf(err)
	}
	switch {
	case flag&experimentalsys.O_DIRECTORY != 0 && !st.IsDir():
		osf.Close()
		f.files.release(false)
		return nil, experimentalsys.ENOTDIR
	case !writing && !st.IsDir() && f.held < sharedLock:
		// Reading a file's content takes the lock shared; the open itself changed
		// nothing and read nothing yet.
		if errno := f.dir.lock.acquire(f.ctx, unlocked, sharedLock); errno != 0 {
			osf.Close()
			f.files.release(false)
			return nil, errno
		}
		f.held = sharedLock
	}
	return &dataFile{fs: f, name: name, f: osf, dir: st.IsDir(),
		append: flag&experimentalsys.O_APPEND != 0, st: sys.NewStat_t(st)}, 0
}

// osFlags maps the WASI open flags to os flags. O_APPEND is emulated by dataFile (an
// *os.File opened with it refuses WriteAt); O_NOFOLLOW is checked by OpenFile.
func osFlags(flag experimentalsys.Oflag) int {
	var out int
	switch {
	case flag&experimentalsys.O_RDWR != 0:
		out = os.O_RDWR
	case flag&experimentalsys.O_WRONLY != 0:
		out = os.O_WRONLY
	default:
		out = os.O_RDONLY
	}
	for _, m := range []struct {
		w  experimentalsys.Oflag
		os int
	}{
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
		{experimentalsys.O_SYNC, os.O_SYNC},
		{experimentalsys.O_DSYNC, oDSync},
		{experimentalsys.O_DIRECTORY, oDirectory},
	} {
		if flag&m.w != 0 {
			out |= m.os
		}
	}
	return out
}

// pathOp runs a change to the tree under the exclusive lock.
func (f *DataFS) pathOp(op func() error) experimentalsys.Errno {
	if errno := f.enter(exclusiveLock); errno != 0 {
		return errno
	}
	defer f.leave()
	return errnoOf(op())
}

func (f *DataFS) stat(p string, st func(string) (fs.FileInfo, error)) (sys.Stat_t, experimentalsys.Errno) {
	if errno := f.enter(unlocked); errno != 0 {
		return sys.Stat_t{}, errno
	}
	defer f.leave()
	fi, err := st(dataPath(p))
	if err != nil {
		return sys.Stat_t{}, errnoOf(err)
	}
	return sys.NewStat_t(fi), 0
}

// Stat implements experimentalsys.FS.
func (f *DataFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	return f.stat(p, f.dir.root.Stat)
}

// Lstat implements experimentalsys.FS.
func (f *DataFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	return f.stat(p, f.dir.root.Lstat)
}

// Readlink implements experimentalsys.FS. It returns the text of a symlink that the
// host placed in the folder; following it still stays inside the folder.
func (f *DataFS) Readlink(p string) (string, experimentalsys.Errno) {
	if errno := f.enter(unlocked); errno != 0 {
		return "", errno
	}
	defer f.leave()
	s, err := f.dir.root.Readlink(dataPath(p))
	return s, errnoOf(err)
}

// Mkdir implements experimentalsys.FS.
func (f *DataFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	return f.pathOp(func() error { return f.dir.root.Mkdir(dataPath(p), perm.Perm()) })
}

// Chmod implements experimentalsys.FS; only the permission bits can be set, and not
// on the folder itself (its mode is the host's: it keeps other users out).
func (f *DataFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	name := dataPath(p)
	if name == "." {
		return experimentalsys.EPERM
	}
	return f.pathOp(func() error { return f.dir.root.Chmod(name, perm.Perm()) })
}

// Rename implements experimentalsys.FS.
func (f *DataFS) Rename(from, to string) experimentalsys.Errno {
	src, dst := dataPath(from), dataPath(to)
	if src == "." || dst == "." {
		return experimentalsys.EPERM
	}
	return f.pathOp(func() error { return f.dir.root.Rename(src, dst) })
}

// Rmdir implements experimentalsys.FS.
func (f *DataFS) Rmdir(p string) experimentalsys.Errno {
	name := dataPath(p)
	if name == "." {
		return experimentalsys.EPERM
	}
	return f.pathOp(func() error {
		st, err := f.dir.root.Lstat(name)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return syscall.ENOTDIR
		}
		return f.dir.root.Remove(name)
	})
}

// Unlink implements experimentalsys.FS.
func (f *DataFS) Unlink(p string) experimentalsys.Errno {
	name := dataPath(p)
	return f.pathOp(func() error {
		st, err := f.dir.root.Lstat(name)
		if err != nil {
			return err
		}
		if st.IsDir() {
			return syscall.EISDIR
		}
		return f.dir.root.Remove(name)
	})
}

// Link implements experimentalsys.FS: refused, a hard link could pin or expose a file
// the app should not keep.
func (f *DataFS) Link(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Symlink implements experimentalsys.FS: refused, the folder holds no guest-made links.
func (f *DataFS) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }

// Utimens implements experimentalsys.FS.
func (f *DataFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	return f.pathOp(func() error { return f.dir.root.Chtimes(dataPath(p), utime(atim), utime(mtim)) })
}

// utime converts a WASI timestamp; UTIME_OMIT becomes the zero time, which Chtimes
// leaves unchanged.
func utime(ns int64) time.Time {
	if ns == experimentalsys.UTIME_OMIT {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// dataFile is an open file or folder of a DataFS.
type dataFile struct {
	experimentalsys.UnimplementedFile
	fs     *DataFS
	name   string
	f      *os.File
	dir    bool
	append bool
	st     sys.Stat_t // at open: device, inode and type do not change
	closed bool
}

// op runs a file operation under the gate, with the lock in mode want.
func (d *dataFile) op(want lockMode, fn func() experimentalsys.Errno) experimentalsys.Errno {
	if d.closed {
		return experimentalsys.EBADF
	}
	if errno := d.fs.enter(want); errno != 0 {
		return errno
	}
	defer d.fs.leave()
	return fn()
}

func (d *dataFile) Dev() (uint64, experimentalsys.Errno)    { return d.st.Dev, 0 }
func (d *dataFile) Ino() (sys.Inode, experimentalsys.Errno) { return d.st.Ino, 0 }
func (d *dataFile) IsDir() (bool, experimentalsys.Errno)    { return d.dir, 0 }
func (d *dataFile) IsAppend() bool                          { return d.append }

func (d *dataFile) SetAppend(enable bool) experimentalsys.Errno {
	d.append = enable
	return 0
}

func (d *dataFile) Stat() (st sys.Stat_t, errno experimentalsys.Errno) {
	errno = d.op(unlocked, func() experimentalsys.Errno {
		fi, err := d.f.Stat()
		if err != nil {
			return errnoOf(err)
		}
		st = sys.NewStat_t(fi)
		return 0
	})
	return st, errno
}

func (d *dataFile) Read(p []byte) (n int, errno experimentalsys.Errno) {
	errno = d.op(unlocked, func() experimentalsys.Errno {
		var err error
		n, err = d.f.Read(p)
		if err == io.EOF {
			err = nil
		}
		return errnoOf(err)
	})
	return n, errno
}

func (d *dataFile) Pread(p []byte, off int64) (n int, errno experimentalsys.Errno) {
	errno = d.op(unlocked, func() experimentalsys.Errno {
		var err error
		n, err = d.f.ReadAt(p, off)
		if err == io.EOF {
			err = nil
		}
		return errnoOf(err)
	})
	return n, errno
}

func (d *dataFile) Seek(offset int64, whence int) (pos int64, errno experimentalsys.Errno) {
	errno = d.op(unlocked, func() experimentalsys.Errno {
		var err error
		pos, err = d.f.Seek(offset, whence)
		return errnoOf(err)
	})
	return pos, errno
}

func (d *dataFile) Readdir(n int) (out []experimentalsys.Dirent, errno experimentalsys.Errno) {
	if !d.dir {
		return nil, experimentalsys.EBADF
	}
	errno = d.op(unlocked, func() experimentalsys.Errno {
		fis, err := d.f.Readdir(n)
		if err != nil && err != io.EOF {
			return errnoOf(err)
		}
		for _, fi := range fis {
			out = append(out, experimentalsys.Dirent{Name: fi.Name(), Ino: sys.NewStat_t(fi).Ino, Type: fi.Mode().Type()})
		}
		return 0
	})
	return out, errno
}

// Writes need no lock of their own: a file open for writing was opened under the
// exclusive lock, and the OS refuses writes to a file opened read-only.

func (d *dataFile) Write(p []byte) (n int, errno experimentalsys.Errno) {
	errno = d.op(unlocked, func() experimentalsys.Errno {
		if d.append {
			if _, err := d.f.Seek(0, io.SeekEnd); err != nil {
				return errnoOf(err)
			}
		}
		var err error
		n, err = d.f.Write(p)
		return errnoOf(err)
	})
	return n, errno
}

func (d *dataFile) Pwrite(p []byte, off int64) (n int, errno experimentalsys.Errno) {
	errno = d.op(unlocked, func() experimentalsys.Errno {
		var err error
		n, err = d.f.WriteAt(p, off)
		return errnoOf(err)
	})
	return n, errno
}

func (d *dataFile) Truncate(size int64) experimentalsys.Errno {
	return d.op(unlocked, func() experimentalsys.Errno { return errnoOf(d.f.Truncate(size)) })
}

func (d *dataFile) Sync() experimentalsys.Errno {
	return d.op(unlocked, func() experimentalsys.Errno { return errnoOf(d.f.Sync()) })
}

func (d *dataFile) Datasync() experimentalsys.Errno { return d.Sync() }

func (d *dataFile) Utimens(atim, mtim int64) experimentalsys.Errno {
	return d.op(exclusiveLock, func() experimentalsys.Errno {
		return errnoOf(d.fs.dir.root.Chtimes(d.name, utime(atim), utime(mtim)))
	})
}

// Close works after the instance's release too: the module closes its files last.
func (d *dataFile) Close() experimentalsys.Errno {
	if d.closed {
		return 0
	}
	d.closed = true
	d.fs.files.release(false)
	return errnoOf(d.f.Close())
}
