package guestfs

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// newTestDataDir makes parent/data with a secret file beside it, outside the folder.
func newTestDataDir(t *testing.T) (*DataDir, string) {
	t.Helper()
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := openDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d, parent
}

func newTestDataFS(t *testing.T, d *DataDir) (*DataFS, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return d.Mount(ctx, NewOpenFiles(64)), cancel
}

func readAll(t *testing.T, f experimentalsys.File) string {
	t.Helper()
	buf := make([]byte, 256)
	n, errno := f.Pread(buf, 0)
	if errno != 0 {
		t.Fatalf("pread: %v", errno)
	}
	return string(buf[:n])
}

func TestDataDirReadWrite(t *testing.T) {
	d, _ := newTestDataDir(t)
	fsys, _ := newTestDataFS(t, d)

	if errno := fsys.Mkdir("sub", 0o755); errno != 0 {
		t.Fatalf("mkdir: %v", errno)
	}
	f, errno := fsys.OpenFile("sub/a.txt", experimentalsys.O_RDWR|experimentalsys.O_CREAT, 0o644)
	if errno != 0 {
		t.Fatalf("create: %v", errno)
	}
	if _, errno := f.Write([]byte("hello ")); errno != 0 {
		t.Fatalf("write: %v", errno)
	}
	if _, errno := f.Pwrite([]byte("world"), 6); errno != 0 {
		t.Fatalf("pwrite: %v", errno)
	}
	if got := readAll(t, f); got != "hello world" {
		t.Errorf("read back %q", got)
	}
	if errno := f.Truncate(5); errno != 0 {
		t.Fatalf("truncate: %v", errno)
	}
	if errno := f.Close(); errno != 0 {
		t.Fatalf("close: %v", errno)
	}

	// Append mode appends even after a seek (the host emulates O_APPEND).
	f, errno = fsys.OpenFile("sub/a.txt", experimentalsys.O_WRONLY|experimentalsys.O_APPEND, 0)
	if errno != 0 {
		t.Fatalf("open append: %v", errno)
	}
	f.Seek(0, 0)
	f.Write([]byte("!"))
	f.Close()
	if b, _ := os.ReadFile(filepath.Join(d.path, "sub/a.txt")); string(b) != "hello!" {
		t.Errorf("host sees %q", b)
	}

	if errno := fsys.Rename("sub/a.txt", "b.txt"); errno != 0 {
		t.Fatalf("rename: %v", errno)
	}
	st, errno := fsys.Stat("b.txt")
	if errno != 0 || st.Size != 6 || st.Ino == 0 {
		t.Fatalf("stat: %+v %v", st, errno)
	}
	dir, errno := fsys.OpenFile(".", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	if errno != 0 {
		t.Fatalf("open root: %v", errno)
	}
	ents, errno := dir.Readdir(-1)
	dir.Close()
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
	}
	if errno != 0 || strings.Join(names, ",") != "b.txt,sub" && strings.Join(names, ",") != "sub,b.txt" {
		t.Errorf("readdir: %v %v", names, errno)
	}
	if errno := fsys.Unlink("sub"); errno != experimentalsys.EISDIR {
		t.Errorf("unlink of a folder: %v, want EISDIR", errno)
	}
	if errno := fsys.Rmdir("b.txt"); errno != experimentalsys.ENOTDIR {
		t.Errorf("rmdir of a file: %v, want ENOTDIR", errno)
	}
	if errno := fsys.Rmdir("sub"); errno != 0 {
		t.Errorf("rmdir: %v", errno)
	}
	if errno := fsys.Unlink("b.txt"); errno != 0 {
		t.Errorf("unlink: %v", errno)
	}
	if errno := fsys.Rmdir("."); errno == 0 {
		t.Error("rmdir of the mount itself worked")
	}

	// Only permission bits: no setuid file made by the guest.
	f, _ = fsys.OpenFile("x", experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644)
	f.Close()
	if errno := fsys.Chmod("x", 0o755|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky); errno != 0 {
		t.Fatalf("chmod: %v", errno)
	}
	if st, _ := os.Stat(filepath.Join(d.path, "x")); st.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		t.Errorf("mode %v carries special bits", st.Mode())
	}
}

func TestDataDirConfinement(t *testing.T) {
	d, parent := newTestDataDir(t)
	fsys, _ := newTestDataFS(t, d)
	secret := filepath.Join(parent, "secret")

	// Links the host placed in the folder, pointing outside it.
	for name, target := range map[string]string{
		"abs":     secret,
		"rel":     "../secret",
		"dirlink": parent,
		"etc":     "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(d.path, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.path, "inside"), []byte("in"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("inside", filepath.Join(d.path, "good")); err != nil {
		t.Fatal(err)
	}

	secretIno := mustIno(t, secret)
	escapes := []string{
		"../secret", "../../secret", "a/../../secret", "/../secret", "..",
		"abs", "rel", "dirlink/secret", "etc/passwd", "etc",
	}
	for _, p := range escapes {
		// "../secret" is "secret" inside the folder, as "/.." is "/": opening it may
		// create that file, but never reach the one outside.
		for _, flag := range []experimentalsys.Oflag{
			experimentalsys.O_RDONLY,
			experimentalsys.O_RDWR,
			experimentalsys.O_WRONLY | experimentalsys.O_CREAT | experimentalsys.O_TRUNC,
		} {
			if f, errno := fsys.OpenFile(p, flag, 0o644); errno == 0 {
				st, _ := f.Stat()
				f.Close()
				if st.Ino == secretIno || (st.Mode.IsDir() && st.Ino != mustIno(t, d.path)) {
					t.Errorf("open(%q, %v) reached outside the folder", p, flag)
				}
			}
		}
		if st, errno := fsys.Stat(p); errno == 0 && (st.Ino == secretIno || st.Mode.IsDir() && st.Ino != mustIno(t, d.path)) {
			t.Errorf("stat(%q) reached outside the folder", p)
		}
		// Changes aimed outside land inside the folder or fail; checked below.
		fsys.Mkdir(p+"/x", 0o755)
		if f, errno := fsys.OpenFile("mv", experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644); errno == 0 {
			f.Close()
		}
		fsys.Rename("mv", p+"/moved")
		fsys.Chmod(p, 0o777)
		fsys.Unlink(p + "/../secret")
		fsys.Utimens(p, 0, 0)
	}
	outside, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(outside) != 2 || outside[0].Name() != "data" || outside[1].Name() != "secret" {
		t.Errorf("something appeared outside the folder: %v", outside)
	}
	if st, _ := os.Stat(d.path); st.Mode().Perm() != 0o700 {
		t.Errorf("the folder's own mode changed to %v", st.Mode())
	}
	// Absolute guest paths are below the mount, never the host's.
	if _, errno := fsys.OpenFile("/proc/self/environ", experimentalsys.O_RDONLY, 0); errno != experimentalsys.ENOENT {
		t.Errorf("open(/proc/self/environ): %v, want ENOENT", errno)
	}
	if _, errno := fsys.OpenFile("/etc/passwd", experimentalsys.O_RDONLY, 0); errno == 0 {
		t.Error("open(/etc/passwd) worked (through the host's link etc -> /etc)")
	}
	if b, _ := os.ReadFile(secret); string(b) != "host secret" {
		t.Fatalf("the secret outside changed: %q", b)
	}
	if st, _ := os.Stat(secret); st.Mode().Perm() != 0o600 {
		t.Fatalf("the secret's mode changed: %v", st.Mode())
	}
	// A link inside the folder to a file inside it works.
	f, errno := fsys.OpenFile("good", experimentalsys.O_RDONLY, 0)
	if errno != 0 {
		t.Fatalf("open(good): %v", errno)
	}
	if got := readAll(t, f); got != "in" {
		t.Errorf("good reads %q", got)
	}
	f.Close()
	// Removing a link removes the link, not its target.
	if errno := fsys.Unlink("abs"); errno != 0 {
		t.Errorf("unlink(abs): %v", errno)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("unlinking the link removed its target: %v", err)
	}

	// The guest makes no links.
	if errno := fsys.Symlink("/etc/passwd", "new"); errno != experimentalsys.EPERM {
		t.Errorf("symlink: %v, want EPERM", errno)
	}
	if errno := fsys.Symlink("inside", "new"); errno != experimentalsys.EPERM {
		t.Errorf("symlink inside: %v, want EPERM", errno)
	}
	if errno := fsys.Link("inside", "hard"); errno != experimentalsys.EPERM {
		t.Errorf("link: %v, want EPERM", errno)
	}
	if _, err := os.Lstat(filepath.Join(d.path, "new")); err == nil {
		t.Error("a symlink was created")
	}
}

func mustIno(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return sys.NewStat_t(st).Ino
}

func TestDataDirSecondProcessRefused(t *testing.T) {
	d, _ := newTestDataDir(t)
	// The folder is flock'ed; another open file description (as another process
	// would have) cannot take it.
	if _, err := openDataDir(d.path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v, want 'in use'", err)
	}
}

func TestDataDirLock(t *testing.T) {
	d, _ := newTestDataDir(t)
	openW := func(fsys *DataFS) (experimentalsys.File, experimentalsys.Errno) {
		return fsys.OpenFile("db", experimentalsys.O_RDWR|experimentalsys.O_CREAT, 0o644)
	}
	openR := func(fsys *DataFS) (experimentalsys.File, experimentalsys.Errno) {
		return fsys.OpenFile("db", experimentalsys.O_RDONLY, 0)
	}

	t.Run("writers one at a time, held until the instance ends", func(t *testing.T) {
		a, endA := newTestDataFS(t, d)
		f, errno := openW(a)
		if errno != 0 {
			t.Fatal(errno)
		}
		f.Close() // closing the file does not release the lock: the instance goes on

		b, _ := newTestDataFS(t, d)
		got := make(chan experimentalsys.Errno, 1)
		go func() {
			f, errno := openW(b)
			if errno == 0 {
				f.Close()
			}
			got <- errno
		}()
		select {
		case errno := <-got:
			t.Fatalf("second writer got in while the first instance runs: %v", errno)
		case <-time.After(100 * time.Millisecond):
		}
		endA()
		select {
		case errno := <-got:
			if errno != 0 {
				t.Fatalf("second writer: %v", errno)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("second writer still waits after the first instance ended")
		}
		// After its end, the first instance can do nothing more there.
		if _, errno := openR(a); errno != experimentalsys.EBADF {
			t.Errorf("open after the end: %v, want EBADF", errno)
		}
	})

	t.Run("a waiter gives up when its own instance ends", func(t *testing.T) {
		a, endA := newTestDataFS(t, d)
		if _, errno := openW(a); errno != 0 {
			t.Fatal(errno)
		}
		defer endA()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		b := d.Mount(ctx, NewOpenFiles(8))
		if _, errno := openW(b); errno != experimentalsys.EAGAIN {
			t.Fatalf("waiter past its deadline: %v, want EAGAIN", errno)
		}
		if errno := b.Mkdir("x", 0o755); errno != experimentalsys.EBADF {
			t.Fatalf("after the deadline: %v, want EBADF", errno)
		}
	})

	t.Run("readers share, writers wait for them", func(t *testing.T) {
		a, endA := newTestDataFS(t, d)
		b, endB := newTestDataFS(t, d)
		for _, r := range []*DataFS{a, b} {
			f, errno := openR(r)
			if errno != 0 {
				t.Fatal(errno)
			}
			f.Close()
		}
		w, endW := newTestDataFS(t, d)
		defer endW()
		got := make(chan experimentalsys.Errno, 1)
		go func() { _, errno := openW(w); got <- errno }()
		time.Sleep(50 * time.Millisecond)
		endA()
		select {
		case <-got:
			t.Fatal("writer got in while a reader remains")
		case <-time.After(50 * time.Millisecond):
		}
		endB()
		if errno := <-got; errno != 0 {
			t.Fatal(errno)
		}
	})

	t.Run("two readers upgrading: the second is refused, not deadlocked", func(t *testing.T) {
		a, endA := newTestDataFS(t, d)
		b, endB := newTestDataFS(t, d)
		defer endA()
		for _, r := range []*DataFS{a, b} {
			if _, errno := openR(r); errno != 0 {
				t.Fatal(errno)
			}
		}
		got := make(chan experimentalsys.Errno, 1)
		go func() { _, errno := openW(a); got <- errno }()
		time.Sleep(50 * time.Millisecond)
		if _, errno := openW(b); errno != experimentalsys.EAGAIN {
			t.Fatalf("second upgrade: %v, want EAGAIN", errno)
		}
		endB()
		select {
		case errno := <-got:
			if errno != 0 {
				t.Fatal(errno)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("first upgrade never completed")
		}
	})

	t.Run("listing and stat take no lock", func(t *testing.T) {
		a, endA := newTestDataFS(t, d)
		defer endA()
		if _, errno := openW(a); errno != 0 {
			t.Fatal(errno)
		}
		b, endB := newTestDataFS(t, d)
		defer endB()
		if _, errno := b.Stat("db"); errno != 0 {
			t.Fatal(errno)
		}
		dir, errno := b.OpenFile(".", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
		if errno != 0 {
			t.Fatal(errno)
		}
		dir.Close()
	})
}

func TestDataDirOpenFilesLimit(t *testing.T) {
	d, _ := newTestDataDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fsys := d.Mount(ctx, NewOpenFiles(2))
	var open []experimentalsys.File
	for i := 0; i < 2; i++ {
		f, errno := fsys.OpenFile(".", experimentalsys.O_RDONLY, 0)
		if errno != 0 {
			t.Fatal(errno)
		}
		open = append(open, f)
	}
	if _, errno := fsys.OpenFile(".", experimentalsys.O_RDONLY, 0); errno == 0 {
		t.Fatal("a third file opened past limits.open_files = 2")
	}
	open[0].Close()
	if f, errno := fsys.OpenFile(".", experimentalsys.O_RDONLY, 0); errno != 0 {
		t.Fatalf("after a close: %v", errno)
	} else {
		f.Close()
	}
}

// TestDataDirsShareAndRelease checks the owner of the data folders: a folder is made
// 0700, two names of one folder (through a symlink) give the same folder with the
// same lock, and the flock that keeps other processes out is held until the last user
// releases the folder, and no longer.
func TestDataDirsShareAndRelease(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "a", "b")
	dirs := NewDataDirs()
	d1, err := dirs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("the folder was not created 0700: %v %v", st, err)
	}
	if err := os.Symlink(filepath.Join(parent, "a"), filepath.Join(parent, "alias")); err != nil {
		t.Fatal(err)
	}
	d2, err := dirs.Open(filepath.Join(parent, "alias", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Error("two names of one folder got two locks")
	}
	if err := os.WriteFile(filepath.Join(parent, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dirs.Open(filepath.Join(parent, "file")); err == nil {
		t.Error("a regular file was accepted as a data folder")
	}

	// Another open file description (as another process would have) is refused while
	// one user remains, and takes the folder once the last one released it.
	d1.Release()
	if _, err := openDataDir(d1.Path()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("open by another process while one user remains: %v, want 'in use'", err)
	}
	d2.Release()
	other, err := openDataDir(d1.Path())
	if err != nil {
		t.Fatalf("open by another process once every user released the folder: %v", err)
	}
	// The owner forgot the folder: opening it again is refused while the other holds it.
	if _, err := dirs.Open(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("reopened while another process holds the folder: %v", err)
	}
	other.close()
	d3, err := dirs.Open(dir)
	if err != nil {
		t.Fatalf("reopened after the other process let go: %v", err)
	}
	if d3 == d1 {
		t.Error("a released folder was handed out again")
	}
	d3.Release()
	d3.Release() // one release too many changes nothing
}
