//go:build wazero_released

package main

import (
	"context"
	"errors"
)

// withGuardPages fails: wazero as released has no guard pages.
func withGuardPages(context.Context) (context.Context, error) {
	return nil, errors.New("this runner is built with -tags wazero_released, without guard pages")
}
