package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wasmwsgi/wasmwsgi/config"
	"github.com/wasmwsgi/wasmwsgi/router"
)

// startAdmin opens admin_addr, when set, and serves the admin page, its API and
// /_wasmwsgi/metrics there. It returns nil when admin_addr is empty (the main listener
// then serves them). Should the server stop on its own later, the error goes to failed
// if nothing is waiting there yet.
func startAdmin(cfg *config.Config, rt *router.Router, log *slog.Logger, failed chan<- error) (*http.Server, error) {
	if cfg.AdminAddr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set --admin-addr or admin_addr in the config)", cfg.AdminAddr, err)
	}
	srv := &http.Server{
		Handler:           rt.AdminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			select {
			case failed <- fmt.Errorf("admin listener on %s: %w", cfg.AdminAddr, err):
			default:
			}
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String(), "admin_page", cfg.Admin.Enabled)
	return srv, nil
}

// stopAdmin drains the admin server started by startAdmin (nil is fine).
func stopAdmin(ctx context.Context, srv *http.Server, log *slog.Logger) {
	if srv == nil {
		return
	}
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("admin listener shutdown", "error", err.Error())
	}
}
