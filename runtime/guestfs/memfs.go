package guestfs

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is a read-only file tree held in memory. The guest sees the stdlib and each app
// through one, never through a host directory mount, so no path the guest names can
// reach the host file system. Open is O(1), which matters because wazero stats a file by
// opening it and CPython's import system stats a lot.
type MemFS struct {
	nodes map[string]*memNode // keyed by fs.ValidPath names; "." is the root
	size  int64
	index *FileIndex // of the folder it was read from, if it was
}

type memNode struct {
	name string
	data []byte // read-only: it may be shared with other trees (shareContent)
	// blob, for a file read from a folder or made from bytes, is the one copy of its
	// content that data is; nil for the stdlib's zip entries and overlaid files.
	blob *blob
	// zipped, for a file of a zip archive, is inflated into data on first open.
	zipped  *zipped
	size    int64
	mode    fs.FileMode
	modTime time.Time
	entries []fs.DirEntry // directories only, sorted by name
	// device marks a character device (NewRootTree's dev/null, dev/zero, dev/random and
	// dev/urandom): ReadOnly opens it as a file that takes every write and reads as
	// the device does.
	device device
}

// device is what a character device reads as.
type device byte

const (
	notDevice device = iota
	nullDevice
	zeroDevice
	randomDevice
)

func newMemFS() *MemFS {
	root := &memNode{name: ".", mode: fs.ModeDir | 0o555}
	return &MemFS{nodes: map[string]*memNode{".": root}}
}

// zipped is a zip entry that has not been needed yet: most of the stdlib is never read
// after a start from cached snapshots, so it stays compressed.
type zipped struct {
	f    *zip.File
	once sync.Once
	data []byte
	err  error
}

func (z *zipped) inflate() ([]byte, error) {
	z.once.Do(func() {
		rc, err := z.f.Open()
		if err != nil {
			z.err = err
			return
		}
		defer rc.Close()
		buf := bytes.NewBuffer(make([]byte, 0, z.f.UncompressedSize64))
		if _, z.err = io.Copy(buf, rc); z.err == nil {
			z.data = buf.Bytes()
		}
	})
	return z.data, z.err
}

// add stores a file (or, with dir set, a directory) and creates its parents.
func (m *MemFS) add(name string, data []byte, dir bool, modTime time.Time) {
	if _, ok := m.nodes[name]; ok || name == "." {
		return
	}
	n := &memNode{name: path.Base(name), data: data, size: int64(len(data)), mode: 0o444, modTime: modTime}
	if dir {
		n.mode = fs.ModeDir | 0o555
	}
	m.nodes[name] = n
	m.size += int64(len(data))
	parent := path.Dir(name)
	m.add(parent, nil, true, modTime)
	p := m.nodes[parent]
	p.entries = append(p.entries, fs.FileInfoToDirEntry(memInfo{n}))
}

func (m *MemFS) finish() {
	for _, n := range m.nodes {
		sort.Slice(n.entries, func(i, j int) bool { return n.entries[i].Name() < n.entries[j].Name() })
	}
}

// Size returns the total bytes of file content held.
func (m *MemFS) Size() int64 { return m.size }

// Open implements fs.FS.
func (m *MemFS) Open(name string) (fs.File, error) { return m.open(name, nil) }

// Limited returns a view of m whose open files count in c; each instance gets its own.
func (m *MemFS) Limited(c *OpenFiles) fs.FS { return limitedFS{m, c} }

type limitedFS struct {
	m *MemFS
	c *OpenFiles
}

func (l limitedFS) Open(name string) (fs.File, error) { return l.m.open(name, l.c) }

func (m *MemFS) open(name string, c *OpenFiles) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	n, ok := m.nodes[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if c != nil {
		if err := c.acquire(name == "."); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	if n.mode.IsDir() {
		return &memDir{node: n, c: c, root: name == "."}, nil
	}
	data := n.data
	if n.zipped != nil {
		var err error
		if data, err = n.zipped.inflate(); err != nil {
			if c != nil {
				c.release(false)
			}
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return &memFile{node: n, r: bytes.NewReader(data), c: c}, nil
}

// MemFSFromZip loads the tree of a zip archive. Each file is inflated the first time it
// is opened, so b must stay unchanged for as long as the tree is used.
func MemFSFromZip(b []byte) (*MemFS, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	m := newMemFS()
	for _, f := range zr.File {
		name := strings.TrimSuffix(f.Name, "/")
		if !fs.ValidPath(name) {
			return nil, fmt.Errorf("zip entry %q is not a valid path", f.Name)
		}
		if f.FileInfo().IsDir() {
			m.add(name, nil, true, f.Modified)
			continue
		}
		m.add(name, nil, false, f.Modified)
		n := m.nodes[name]
		n.zipped, n.size = &zipped{f: f}, int64(f.UncompressedSize64)
		m.size += n.size
	}
	m.finish()
	return m, nil
}

// MemFSFromDir copies a host directory into memory. Symbolic links are followed only
// while they stay inside dir (os.Root enforces it); a link that escapes, and anything
// that is not a regular file or directory, is skipped and reported in skipped. Folders
// starting with "." are left out, and so is everything in a __pycache__ folder except
// the guest's own bytecode, named for its interpreter's cacheTag
// (*.cpython-311.pyc; the guest's import validates it against the source and ignores
// it when stale or not bytecode at all). Loading stops with an error once more than
// maxBytes of file content has been read.
//
// known, when not nil, is the folder's FileIndex from an earlier read (see Index): a
// file it vouches for is not read again when another tree holds its content already.
func MemFSFromDir(dir string, maxBytes int64, cacheTag string, known *FileIndex) (m *MemFS, skipped []string, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	m = newMemFS()
	m.index = &FileIndex{Taken: time.Now().UnixNano(), files: make([]indexedFile, 0, known.Len())}
	allVouched := known != nil
	err = walkFolder(root, dir, func(name string, e *walkEntry, err error) error {
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", name, err))
			return nil
		}
		if e.dir {
			if strings.HasPrefix(e.base, ".") {
				return fs.SkipDir
			}
			m.add(name, nil, true, time.Time{})
			return nil
		}
		if path.Base(path.Dir(name)) == "__pycache__" && !strings.HasSuffix(e.base, "."+cacheTag+".pyc") {
			return nil
		}
		// A regular file's entry carries its status from the walk's lstat. Anything
		// else (a link) is stat'ed from the app folder's root: Stat follows links, but
		// never beyond that folder.
		linked := !e.regular
		if linked {
			info, err := root.Stat(name)
			if err != nil || !info.Mode().IsRegular() {
				why := "not a regular file"
				if err != nil {
					why = err.Error()
				}
				skipped = append(skipped, fmt.Sprintf("%s (%s)", name, why))
				return nil
			}
			e.setInfo(info)
		}
		if m.size+e.size > maxBytes {
			return fmt.Errorf("app files exceed %d bytes at %s", maxBytes, name)
		}
		var b *blob
		digest, vouched := known.lookup(name, e)
		if vouched {
			b = storedBlob(digest)
		}
		allVouched = allVouched && vouched
		if b == nil {
			open := func() (*os.File, error) { return e.in.open(e.base) }
			if linked {
				open = func() (*os.File, error) { return root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0) }
			}
			data, err := readOnce(open, maxBytes-m.size)
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("%s (%v)", name, err))
				return nil
			}
			b = shareContent(data)
		}
		m.add(name, b.data, false, e.mtime)
		m.nodes[name].blob = b
		m.index.record(name, e, b.digest)
		return nil
	})
	if err != nil {
		return nil, skipped, err
	}
	if allVouched && m.index.Len() == known.Len() {
		m.index = known // the same files, each as known: nothing to write again
	} else {
		m.index.sortFiles()
	}
	m.finish()
	return m, skipped, nil
}

// readOnce reads the file open opens, failing past limit bytes, and leaves
// none of it in the page cache: the tree holds the content from now on, and a server
// of a thousand tenants would otherwise fill the cache with a second copy of every
// file each of them ships, pushing out the snapshot pages requests do need.
func readOnce(open func() (*os.File, error), limit int64) ([]byte, error) {
	// open does not block (a file swapped for a FIFO after it was stat'ed must not
	// hold the load waiting for a writer), and what is read must be a regular file.
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	size := info.Size()
	// Read into a buffer of the size stat gave, as os.ReadFile does: the content is
	// kept for as long as a tree holds it, so it must not carry the spare capacity a
	// bytes.Buffer leaves (up to as much again).
	data := make([]byte, 0, min(size, limit)+1)
	for {
		if len(data) == cap(data) { // the file grew since Stat
			data = append(data, 0)[:len(data)]
		}
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("it grew past the limit on app files while being read")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	dropCached(f)
	return data, nil
}

// Index returns the FileIndex of the folder m was read from (nil for other trees), for
// the folder's next read: the known index MemFSFromDir was given when that vouched for
// every file the folder holds.
func (m *MemFS) Index() *FileIndex { return m.index }

// ForgetIndex lets go of the tree's FileIndex (a record per file, about 50 KB for a
// Flask app's site-packages) once it is kept elsewhere or no longer wanted.
func (m *MemFS) ForgetIndex() { m.index = nil }

// WriteDigest writes every entry's name, mode and length, and a file's SHA-256, to w
// (a hash) in name order: two trees that write the same bytes hold the same files. Each
// entry is its name's length and the name, the mode, the content's length and the
// digest (zero for a folder), in binary: formatting them as text took a tenth of the
// CPU time of a restart of a thousand tenants.
func (m *MemFS) WriteDigest(w io.Writer) {
	names := make([]string, 0, len(m.nodes))
	for name := range m.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	var b []byte
	for _, name := range names {
		n := m.nodes[name]
		digest := [32]byte{}
		switch {
		case n.blob != nil:
			digest = n.blob.digest
		case !n.mode.IsDir():
			digest = sha256.Sum256(n.data)
		}
		b = binary.AppendUvarint(b[:0], uint64(len(name)))
		b = append(b, name...)
		b = binary.LittleEndian.AppendUint32(b, uint32(n.mode))
		b = binary.AppendUvarint(b, uint64(len(n.data)))
		w.Write(append(b, digest[:]...))
	}
}

// MemFSFromFiles returns a tree of the given files, named by slash-separated paths.
// As with MemFSFromDir, content another tree holds too is held once (shareContent):
// every app's TLS root bundle, for one.
func MemFSFromFiles(files map[string][]byte) *MemFS {
	m := newMemFS()
	for name, data := range files {
		b := shareContent(data)
		m.add(name, b.data, false, time.Time{})
		m.nodes[name].blob = b
	}
	m.finish()
	return m
}

// Overlay returns a copy of m with extra files added at the root (used to place the
// guest shim beside the stdlib).
func (m *MemFS) Overlay(files map[string][]byte) *MemFS {
	c := &MemFS{nodes: make(map[string]*memNode, len(m.nodes)+len(files)), size: m.size}
	for k, n := range m.nodes {
		cp := *n
		cp.entries = append([]fs.DirEntry(nil), n.entries...)
		c.nodes[k] = &cp
	}
	for name, data := range files {
		c.add(name, data, false, time.Time{})
	}
	c.finish()
	return c
}

type memInfo struct{ n *memNode }

func (i memInfo) Name() string       { return i.n.name }
func (i memInfo) Size() int64        { return i.n.size }
func (i memInfo) Mode() fs.FileMode  { return i.n.mode }
func (i memInfo) ModTime() time.Time { return i.n.modTime }
func (i memInfo) IsDir() bool        { return i.n.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	node   *memNode
	r      *bytes.Reader
	c      *OpenFiles
	closed bool
}

func (f *memFile) Stat() (fs.FileInfo, error)                { return memInfo{f.node}, nil }
func (f *memFile) Read(p []byte) (int, error)                { return f.r.Read(p) }
func (f *memFile) ReadAt(p []byte, off int64) (int, error)   { return f.r.ReadAt(p, off) }
func (f *memFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *memFile) Close() error {
	if !f.closed && f.c != nil {
		f.c.release(false)
	}
	f.closed = true
	return nil
}

type memDir struct {
	node   *memNode
	off    int
	c      *OpenFiles
	root   bool
	closed bool
}

func (d *memDir) Stat() (fs.FileInfo, error) { return memInfo{d.node}, nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.node.name, Err: fs.ErrInvalid}
}
func (d *memDir) Close() error {
	if !d.closed && d.c != nil {
		d.c.release(d.root)
	}
	d.closed = true
	return nil
}

// ReadDir implements fs.ReadDirFile.
func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.node.entries[d.off:]
	if n <= 0 {
		d.off += len(rest)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.off += n
	return rest[:n], nil
}
