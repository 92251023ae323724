package main

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/wasmwsgi/wasmwsgi/router"
)

// reloadOnChange keeps the served apps in line with the apps folder and the
// configuration until ctx ends. With cfg.Watch, a change below the apps folder reloads
// the apps (router.Watch). On SIGHUP (from hup) the config file and the WASMWSGI_*
// environment are read again by reread (the flags stay as given), the settings that can
// change while serving are applied and the apps reloaded with them; the others are
// reported as needing a restart. The returned function stops both and waits for them.
func reloadOnChange(ctx context.Context, rt *router.Router, cfg Config, reread func() (Config, error),
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
func applyHangup(ctx context.Context, rt *router.Router, running Config, reread func() (Config, error), log *slog.Logger) Config {
	log.Info("SIGHUP: reading the configuration again")
	next, err := reread()
	if err != nil {
		log.Error("SIGHUP: the configuration is unusable, nothing was changed: fix it and send SIGHUP again",
			"error", err.Error())
		return running
	}
	for _, c := range configChanges(running, next) {
		if liveKey(c.key) {
			log.Info("SIGHUP: setting changed", "key", c.key, "from", c.from, "to", c.to)
		} else {
			log.Warn("SIGHUP: setting changed but needs a restart; not applied", "key", c.key,
				"running", c.from, "configured", c.to)
		}
	}
	applied := running
	applied.Validate = next.Validate
	applied.ServerTiming = next.ServerTiming
	applied.TrustedProxies = next.TrustedProxies
	instances := running.Limits.Instances // the engine's, fixed at start
	applied.Limits = next.Limits
	applied.Limits.Instances = instances
	rt.SetConfig(routerConfig(applied))
	_ = rt.Reload(ctx) // Reload logs what failed
	return applied
}

// liveKey reports whether a config key takes effect on SIGHUP: the defaults every app
// is loaded with. The rest (addresses, folders, TLS, logging, the admin page, the
// server-wide instance cap, watch) is read once at start.
func liveKey(key string) bool {
	switch key {
	case "validate", "server_timing", "trusted_proxies":
		return true
	case "limits.instances":
		return false
	}
	return strings.HasPrefix(key, "limits.")
}

// configChange is one key whose value differs between two configurations.
type configChange struct {
	key, from, to string
}

// configChanges lists the keys whose values differ; secrets are shown redacted.
func configChanges(old, next Config) []configChange {
	a, b := configEntries(old, nil), configEntries(next, nil)
	shownA, shownB := slices.Clone(a), slices.Clone(b)
	redactSecrets(shownA)
	redactSecrets(shownB)
	var out []configChange
	for i := range a {
		if tomlValue(a[i].Value) != tomlValue(b[i].Value) {
			out = append(out, configChange{a[i].Key, tomlValue(shownA[i].Value), tomlValue(shownB[i].Value)})
		}
	}
	return out
}
