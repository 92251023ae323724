package guestfs

import (
	"io/fs"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// TestScratchLinks checks links, trailing slashes and times in /tmp against what
// Linux (ext4, tmpfs) answers to the same calls; each row's errno was read from
// python3 on Linux doing the same in an empty folder.
func TestScratchLinks(t *testing.T) {
	zoneinfo := MemFSFromFiles(map[string][]byte{"UTC": []byte("TZif")})
	root := NewRootTree([]string{"/tmp", "/app"}, map[string]*MemFS{"usr/share/zoneinfo": zoneinfo})
	s := NewScratchFS(1<<20, nil)
	rootFS := root.ReadOnly(nil)
	app := MemFSFromFiles(map[string][]byte{"app.py": []byte("application = 1\n")}).ReadOnly(nil)
	s.SetView("/tmp", MountView(map[string]experimentalsys.FS{"/": rootFS, "/tmp": s, "/app": app}))

	write := func(name, content string) {
		t.Helper()
		f, errno := s.OpenFile(name, experimentalsys.O_WRONLY|experimentalsys.O_CREAT|experimentalsys.O_TRUNC, 0o644)
		if errno != 0 {
			t.Fatalf("create %s: %v", name, errno)
		}
		if _, errno := f.Write([]byte(content)); errno != 0 {
			t.Fatal(errno)
		}
		f.Close()
	}
	read := func(name string) (string, experimentalsys.Errno) {
		f, errno := s.OpenFile(name, experimentalsys.O_RDONLY, 0)
		if errno != 0 {
			return "", errno
		}
		defer f.Close()
		buf := make([]byte, 100)
		n, errno := f.Read(buf)
		return string(buf[:n]), errno
	}
	write("f", "hi")
	if errno := s.Mkdir("d", 0o755); errno != 0 {
		t.Fatal(errno)
	}

	rw := experimentalsys.O_WRONLY | experimentalsys.O_CREAT | experimentalsys.O_TRUNC
	for _, c := range []struct {
		what string
		call func() experimentalsys.Errno
		want experimentalsys.Errno
	}{
		{"open('new/', 'w')", func() experimentalsys.Errno { _, e := s.OpenFile("new/", rw, 0o644); return e }, experimentalsys.EISDIR},
		{"open('f/', 'w')", func() experimentalsys.Errno { _, e := s.OpenFile("f/", rw, 0o644); return e }, experimentalsys.EISDIR},
		{"open('f/')", func() experimentalsys.Errno { _, e := s.OpenFile("f/", experimentalsys.O_RDONLY, 0); return e }, experimentalsys.ENOTDIR},
		{"stat('f/')", func() experimentalsys.Errno { _, e := s.Stat("f/"); return e }, experimentalsys.ENOTDIR},
		{"link('f', 'g')", func() experimentalsys.Errno { return s.Link("f", "g") }, 0},
		{"link('f', 'g') again", func() experimentalsys.Errno { return s.Link("f", "g") }, experimentalsys.EEXIST},
		{"link('nope', 'h')", func() experimentalsys.Errno { return s.Link("nope", "h") }, experimentalsys.ENOENT},
		{"link('d', 'dl')", func() experimentalsys.Errno { return s.Link("d", "dl") }, experimentalsys.EPERM},
		{"link('f', 'nod/x')", func() experimentalsys.Errno { return s.Link("f", "nod/x") }, experimentalsys.ENOENT},
		{"link('f', 'd/')", func() experimentalsys.Errno { return s.Link("f", "d/") }, experimentalsys.EEXIST},
		{"symlink('f', 's')", func() experimentalsys.Errno { return s.Symlink("f", "s") }, 0},
		{"symlink('f', 's') again", func() experimentalsys.Errno { return s.Symlink("f", "s") }, experimentalsys.EEXIST},
		{"symlink('', 'e')", func() experimentalsys.Errno { return s.Symlink("", "e") }, experimentalsys.ENOENT},
		{"symlink('x', 'nod/y')", func() experimentalsys.Errno { return s.Symlink("x", "nod/y") }, experimentalsys.ENOENT},
		{"readlink('f')", func() experimentalsys.Errno { _, e := s.Readlink("f"); return e }, experimentalsys.EINVAL},
		{"readlink('zz')", func() experimentalsys.Errno { _, e := s.Readlink("zz"); return e }, experimentalsys.ENOENT},
		{"symlink('nothere', 'dg')", func() experimentalsys.Errno { return s.Symlink("nothere", "dg") }, 0},
		{"open('dg')", func() experimentalsys.Errno { _, e := read("dg"); return e }, experimentalsys.ENOENT},
		{"open('dg', O_CREAT|O_EXCL)", func() experimentalsys.Errno {
			_, e := s.OpenFile("dg", experimentalsys.O_CREAT|experimentalsys.O_EXCL|experimentalsys.O_WRONLY, 0o644)
			return e
		}, experimentalsys.EEXIST},
		{"symlink('l2', 'l1')", func() experimentalsys.Errno { return s.Symlink("l2", "l1") }, 0},
		{"symlink('l1', 'l2')", func() experimentalsys.Errno { return s.Symlink("l1", "l2") }, 0},
		{"open('l1')", func() experimentalsys.Errno { _, e := read("l1"); return e }, experimentalsys.ELOOP},
		{"stat('l1')", func() experimentalsys.Errno { _, e := s.Stat("l1"); return e }, experimentalsys.ELOOP},
		{"stat('l1/x')", func() experimentalsys.Errno { _, e := s.Stat("l1/x"); return e }, experimentalsys.ELOOP},
		{"lstat('l1')", func() experimentalsys.Errno { _, e := s.Lstat("l1"); return e }, 0},
		{"open('s', O_NOFOLLOW)", func() experimentalsys.Errno {
			_, e := s.OpenFile("s", experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0)
			return e
		}, experimentalsys.ELOOP},
		{"symlink('d', 'sd')", func() experimentalsys.Errno { return s.Symlink("d", "sd") }, 0},
		{"rmdir('sd')", func() experimentalsys.Errno { return s.Rmdir("sd") }, experimentalsys.ENOTDIR},
		{"unlink('sd/')", func() experimentalsys.Errno { return s.Unlink("sd/") }, experimentalsys.ENOTDIR},
		{"unlink('g/')", func() experimentalsys.Errno { return s.Unlink("g/") }, experimentalsys.ENOTDIR},
		{"unlink('d')", func() experimentalsys.Errno { return s.Unlink("d") }, experimentalsys.EISDIR},
		{"mkdir('s')", func() experimentalsys.Errno { return s.Mkdir("s", 0o755) }, experimentalsys.EEXIST},
		{"mkdir('sd/x')", func() experimentalsys.Errno { return s.Mkdir("sd/x", 0o755) }, 0},
		{"stat('d/x')", func() experimentalsys.Errno { _, e := s.Stat("d/x"); return e }, 0},
		{"stat('f/x')", func() experimentalsys.Errno { _, e := s.Stat("f/x"); return e }, experimentalsys.ENOTDIR},
		{"rename('g', 'd')", func() experimentalsys.Errno { return s.Rename("g", "d") }, experimentalsys.EISDIR},
		{"rename('d', 'g')", func() experimentalsys.Errno { return s.Rename("d", "g") }, experimentalsys.ENOTDIR},
		{"rename('s', 's2')", func() experimentalsys.Errno { return s.Rename("s", "s2") }, 0},
		{"symlink('/tmp/f', 'abs')", func() experimentalsys.Errno { return s.Symlink("/tmp/f", "abs") }, 0},
		{"stat('abs/')", func() experimentalsys.Errno { _, e := s.Stat("abs/"); return e }, experimentalsys.ENOTDIR},
		{"mkdir('nd/')", func() experimentalsys.Errno { return s.Mkdir("nd/", 0o755) }, 0},
		{"rmdir('nd/')", func() experimentalsys.Errno { return s.Rmdir("nd/") }, 0},
		// Out of the tree, through the guest's view only.
		{"symlink('/usr/share/zoneinfo', 'z')", func() experimentalsys.Errno { return s.Symlink("/usr/share/zoneinfo", "z") }, 0},
		{"stat('z/UTC')", func() experimentalsys.Errno { _, e := s.Stat("z/UTC"); return e }, 0},
		{"symlink('../../etc/passwd', 'pw')", func() experimentalsys.Errno { return s.Symlink("../../etc/passwd", "pw") }, 0},
		{"open('pw')", func() experimentalsys.Errno { _, e := read("pw"); return e }, experimentalsys.ENOENT},
		{"symlink('/app', 'a')", func() experimentalsys.Errno { return s.Symlink("/app", "a") }, 0},
		{"open('a/app.py', 'w')", func() experimentalsys.Errno { _, e := s.OpenFile("a/app.py", rw, 0o644); return e }, experimentalsys.EROFS},
		{"link('a/app.py', 'mine')", func() experimentalsys.Errno { return s.Link("a/app.py", "mine") }, errCrossTree},
		{"rename('a/app.py', 'mine')", func() experimentalsys.Errno { return s.Rename("a/app.py", "mine") }, errCrossTree},
		{"symlink('..', 'up')", func() experimentalsys.Errno { return s.Symlink("..", "up") }, 0},
		{"stat('up/tmp/f')", func() experimentalsys.Errno { _, e := s.Stat("up/tmp/f"); return e }, 0},
		{"stat('up/tmp/up/tmp/f')", func() experimentalsys.Errno { _, e := s.Stat("up/tmp/up/tmp/f"); return e }, 0},
		{"stat('up/etc')", func() experimentalsys.Errno { _, e := s.Stat("up/etc"); return e }, experimentalsys.ENOENT},
	} {
		if got := c.call(); got != c.want {
			t.Errorf("%s: errno %v, Linux gives %v", c.what, got, c.want)
		}
	}

	if _, errno := s.Stat("new"); errno != experimentalsys.ENOENT {
		t.Errorf("open('new/', 'w') made a file 'new': %v", errno)
	}
	// Hard links: one file, two names, until one goes.
	f, _ := s.Stat("f")
	g, _ := s.Stat("g")
	if f.Ino != g.Ino || f.Nlink != 2 {
		t.Errorf("link: f %+v g %+v", f, g)
	}
	if errno := s.Unlink("f"); errno != 0 {
		t.Fatal(errno)
	}
	if got, errno := read("g"); got != "hi" || errno != 0 {
		t.Errorf("g after unlinking f: %q %v", got, errno)
	}
	if g, _ := s.Stat("g"); g.Nlink != 1 {
		t.Errorf("nlink after unlink: %d", g.Nlink)
	}
	if s.used != 2 {
		t.Errorf("used %d bytes, want 2: the content lives while a name does", s.used)
	}
	// Symbolic links: described by lstat, followed by stat and open.
	if got, _ := s.Readlink("s2"); got != "f" {
		t.Errorf("readlink after rename: %q", got)
	}
	if _, errno := read("s2"); errno != experimentalsys.ENOENT {
		t.Errorf("s2 points at the unlinked f: %v", errno)
	}
	if l, _ := s.Lstat("s2"); l.Mode&fs.ModeSymlink == 0 || l.Size != 1 {
		t.Errorf("lstat of a link: %v %d", l.Mode, l.Size)
	}
	if st, _ := s.Lstat("sd/"); !st.Mode.IsDir() {
		t.Errorf("lstat('sd/') follows the link to the folder: %v", st.Mode)
	}
	write("dg", "made through a dangling link")
	if got, _ := read("nothere"); got != "made through a dangling link" {
		t.Errorf("open('dg', 'w') creates the link's target: %q", got)
	}
	if got, _ := read("abs"); got != "" {
		t.Errorf("abs leads to the unlinked /tmp/f: %q", got)
	}
	if got, errno := read("a/app.py"); got != "application = 1\n" || errno != 0 {
		t.Errorf("a link to /app reads the app's file: %q %v", got, errno)
	}
	// Times: each kept, "now" is now.
	if errno := s.Utimens("g", 5e9, 7e9); errno != 0 {
		t.Fatal(errno)
	}
	if st, _ := s.Stat("g"); st.Atim != 5e9 || st.Mtim != 7e9 {
		t.Errorf("utime (5, 7): atime %d mtime %d", st.Atim, st.Mtim)
	}
	if errno := s.Utimens("g", experimentalsys.UTIME_OMIT, 9e9); errno != 0 {
		t.Fatal(errno)
	}
	if st, _ := s.Stat("g"); st.Atim != 5e9 || st.Mtim != 9e9 {
		t.Errorf("utime leaving atime: atime %d mtime %d", st.Atim, st.Mtim)
	}
}
