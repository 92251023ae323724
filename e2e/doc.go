// Package e2e is the root of a Go module of its own that holds the tests whose
// dependencies the server does not need: the checks of the Kubernetes manifests against
// the Kubernetes API types (deploy) and the admin page driven in a real browser
// (admin). Building wasmwsgi never fetches those dependencies; `make test` runs these
// tests too. They share the main module's test helpers (internal/testkit).
package e2e
