package main

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/router"
)

// reloadOnChange keeps the served apps in line with the apps folder and the
// configuration until ctx ends. With cfg.Watch, a change below the apps folder reloads
// the apps (router.Watch). On SIGHUP (from hup) the config file and the WASMWSGI_*
// environment are read again by reread (the flags stay as given), the settings that can
// change while serving (config.Live) are applied and the apps reloaded with them; the
// others are reported as needing a restart. The returned function stops both and waits
// for them.
func reloadOnChange(ctx context.Context, rt *router.Router, cfg *config.Config, reread func() (*config.Config, error),
	hup <-chan os.Signal, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if cfg.Watch {
		w, err := rt.Watch(ctx, router.WatchConfig{Ignore: []string{cfg.CacheDir}})
		if err != nil {
			log.Error("app folders are not watched: send SIGHUP to reload the apps", "error", err.Error())
		} else {
			log.Info("watching the apps folder: changed apps are reloaded", "apps_dir", cfg.AppsDir)
			wg.Go(func() { <-w.Done() })
		}
	}
	wg.Go(func() {
		running := cfg
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				running = applyHangup(ctx, rt, running, reread, log)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// applyHangup reads the configuration again, applies what can change while serving,
// reloads the apps and returns the configuration now in force.
func applyHangup(ctx context.Context, rt *router.Router, running *config.Config, reread func() (*config.Config, error),
	log *slog.Logger) *config.Config {
	log.Info("SIGHUP: reading the configuration again")
	next, err := reread()
	if err == nil {
		var applied *config.Config
		if applied, err = running.Reloaded(next); err == nil {
			for _, c := range configChanges(running, next) {
				if config.Live(c.key) {
					log.Info("SIGHUP: setting changed", "key", c.key, "from", c.from, "to", c.to)
				} else {
					log.Warn("SIGHUP: setting changed but needs a restart; not applied", "key", c.key,
						"running", c.from, "configured", c.to)
				}
			}
			running = applied
		}
	}
	if err != nil {
		log.Error("SIGHUP: the configuration is unusable, nothing was changed: fix it and send SIGHUP again",
			"error", err.Error())
		return running
	}
	rt.SetConfig(routerConfig(running))
	_ = rt.Reload(ctx) // Reload logs what failed
	return running
}

// configChange is one key whose value differs between two configurations.
type configChange struct {
	key, from, to string
}

// configChanges lists the keys whose values differ, in the order of the newer
// configuration's keys and then the keys it no longer sets; secrets are shown
// redacted, and a key one of them lacks as "(unset)".
func configChanges(old, next *config.Config) []configChange {
	shown := func(c *config.Config) ([]string, map[string]string, map[string]string) {
		entries := c.Entries()
		values, redacted := map[string]string{}, map[string]string{}
		var keys []string
		for _, e := range entries {
			keys = append(keys, e.Key)
			values[e.Key] = tomlValue(e.Value)
		}
		redactSecrets(entries)
		for _, e := range entries {
			redacted[e.Key] = tomlValue(e.Value)
		}
		return keys, values, redacted
	}
	oldKeys, a, shownA := shown(old)
	newKeys, b, shownB := shown(next)
	var out []configChange
	for _, key := range append(newKeys, oldKeys...) {
		from, inOld := a[key]
		to, inNew := b[key]
		if (inOld && inNew && from == to) || slices.ContainsFunc(out, func(c configChange) bool { return c.key == key }) {
			continue
		}
		from, to = shownA[key], shownB[key]
		if !inOld {
			from = "(unset)"
		}
		if !inNew {
			to = "(unset)"
		}
		out = append(out, configChange{key, from, to})
	}
	return out
}
