// Package deploy holds wasmwsgi's Kubernetes manifests (the YAML files in this folder,
// described in docs/deploy.md) and the tests that check them against the Kubernetes
// API types and the real server. deploy/baseimage and deploy/copyapps are the two
// programs `make image` uses to build the container images.
package deploy
