#!/usr/bin/env bash
# Checks the image tarballs of `make image` with go-containerregistry's crane, which
# shares no code with the Go test deploy/image_test.go: validate each tarball, push it
# to a throwaway in-memory registry on loopback, print its manifest and config, and
# run the binaries taken out of the exported filesystem.
#
#   deploy/verify-image.sh [bin/wasmwsgi-image.tar] [bin/wasmwsgi-apps-image.tar]
set -euo pipefail

server_tar=${1:-bin/wasmwsgi-image.tar}
apps_tar=${2:-bin/wasmwsgi-apps-image.tar}
GO=${GO:-go}
CRANE_VERSION=${CRANE_VERSION:-v0.21.7}

work=$(mktemp -d)
registry_pid=
cleanup() {
	if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; wait "$registry_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

GOBIN=$work/bin "$GO" install "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
crane=$work/bin/crane

port=$(( 20000 + RANDOM % 20000 ))
timeout 300 "$crane" registry serve --address "127.0.0.1:$port" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 50); do
	curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
	sleep 0.1
done

check() { # check TARBALL NAME BINARY ARGS...
	local tarball=$1 name=$2 binary=$3
	shift 3
	echo "== $tarball"
	"$crane" validate --tarball "$tarball"
	ls -l "$tarball"
	local ref="127.0.0.1:$port/$name"
	"$crane" push --insecure "$tarball" "$ref"
	echo "-- manifest"
	"$crane" manifest --insecure "$ref"
	echo
	echo "-- config"
	"$crane" config --insecure "$ref"
	echo
	local size
	size=$("$crane" manifest --insecure "$ref" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(sum(l["size"] for l in m["layers"]))')
	echo "-- compressed layers: $size bytes"
	local fsdir=$work/fs-$name
	mkdir -p "$fsdir"
	"$crane" export --insecure "$ref" - | tar -x -C "$fsdir"
	echo "-- uncompressed filesystem: $(du -sb "$fsdir" | cut -f1) bytes"
	echo "-- $binary $*"
	"$fsdir$binary" "$@"
}

check "$server_tar" wasmwsgi /ko-app/wasmwsgi version
if [ -f "$apps_tar" ]; then
	check "$apps_tar" wasmwsgi-apps /ko-app/copyapps -mkdir .data "$work/fs-wasmwsgi-apps/apps" "$(mkdir -p "$work/copy" && echo "$work/copy")"
	ls "$work/copy"
fi
echo "OK"
