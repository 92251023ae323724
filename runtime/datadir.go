package runtime

import (
	"context"
	"fmt"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

	"github.com/wasmwsgi/wasmwsgi/runtime/guestfs"
)

// GuestData is where an app's data folder (AppSpec.DataDir) is mounted, read-write.
const GuestData = "/data"

// openDataDir opens the app's data folder, when it has one, from the engine's data
// folders: made (mode 0700) if missing and locked against other processes when the app
// loads, never while the apps are discovered. The app holds it until it fails to load
// or is closed (releaseDataDir).
func (a *App) openDataDir() error {
	if a.Spec.DataDir == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.data.Load() != nil {
		return nil
	}
	d, err := a.engine.dataDirs.Open(a.Spec.DataDir)
	if err != nil {
		return fmt.Errorf("app %s: %w", a.Spec.Name, err)
	}
	a.data.Store(d)
	return nil
}

// releaseDataDir gives the app's data folder back: the last app using a folder closes
// it and gives up its flock.
func (a *App) releaseDataDir() {
	if d := a.data.Swap(nil); d != nil {
		d.Release()
	}
}

// dataMount returns the app's data folder for one instance and its guest path, or an
// UnimplementedFS (which wazero does not mount) when the app has none. The instance
// keeps the folder's lock until ctx ends, which must be when the instance ends. files
// counts the host files it holds open against limits.open_files.
func (a *App) dataMount(ctx context.Context, files *guestfs.OpenFiles) (experimentalsys.FS, string) {
	// Not under a.mu: an instance is made while prewarm holds its read lock, and a
	// second RLock would wait behind a Close that is waiting for the first.
	d := a.data.Load()
	if d == nil {
		return experimentalsys.UnimplementedFS{}, ""
	}
	return d.Mount(ctx, files), GuestData
}
