//go:build wazero_released

package guardpages

import "context"

// Supported reports false: wazero as released has no guard pages.
func Supported() bool { return false }

// With returns ctx as it is: the engine keeps its bounds checks.
func With(ctx context.Context) context.Context { return ctx }
