package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Snapshots are kept on disk, so that a restart does not import every app again. A
// cached snapshot is named by a hash of everything its memory depends on: the
// instrumented python.wasm, the stdlib and the shim (Engine.moduleHash), the app's
// settings and the content of every app file. Any change gives a new name, so a stale
// snapshot is never used; older snapshots of the same app are removed when a new one is
// written. Apps with a data_dir are not cached: their import may read or write /data,
// and that has to happen again on every load.

// snapshotFormat changes whenever the meaning of a cached snapshot does.
const snapshotFormat = "wasmwsgi snapshot v1\n"

// snapshotCachePath returns where the app's snapshot is cached, or "" when it is not.
func (a *App) snapshotCachePath() string {
	if a.engine.snapshotDir == "" || a.Spec.DataDir != "" {
		return ""
	}
	h := sha256.New()
	io.WriteString(h, snapshotFormat)
	h.Write(a.engine.moduleHash[:])
	fmt.Fprintf(h, "%q\n%q\n%d\n", a.Spec.Name, a.Spec.Env, a.Spec.Limits.Memory)
	h.Write(a.info)
	names := make([]string, 0, len(a.files.nodes))
	for name := range a.files.nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		n := a.files.nodes[name]
		fmt.Fprintf(h, "%q %v %d\n", name, n.mode, len(n.data))
		h.Write(n.data)
	}
	return filepath.Join(a.engine.snapshotDir, a.Spec.Name+"-"+hex.EncodeToString(h.Sum(nil)[:16])+".mem")
}

// loadCachedSnapshot restores the app's snapshot from the cache; false when there is
// none (or it is unreadable, in which case the app is imported as usual).
func (a *App) loadCachedSnapshot(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 || len(data)%wasmPage != 0 {
		return false
	}
	snap, err := newSnapshot(a.Spec.Name, data)
	if err != nil {
		a.log.Warn("cached snapshot unusable; importing the app", "file", path, "error", err.Error())
		return false
	}
	a.mu.Lock()
	a.snap = snap
	a.mu.Unlock()
	return true
}

// cacheSnapshot writes mem to path and removes the app's older cached snapshots.
func (a *App) cacheSnapshot(path string, mem []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		a.log.Warn("cannot cache the snapshot", "error", err.Error())
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+a.Spec.Name+"-*")
	if err == nil {
		_, err = tmp.Write(mem)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		a.log.Warn("cannot cache the snapshot", "error", err.Error())
		return
	}
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(path), a.Spec.Name+"-*.mem"))
	for _, p := range old {
		if p != path {
			os.Remove(p)
		}
	}
}
