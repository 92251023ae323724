package runtime

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/wasmwsgi/wasmwsgi/internal/atomicfile"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
)

// One import for identical copies (docs/design.md, "One import for identical copies").
//
// Copies of one app whose snapshots are shared (snapshotshare.go) start their imports
// from the same hash secret and the same entropy for the shim (importEntropy). When
// the app's own code then reads no entropy and opens no connection, the import and its
// warm-up are a function of what the copies have in common, save the times they read:
// any copy importing for itself would make the same memory. So, within one process, the
// first copy to load imports and the others wait for it; when its import was of that
// kind, they take its cached snapshot file as their own (a hard link) instead of
// importing. Otherwise they import for themselves, as a copy with a changed file or
// setting always does (its share key differs). A snapshot that copies may take is
// marked so in the cache (takeablePath), and a copy restored from the cache offers it
// to the copies that load after it (one added to a running server, or one new since
// the last start that begins to load once a copy of it was restored).

// importOnce is what the loads of one share key agree on: the copy that imports (the
// leader) closes done once its load ended, having set path when the others may take
// its snapshot.
type importOnce struct {
	done chan struct{}
	// path is the leader's cached snapshot file and hot its hot page set
	// (memimage.Image.HotPages); path is "" when its import was its own.
	path string
	hot  []byte
	// from is the leader's name, for the log.
	from string
	// offered is set for a snapshot restored from the cache and offered to the copies
	// (offer): it is taken only while its takeable mark holds the share key.
	offered bool
}

// usable reports whether the loads of key may take o's snapshot now that its leader is
// done: there is one, it is still in the cache, and an offered one is marked takeable.
func (o *importOnce) usable(key string) bool {
	if o.path == "" {
		return false
	}
	if _, err := os.Stat(o.path); err != nil {
		return false
	}
	if o.offered {
		b, err := os.ReadFile(takeablePath(o.path))
		return err == nil && string(b) == key
	}
	return true
}

// importsOnce holds the process's importOnce by share key.
type importsOnce struct {
	mu sync.Mutex
	m  map[string]*importOnce
}

// join returns the importOnce of key, and whether the caller leads it: it then
// imports, sets path if the others may take its snapshot, and closes done. An entry
// whose snapshot is not usable (none to take, gone since, or offered without a mark)
// gets a new leader.
func (s *importsOnce) join(key string) (*importOnce, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.m[key]; o != nil {
		select {
		case <-o.done:
			if o.usable(key) {
				return o, false
			}
		default:
			return o, false
		}
	}
	o := &importOnce{done: make(chan struct{})}
	s.put(key, o)
	return o, true
}

// offer makes path, a snapshot restored from the cache, the one the loads of key take
// if its mark says they may, unless a copy leads an import of key or offered one
// already. Nothing is read until a load asks (usable).
func (s *importsOnce) offer(key, path string, hot []byte, from string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[key] != nil {
		return
	}
	o := &importOnce{done: make(chan struct{}), path: path, hot: hot, from: from, offered: true}
	close(o.done)
	s.put(key, o)
}

func (s *importsOnce) put(key string, o *importOnce) {
	if s.m == nil {
		s.m = map[string]*importOnce{}
	}
	s.m[key] = o
}

// takeablePath is where the mark that copies may take the snapshot cached at path is
// kept: a file holding the share key.
func takeablePath(path string) string { return strings.TrimSuffix(path, ".mem") + ".takeable" }

// markTakeable marks the app's cached snapshot as one its copies may take.
func (a *App) markTakeable() {
	sh, ok := a.sharing()
	if !ok {
		return
	}
	err := atomicfile.Write(takeablePath(a.cachePath), func(f *os.File) error {
		_, err := io.WriteString(f, sh.key)
		return err
	})
	if err != nil {
		a.log.Debug("cannot mark the snapshot as one the app's copies may take", "error", err.Error())
	}
}

// offerSnapshot offers the app's snapshot, just restored from the cache, to the copies
// that load after it; they take it if the cache marks it as one they may (usable).
func (a *App) offerSnapshot() {
	sh, ok := a.sharing()
	if !ok {
		return
	}
	var hot []byte
	if snap := a.snapshot(); snap != nil {
		hot = snap.HotPages()
	}
	a.engine.importsOnce.offer(sh.key, a.cachePath, hot, a.Spec.Name)
}

// ownImport reports why the import that ex ran is the app's own, so that copies of the
// app must not take its snapshot; "" when they may.
func ownImport(ex *exchange) string {
	switch {
	case ex.entropy == nil:
		return "its snapshot is not shared"
	case ex.entropy.drew:
		return "the app read entropy while it was imported or warmed up"
	case ex.outbound.Conns > 0 || ex.outbound.Lookups > 0 || ex.outbound.Denied > 0:
		// What it got, or was refused, depends on the copy's own grants.
		return "the app used the network while it was imported"
	}
	return ""
}

// takeSnapshot makes the snapshot of the copy that led o the app's own: its cached
// file gets a second name, the app's, and its hot page set comes along. It reports
// whether it did; the app then is not imported.
func (a *App) takeSnapshot(o *importOnce) bool {
	if err := os.MkdirAll(filepath.Dir(a.cachePath), 0o700); err != nil {
		return false
	}
	if err := atomicfile.Link(o.path, a.cachePath); err != nil {
		a.log.Debug("cannot take the snapshot of the app's copy; importing the app", "error", err.Error())
		return false
	}
	snap, err := memimage.Open(a.cachePath)
	if err != nil {
		os.Remove(a.cachePath)
		a.log.Debug("cannot open the snapshot of the app's copy; importing the app", "error", err.Error())
		return false
	}
	a.dropOlderSnapshots(a.cachePath)
	if o.hot != nil && snap.SetHotPages(o.hot) == nil {
		a.keepHotPages(snap)
	}
	a.mu.Lock()
	a.snap = snap
	a.mu.Unlock()
	return true
}
