// Command copyapps copies a folder tree into another folder: the initContainer of the
// Kubernetes Deployment (deploy/deployment.yaml) runs it to copy the apps baked into
// the apps image (/apps) into the volume the server reads them from. The apps image
// has no shell and no cp, so this static binary is the image's entrypoint.
//
//	copyapps [-mkdir REL]... SRC DST
//
// Folders, regular files (their permission bits, made readable by the owner) and
// symlinks (as they are: wasmwsgi follows the ones that stay inside an app) are
// copied; anything else is an error. DST must exist. A file already in DST is
// replaced, so a restarted initContainer that copied half the tree just copies again;
// files are written into DST/.copyapps-tmp first (app discovery skips dot folders)
// and renamed into place, so no app ever holds a half-written file.
// Each -mkdir names a folder, relative to DST, created empty if missing: a mount point
// for a volume the main container puts inside DST.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	var mkdirs []string
	flag.Func("mkdir", "folder relative to DST to create empty (repeatable)", func(s string) error {
		if !filepath.IsLocal(s) {
			return fmt.Errorf("%q is not a relative path inside DST", s)
		}
		mkdirs = append(mkdirs, s)
		return nil
	})
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: copyapps [-mkdir REL]... SRC DST")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	st, err := copyTree(flag.Arg(0), flag.Arg(1), mkdirs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "copyapps:", err)
		os.Exit(1)
	}
	fmt.Printf("copyapps: %s -> %s: %d folders, %d files (%d bytes), %d symlinks\n",
		flag.Arg(0), flag.Arg(1), st.dirs, st.files, st.bytes, st.links)
}

type stats struct{ dirs, files, links, bytes int64 }

// stagingDir, inside DST, holds files while they are written.
const stagingDir = ".copyapps-tmp"

func copyTree(src, dst string, mkdirs []string) (stats, error) {
	var st stats
	if fi, err := os.Stat(dst); err != nil {
		return st, err
	} else if !fi.IsDir() {
		return st, fmt.Errorf("%s is not a folder", dst)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return st, err
	}
	if !fi.IsDir() {
		return st, fmt.Errorf("%s is not a folder", src)
	}
	staging := filepath.Join(dst, stagingDir)
	if err := os.RemoveAll(staging); err != nil {
		return st, err
	}
	if err := os.Mkdir(staging, 0o700); err != nil {
		return st, err
	}
	defer os.RemoveAll(staging)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if rel == stagingDir {
			return fmt.Errorf("%s: the source may not hold %s", p, stagingDir)
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			st.dirs++
			return ensureDir(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			st.links++
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := removeExisting(target); err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			st.files++
			n, err := copyFile(p, target, staging, info.Mode().Perm()|0o400)
			st.bytes += n
			return err
		default:
			return fmt.Errorf("%s is neither a file, a folder nor a symlink", p)
		}
	})
	if err != nil {
		return st, err
	}
	for _, rel := range mkdirs {
		if err := os.MkdirAll(filepath.Join(dst, rel), 0o755); err != nil {
			return st, err
		}
	}
	return st, nil
}

// ensureDir makes target a folder with mode perm, replacing a file or symlink there.
func ensureDir(target string, perm fs.FileMode) error {
	fi, err := os.Lstat(target)
	if err == nil && !fi.IsDir() {
		if err := os.Remove(target); err != nil {
			return err
		}
	}
	if err := os.Mkdir(target, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Chmod(target, perm)
}

// removeExisting removes what is at target unless it is a folder (which a file or
// symlink of the source never replaces silently).
func removeExisting(target string) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a folder in the destination but not in the source", target)
	}
	return os.Remove(target)
}

// copyFile writes src to a temporary file in staging and renames it over dst.
func copyFile(src, dst, staging string, perm fs.FileMode) (int64, error) {
	if err := removeExisting(dst); err != nil {
		return 0, err
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(staging, "file-*")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, in)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), perm)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return n, err
}
