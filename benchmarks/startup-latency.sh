#!/usr/bin/env bash
# Measures, on loopback: process start to ready with a cold and a warm compilation cache,
# and the latency of one request to apps/hello (median and p90 of N sequential requests).
#
#   benchmarks/startup-latency.sh [N]      (run `make build` first)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
bin=bin/wasmwsgi
[ -x "$bin" ] || { echo "run make build first" >&2; exit 1; }
port=$(( 20000 + RANDOM % 20000 ))
addr=127.0.0.1:$port
cache=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$cache"' EXIT

now_ms() { date +%s%3N; }
# start_to_ready starts the server and sets pid and elapsed (ms until /_wasmwsgi/ready is 200).
start_to_ready() {
  local t0
  t0=$(now_ms)
  XDG_CACHE_HOME=$cache "$bin" serve apps --addr "$addr" >/dev/null 2>&1 &
  pid=$!
  until curl -fs -o /dev/null "http://$addr/_wasmwsgi/ready"; do sleep 0.01; done
  elapsed=$(( $(now_ms) - t0 ))
}

start_to_ready; cold=$elapsed; kill $pid; wait $pid 2>/dev/null || true
start_to_ready; warm=$elapsed
echo "start to ready: cold cache ${cold} ms, warm cache ${warm} ms"

for _ in $(seq "$n"); do
  curl -s -o /dev/null -w '%{time_total}\n' "http://$addr/hello/"
done | sort -n | awk -v n="$n" '{ t[NR] = $1 * 1000 } END {
  printf "hello request latency over %d sequential requests: median %.1f ms, p90 %.1f ms, min %.1f ms\n",
    n, t[int((n + 1) / 2)], t[int(n * 0.9)], t[1] }'
kill $pid; wait $pid 2>/dev/null || true
