#!/usr/bin/env bash
# The interpreter micro-suite (suite.py) on native Python and three wasm engines, then
# a comparison table:
#
#   native  Debian's /usr/bin/python3 (3.11)
#   wazero  python.wasm inside wasmwsgi: `wasmwsgi call` runs one request to app/,
#           which runs the suite in the sandbox (snapshot restore, loop checks and all)
#   bare    the same python.wasm in a bare wazero runtime (wazerohost/): wazero's
#           compiler without wasmwsgi's loop checks, to tell the two costs apart
#   released  bare, built with wazero as released (GOWORK=off) instead of with
#           third_party/wazero-patches: bare against released is what the patches gain
#   bare@NNNN  bare, built with the patches numbered up to NNNN only (e.g. bare@0001):
#           next to bare and released, what each patch adds
#   bare+guard  bare, its code compiled for guard pages (wazerohost -guard-pages): no
#           bounds checks on loads and stores, a fault out of bounds trapping instead
#   node    the same python.wasm under Node's node:wasi, hosted by node_host.mjs
#
#   benchmarks/micro/run.sh          # or: make micro
#
# Settings (environment):
#   REPEAT=5            timed runs per benchmark (the median is reported)
#   ONLY=json,regex     a subset of the benchmarks (default: all)
#   ENGINES="native wazero bare+guard bare released node"
#   WASMWSGI=bin/wasmwsgi               the server binary (python.wasm embedded)
#   PYTHON_WASM=python-wasm/dist/python.wasm, STDLIB_ZIP=python-wasm/dist/stdlib.zip
#                       what bare and node run; point them at another build to compare
#   OUT=DIR             keep the JSON results there (default: a temporary folder)
#   ENGINE_TIMEOUT=600  seconds one engine may take
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
REPEAT=${REPEAT:-5}
ONLY=${ONLY:-}
ENGINES=${ENGINES:-native wazero bare+guard bare released node}
WASMWSGI=${WASMWSGI:-$root/bin/wasmwsgi}
PYTHON_WASM=${PYTHON_WASM:-$root/python-wasm/dist/python.wasm}
STDLIB_ZIP=${STDLIB_ZIP:-$root/python-wasm/dist/stdlib.zip}
ENGINE_TIMEOUT=${ENGINE_TIMEOUT:-600}
native_python=/usr/bin/python3
site=$root/apps/flask/site-packages

fail() { echo "micro: $*" >&2; exit 1; }

case $REPEAT in ''|*[!0-9]*|0) fail "REPEAT=$REPEAT must be a positive whole number" ;; esac
for e in $ENGINES; do
  case $e in
    native) [ -x "$native_python" ] || fail "$native_python is missing: apt-get install python3" ;;
    wazero) [ -x "$WASMWSGI" ] || fail "$WASMWSGI is missing: run \`make build\` (or set WASMWSGI)" ;;
    bare | bare+guard | released | bare@[0-9][0-9][0-9][0-9])
      command -v go >/dev/null || fail "go is missing: the $e engine is built from wazerohost/"
      [ -f "$PYTHON_WASM" ] || fail "$PYTHON_WASM is missing: run \`make python-wasm\` (or set PYTHON_WASM)"
      ;;
    node)
      command -v node >/dev/null || fail "node is missing: apt-get install nodejs (version 20 or later)"
      major=$(node -p 'process.versions.node.split(".")[0]')
      [ "$major" -ge 20 ] || fail "node $(node --version) is too old: node:wasi needs version 20 or later"
      [ -f "$PYTHON_WASM" ] || fail "$PYTHON_WASM is missing: run \`make python-wasm\` (or set PYTHON_WASM)"
      [ -f "$STDLIB_ZIP" ] || fail "$STDLIB_ZIP is missing: run \`make python-wasm\` (or set STDLIB_ZIP)"
      ;;
    *) fail "unknown engine \"$e\" in ENGINES: use native, wazero, bare, bare+guard, bare@NNNN, released and/or node" ;;
  esac
done
[ -d "$site/jinja2" ] && [ -d "$site/markupsafe" ] ||
  fail "Jinja2 is missing from $site: run \`make vendor-apps\`"

work=$(mktemp -d "${TMPDIR:-/tmp}/micro.XXXXXX")
trap 'rm -rf "$work"' EXIT
out=${OUT:-$work/results}
mkdir -p "$out"

# One app folder for every engine: app.py, suite.py and the pure-Python sources of
# Jinja2 and MarkupSafe (vendor-apps leaves compiled modules out, so native Python
# renders with markupsafe._native too, as python.wasm must).
app=$work/apps/micro
mkdir -p "$app/site-packages"
cp "$here/app/app.py" "$here/suite.py" "$app/"
for pkg in jinja2 markupsafe; do
  (cd "$site" && find "$pkg" -name '*.py' -print0 | xargs -0 cp --parents -t "$app/site-packages")
done

query="repeat=$REPEAT"
[ -z "$ONLY" ] || query="$query&only=$ONLY"
args=(--repeat "$REPEAT")
[ -z "$ONLY" ] || args+=(--only "$ONLY")

run_engine() { # name command...
  local name=$1
  shift
  echo "micro: $name..." >&2
  local t0=$SECONDS
  # $name.cpu: the engine's user and system CPU seconds, which other load on the
  # machine disturbs less than the wall time the suite measures (rounds.sh shows them).
  if ! { TIMEFORMAT='%3U %3S'; time timeout "$ENGINE_TIMEOUT" "$@" >"$out/$name.raw" 2>"$out/$name.err"; } 2>"$out/$name.cpu"; then
    cat "$out/$name.err" >&2
    fail "$name failed (or took more than ${ENGINE_TIMEOUT}s); output in $out/$name.raw"
  fi
  echo "micro: $name done in $((SECONDS - t0))s" >&2
}

# The stdlib as a folder, for the hosts that mount host folders: stdlib.zip extracted,
# plus the shim, which runtime/ lays over the stdlib in the same way.
stdlib_dir() {
  [ -d "$work/stdlib" ] && return
  mkdir -p "$work/stdlib"
  "$native_python" -m zipfile -e "$STDLIB_ZIP" "$work/stdlib"
  cp "$root/python-wasm/shim/_wasmwsgi_shim.py" "$work/stdlib/"
}

reports=()
for e in $ENGINES; do
  case $e in
    native)
      run_engine native env -C "$app" "$native_python" -s -c \
        'import sys; sys.path[:0] = [".", "site-packages"]; import suite; suite.main(sys.argv[1:])' "${args[@]}"
      cp "$out/native.raw" "$out/native.json"
      ;;
    wazero)
      # The suite runs for tens of seconds in one request: the server's limits (the
      # operator's to raise) go well past the defaults.
      run_engine wazero "$WASMWSGI" call micro "/?$query" --apps "$work/apps" --timeout 600s --memory 1GiB
      # `call` prints the response like curl -i: the JSON body follows the blank line.
      sed '1,/^\r\{0,1\}$/d' "$out/wazero.raw" >"$out/wazero.json"
      ;;
    bare | bare+guard | released | bare@*)
      stdlib_dir
      # bare builds through the repo's go.work (make wazero): the patched wazero.
      # released turns the workspace off: wazero v1.12.0 as go.mod requires it.
      # bare@NNNN builds through a workspace of its own, on the patches up to NNNN.
      # A build against a wazero without guard pages (as released, or before patch
      # 0008) leaves them out with -tags wazero_released.
      gowork= guard=() tags=()
      case $e in
        released) gowork=off tags=(-tags wazero_released) ;;
        bare+guard) guard=(-guard-pages) ;;
        bare@*)
          ((10#${e#bare@} >= 8)) || tags=(-tags wazero_released)
          dir=$("$root/third_party/wazero-patches/apply.sh" --dir --upto "${e#bare@}")
          gowork=$work/go.work.${e#bare@}
          printf 'go %s\n\nuse %s\n\nreplace github.com/tetratelabs/wazero => %s\n' \
            "$(sed -n 's/^go //p' "$root/go.mod")" "$root" "$dir" >"$gowork"
          ;;
      esac
      (cd "$root" && GOWORK=$gowork go build "${tags[@]}" -o "$work/wazerohost-$e" ./benchmarks/micro/wazerohost)
      run_engine "$e" "$work/wazerohost-$e" "${guard[@]}" -wasm "$PYTHON_WASM" -stdlib "$work/stdlib" -app "$app" -query "$query" \
        -cache-dir "${XDG_CACHE_HOME:-$HOME/.cache}/wasmwsgi/micro-wazero"
      cp "$out/$e.raw" "$out/$e.json"
      ;;
    node)
      stdlib_dir
      run_engine node node --no-warnings "$here/node_host.mjs" --wasm "$PYTHON_WASM" --stdlib "$work/stdlib" \
        --app "$app" --query "$query"
      cp "$out/node.raw" "$out/node.json"
      ;;
  esac
  reports+=("$e=$out/$e.json")
done

echo
echo "$(date -u +%Y-%m-%d) $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
"$native_python" "$here/report.py" "${reports[@]}"
