package runtime

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/wasmwsgi/wasmwsgi/internal/atomicfile"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
)

// Shared snapshot pages (docs/design.md, "Shared snapshot pages").
//
// Copies of one app, byte for byte (files, settings, environment), import into
// memories that differ only where the import read entropy or the clock, or wrote the
// app's name: a few pages in a thousand, once they share the interpreter's hash
// secret, against a third of them with a secret each. So an app with ShareSnapshot
// imports with a hash secret derived from its shareKey (its snapshot key without its
// name) and the server's key, and its cached snapshot is a layered image
// (memimage.WriteLayered) on a base image that every copy names: the first copy's
// whole snapshot, "_base-<id>-<content hash>.mem". All other entropy the import reads is fresh, so
// what an app draws at import (a secret key, say) is still its own.

// hashSecretSize is the size of CPython's _Py_HashSecret_t on wasm32: the first
// entropy the interpreter reads as it starts.
const hashSecretSize = 24

// serverKeyFile holds the server's key, in the snapshot folder: whoever can read it
// can compute the hash secret of any shared snapshot, as whoever can read the
// snapshots can.
const serverKeyFile = "share.key"

// sharedPrefix begins the file name of a base image. No app's snapshot can begin so:
// app folders whose name begins with "_" are not apps.
const sharedPrefix = "_base-"

// shareKey hashes what the app's snapshot depends on except the app's name: equal for
// byte-identical copies of one app. It is computed with the snapshot key (hashKeys).
func (a *App) shareKey() string {
	a.hashKeys()
	return a.copiesKey
}

// share is how an app's snapshot is shared with its copies (sharing).
type share struct {
	// key is the app's shareKey; id names its base images.
	key, id string
	// secret is the interpreter's hash secret, and seed seeds the entropy the shim
	// reads before the app's own code runs (importEntropy): both the same for every
	// copy.
	secret, seed []byte
}

// sharing returns how the app's snapshot is shared with its copies; ok is false when
// it is not (ShareSnapshot off, no cache on disk, or the server's key is unusable).
func (a *App) sharing() (sh share, ok bool) {
	if !a.Spec.ShareSnapshot || a.cachePath == "" {
		return share{}, false
	}
	for _, kv := range a.Spec.Env {
		if strings.HasPrefix(kv, "PYTHONHASHSEED=") {
			// The interpreter then draws no hash secret, and the first entropy it reads
			// is the app's own (a secret key drawn at import, say): never derive that.
			return share{}, false
		}
	}
	key, err := a.engine.serverKey()
	if err != nil {
		a.log.Warn("the snapshot shares no page with copies of the app", "error", err.Error())
		return share{}, false
	}
	sh.key = a.shareKey()
	derive := func(what string, n int) []byte {
		mac := hmac.New(sha256.New, key)
		io.WriteString(mac, what+"\n"+sh.key)
		return mac.Sum(nil)[:n]
	}
	sh.id = hex.EncodeToString(derive("wasmwsgi base image", 16))
	sh.secret = derive("wasmwsgi hash secret", hashSecretSize)
	sh.seed = derive("wasmwsgi shim entropy", 32)
	return sh, true
}

// serverKey returns the server's key for shared snapshots, made at the first use of
// the cache folder.
func (e *Engine) serverKey() ([]byte, error) {
	e.keyOnce.Do(func() {
		path := filepath.Join(e.snapshotDir, serverKeyFile)
		key := make([]byte, 32)
		rand.Read(key)
		if err := os.MkdirAll(e.snapshotDir, 0o700); err != nil {
			e.keyErr = err
			return
		}
		err := atomicfile.Create(path, func(f *os.File) error {
			if err := f.Chmod(0o600); err != nil {
				return err
			}
			if _, err := f.Write(key); err != nil {
				return err
			}
			return f.Sync()
		})
		if err != nil && !errors.Is(err, fs.ErrExist) {
			e.keyErr = fmt.Errorf("making the server's key %s: %w", path, err)
			return
		}
		b, err := os.ReadFile(path)
		if err == nil && len(b) != 32 {
			err = fmt.Errorf("it holds %d bytes, not 32 (remove it: a new one is made)", len(b))
		}
		if err != nil {
			e.keyErr = fmt.Errorf("the server's key %s: %w", path, err)
			return
		}
		e.key = b
	})
	return e.key, e.keyErr
}

// importEntropy is the entropy of an import whose snapshot is shared with the app's
// copies. Its first read, the interpreter's hash secret, is the copies' secret; the
// other reads the shim makes before the app's own code runs (begin_app_code), such as
// the seed of `random`, come from a stream seeded by the copies' seed. Every read after
// that is fresh entropy, and marks the import as the app's own: the copies then each
// import for themselves (docs/design.md, "One import for identical copies"). Should
// the interpreter ever read anything else first, that read comes from the stream too,
// and the copies just share fewer pages.
type importEntropy struct {
	secret  []byte
	shim    *mrand.ChaCha8
	used    bool // the secret was read
	appCode bool // the app's own code runs
	drew    bool // and read entropy
}

func newImportEntropy(sh share) *importEntropy {
	return &importEntropy{secret: sh.secret, shim: mrand.NewChaCha8([32]byte(sh.seed))}
}

func (r *importEntropy) Read(p []byte) (int, error) {
	switch {
	case !r.used:
		r.used = true
		if len(p) == len(r.secret) {
			return copy(p, r.secret), nil
		}
		return r.shim.Read(p)
	case !r.appCode:
		return r.shim.Read(p)
	}
	r.drew = true
	return rand.Read(p)
}

// maxRuns is how many runs of pages of its own a layered snapshot may hold before a
// copy of the app gets a base image of its own instead: an instance copies the
// snapshot's own pages in when it is made, and a restore copies every one of them
// back after each request, since they are the memory's private pages. maxBases
// bounds the base images of one share key.
const (
	maxRuns  = 16
	maxBases = 4
)

// writeShared writes the app's snapshot mem to path as a layered image on one of the
// base images of id: the one it differs from in the fewest runs of pages. When every
// base differs in more than maxRuns runs and there are fewer than maxBases, mem
// becomes a new base. (Copies of one app imported with one hash secret still differ
// where the import drew entropy, read the clock or wrote the app's name; the name's
// hash places dict entries, so a few classes of names lay out some dicts apart.) It
// returns how many pages the layered file holds.
//
// A base is named by its content's hash as well as id, and never written again once
// it exists: a layered file that names one reads exactly the bytes it was compared
// with, even if a base of the same copies was removed and made again since.
func (a *App) writeShared(path, id string, mem []byte) (int, error) {
	dir := filepath.Dir(path)
	a.engine.shareMu.Lock()
	defer a.engine.shareMu.Unlock()
	names, _ := filepath.Glob(filepath.Join(dir, sharedPrefix+id+"-*.mem"))
	sort.Strings(names)
	var baseName string
	var base []byte
	best := -1
	for _, p := range names[:min(len(names), maxBases)] {
		b, err := memimage.ReadImage(p)
		if err != nil {
			continue // removed meanwhile, or unreadable: compared with the others only
		}
		if runs := memimage.Runs(mem, b); best < 0 || runs < best {
			best, baseName, base = runs, filepath.Base(p), b
		}
	}
	if best < 0 || best > maxRuns && len(names) < maxBases {
		sum := sha256.Sum256(mem)
		baseName = fmt.Sprintf("%s%s-%s.mem", sharedPrefix, id, hex.EncodeToString(sum[:16]))
		err := atomicfile.Create(filepath.Join(dir, baseName), func(f *os.File) error { return memimage.Write(f, mem) })
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("writing the base image %s: %w", baseName, err)
		}
		base = mem
	}
	var held int
	err := atomicfile.Write(path, func(f *os.File) error {
		var err error
		held, err = memimage.WriteLayered(f, mem, base, baseName)
		return err
	})
	return held, err
}

// baseGrace is how young a base image may be and still be kept though no snapshot
// names it: one being written names it a moment later.
const baseGrace = 10 * time.Minute

// sweepBases removes the base images in dir that no cached snapshot is layered on.
func (e *Engine) sweepBases(dir string) {
	e.shareMu.Lock()
	defer e.shareMu.Unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	used := map[string]bool{}
	var bases []fs.DirEntry
	for _, ent := range entries {
		name := ent.Name()
		switch {
		case !strings.HasSuffix(name, ".mem") || strings.HasPrefix(name, "."):
		case strings.HasPrefix(name, sharedPrefix):
			bases = append(bases, ent)
		default:
			b, err := memimage.BaseOf(filepath.Join(dir, name))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return // a snapshot whose base cannot be told: remove nothing
			}
			if b != "" {
				used[b] = true
			}
		}
	}
	for _, ent := range bases {
		info, err := ent.Info()
		if used[ent.Name()] || err != nil || time.Since(info.ModTime()) < baseGrace {
			continue
		}
		os.Remove(filepath.Join(dir, ent.Name()))
	}
}
