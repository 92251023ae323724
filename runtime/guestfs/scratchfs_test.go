package guestfs

import (
	"io"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

func TestScratchFS(t *testing.T) {
	s := NewScratchFS(100, nil)
	rw := experimentalsys.O_RDWR | experimentalsys.O_CREAT
	f, errno := s.OpenFile("a.txt", rw|experimentalsys.O_EXCL, 0o600)
	if errno != 0 {
		t.Fatal(errno)
	}
	if n, errno := f.Write([]byte("hello")); n != 5 || errno != 0 {
		t.Fatalf("write: %d %v", n, errno)
	}
	if _, errno := s.OpenFile("a.txt", rw|experimentalsys.O_EXCL, 0o600); errno != experimentalsys.EEXIST {
		t.Errorf("O_EXCL on an existing file: %v", errno)
	}
	if _, errno := f.Seek(0, io.SeekStart); errno != 0 {
		t.Fatal(errno)
	}
	buf := make([]byte, 10)
	if n, _ := f.Read(buf); string(buf[:n]) != "hello" {
		t.Errorf("read back %q", buf[:n])
	}
	// The limit counts every file: 5 used, 95 left.
	g, _ := s.OpenFile("b.bin", rw, 0o600)
	if _, errno := g.Write(make([]byte, 96)); errno == 0 {
		t.Error("a write past the limit succeeded")
	}
	if _, errno := g.Write(make([]byte, 95)); errno != 0 {
		t.Errorf("a write up to the limit failed: %v", errno)
	}
	if errno := s.Unlink("b.bin"); errno != 0 {
		t.Fatal(errno)
	}
	if _, errno := g.Write(make([]byte, 90)); errno != 0 {
		t.Errorf("space was not returned by unlink: %v", errno)
	}

	if errno := s.Mkdir("d", 0o700); errno != 0 {
		t.Fatal(errno)
	}
	if errno := s.Mkdir("missing/d", 0o700); errno != experimentalsys.ENOENT {
		t.Errorf("mkdir without parent: %v", errno)
	}
	if errno := s.Rename("a.txt", "d/a.txt"); errno != 0 {
		t.Fatal(errno)
	}
	if errno := s.Rmdir("d"); errno != experimentalsys.ENOTEMPTY {
		t.Errorf("rmdir of a non-empty dir: %v", errno)
	}
	if errno := s.Rename("d", "e"); errno != 0 {
		t.Fatal(errno)
	}
	if st, errno := s.Stat("/e/a.txt"); errno != 0 || st.Size != 5 {
		t.Errorf("stat after moving the dir: %+v %v", st, errno)
	}
	if _, errno := s.Stat("d/a.txt"); errno != experimentalsys.ENOENT {
		t.Errorf("old path still there: %v", errno)
	}
	// Paths cannot climb out of the tree.
	if st, errno := s.Stat("../../e/a.txt"); errno != 0 || st.Size != 5 {
		t.Errorf("'..' above the root must stay at the root: %v", errno)
	}
	if _, errno := s.OpenFile("c.txt", rw, 0o600); errno != 0 {
		t.Fatal(errno)
	}
	root, errno := s.OpenFile(".", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	first, _ := root.Readdir(1)
	rest, _ := root.Readdir(-1)
	if len(first) != 1 || len(rest) != 1 || first[0].Name != "c.txt" || rest[0].Name != "e" || !rest[0].IsDir() {
		t.Errorf("readdir: %v then %v", first, rest)
	}
	if _, errno := root.Seek(0, io.SeekStart); errno != 0 {
		t.Fatal(errno)
	}
	if again, _ := root.Readdir(0); len(again) != 2 {
		t.Errorf("readdir after rewind: %v", again)
	}
}

// TestScratchTimes checks that each operation changes the times Linux changes (read
// from python3 on ext4 and tmpfs doing the same): a folder's modification and change
// times when an entry is added to it or removed from it, a file's change time alone
// when it gains or loses a name, is renamed or chmod'ed, both when it is written; and
// nothing when it is only read.
func TestScratchTimes(t *testing.T) {
	s := NewScratchFS(1<<20, nil)
	open := func(name string, flag experimentalsys.Oflag) experimentalsys.File {
		t.Helper()
		f, errno := s.OpenFile(name, flag, 0o644)
		if errno != 0 {
			t.Fatalf("open %s: %v", name, errno)
		}
		return f
	}
	const wo, create = experimentalsys.O_WRONLY, experimentalsys.O_CREAT | experimentalsys.O_EXCL
	for _, d := range []string{"d", "e", "e/sub"} {
		if errno := s.Mkdir(d, 0o755); errno != 0 {
			t.Fatal(errno)
		}
	}
	f := open("d/f", wo|create)
	if _, errno := f.Write([]byte("abc")); errno != 0 {
		t.Fatal(errno)
	}
	f.Close()

	const old = int64(1e9) // every watched time is put back to this before each row
	for _, c := range []struct {
		what string
		op   func() experimentalsys.Errno
		// modified: mtime and ctime are now; changed: ctime only; same: neither.
		modified, changed, same []string
	}{
		{"create a file", func() experimentalsys.Errno { return open("d/new", wo|create).Close() },
			[]string{"d"}, nil, []string{".", "e"}},
		{"create in the root", func() experimentalsys.Errno { return open("top", wo|create).Close() },
			[]string{"."}, nil, []string{"d"}},
		{"open an existing file to append", func() experimentalsys.Errno {
			return open("d/new", wo|experimentalsys.O_CREAT|experimentalsys.O_APPEND).Close()
		}, nil, nil, []string{"d", "d/new"}},
		{"unlink", func() experimentalsys.Errno { return s.Unlink("d/new") }, []string{"d"}, nil, []string{"."}},
		{"unlink a missing name", func() experimentalsys.Errno {
			if errno := s.Unlink("d/new"); errno != experimentalsys.ENOENT {
				return errno
			}
			return 0
		}, nil, nil, []string{"d"}},
		{"mkdir", func() experimentalsys.Errno { return s.Mkdir("d/sub", 0o755) }, []string{"d"}, nil, []string{"."}},
		{"rmdir", func() experimentalsys.Errno { return s.Rmdir("d/sub") }, []string{"d"}, nil, []string{"."}},
		{"link", func() experimentalsys.Errno { return s.Link("d/f", "e/h") }, []string{"e"}, []string{"d/f"}, []string{"d"}},
		{"symlink", func() experimentalsys.Errno { return s.Symlink("f", "d/s") }, []string{"d"}, nil, []string{"e"}},
		{"rename in a folder", func() experimentalsys.Errno { return s.Rename("d/s", "d/s2") },
			[]string{"d"}, []string{"d/s2"}, []string{"e"}},
		{"rename between folders", func() experimentalsys.Errno { return s.Rename("e/h", "d/h") },
			[]string{"d", "e"}, []string{"d/f"}, []string{"."}},
		{"rename a folder between folders", func() experimentalsys.Errno { return s.Rename("e/sub", "d/sub") },
			[]string{"d", "e"}, []string{"d/sub"}, []string{"."}},
		{"rename over a name of the file", func() experimentalsys.Errno { return s.Rename("d/h", "d/f") },
			nil, nil, []string{"d", "d/f"}},
		{"unlink one of two names", func() experimentalsys.Errno { return s.Unlink("d/h") }, []string{"d"}, []string{"d/f"}, nil},
		{"chmod", func() experimentalsys.Errno { return s.Chmod("d/f", 0o600) }, nil, []string{"d/f"}, []string{"d"}},
		{"write in place", func() experimentalsys.Errno {
			f := open("d/f", wo)
			defer f.Close()
			_, errno := f.Write([]byte("x"))
			return errno
		}, []string{"d/f"}, nil, []string{"d"}},
		{"write nothing", func() experimentalsys.Errno {
			f := open("d/f", wo)
			defer f.Close()
			_, errno := f.Write(nil)
			return errno
		}, nil, nil, []string{"d/f"}},
		{"truncate to the same size", func() experimentalsys.Errno {
			f := open("d/f", wo)
			defer f.Close()
			return f.Truncate(3)
		}, []string{"d/f"}, nil, []string{"d"}},
		{"open with O_TRUNC", func() experimentalsys.Errno { return open("d/f", wo|experimentalsys.O_TRUNC).Close() },
			[]string{"d/f"}, nil, []string{"d"}},
		{"utime", func() experimentalsys.Errno { return s.Utimens("d/f", experimentalsys.UTIME_OMIT, old) },
			nil, []string{"d/f"}, []string{"d"}},
		{"read a folder", func() experimentalsys.Errno {
			dir := open("d", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY)
			defer dir.Close()
			if ents, errno := dir.Readdir(-1); errno != 0 || len(ents) != 3 {
				t.Errorf("readdir d: %v %v", ents, errno)
			}
			_, errno := s.Stat("d")
			return errno
		}, nil, nil, []string{"d", "d/f"}},
		{"read a file", func() experimentalsys.Errno {
			f := open("d/f", experimentalsys.O_RDONLY)
			defer f.Close()
			_, errno := f.Read(make([]byte, 10))
			return errno
		}, nil, nil, []string{"d", "d/f"}},
	} {
		t.Run(c.what, func(t *testing.T) {
			for _, n := range s.nodes {
				n.mtime, n.ctime = old, old
			}
			before := time.Now().UnixNano()
			if errno := c.op(); errno != 0 {
				t.Fatal(errno)
			}
			times := func(name string) (mtime, ctime int64) {
				t.Helper()
				st, errno := s.Lstat(name)
				if errno != 0 {
					t.Fatalf("lstat %s: %v", name, errno)
				}
				return st.Mtim, st.Ctim
			}
			for _, name := range c.modified {
				if m, ch := times(name); m < before || ch < before {
					t.Errorf("%s: mtime %d, ctime %d; Linux makes both now (>= %d)", name, m, ch, before)
				}
			}
			for _, name := range c.changed {
				if m, ch := times(name); m != old || ch < before {
					t.Errorf("%s: mtime %d, ctime %d; Linux keeps mtime %d and makes ctime now (>= %d)", name, m, ch, old, before)
				}
			}
			for _, name := range c.same {
				if m, ch := times(name); m != old || ch != old {
					t.Errorf("%s: mtime %d, ctime %d; Linux keeps both at %d", name, m, ch, old)
				}
			}
		})
	}
}

// TestScratchResetTimes checks that Reset puts the root's times back, so a request
// cannot tell when an earlier one last changed /tmp.
func TestScratchResetTimes(t *testing.T) {
	s := NewScratchFS(1<<20, nil)
	empty, _ := s.Stat(".")
	time.Sleep(time.Millisecond)
	f, errno := s.OpenFile("f", experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644)
	if errno != 0 {
		t.Fatal(errno)
	}
	f.Close()
	if errno := s.Unlink("f"); errno != 0 {
		t.Fatal(errno)
	}
	if used, _ := s.Stat("."); used.Mtim == empty.Mtim {
		t.Fatal("creating and removing a file left the root's mtime")
	}
	s.Reset()
	if st, _ := s.Stat("."); st != empty {
		t.Errorf("root after Reset: %+v, want %+v as when it was made", st, empty)
	}
}

// TestScratchResetInodes: after Reset, the first file made has the number the first
// file of a new tree has, so a request cannot count the files earlier ones made.
func TestScratchResetInodes(t *testing.T) {
	ino := func(s *ScratchFS) uint64 {
		t.Helper()
		f, errno := s.OpenFile("f", experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644)
		if errno != 0 {
			t.Fatal(errno)
		}
		f.Close()
		st, errno := s.Stat("f")
		if errno != 0 {
			t.Fatal(errno)
		}
		return st.Ino
	}
	fresh := ino(NewScratchFS(1<<20, nil))
	s := NewScratchFS(1<<20, nil)
	for _, name := range []string{"a", "b", "c"} {
		f, errno := s.OpenFile(name, experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644)
		if errno != 0 {
			t.Fatal(errno)
		}
		f.Close()
	}
	s.Reset()
	if got := ino(s); got != fresh {
		t.Errorf("first file after Reset has inode %d, a fresh tree's first %d", got, fresh)
	}
}
