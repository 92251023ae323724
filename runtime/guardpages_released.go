//go:build wazero_released

package runtime

import "context"

// withGuardPages changes nothing: wazero as released has no guard pages, so its code
// keeps its bounds checks. Build with -tags wazero_released only against it.
func withGuardPages(ctx context.Context) context.Context { return ctx }

// guardPagesSupported reports false: see withGuardPages.
func guardPagesSupported() bool { return false }
