package guestfs

import (
	"io"
	"testing"

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
