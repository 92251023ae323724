// Package deploy holds wasmwsgi's Kubernetes manifests (the YAML files in this folder,
// described in docs/deploy.md). The tests that check them against the Kubernetes API
// types and the real server are in e2e/deploy, in a module of their own.
// deploy/baseimage and deploy/copyapps are the two programs `make image` uses to build
// the container images.
package deploy
