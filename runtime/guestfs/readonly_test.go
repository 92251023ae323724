package guestfs

import (
	"fmt"
	"io/fs"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

func TestReadOnlyErrors(t *testing.T) {
	zones := MemFSFromFiles(map[string][]byte{"Europe/Paris": []byte("TZif")})
	root := NewRootTree([]string{"/app", "/usr/local/lib/python3.11"}, map[string]*MemFS{"/usr/share/zoneinfo": zones})
	files := NewOpenFiles(0)
	r := root.ReadOnly(files)
	const (
		rd   = experimentalsys.O_RDONLY
		wr   = experimentalsys.O_WRONLY
		rdwr = experimentalsys.O_RDWR
		crt  = experimentalsys.O_CREAT
		excl = experimentalsys.O_EXCL
		trc  = experimentalsys.O_TRUNC
		dir  = experimentalsys.O_DIRECTORY
	)
	for _, c := range []struct {
		path string
		flag experimentalsys.Oflag
		want experimentalsys.Errno
	}{
		{"usr/share/zoneinfo/Europe/Paris", rd, 0},
		{"/usr/share/zoneinfo/Europe/Paris", rd, 0},
		{"usr/share/zoneinfo/Europe/Paris", wr, experimentalsys.EROFS},
		{"usr/share/zoneinfo/Europe/Paris", rd | trc, experimentalsys.EROFS},
		{"usr/share/zoneinfo/Europe/Paris", wr | crt | excl, experimentalsys.EEXIST},
		{"usr/share/zoneinfo/Europe/Paris", rd | dir, experimentalsys.ENOTDIR},
		{"usr/share/zoneinfo/Europe/Paris/x", rd, experimentalsys.ENOTDIR},
		{"usr/share/zoneinfo/Europe/Rome", rd, experimentalsys.ENOENT},
		{"usr/share/zoneinfo/Europe/Rome", wr | crt, experimentalsys.EROFS},
		{"usr/share/nothing/x", wr | crt, experimentalsys.ENOENT},
		{"x", wr | crt | trc, experimentalsys.EROFS},
		{"usr", rdwr, experimentalsys.EISDIR},
		{".", rd | dir, 0},
		{"dev/null", rd, 0},
		{"dev/null", wr, 0},
		{"dev/null", rdwr | trc, 0},
	} {
		f, errno := r.OpenFile(c.path, c.flag, 0o644)
		if errno != c.want {
			t.Errorf("OpenFile(%q, %#x) = %v, want %v", c.path, c.flag, errno, c.want)
		}
		if f != nil {
			f.Close()
		}
	}
	for _, c := range []struct {
		op   string
		got  experimentalsys.Errno
		want experimentalsys.Errno
	}{
		{"mkdir usr", r.Mkdir("usr", 0o755), experimentalsys.EEXIST},
		{"mkdir new", r.Mkdir("new", 0o755), experimentalsys.EROFS},
		{"mkdir missing/new", r.Mkdir("missing/new", 0o755), experimentalsys.ENOENT},
		{"unlink zone", r.Unlink("usr/share/zoneinfo/Europe/Paris"), experimentalsys.EROFS},
		{"unlink in missing folder", r.Unlink("usr/share/nothing/x"), experimentalsys.ENOENT},
		{"rmdir app", r.Rmdir("app"), experimentalsys.EROFS},
		{"rename", r.Rename("usr/share/zoneinfo/Europe/Paris", "x"), experimentalsys.EROFS},
		{"rename into missing folder", r.Rename("usr/share/zoneinfo/Europe/Paris", "no/x"), experimentalsys.ENOENT},
		{"chmod", r.Chmod("app", 0o777), experimentalsys.EROFS},
		{"chmod missing", r.Chmod("nothing", 0o777), experimentalsys.ENOENT},
		{"utimens", r.Utimens("usr", 0, 0), experimentalsys.EROFS},
		{"link", r.Link("usr/share/zoneinfo/Europe/Paris", "x"), experimentalsys.EROFS},
		{"symlink", r.Symlink("usr", "x"), experimentalsys.EROFS},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.op, c.got, c.want)
		}
	}
	if _, errno := r.Readlink("usr"); errno != experimentalsys.EINVAL {
		t.Errorf("Readlink(usr) = %v, want EINVAL", errno)
	}
	if files.LeftOpen(0) {
		t.Error("files left open after every file was closed")
	}
}

func TestRootTree(t *testing.T) {
	zones := MemFSFromFiles(map[string][]byte{"Europe/Paris": []byte("TZif"), "UTC": []byte("TZif")})
	root := NewRootTree([]string{"/app", "/tmp", "/usr/local/lib/python3.11", "/etc/ssl/certs"},
		map[string]*MemFS{"/usr/share/zoneinfo": zones})
	ls := func(dir string) []string {
		entries, err := fs.ReadDir(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	for dir, want := range map[string]string{
		".":                  "[app dev etc tmp usr]",
		"usr":                "[local share]",
		"usr/share/zoneinfo": "[Europe UTC]",
		"etc/ssl":            "[certs]",
	} {
		if got := ls(dir); fmt.Sprint(got) != want {
			t.Errorf("%s lists %v, want %s", dir, got, want)
		}
	}
	if b, err := fs.ReadFile(root, "usr/share/zoneinfo/Europe/Paris"); err != nil || string(b) != "TZif" {
		t.Errorf("zone file: %q, %v", b, err)
	}

	files := NewOpenFiles(0)
	null, errno := root.ReadOnly(files).OpenFile("dev/null", experimentalsys.O_RDWR, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if n, errno := null.Write([]byte("discarded")); n != 9 || errno != 0 {
		t.Errorf("write to dev/null: %d, %v", n, errno)
	}
	if n, errno := null.Read(make([]byte, 8)); n != 0 || errno != 0 {
		t.Errorf("read from dev/null: %d, %v", n, errno)
	}
	st, errno := null.Stat()
	if errno != 0 || st.Mode&fs.ModeCharDevice == 0 {
		t.Errorf("dev/null's mode %v (%v), want a character device", st.Mode, errno)
	}
	if !files.LeftOpen(0) {
		t.Error("an open dev/null does not count as an open file")
	}
	null.Close()
	if files.LeftOpen(0) {
		t.Error("dev/null still counted once closed")
	}
}
