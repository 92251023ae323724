#!/usr/bin/env bash
# Runs run.sh's engines side by side in rounds: each round runs native Python and then
# every engine, in an order that rotates from round to round so that load on the
# machine favours none, and the table holds each benchmark's median over the rounds.
#
#   ROUNDS=5 ENGINES="bare released" benchmarks/micro/rounds.sh
#
# Settings (environment): ROUNDS=3, ENGINES (default "bare released": wazero with and
# without third_party/wazero-patches), and REPEAT, ONLY, PYTHON_WASM, STDLIB_ZIP as for
# run.sh. RESULTS=DIR keeps the JSON files (default: a temporary folder).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-3}
read -r -a engines <<<"${ENGINES:-bare released}"

fail() { echo "rounds: $*" >&2; exit 1; }
case $ROUNDS in ''|*[!0-9]*|0) fail "ROUNDS=$ROUNDS must be a positive whole number" ;; esac
for e in "${engines[@]}"; do
  [ "$e" != native ] || fail "native is the baseline and runs in every round; list only wasm engines in ENGINES"
done

results=${RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/micro-rounds.XXXXXX")}
[ -n "${RESULTS:-}" ] || trap 'rm -rf "$results"' EXIT
declare -A files
n=${#engines[@]}
for ((round = 1; round <= ROUNDS; round++)); do
  echo "rounds: round $round of $ROUNDS" >&2
  order=(native)
  for ((i = 0; i < n; i++)); do
    order+=("${engines[$(((i + round - 1) % n))]}")
  done
  for e in "${order[@]}"; do
    ENGINES=$e OUT="$results/$round" "$here/run.sh" >/dev/null
    files[$e]+="${files[$e]:+,}$results/$round/$e.json"
  done
done

echo
echo "$(date -u +%Y-%m-%d) $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $ROUNDS rounds"
args=("native=${files[native]}")
for e in "${engines[@]}"; do
  args+=("$e=${files[$e]}")
done
python3 "$here/report.py" "${args[@]}"
# CPU seconds of each engine's whole run (start, warm-up and timed runs), median over
# the rounds: steadier than wall time when other work shares the cores.
echo
echo "| engine | CPU s per run, median | rounds |"
echo "|---|---|---|"
for e in native "${engines[@]}"; do
  cpus=()
  for ((round = 1; round <= ROUNDS; round++)); do
    cpus+=("$(awk '{printf "%.3f", $1 + $2}' "$results/$round/$e.cpu")")
  done
  med=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
  echo "| $e | $med | ${cpus[*]} |"
done
