package guestfs

import (
	"path"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// maxSymlinks is how many symbolic links one lookup may follow before ELOOP, as
// Linux's MAXSYMLINKS.
const maxSymlinks = 40

// resolved is where a path of a ScratchFS leads.
type resolved struct {
	key string       // the name in nodes; it may not exist yet
	n   *scratchNode // nil when nothing has that name
	// outside, when not "", is the absolute guest path a link led to, out of the tree.
	outside string
	slash   bool // the path was written with a trailing slash
}

// resolve walks p (relative to the tree, as wazero passes it: cleaned, a trailing
// slash kept) and follows the symbolic links on its way, the last one only when
// follow is set or the path ends in a slash. As on Linux: a missing folder on the
// way is ENOENT, a file on the way ENOTDIR, too many links ELOOP, and a name that
// ends in a slash but is not a folder ENOTDIR. A missing last name is no error: n is
// nil and key names where it would be.
func (s *ScratchFS) resolve(p string, follow bool) (resolved, experimentalsys.Errno) {
	key := clean(p)
	slash := strings.HasSuffix(p, "/") && key != "."
	follow = follow || slash
	var todo []string
	if key != "." {
		todo = strings.Split(key, "/")
	}
	cur, links := ".", 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		next := name
		if cur != "." {
			next = cur + "/" + name
		}
		n, ok := s.nodes[next]
		last := len(todo) == 0
		if !ok {
			if !last {
				return resolved{}, experimentalsys.ENOENT
			}
			return resolved{key: next, slash: slash}, 0
		}
		if n.link != "" && (!last || follow) {
			if links++; links > maxSymlinks {
				return resolved{}, experimentalsys.ELOOP
			}
			target := n.link
			if !path.IsAbs(target) {
				target = path.Join(s.mount, cur, target)
			}
			target = path.Clean(target)
			rel, inside := s.within(target)
			if !inside {
				// The other mounts have no links of their own that lead back here
				// (the read-only trees have none, a data folder's stay in it), so a
				// path that comes back into the tree is resolved here, with the
				// links counted, rather than through the view.
				rest := path.Join(append([]string{target}, todo...)...)
				if back, ok := s.within(rest); ok {
					rel, todo = back, nil
				} else {
					if slash {
						rest += "/"
					}
					return resolved{outside: rest, slash: slash}, 0
				}
			}
			cur = "."
			if rel != "." {
				todo = append(strings.Split(rel, "/"), todo...)
			}
			if len(todo) == 0 { // the link leads to the tree's root
				return resolved{key: ".", n: s.nodes["."], slash: slash}, 0
			}
			continue
		}
		if !n.dir && (!last || slash) {
			return resolved{}, experimentalsys.ENOTDIR
		}
		cur = next
	}
	return resolved{key: cur, n: s.nodes[cur], slash: slash}, 0
}

// within reports whether the absolute guest path abs is in the tree, and its name
// there.
func (s *ScratchFS) within(abs string) (string, bool) {
	if abs == s.mount {
		return ".", true
	}
	prefix := s.mount + "/"
	if s.mount == "/" {
		prefix = "/"
	}
	if rel, ok := strings.CutPrefix(abs, prefix); ok {
		return rel, true
	}
	return "", false
}

// foreignOp runs op on the file system of the guest's view that holds r.outside: a
// link led out of the tree. With no view, or no mount there, the path does not
// exist.
func foreignOp[T any](s *ScratchFS, r resolved, op func(experimentalsys.FS, string) (T, experimentalsys.Errno)) (T, experimentalsys.Errno) {
	var zero T
	if s.view == nil {
		return zero, experimentalsys.ENOENT
	}
	fsys, rel, ok := s.view(r.outside)
	if !ok {
		return zero, experimentalsys.ENOENT
	}
	if r.slash && !strings.HasSuffix(rel, "/") {
		rel += "/"
	}
	return op(fsys, rel)
}

// MountView returns the View of a guest whose mounts are mounts (guest path to file
// system): a path belongs to the longest mount point it starts with, as wasi-libc
// chooses a preopen.
func MountView(mounts map[string]experimentalsys.FS) View {
	return func(abs string) (experimentalsys.FS, string, bool) {
		best := ""
		for m := range mounts {
			if len(m) <= len(best) && best != "" {
				continue
			}
			if abs == m || m == "/" || strings.HasPrefix(abs, m+"/") {
				best = m
			}
		}
		if best == "" {
			return nil, "", false
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(abs, best), "/")
		if rel == "" {
			rel = "."
		}
		return mounts[best], rel, true
	}
}
