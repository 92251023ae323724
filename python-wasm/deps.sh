#!/usr/bin/env bash
# Installs what the python.wasm recipe needs from Debian: the wasm32 toolchain and the
# build dependencies of the native "build python". Idempotent; does nothing when all is present.
set -euo pipefail

# tcl: SQLite's source tree generates its amalgamation (sqlite3.c) with tclsh.
pkgs=(clang-19 lld-19 llvm-19 libclang-rt-19-dev-wasm32 wasi-libc dpkg-dev patch curl ca-certificates
      build-essential pkg-config libffi-dev zlib1g-dev libssl-dev xz-utils tcl)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "python-wasm: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `apt-get source` needs deb-src entries: add a twin of the existing binary sources.
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ]; then
    sed 's/^Types: deb$/Types: deb-src/' "$src" | $SUDO tee /etc/apt/sources.list.d/wasmwsgi-src.sources >/dev/null
  else
    sed -n 's/^deb /deb-src /p' /etc/apt/sources.list | $SUDO tee /etc/apt/sources.list.d/wasmwsgi-src.list >/dev/null
  fi
  $SUDO apt-get update -qq
fi
