#!/usr/bin/env bash
# Builds python-wasm/dist/zoneinfo.zip, the IANA time zone database the guest sees
# read-only at /usr/share/zoneinfo, from Debian's tzdata package at the version pinned
# below (checked against its sha256), so that every build of the binary carries the
# same zone rules whatever the host has installed.
#
#   bash python-wasm/zoneinfo.sh     # run by `make build`
#
# The .deb is kept in $WASMWSGI_CACHE/debs (default ${XDG_CACHE_HOME:-~/.cache}/wasmwsgi),
# with apps/vendor.sh's. It is not part of the python.wasm recipe: changing the pin
# rebuilds only this zip.
#
# Debian serves one tzdata version per suite and replaces it when the rules change, so
# a pin stops being served some day. A machine that has the .deb in its cache keeps
# building; elsewhere the download fails, and the fix is to pin the version
# `apt-cache policy tzdata` offers and the sha256 of its .deb.
#
# Left out: right/ (the same zones counting leap seconds), posix/ (Debian's links to
# the same zones) and localtime (a link to the host's /etc/localtime). Links inside the
# tree (GB -> Europe/London) are stored as copies of their target.
set -euo pipefail

TZDATA_VERSION=2026f-0+deb12u1
TZDATA_SHA256=3254eb870c8a949518214805aee5e4276af7699988ea8b9a3a583cd0f1eab31c

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${WASMWSGI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmwsgi}/debs
deb=$cache/tzdata_${TZDATA_VERSION}_all.deb
out=$here/dist/zoneinfo.zip
stamp="tzdata $TZDATA_VERSION $TZDATA_SHA256"

if [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

check() { echo "$TZDATA_SHA256  $deb" | sha256sum -c --quiet - >/dev/null 2>&1; }
if ! check; then
  mkdir -p "$cache"
  echo "zoneinfo: downloading tzdata=$TZDATA_VERSION" >&2
  # apt-get download writes into the current directory; as root it warns that the _apt
  # user cannot write there, which changes nothing.
  (cd "$cache" && apt-get download -q "tzdata=$TZDATA_VERSION" 2>&1 | grep -v "unsandboxed as root" >&2) || true
  if ! check; then
    echo "zoneinfo: no tzdata $TZDATA_VERSION .deb with sha256 $TZDATA_SHA256 in $cache." >&2
    echo "Debian may no longer serve that version: set TZDATA_VERSION and TZDATA_SHA256 in" >&2
    echo "python-wasm/zoneinfo.sh to the version \`apt-cache policy tzdata\` offers and its .deb's sha256." >&2
    exit 1
  fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
mkdir -p "$here/dist"
python3 - "$tmp/usr/share/zoneinfo" "$out.tmp" <<'EOF'
import os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
names = []
for folder, dirs, files in os.walk(root):
    rel = os.path.relpath(folder, root)
    if rel == ".":
        dirs[:] = [d for d in dirs if d not in ("right", "posix")]
    names += [os.path.normpath(os.path.join(rel, f)) for f in files]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in sorted(names):
        if name == "localtime":
            continue
        real = os.path.realpath(os.path.join(root, name))
        if not real.startswith(os.path.realpath(root) + os.sep):
            sys.exit(f"zoneinfo: {name} leads out of the tree")
        info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))  # fixed times: the same zip every build
        info.external_attr = 0o444 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(real, "rb") as f:
            z.writestr(info, f.read())
EOF
mv "$out.tmp" "$out"
echo "$stamp" >"$out.stamp"
echo "zoneinfo: $out <- tzdata $TZDATA_VERSION ($(du -h "$out" | cut -f1))"
