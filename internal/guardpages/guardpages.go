//go:build !wazero_released

// Package guardpages turns on wazero's guard pages (third_party/wazero-patches/0008) in
// the builds that have them: every build of this repo except one against wazero as
// released, which takes -tags wazero_released and gets guardpages_released.go instead.
package guardpages

import (
	"context"

	"github.com/tetratelabs/wazero/experimental"
)

// Supported reports whether With takes effect: the build has guard pages and the
// platform too (linux/amd64).
func Supported() bool { return experimental.GuardPagesSupported() }

// With returns ctx made to have wazero.NewRuntimeWithConfig create an engine that
// compiles for guard pages, where Supported; elsewhere the engine keeps its bounds
// checks.
func With(ctx context.Context) context.Context { return experimental.WithGuardPages(ctx) }
