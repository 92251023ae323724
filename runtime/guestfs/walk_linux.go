package guestfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// folder is a folder the walk has open, by its file descriptor.
type folder struct{ fd int }

// open opens the regular file base in f without following a link, and without
// blocking, so that a file swapped for a FIFO since its lstat cannot hold the load
// waiting for a writer (readOpened then refuses it).
func (f folder) open(base string) (*os.File, error) {
	fd, err := unix.Openat(f.fd, base, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: base, Err: err}
	}
	return os.NewFile(uintptr(fd), base), nil
}

// walker holds what one walk reuses: the buffer folders are listed into.
type walker struct {
	buf []byte
	fn  walkFunc
}

// dirent is a name a folder lists, with the kind the listing gives (a DT_* value).
type dirent struct {
	name string
	typ  uint8
}

func walkTop(_ *os.Root, top string, fn walkFunc) error {
	fd, err := unix.Open(top, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fn(".", nil, &fs.PathError{Op: "open", Path: top, Err: err})
	}
	defer unix.Close(fd)
	w := &walker{buf: make([]byte, 16<<10), fn: fn}
	return w.walk(folder{fd}, "", 0)
}

func (w *walker) walk(f folder, prefix string, depth int) error {
	entries, err := w.list(f)
	if err != nil {
		name := strings.TrimSuffix(prefix, "/")
		if name == "" {
			name = "."
		}
		return w.fn(name, nil, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	for _, d := range entries {
		name := prefix + d.name
		e := &walkEntry{base: d.name, in: f}
		if d.typ == unix.DT_DIR {
			e.dir = true
		} else {
			var st unix.Stat_t
			if err := unix.Fstatat(f.fd, d.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				if err := w.fn(name, nil, &fs.PathError{Op: "lstat", Path: name, Err: err}); err != nil {
					return err
				}
				continue
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				e.dir = true
			case unix.S_IFREG:
				e.regular, e.size, e.mtime = true, st.Size, time.Unix(st.Mtim.Unix())
				e.id = fileIdentity{Dev: uint64(st.Dev), Ino: uint64(st.Ino), Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
				e.idKnown = true
			}
		}
		err := w.fn(name, e, nil)
		if e.dir {
			if err == fs.SkipDir {
				continue
			}
			if err == nil && depth+1 >= maxFolderDepth {
				err = w.fn(name, nil, errTooDeep)
			} else if err == nil {
				err = w.enter(f, name, d.name, depth)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// enter walks the folder base in f, opened without following a link: one swapped for
// a link since it was listed is passed to fn as an error.
func (w *walker) enter(f folder, name, base string, depth int) error {
	fd, err := unix.Openat(f.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return w.fn(name, nil, &fs.PathError{Op: "open", Path: name, Err: err})
	}
	defer unix.Close(fd)
	return w.walk(folder{fd}, name+"/", depth+1)
}

// list returns the names f holds, but "." and "..", each with the kind the listing
// gives: DT_UNKNOWN where the file system does not say, which walk then lstats.
func (w *walker) list(f folder) ([]dirent, error) {
	var out []dirent
	for {
		n, err := unix.Getdents(f.fd, w.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getdents", Path: ".", Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		// struct linux_dirent64: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1),
		// then the name, ended by a NUL.
		for b := w.buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, &fs.PathError{Op: "getdents", Path: ".", Err: fmt.Errorf("malformed listing")}
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				out = append(out, dirent{name: s, typ: b[18]})
			}
			b = b[reclen:]
		}
	}
}
