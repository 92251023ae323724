package router

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/runtime"
)

// reloadProblem is a version of a served app that failed to load: its fingerprint key
// (so that the same version is not tried again) and why it failed.
type reloadProblem struct {
	key string
	msg string
}

// SetConfig replaces the settings that the next Reload applies: the operator's grants,
// the apps' defaults and ceilings, the app file size cap and the trusted proxies. Admin
// is read once, by New.
func (rt *Router) SetConfig(cfg Config) {
	if cfg.LoadParallelism <= 0 {
		cfg.LoadParallelism = defaultLoadParallelism
	}
	rt.cfgMu.Lock()
	rt.next = cfg
	rt.cfgMu.Unlock()
}

// settings returns the configuration the next Reload applies.
func (rt *Router) settings() Config {
	rt.cfgMu.Lock()
	defer rt.cfgMu.Unlock()
	return rt.next
}

// Reload discovers the apps folder again and brings the served apps in line with it,
// without dropping a request:
//
//   - an app whose files and settings are unchanged keeps its Mount and App;
//   - a changed app is loaded in the background while the old version serves on, and
//     swapped in when it is ready. If it fails to load (its code is broken, or its
//     wasmwsgi.toml asks for more than the operator grants), the old version keeps
//     serving, the failure is logged and shown as reload_error at /_wasmwsgi/ready and
//     on the admin page, and wasmwsgi_reload_failures_total counts it; that same
//     version is not tried again until the folder or the settings change. When the
//     operator's grant for the app changed too, or its mount now belongs to another
//     app, the old version does not serve on: the failed one replaces it;
//   - a new app folder is mounted once its app has loaded (in the failed state when it
//     failed);
//   - a removed folder is unmounted at once.
//
// Requests in flight finish on the app they started on; a replaced or removed app
// releases its snapshot once they have ended. Reload returns when every changed app is
// in place, with an error naming the apps that failed.
func (rt *Router) Reload(ctx context.Context) error {
	rt.reloadMu.Lock()
	defer rt.reloadMu.Unlock()
	if rt.closed.Load() {
		return errClosed
	}
	start := time.Now()
	cfg := rt.settings()
	dirs, err := config.Discover(cfg.Apps)
	if err != nil {
		rt.log.Error("reload failed: the apps keep being served as they were", "error", err.Error())
		return fmt.Errorf("reload: %w", err)
	}
	current := map[string]*Mount{}
	for _, m := range rt.Mounts() {
		current[m.Dir.Name] = m
	}
	found := map[string]bool{}
	var keep, pending []*Mount
	for _, m := range rt.newMounts(cfg, dirs) {
		name := m.Dir.Name
		found[name] = true
		rt.fingerprint(m)
		old := current[name]
		switch {
		case old != nil && old.fp.Key == m.fp.Key:
			// Same files (wasmwsgi.toml, with the prefix and hosts, among them) and
			// settings, and the same error if any: the same mount.
			keep = append(keep, old)
			rt.setProblem(name, nil)
		case old != nil && rt.problem(name).key == m.fp.Key:
			// This very version already failed to load; the old one serves on.
		default:
			pending = append(pending, m)
		}
	}
	var removed []string
	for name := range current {
		if !found[name] {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	rt.update(cfg, func(ms map[string]*Mount) {
		for _, name := range removed {
			delete(ms, name)
		}
		for _, m := range keep {
			ms[m.Dir.Name] = m
		}
	})
	for _, name := range removed {
		rt.setProblem(name, nil)
		rt.log.Info("app removed: its folder is gone; requests in flight finish", "app", name)
	}

	var failed []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.LoadParallelism)
	for _, m := range pending {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if !rt.reloadOne(ctx, cfg, m, current[m.Dir.Name]) {
				mu.Lock()
				failed = append(failed, m.Dir.Name)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(failed)
	rt.log.Info("reload done", "apps", len(found), "loaded", len(pending), "removed", len(removed),
		"failed", len(failed), "elapsed", time.Since(start).Round(time.Millisecond))
	if len(failed) > 0 {
		return fmt.Errorf("reload: %s failed to load (see the log, or reload_error at /_wasmwsgi/ready)",
			strings.Join(failed, ", "))
	}
	return ctx.Err()
}

// reloadOne loads the new version m of an app (old is the version served now, or nil
// for a new folder) and swaps it in. It returns false when the load failed.
func (rt *Router) reloadOne(ctx context.Context, cfg Config, m, old *Mount) bool {
	name := m.Dir.Name
	start := time.Now()
	err := rt.loadMount(ctx, m)
	if ctx.Err() != nil {
		m.App.Close() // shutting down: the half-loaded version is dropped
		return true
	}
	if err == nil {
		rt.update(cfg, func(ms map[string]*Mount) { ms[name] = m })
		rt.setProblem(name, nil)
		if old == nil {
			rt.log.Info("app added", "app", name, "prefix", m.Prefix)
		} else {
			rt.log.Info("app reloaded: the new version serves", "app", name, "prefix", m.Prefix)
		}
		return true
	}
	rt.metrics.reloadFailures.WithLabelValues(name).Inc()
	summary := errorSummary(err.Error())
	// The previous version serves on only while it runs within what the operator
	// grants now: not when the grant changed, nor when its mount went to another app.
	if old != nil && old.Dir.Granted == m.Dir.Granted && !m.shadowed {
		if state, _ := old.App.Status(); state == runtime.StateReady {
			rt.setProblem(name, &reloadProblem{key: m.fp.Key, msg: summary})
			m.App.Close()
			rt.log.Error("reload failed: the previous version of the app keeps serving; fix the app and save again",
				"app", name, "dir", m.Dir.Dir, "elapsed", time.Since(start).Round(time.Millisecond), "error", summary)
			return false
		}
	}
	// Nothing ready to fall back on: mount the new version, failed, so that it answers
	// 503 and /_wasmwsgi/ready shows why.
	rt.update(cfg, func(ms map[string]*Mount) { ms[name] = m })
	rt.setProblem(name, nil)
	rt.log.Error("app failed", "app", name, "dir", m.Dir.Dir, "elapsed", time.Since(start).Round(time.Millisecond),
		"error", summary)
	return false
}

// update publishes a table whose mounts are the current ones changed by change (a map
// by app name).
func (rt *Router) update(cfg Config, change func(map[string]*Mount)) {
	rt.swapMu.Lock()
	defer rt.swapMu.Unlock()
	ms := map[string]*Mount{}
	for _, m := range rt.table.Load().mounts {
		ms[m.Dir.Name] = m
	}
	change(ms)
	mounts := slices.SortedFunc(maps.Values(ms), func(a, b *Mount) int { return cmp.Compare(a.Dir.Name, b.Dir.Name) })
	rt.publish(rt.newTable(cfg, mounts))
}

// publish makes t the current table and retires the one before it: once the requests
// on that table, and on every table before it, have ended, the apps t no longer holds
// are closed, and the metrics and admin figures of the apps it no longer names are
// dropped; then t.after is closed. The caller holds swapMu.
func (rt *Router) publish(t *table) {
	old := rt.table.Load()
	if old == nil {
		after := make(chan struct{})
		close(after)
		t.after = after
		rt.table.Store(t)
		return
	}
	t.after = old.settled
	rt.table.Store(t)
	apps := map[*runtime.App]bool{}
	names := map[string]bool{}
	for _, m := range t.mounts {
		apps[m.App] = true
		names[m.Dir.Name] = true
	}
	var dropped []*Mount
	var removed []string
	for _, m := range old.mounts {
		if !apps[m.App] {
			dropped = append(dropped, m)
		}
		if !names[m.Dir.Name] {
			removed = append(removed, m.Dir.Name)
		}
	}
	old.release() // no longer current
	go func() {
		<-old.after
		<-old.drained
		// The requests of a removed app are counted; drop its series and figures,
		// unless a later reload brought an app of that name back meanwhile.
		for _, name := range removed {
			if rt.Mount(name) == nil {
				rt.metrics.forget(name)
				rt.admin.forget(name)
			}
		}
		for _, m := range dropped {
			if err := m.App.Close(); err != nil {
				rt.log.Warn("releasing the snapshot of a replaced app failed", "app", m.Dir.Name, "error", err.Error())
			}
			rt.log.Debug("previous version of the app released: its requests have ended", "app", m.Dir.Name)
		}
		close(old.settled)
	}()
}

// problem returns the failed reload of the app named name (zero when there is none).
func (rt *Router) problem(name string) reloadProblem {
	rt.problemMu.Lock()
	defer rt.problemMu.Unlock()
	if p, ok := rt.problems[name]; ok {
		return p
	}
	return reloadProblem{}
}

// setProblem records (or, with nil, clears) a failed reload of the app named name.
func (rt *Router) setProblem(name string, p *reloadProblem) {
	rt.problemMu.Lock()
	defer rt.problemMu.Unlock()
	if p == nil {
		delete(rt.problems, name)
		return
	}
	rt.problems[name] = *p
}

// errorSummary shortens a load error to one line: its last line, after the innermost
// `File "...", line N` of a Python traceback when there is one, so that it names the
// file at fault.
func errorSummary(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	for i := len(lines) - 2; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, `File "`) {
			return l + ": " + last
		}
	}
	return last
}
