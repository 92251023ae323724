//go:build !wazero_released

package main

import (
	"context"
	"errors"

	"github.com/tetratelabs/wazero/experimental"
)

// withGuardPages has the runtime compile for guard pages (wazero-patches 0008).
func withGuardPages(ctx context.Context) (context.Context, error) {
	if !experimental.GuardPagesSupported() {
		return nil, errors.New("guard pages are not supported on this platform")
	}
	return experimental.WithGuardPages(ctx), nil
}
