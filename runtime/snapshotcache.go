package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/wasmwsgi/wasmwsgi/internal/atomicfile"
	"github.com/wasmwsgi/wasmwsgi/runtime/internal/memimage"
)

// Snapshots are cached on disk under a hash of all they depend on (snapshotKey), except
// for apps with a data_dir (docs/design.md, "Snapshots on disk").

// snapshotFormat changes whenever the meaning of a cached snapshot does, such as the
// guest's mounts (their file descriptors are in its memory): v2 added GuestCerts, v3
// the root tree at GuestRoot.
const snapshotFormat = "wasmwsgi snapshot v3\n"

// snapshotCachePath returns where the app's snapshot is cached, or "" when it is not.
func (a *App) snapshotCachePath() string {
	if a.engine.snapshotDir == "" || a.Spec.DataDir != "" {
		return ""
	}
	return filepath.Join(a.engine.snapshotDir, a.Spec.Name+"-"+a.snapshotKey()+".mem")
}

// snapshotKey hashes everything the app's snapshot depends on (see above); it names
// the cached snapshot and is part of Engine.Fingerprint.
func (a *App) snapshotKey() string {
	a.hashKeys()
	return a.key
}

// hashKeys computes, once, the snapshot key and the share key (snapshotshare.go): both
// end with the digest of every app file, which is written once for the two.
func (a *App) hashKeys() {
	if a.key != "" {
		return
	}
	snap, copies := sha256.New(), sha256.New()
	for _, h := range []io.Writer{snap, copies} {
		io.WriteString(h, snapshotFormat)
		h.Write(a.engine.moduleHash[:])
	}
	// The CA file's name: the guest reads its certificates at GuestCerts.
	fmt.Fprintf(snap, "%q\n%q\n%d\n%q\n%t\n%t\n%q\n", a.Spec.Name, a.Spec.Env, a.Spec.Limits.Memory, a.Spec.Warmup, a.autoWarmup(),
		a.Spec.ShareSnapshot, a.Spec.CAFile)
	// The same without the name, and without ShareSnapshot: only an app that shares
	// asks for this key.
	fmt.Fprintf(copies, "%q\n%d\n%q\n%t\n%q\n", a.Spec.Env, a.Spec.Limits.Memory, a.Spec.Warmup, a.autoWarmup(), a.Spec.CAFile)
	snap.Write(a.info)
	copies.Write(a.info)
	a.files.WriteDigest(io.MultiWriter(snap, copies))
	a.key = hex.EncodeToString(snap.Sum(nil)[:16])
	a.copiesKey = hex.EncodeToString(copies.Sum(nil))
}

// loadCachedSnapshot restores the app's snapshot from the cache; false when there is
// none (or it is unusable, in which case the app is imported as usual). The cached file
// itself is the image that instances map (docs/design.md, "Snapshots on disk").
func (a *App) loadCachedSnapshot(path string) bool {
	snap, err := memimage.Open(path)
	if err != nil {
		if !os.IsNotExist(err) {
			a.log.Warn("cached snapshot unusable; importing the app", "file", path, "error", err.Error())
		}
		return false
	}
	if b, err := os.ReadFile(hotPagesPath(path)); err == nil {
		if err := snap.SetHotPages(b); err != nil {
			a.log.Debug("the cached snapshot's hot page set is unusable; it is learned again", "error", err.Error())
		}
	}
	a.mu.Lock()
	a.snap = snap
	a.mu.Unlock()
	return true
}

// hotPagesPath is where the hot page set of the snapshot cached at path is kept.
func hotPagesPath(path string) string { return strings.TrimSuffix(path, ".mem") + ".hot" }

// keepHotPages writes snap's hot page set (memimage.Image.Prefetch) next to the cached
// snapshot, so that after a restart the first request to the app finds its pages read
// ahead too. It runs when memimage.Restored.Learn says so: after the first request
// learned and after the last.
func (a *App) keepHotPages(snap *memimage.Image) {
	if a.cachePath == "" {
		return
	}
	path := hotPagesPath(a.cachePath)
	go func() {
		// One write at a time, each of the set as it is then: the last one written
		// holds the most learned.
		a.hotMu.Lock()
		defer a.hotMu.Unlock()
		b := snap.HotPages()
		if b == nil {
			return
		}
		if err := atomicfile.Write(path, func(f *os.File) error { _, err := f.Write(b); return err }); err != nil {
			a.log.Warn("cannot keep the snapshot's hot page set; the next start learns it again", "error", err.Error())
		}
	}()
}

// cacheSnapshot writes mem to path and removes the app's older cached snapshots. It
// reports whether the snapshot is now in the cache.
func (a *App) cacheSnapshot(path string, mem []byte) bool {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		a.log.Warn("cannot cache the snapshot", "error", err.Error())
		return false
	}
	layered := false
	if sh, ok := a.sharing(); ok {
		held, err := a.writeShared(path, sh.id, mem)
		if err == nil {
			layered = true
			a.log.Debug("snapshot cached, layered on a base image of the app's copies", "id", sh.id,
				"own_pages", held, "pages", len(mem)/os.Getpagesize())
		} else {
			// Its secret is still the shared one; only its pages are its own.
			a.log.Warn("the snapshot shares no page with the app's copies; it is cached whole", "error", err.Error())
		}
	}
	if !layered {
		if err := atomicfile.Write(path, func(f *os.File) error { return memimage.Write(f, mem) }); err != nil {
			a.log.Warn("cannot cache the snapshot", "error", err.Error())
			return false
		}
	}
	a.dropOlderSnapshots(path)
	return true
}

// dropOlderSnapshots removes the app's cached snapshots (and their hot page sets and
// takeable marks) but the one at path, and then the base images no snapshot names any
// more.
func (a *App) dropOlderSnapshots(path string) {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(path), a.Spec.Name+"-*.mem"))
	hot, _ := filepath.Glob(filepath.Join(filepath.Dir(path), a.Spec.Name+"-*.hot"))
	marks, _ := filepath.Glob(filepath.Join(filepath.Dir(path), a.Spec.Name+"-*.takeable"))
	removed := false
	for _, p := range append(append(old, hot...), marks...) {
		// Only this app's: "NAME-<key>.mem", never app NAME-x's "NAME-x-<key>.mem".
		key := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), a.Spec.Name+"-"), filepath.Ext(p))
		if _, err := hex.DecodeString(key); err == nil && len(key) == len(a.snapshotKey()) && p != path {
			os.Remove(p)
			removed = true
		}
	}
	if removed {
		// The snapshot removed may have been the last on its base image.
		a.engine.sweepBases(filepath.Dir(path))
	}
}
