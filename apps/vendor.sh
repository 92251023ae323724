#!/usr/bin/env bash
# Fills apps/<app>/site-packages/ for the framework examples with pure-Python packages
# taken from Debian (apt-get download + dpkg-deb -x; nothing is installed on the host).
#
#   bash apps/vendor.sh          # or: make vendor-apps
#   bash apps/vendor.sh --force  # rebuild every site-packages/ even when up to date
#
# The .debs are kept in $WASMWSGI_CACHE/debs (default ${XDG_CACHE_HOME:-~/.cache}/wasmwsgi),
# so a second machine-local run downloads nothing. Each site-packages/ carries a stamp
# keyed by its package list and by this script; while the stamp matches, the app is
# skipped, so a second run takes well under a second.
#
# Compiled extension modules (*.so) are left out: they are built for the host, not for
# wasm32-wasi. Every package below works without them (MarkupSafe falls back to
# markupsafe._native, zope.interface to its pure-Python implementation, Falcon ships the
# .py source of each Cython module). The packages are byte-compiled with the host's
# python3 when it is 3.11, the guest's version (compile_bytecode below).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
force=0
[ "${1:-}" = "--force" ] && force=1

# The Debian packages each app needs: the package itself and its Depends as listed by
# `apt-cache depends`, minus those a WSGI app running in the sandbox never imports
# (python3-colorama: click uses it on Windows only; python3-paste and
# python3-pastedeploy-tpl: PasteDeploy does not import them; python3-importlib-metadata:
# an alternative that python3 >= 3.10 satisfies). Falcon's Depends (cbor2, jsonschema,
# mimeparse, msgpack, rapidjson, six) are optional media handlers and validators, or
# vendored inside falcon itself; the example uses none of them. Django's Depends are
# asgiref, sqlparse and tz; asgiref's python3-typing-extensions is an alternative that
# python3 >= 3.8 satisfies, and tz's tzdata is the guest's own /usr/share/zoneinfo
# (python-wasm/zoneinfo.sh), which Debian's pytz reads as it does on Debian.
# PyMySQL is the Django
# example's MariaDB/MySQL driver when the operator grants it a DATABASE_URL (its settings
# call pymysql.install_as_MySQLdb(), so Django's mysql backend runs on it; mysqlclient,
# the driver Django names, is a C extension). PyMySQL's Recommends, python3-cryptography,
# is compiled and stays out: it serves only the sha256_password and caching_sha2_password
# logins, and MariaDB's mysql_native_password needs nothing but hashlib.
declare -A APPS=(
  [flask]="python3-flask python3-werkzeug python3-jinja2 python3-markupsafe python3-itsdangerous python3-click python3-blinker"
  [bottle]="python3-bottle"
  [falcon]="python3-falcon"
  [pyramid]="python3-pyramid python3-webob python3-zope.interface python3-zope.deprecation python3-translationstring python3-venusian python3-hupper python3-plaster python3-plaster-pastedeploy python3-pastedeploy python3-pkg-resources"
  [django]="python3-django python3-asgiref python3-sqlparse python3-tz python3-pymysql"
)
ORDER=(flask bottle falcon pyramid django)

cache=${WASMWSGI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmwsgi}/debs
script_sum=$(sha256sum "$0" | cut -c1-16)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# stamp_for APP: what the stamp of a finished site-packages/ holds.
stamp_for() {
  printf 'script %s\npackages %s\n' "$script_sum" "${APPS[$1]}"
}

# collect_django_static gathers the Django example's static files into its STATIC_ROOT,
# apps/django/staticfiles, which its [static] table has the server answer: `manage.py
# collectstatic` with the host's python3 and the vendored Django (the app folder is
# read-only inside the sandbox, so `wasmwsgi run` cannot write there). Its
# ManifestStaticFilesStorage adds a copy of each file under a content-hashed name.
# Each text file then gets a gzip sibling (name.gz), which the server sends to
# clients that accept gzip. Skipped while the static sources, the settings and this
# script are unchanged.
collect_django_static() {
  local app=$here/django out=$here/django/staticfiles stamp
  [ -d "$app/site-packages/django" ] || return 0
  stamp=$(cd "$app" && {
    echo "$script_sum"
    find . \( -path ./site-packages -o -path ./staticfiles \) -prune -o -path '*/static/*' -type f -print0 |
      sort -z | xargs -0 -r sha256sum
    sha256sum mysite/settings.py
  } | sha256sum | cut -c1-16)
  if [ -f "$out/.collected" ] && [ "$(cat "$out/.collected")" = "$stamp" ]; then
    return 0
  fi
  (cd "$app" && PYTHONDONTWRITEBYTECODE=1 python3 manage.py collectstatic --noinput --clear -v 0)
  find "$out" -type f ! -name staticfiles.json \( -name '*.css' -o -name '*.js' -o -name '*.map' -o -name '*.svg' \
    -o -name '*.txt' -o -name '*.json' -o -name '*.html' \) -exec gzip -9 -n -k -f {} +
  echo "$stamp" >"$out/.collected"
  echo "vendor-apps: django/staticfiles <- manage.py collectstatic ($(find "$out" -type f ! -name .collected | wc -l) files)"
}

# Which apps are out of date?
todo=()
for app in "${ORDER[@]}"; do
  sp=$here/$app/site-packages
  if [ $force -eq 0 ] && [ -f "$sp/.vendored" ] && [ "$(cat "$sp/.vendored")" = "$(stamp_for "$app")" ]; then
    continue
  fi
  todo+=("$app")
done
if [ ${#todo[@]} -eq 0 ]; then
  echo "vendor-apps: site-packages up to date (${ORDER[*]})"
  collect_django_static
  exit 0
fi

# ---- download the .debs that are not in the cache yet --------------------------------
mkdir -p "$cache"
wanted=()
for app in "${todo[@]}"; do
  for p in ${APPS[$app]}; do wanted+=("$p"); done
done
mapfile -t wanted < <(printf '%s\n' "${wanted[@]}" | sort -u)

deb_of() { # the cached .deb of package $1 (the newest, if several), or nothing
  ls -1 "$cache/$1"_*.deb 2>/dev/null | sort -V | tail -n 1
}

missing=()
for p in "${wanted[@]}"; do
  [ -n "$(deb_of "$p")" ] || missing+=("$p")
done

apt_update() {
  echo "vendor-apps: apt-get update" >&2
  $SUDO apt-get update -qq
}

if [ ${#missing[@]} -gt 0 ]; then
  # Update the package lists only when apt does not know a package yet (fresh machine).
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
      apt_update
      break
    fi
  done
  echo "vendor-apps: downloading ${missing[*]}" >&2
  # apt-get download writes into the current directory. As root it warns that the _apt
  # user cannot write there; the download works all the same, so that line is dropped.
  dl() { (cd "$cache" && apt-get download -q "${missing[@]}" 2>&1 | grep -v "unsandboxed as root" >&2; exit "${PIPESTATUS[0]}"); }
  # Lists older than the mirror point at removed versions (404): update once and retry.
  dl || { apt_update; dl; }
fi

# ---- extract and copy ---------------------------------------------------------------
extract() { # the extracted tree of package $1, made once per .deb
  local deb dir
  deb=$(deb_of "$1")
  [ -n "$deb" ] || { echo "vendor-apps: no .deb for $1" >&2; exit 1; }
  dir=$cache/x/$(basename "$deb" .deb)
  if [ ! -f "$dir/.done" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir"
    touch "$dir/.done"
  fi
  echo "$dir"
}

# compile_bytecode SITE_PACKAGES: byte-compiles the packages with the host's python3 when
# it is the guest's CPython 3.11, so that a new app imports them without compiling every
# module inside the sandbox (about half of a Flask app's first load). Checked-hash .pyc
# files stay valid when the folder is copied (no timestamps) and are ignored by the
# guest, which then compiles the source itself, if they do not match it. Modules that
# do not compile (a Python 2 leftover in a package) keep only their source.
compile_bytecode() {
  if [ "$(python3 -c 'import sys; print(sys.implementation.cache_tag)' 2>/dev/null)" != cpython-311 ]; then
    echo "vendor-apps: no python3.11 on the host; $1 is not byte-compiled (first loads are slower)" >&2
    return 0
  fi
  python3 -m compileall -q -j 0 --invalidation-mode checked-hash "$1" >/dev/null ||
    echo "vendor-apps: some modules of $1 did not compile; they are compiled in the sandbox instead" >&2
}

for app in "${todo[@]}"; do
  sp=$here/$app/site-packages
  tmp=$here/$app/.site-packages.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  for p in ${APPS[$app]}; do
    src=$(extract "$p")/usr/lib/python3/dist-packages
    [ -d "$src" ] || { echo "vendor-apps: $p has no usr/lib/python3/dist-packages" >&2; exit 1; }
    # Host-built extensions, Cython sources and .pth files (never read: site-packages/
    # is put on sys.path directly, not through site.addsitedir) stay out.
    # gettext sources (*.po: 11 MB in Django) are never read; the compiled *.mo are.
    tar -C "$src" --exclude='*.so' --exclude='*.pyx' --exclude='*.pxd' --exclude='*.pth' \
      --exclude='__pycache__' --exclude='*.po' -cf - . | tar -C "$tmp" -xf -
  done
  # Debian replaces some bundled files with symlinks to its own copies (werkzeug's
  # debugger jquery.js -> /usr/share/javascript/...). The server never follows a link out
  # of the app folder, so such links are dropped here rather than warned about at load.
  while IFS= read -r -d '' link; do
    case $(realpath -m "$link") in
      "$tmp"/*) ;;
      *) rm -f "$link" ;;
    esac
  done < <(find "$tmp" -type l -print0)
  compile_bytecode "$tmp"
  stamp_for "$app" >"$tmp/.vendored"
  rm -rf "$sp"
  mv "$tmp" "$sp"
  echo "vendor-apps: $app/site-packages <- ${APPS[$app]} ($(du -sh "$sp" | cut -f1))"
done
collect_django_static
