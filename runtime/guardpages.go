//go:build !wazero_released

package runtime

import (
	"context"

	"github.com/tetratelabs/wazero/experimental"
)

// withGuardPages has a runtime made with the context compile for guard pages
// (third_party/wazero-patches/0008), where the platform has them.
func withGuardPages(ctx context.Context) context.Context { return experimental.WithGuardPages(ctx) }

// guardPagesSupported reports whether withGuardPages takes effect.
func guardPagesSupported() bool { return experimental.GuardPagesSupported() }
