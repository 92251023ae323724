package guestfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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
	// files are in name order (see sortFiles) once the index is complete.
	files []indexedFile
}

type indexedFile struct {
	name string
	fileRecord
}

type fileRecord struct {
	Identity fileIdentity
	Digest   [32]byte
}

// racyWindow is how much older than its index a file's change time must be for the
// index to vouch for it: a write within the same timestamp tick as the read would
// otherwise leave every recorded time as it was.
const racyWindow = 2 * time.Second

// Len returns how many files x records; none for a nil index.
func (x *FileIndex) Len() int {
	if x == nil {
		return 0
	}
	return len(x.files)
}

// find returns the record of the file at name.
func (x *FileIndex) find(name string) (fileRecord, bool) {
	i, found := slices.BinarySearchFunc(x.files, name, func(f indexedFile, name string) int { return strings.Compare(f.name, name) })
	if !found {
		return fileRecord{}, false
	}
	return x.files[i].fileRecord, true
}

// lookup returns the digest recorded for the file at name if the index vouches that
// the file, as the walk found it, still holds that content.
func (x *FileIndex) lookup(name string, e *walkEntry) ([32]byte, bool) {
	if x == nil || !e.idKnown {
		return [32]byte{}, false
	}
	r, ok := x.find(name)
	if !ok || e.id != r.Identity || e.id.Ctime >= x.Taken-racyWindow.Nanoseconds() {
		return [32]byte{}, false
	}
	return r.Digest, true
}

// record notes what the file at name, as the walk found it, held. The walk records
// in its own order; sortFiles puts them in name order once it is done.
func (x *FileIndex) record(name string, e *walkEntry, digest [32]byte) {
	if e.idKnown {
		x.files = append(x.files, indexedFile{name, fileRecord{Identity: e.id, Digest: digest}})
	}
}

// sortFiles puts x's files in name order. The walk's order differs from it only where
// a name sorts below "/" ("a.py" after the files of folder "a/").
func (x *FileIndex) sortFiles() {
	slices.SortFunc(x.files, func(a, b indexedFile) int { return strings.Compare(a.name, b.name) })
}

// indexMagic starts an index file. The index is a compact binary record, not gob or
// JSON: a restart of a thousand tenants reads a thousand of them, and decoding gob took
// a fifth of the walk's CPU time. An index of another format reads as none.
const indexMagic = "wasmwsgi file index 2\n"

// ReadFileIndex reads an index written by WriteFileIndex; nil when there is none or it
// cannot be read, which only means every file is read again.
func ReadFileIndex(path string) *FileIndex {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	x, ok := decodeFileIndex(b)
	if !ok {
		return nil
	}
	return x
}

// decodeFileIndex decodes what encodeFileIndex wrote; ok is false for anything else,
// files out of name order included. The names are parts of one string made from b.
func decodeFileIndex(b []byte) (_ *FileIndex, ok bool) {
	rest, found := bytes.CutPrefix(b, []byte(indexMagic))
	if !found || len(rest) < 8 {
		return nil, false
	}
	all := string(b)
	x := &FileIndex{Taken: int64(binary.LittleEndian.Uint64(rest))}
	rest = rest[8:]
	ok = true
	uvarint := func() uint64 {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			ok = false
			return 0
		}
		rest = rest[n:]
		return v
	}
	count := uvarint()
	if !ok || count > uint64(len(rest)) { // every record takes more than a byte
		return nil, false
	}
	x.files = make([]indexedFile, 0, count)
	for range count {
		size := uvarint()
		if !ok || size > uint64(len(rest)) {
			return nil, false
		}
		at := len(b) - len(rest)
		f := indexedFile{name: all[at : at+int(size)]}
		rest = rest[size:]
		if n := len(x.files); n > 0 && x.files[n-1].name >= f.name {
			return nil, false
		}
		id := &f.Identity
		id.Dev, id.Ino = uvarint(), uvarint()
		id.Size, id.Mtime, id.Ctime = int64(uvarint()), int64(uvarint()), int64(uvarint())
		if !ok || len(rest) < len(f.Digest) {
			return nil, false
		}
		rest = rest[copy(f.Digest[:], rest):]
		x.files = append(x.files, f)
	}
	return x, len(rest) == 0
}

// encodeFileIndex writes x, its files in name order, as decodeFileIndex reads it.
func encodeFileIndex(x *FileIndex) []byte {
	b := append([]byte(indexMagic), make([]byte, 8)...)
	binary.LittleEndian.PutUint64(b[len(indexMagic):], uint64(x.Taken))
	b = binary.AppendUvarint(b, uint64(len(x.files)))
	for _, f := range x.files {
		b = binary.AppendUvarint(b, uint64(len(f.name)))
		b = append(b, f.name...)
		for _, v := range []uint64{f.Identity.Dev, f.Identity.Ino, uint64(f.Identity.Size),
			uint64(f.Identity.Mtime), uint64(f.Identity.Ctime)} {
			b = binary.AppendUvarint(b, v)
		}
		b = append(b, f.Digest[:]...)
	}
	return b
}

// WriteFileIndex writes x to path, replacing what was there at once.
func WriteFileIndex(path string, x *FileIndex) error {
	b := encodeFileIndex(x)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, func(f *os.File) error { _, err := f.Write(b); return err })
}
