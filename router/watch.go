package router

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchConfig configures Watch.
type WatchConfig struct {
	// Debounce is how long the folders must stay quiet after a change before the apps
	// are reloaded, so that an editor's save or a copied tree gives one reload
	// (default 300ms).
	Debounce time.Duration
	// Ignore are folders whose changes never cause a reload, such as the cache folder.
	// The apps' data folders, __pycache__ and folders starting with "." are always
	// ignored, and so are editors' temporary files.
	Ignore []string
}

// Watcher reloads the router's apps when their files change.
type Watcher struct {
	rt       *Router
	fsw      *fsnotify.Watcher
	root     string
	debounce time.Duration
	ignore   []string
	warned   bool // the watch limit was reported
	cancel   context.CancelFunc
	done     chan struct{}
}

// Watch watches the apps folder and every folder below it (fsnotify watches one folder
// at a time: new subfolders are added as they appear) and calls Reload once changes
// have stayed quiet for cfg.Debounce. Watch returns when the watches are in place; they
// are removed when ctx ends, on Stop or on the router's Close, and Done is closed once
// the watcher and any reload it started have stopped.
func (rt *Router) Watch(ctx context.Context, cfg WatchConfig) (*Watcher, error) {
	if cfg.Debounce <= 0 {
		cfg.Debounce = 300 * time.Millisecond
	}
	root, err := filepath.Abs(rt.cfg.Apps.Dir)
	if err != nil {
		return nil, err
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching %s for changes: %w (turn watching off with watch = false)", root, err)
	}
	w := &Watcher{rt: rt, fsw: fsw, root: root, debounce: cfg.Debounce, done: make(chan struct{})}
	for _, d := range cfg.Ignore {
		if d == "" {
			continue
		}
		if abs, err := filepath.Abs(d); err == nil {
			w.ignore = append(w.ignore, abs)
		}
	}
	if err := fsw.Add(root); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watching %s for changes: %w (turn watching off with watch = false)", root, err)
	}
	w.addTree(root)
	ctx, w.cancel = context.WithCancel(ctx)
	rt.watchMu.Lock()
	defer rt.watchMu.Unlock()
	if rt.closed.Load() {
		w.cancel()
		fsw.Close()
		return nil, errClosed
	}
	rt.watchers = append(rt.watchers, w)
	go w.run(ctx)
	return w, nil
}

// Done is closed once the watcher has stopped.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Stop removes the watches and waits until the watcher and any reload it started have
// stopped (the reload is told to stop through its context).
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer w.fsw.Close()
	// One reload at a time; changes during a reload queue one more (kick holds one).
	kick := make(chan struct{}, 1)
	reloads := make(chan struct{})
	go func() {
		defer close(reloads)
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
				_ = w.rt.Reload(ctx) // Reload logs what went wrong
			}
		}
	}()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			<-reloads
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				<-reloads
				return
			}
			if !w.relevant(ev) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				w.addTree(ev.Name) // a new folder (or a file: then nothing happens)
			}
			w.rt.log.Debug("app files changed", "file", ev.Name, "op", ev.Op.String())
			quiet.Reset(w.debounce)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				<-reloads
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Changes were lost: watch any folder that was missed, and reload.
				w.rt.log.Warn("too many file changes at once: rescanning the apps folder", "apps_dir", w.root)
				w.addTree(w.root)
				quiet.Reset(w.debounce)
				continue
			}
			w.rt.log.Warn("watching the apps folder", "error", err.Error())
		case <-quiet.C:
			select {
			case kick <- struct{}{}:
			default: // a reload is already queued
			}
		}
	}
}

// addTree watches dir and every folder below it that is not ignored.
func (w *Watcher) addTree(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // gone already, or a file
		}
		if path != w.root && w.skipped(path) {
			return filepath.SkipDir
		}
		if path == w.root {
			return nil // watched by Watch itself
		}
		if err := w.fsw.Add(path); err != nil {
			if errors.Is(err, syscall.ENOSPC) && !w.warned {
				w.warned = true
				w.rt.log.Warn("cannot watch every app folder: the inotify watch limit is reached; "+
					"raise it (sysctl fs.inotify.max_user_watches=524288) or turn watching off with watch = false",
					"folder", path)
			}
			return filepath.SkipDir
		}
		return nil
	})
}

// skipped reports whether a path below the apps folder is outside every app's files,
// or a file whose changes mean nothing to the app.
func (w *Watcher) skipped(path string) bool {
	rel, err := filepath.Rel(w.root, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return rel != "."
	}
	parts := strings.Split(rel, string(filepath.Separator))
	// Discover ignores top-level folders starting with "." or "_"; guestfs.MemFSFromDir skips
	// __pycache__ and folders starting with "." inside an app.
	if first := parts[0]; strings.HasPrefix(first, ".") || strings.HasPrefix(first, "_") {
		return true
	}
	for _, p := range parts[:len(parts)-1] {
		if p == "__pycache__" || strings.HasPrefix(p, ".") {
			return true
		}
	}
	if base := parts[len(parts)-1]; base == "__pycache__" || editorTemp(base) {
		return true
	}
	for _, d := range w.ignore {
		if within(path, d) {
			return true
		}
	}
	if dirs := w.rt.dataDirs.Load(); dirs != nil {
		for _, d := range *dirs {
			if within(path, d) {
				return true
			}
		}
	}
	return false
}

// relevant reports whether an event may change what an app loads.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false // app files are read-only to the guest whatever their mode
	}
	return !w.skipped(ev.Name)
}

// editorTemp reports whether name is an editor's temporary or backup file: vim's swap
// files and its "4913" probe, emacs' lock and autosave files, backups ending in "~",
// and JetBrains' safe-write copies.
func editorTemp(name string) bool {
	switch {
	case name == "4913",
		strings.HasSuffix(name, "~"),
		strings.HasPrefix(name, ".#"),
		strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"),
		strings.HasSuffix(name, "___jb_tmp___"), strings.HasSuffix(name, "___jb_old___"):
		return true
	}
	for _, ext := range []string{".swp", ".swo", ".swx", ".swpx", ".tmp"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	r, err := filepath.Rel(dir, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}
