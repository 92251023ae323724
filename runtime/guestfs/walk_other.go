//go:build !linux

package guestfs

import (
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
)

// folder is a folder the walk has open, as its own Root: a Stat or an Open there
// resolves one name, where one from the top would open every folder on the way.
type folder struct{ root *os.Root }

// open opens the regular file base in f without blocking, so that a file swapped for a
// FIFO since it was stat'ed cannot hold the load waiting for a writer.
func (f folder) open(base string) (*os.File, error) {
	return f.root.OpenFile(base, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

func walkTop(root *os.Root, _ string, fn walkFunc) error { return walkRoot(root, "", 0, fn) }

func walkRoot(dir *os.Root, prefix string, depth int, fn walkFunc) error {
	f, err := dir.Open(".")
	var entries []fs.DirEntry
	if err == nil {
		entries, err = f.ReadDir(-1)
		f.Close()
	}
	if err != nil {
		name := strings.TrimSuffix(prefix, "/")
		if name == "" {
			name = "."
		}
		return fn(name, nil, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, d := range entries {
		name := prefix + d.Name()
		e := &walkEntry{base: d.Name(), in: folder{dir}, dir: d.IsDir()}
		if d.Type().IsRegular() {
			info, err := d.Info() // ReadDir in a Root lstats every entry
			if err != nil {
				if err := fn(name, nil, err); err != nil {
					return err
				}
				continue
			}
			e.setInfo(info)
		}
		err := fn(name, e, nil)
		if e.dir {
			if err == fs.SkipDir {
				continue
			}
			if err == nil && depth+1 >= maxFolderDepth {
				err = fn(name, nil, errTooDeep)
			} else if err == nil {
				var sub *os.Root
				if sub, err = dir.OpenRoot(d.Name()); err == nil {
					err = walkRoot(sub, name+"/", depth+1, fn)
					sub.Close()
				} else {
					err = fn(name, nil, err)
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
