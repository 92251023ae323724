#!/usr/bin/env bash
# Fetches one pinned upstream tarball from Debian's source archive, or checks that it can be.
#
#   fetch-source.sh PKG VERSION ORIG SHA256 DIR   # download ORIG into DIR, verified
#   fetch-source.sh --check PKG VERSION ORIG SHA256
#                                                 # ask the archive for it (HEAD), no download
#
# The pinned Debian VERSION is asked for first (`apt-get source --print-uris PKG=VERSION`).
# When the archive no longer serves it (a newer security revision replaced it, or its
# files answer 404), every other version `apt-cache showsrc PKG` knows is tried whose
# ORIG tarball has the pinned SHA256: Debian revisions of one upstream release share the
# same pristine tarball. Only the tarball is fetched; the Debian patches are not used.
# It fails with the list of versions tried and how to re-pin. --check also fails when only
# such another version serves the tarball, so that the move is noticed before a build
# depends on the fallback.
set -euo pipefail

check=
if [ "${1:-}" = "--check" ]; then
  check=1
  shift
fi
if [ $# -ne $((check ? 4 : 5)) ]; then
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
pkg=$1 version=$2 orig=$3 sha=$4 dir=${5:-}

# uri_of VERSION: the URI of ORIG at VERSION when the archive index lists it with the
# pinned hash; nothing otherwise. Lines look like: 'URI' FILE SIZE SHA256:HEX
uri_of() {
  apt-get source --print-uris -qq "$pkg=$1" 2>/dev/null |
    awk -v f="$orig" -v h="SHA256:$sha" '$2 == f && $4 == h { gsub("\047", "", $1); print $1; exit }'
}

# fetch URI: download (or HEAD-check) one URI; 0 on success.
fetch() {
  if [ -n "$check" ]; then
    curl -fsSIL --retry 2 --max-time 30 -o /dev/null "$1"
    return
  fi
  mkdir -p "$dir"
  rm -f "$dir/$orig.part"
  curl -fsSL --retry 2 --max-time 600 -o "$dir/$orig.part" "$1" || return 1
  if ! echo "$sha  $dir/$orig.part" | sha256sum -c --quiet - >/dev/null 2>&1; then
    echo "python-wasm: $1 does not match sha256 $sha" >&2
    rm -f "$dir/$orig.part"
    return 1
  fi
  mv "$dir/$orig.part" "$dir/$orig"
}

candidates=("$version")
while read -r v; do
  [ "$v" = "$version" ] || candidates+=("$v")
done < <(apt-cache showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | sort -u)

tried=()
for v in "${candidates[@]}"; do
  uri=$(uri_of "$v" || true)
  if [ -z "$uri" ]; then
    tried+=("$pkg=$v: not in the archive index, or its $orig has another hash")
    continue
  fi
  if fetch "$uri"; then
    if [ "$v" = "$version" ]; then
      [ -n "$check" ] && echo "python-wasm: $pkg=$v $orig is downloadable ($uri)"
      exit 0
    fi
    echo "python-wasm: $pkg=$version is not served; $pkg=$v serves the same $orig" >&2
    # A check fails here so that the move is noticed the day it happens; a build goes on.
    if [ -n "$check" ]; then
      echo "  re-pin it in python-wasm/versions.env: the version line for $pkg becomes \"$v\"" >&2
      exit 1
    fi
    exit 0
  fi
  tried+=("$pkg=$v: $uri could not be fetched")
done

{
  echo "python-wasm: no Debian version of $pkg serves $orig with sha256 $sha."
  echo "  Versions tried:"
  printf '    %s\n' "${tried[@]}"
  echo "  If none is listed, add deb-src entries (python-wasm/deps.sh does) and run apt-get update."
  echo "  To re-pin: pick a version from \`apt-cache showsrc $pkg\`, read its tarball and hash with"
  echo "  \`apt-get source --print-uris $pkg=VERSION\`, and set the version, tarball and sha256 in"
  echo "  python-wasm/versions.env (a new tarball means a new upstream release: rebuild and retest)."
} >&2
exit 1
