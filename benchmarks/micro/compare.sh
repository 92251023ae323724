#!/usr/bin/env bash
# Compares python.wasm builds on one engine with the micro-suite, in rounds: each round
# runs native Python and then every build (in a rotating order, so that load on the
# machine does not favour one), and the table holds the median over the rounds.
#
#   benchmarks/micro/compare.sh before=DIR after=DIR [name=DIR ...]
#
# Each DIR holds python.wasm and its stdlib.zip (a python-wasm-<hash> folder of the
# build cache will do) and, for ENGINE=wazero, a wasmwsgi binary built with that
# python.wasm embedded.
#
# Settings (environment): ENGINE=wazero|bare|node (default bare), ROUNDS=3, and
# REPEAT, ONLY as for run.sh. RESULTS=DIR keeps the JSON files (default: temporary).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ENGINE=${ENGINE:-bare}
ROUNDS=${ROUNDS:-3}

fail() { echo "compare: $*" >&2; exit 1; }
[ $# -ge 1 ] || fail "usage: compare.sh name=DIR [name=DIR ...] (see the top of the script)"
case $ENGINE in wazero|bare|node) ;; *) fail "ENGINE=$ENGINE: use wazero, bare or node" ;; esac
case $ROUNDS in ''|*[!0-9]*|0) fail "ROUNDS=$ROUNDS must be a positive whole number" ;; esac
names=()
declare -A dirs
for arg in "$@"; do
  name=${arg%%=*}
  dir=${arg#*=}
  [ "$name" != "$arg" ] && [ -n "$name" ] || fail "argument \"$arg\" must look like name=DIR"
  [ "$name" != native ] || fail "\"native\" names the baseline; call the build something else"
  [ -f "$dir/python.wasm" ] && [ -f "$dir/stdlib.zip" ] || fail "$dir must hold python.wasm and stdlib.zip"
  if [ "$ENGINE" = wazero ] && [ ! -x "$dir/wasmwsgi" ]; then
    fail "$dir/wasmwsgi is missing: ENGINE=wazero runs the server binary built with that python.wasm"
  fi
  names+=("$name")
  dirs[$name]=$dir
done

results=${RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/micro-compare.XXXXXX")}
[ -n "${RESULTS:-}" ] || trap 'rm -rf "$results"' EXIT
declare -A files
n=${#names[@]}
for ((round = 1; round <= ROUNDS; round++)); do
  echo "compare: round $round of $ROUNDS" >&2
  ENGINES=native OUT="$results/$round/native" "$here/run.sh" >/dev/null
  files[native]+="${files[native]:+,}$results/$round/native/native.json"
  for ((i = 0; i < n; i++)); do
    name=${names[$(((i + round - 1) % n))]}
    dir=${dirs[$name]}
    ENGINES=$ENGINE OUT="$results/$round/$name" PYTHON_WASM="$dir/python.wasm" STDLIB_ZIP="$dir/stdlib.zip" \
      WASMWSGI="$dir/wasmwsgi" "$here/run.sh" >/dev/null
    files[$name]+="${files[$name]:+,}$results/$round/$name/$ENGINE.json"
  done
done

echo
echo "$(date -u +%Y-%m-%d) $(uname -m), $(nproc) cores; engine $ENGINE"
args=("native=${files[native]}")
for name in "${names[@]}"; do
  args+=("$name=${files[$name]}")
done
/usr/bin/python3 "$here/report.py" "${args[@]}"
