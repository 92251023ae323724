package guestfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/gob"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/wasmwsgi/wasmwsgi/internal/atomicfile"
)

// Content read from app folders is held once per process, whatever the number of trees
// that hold it (tenants on the same Flask release), and found by its SHA-256: a file
// whose identity on disk shows it unchanged since its digest was taken (a FileIndex) is
// not read again when another tree holds its content already.

// A blob is one file content held in memory. Trees point at it; once none does, the
// garbage collector frees it and the store forgets it.
type blob struct {
	data   []byte // never written
	digest [32]byte
}

var store = struct {
	sync.Mutex
	blobs map[[32]byte]weak.Pointer[blob]
}{blobs: map[[32]byte]weak.Pointer[blob]{}}

// storedBlob returns the blob of the content with digest, if a tree holds it.
func storedBlob(digest [32]byte) *blob {
	store.Lock()
	defer store.Unlock()
	return store.blobs[digest].Value()
}

// shareContent returns the process's one blob of data's content, making it from data
// when no tree holds that content.
func shareContent(data []byte) *blob {
	digest := sha256.Sum256(data)
	store.Lock()
	defer store.Unlock()
	if b := store.blobs[digest].Value(); b != nil {
		return b
	}
	b := &blob{data: data, digest: digest}
	store.blobs[digest] = weak.Make(b)
	runtime.AddCleanup(b, forget, digest)
	return b
}

// forget drops a freed blob's entry, unless the content was stored again since.
func forget(digest [32]byte) {
	store.Lock()
	defer store.Unlock()
	if store.blobs[digest].Value() == nil {
		delete(store.blobs, digest)
	}
}

// A FileIndex records, for each file of a folder read into a tree, its identity on disk
// when it was read and the digest of what it held. MemFSFromDir takes the index of the
// folder's previous read and trusts an entry only when the file's device, inode, size,
// modification and change times are all as recorded and the change time is older than
// the index by more than the file system's timestamp granularity could hide. A
// process cannot set a file's change time: any write, rename over or re-creation of
// the file moves it.
type FileIndex struct {
	// Taken is when the folder was read, in Unix nanoseconds.
	Taken int64
	Files map[string]fileRecord
}

type fileRecord struct {
	Identity fileIdentity
	Digest   [32]byte
}

// racyWindow is how much older than its index a file's change time must be for the
// index to vouch for it: a write within the same timestamp tick as the read would
// otherwise leave every recorded time as it was.
const racyWindow = 2 * time.Second

// lookup returns the digest recorded for the file at name if the index vouches that
// the file, as info describes it, still holds that content.
func (x *FileIndex) lookup(name string, info fs.FileInfo) ([32]byte, bool) {
	if x == nil {
		return [32]byte{}, false
	}
	r, ok := x.Files[name]
	id, known := identityOf(info)
	if !ok || !known || id != r.Identity || id.Ctime >= x.Taken-racyWindow.Nanoseconds() {
		return [32]byte{}, false
	}
	return r.Digest, true
}

// record notes what the file at name, as info describes it, held.
func (x *FileIndex) record(name string, info fs.FileInfo, digest [32]byte) {
	if id, ok := identityOf(info); ok {
		x.Files[name] = fileRecord{Identity: id, Digest: digest}
	}
}

// ReadFileIndex reads an index written by WriteFileIndex; nil when there is none or it
// cannot be read, which only means every file is read again. The index is gob: at a
// restart of a thousand tenants each reads its own, and decoding them as JSON (each
// digest an array of 32 numbers) took a seventh of the restart's CPU time.
func ReadFileIndex(path string) *FileIndex {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var x FileIndex
	if gob.NewDecoder(bytes.NewReader(b)).Decode(&x) != nil || x.Files == nil {
		return nil
	}
	return &x
}

// WriteFileIndex writes x to path, replacing what was there at once.
func WriteFileIndex(path string, x *FileIndex) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(x); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, func(f *os.File) error { _, err := f.Write(b.Bytes()); return err })
}
