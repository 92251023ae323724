package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Fingerprint tells apart two versions of an app folder and its settings.
type Fingerprint struct {
	// Key is equal for two specs that load to the same app: it hashes the snapshot
	// cache key (python.wasm, the stdlib, the shim, the settings the import depends on
	// and every app file) together with the whole AppSpec (limits and all).
	Key string
	// Cached is set when a snapshot for exactly this app is in the on-disk cache, so
	// that Load will restore it rather than import the app.
	Cached bool
}

// Fingerprint reads the files of the app's folder and returns its Fingerprint. It
// fails where Load would fail reading them (a missing folder, files over
// MaxFileBytes, no entrypoint). The files stay with the app: Load then uses them
// instead of reading the folder a second time, so the app loaded is the one
// fingerprinted.
func (a *App) Fingerprint() (Fingerprint, error) {
	if err := a.readFiles(); err != nil {
		return Fingerprint{}, err
	}
	h := sha256.New()
	io.WriteString(h, a.snapshotKey())
	fmt.Fprintf(h, "\n%#v\n", a.Spec)
	fp := Fingerprint{Key: hex.EncodeToString(h.Sum(nil)[:16])}
	if p := a.snapshotCachePath(); p != "" {
		if st, err := os.Stat(p); err == nil && st.Size() > 0 {
			fp.Cached = true
		}
	}
	return fp, nil
}
