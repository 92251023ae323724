#!/usr/bin/env bash
# Go benchmarks of the runtime (one request's overhead, restore, cold start), then
# side-by-side throughput on loopback: wasmwsgi with per-request isolation, wasmwsgi with
# instance reuse, and Debian's gunicorn (2 sync workers), on the same raw-WSGI hello app
# (apps/hello) and Flask app (apps/flask), driven by wrk. Targets are measured in
# interleaved rounds so that machine noise hits all of them alike; the report gives the
# median of the rounds and the ratios.
#
#   benchmarks/bench.sh [OUT.md]       (make bench; needs wrk, gunicorn, make build vendor-apps)
#
# With OUT.md, the whole report (machine, date, commit, both parts) is written there.
#
# Environment: ROUNDS (3), DURATION per round and target (5s), CONNECTIONS (16),
# THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-}
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
conns=${CONNECTIONS:-16}
threads=${THREADS:-2}
bin=bin/wasmwsgi
for tool in wrk gunicorn curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench: run make build first" >&2; exit 1; }
[ -d apps/flask/site-packages ] || { echo "bench: run make vendor-apps first" >&2; exit 1; }

work=$(mktemp -d)
echo "Go benchmarks (runtime)..." >&2
{
  go test -run '^$' -bench 'Serve|Restore' -benchtime "${BENCHTIME:-300x}" -count 1 ./runtime
  go test -run '^$' -bench 'ColdStart|EngineStart' -benchtime "${STARTTIME:-5x}" -count 1 ./runtime
} | grep -E '^Benchmark' > "$work/go.txt"
cat "$work/go.txt"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# One copy of each app per isolation mode, so both run in the same server.
for app in hello flask; do
  for iso in request instance; do
    mkdir -p "$work/apps/$app-$iso"
    cp -r "apps/$app/." "$work/apps/$app-$iso/"
    warm='"/"'
    [ "$app" = flask ] && warm='"/", "/hello"'
    printf 'isolation = "%s"\nwarmup = [%s]\n' "$iso" "$warm" > "$work/apps/$app-$iso/wasmwsgi.toml"
  done
done

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {
  for _ in $(seq 600); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "bench: $1 did not come up" >&2
  exit 1
}

ws=127.0.0.1:$(port)
XDG_CACHE_HOME=$work/cache "$bin" serve "$work/apps" --addr "$ws" --log-level warn >"$work/wasmwsgi.log" 2>&1 &
pids+=($!)
wait_up "http://$ws/_wasmwsgi/ready"

start_gunicorn() { # app, port
  SCRIPT_NAME=/$1 PYTHONPATH=$PWD/apps/$1/site-packages PYTHONDONTWRITEBYTECODE=1 \
    gunicorn --bind "127.0.0.1:$2" --workers 2 --chdir "$PWD/apps/$1" --log-level warning \
    "app:$3" >"$work/gunicorn-$1.log" 2>&1 &
  pids+=($!)
}
gh=$(port); start_gunicorn hello "$gh" application
gf=$(port); start_gunicorn flask "$gf" app
wait_up "http://127.0.0.1:$gh/hello/"
wait_up "http://127.0.0.1:$gf/flask/hello"

declare -A url=(
  [hello/request]="http://$ws/hello-request/"
  [hello/instance]="http://$ws/hello-instance/"
  [hello/gunicorn]="http://127.0.0.1:$gh/hello/"
  [flask/request]="http://$ws/flask-request/hello"
  [flask/instance]="http://$ws/flask-instance/hello"
  [flask/gunicorn]="http://127.0.0.1:$gf/flask/hello"
)
targets=(hello/request hello/instance hello/gunicorn flask/request flask/instance flask/gunicorn)

# The same response from every server, or the comparison means nothing.
for t in "${targets[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$t]}")
  [ "$code" = 200 ] || { echo "bench: ${url[$t]} answered $code" >&2; exit 1; }
done

# run_wrk target: prints "rps p50_ms p99_ms errors"
run_wrk() {
  wrk -t"$threads" -c"$conns" -d"$duration" --latency "${url[$1]}" | awk '
    function ms(v) {
      if (v ~ /us$/) return v * 0.001; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx|Socket errors/ { err = err $0 " " }
    END { printf "%.0f %.2f %.2f %s\n", rps, p50, p99, (err == "" ? "-" : "yes") }'
}

echo "warming up..." >&2
for t in "${targets[@]}"; do wrk -t1 -c4 -d1s "${url[$t]}" >/dev/null; done
for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    echo "round $r/$rounds: $t" >&2
    echo "$t $(run_wrk "$t")" >> "$work/raw"
  done
done
if grep -q ' yes$' "$work/raw"; then
  echo "bench: some requests failed (non-2xx or socket errors):" >&2
  grep ' yes$' "$work/raw" >&2
  exit 1
fi

report=$(python3 - "$work/raw" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, rps, p50, p99, _ = line.split()
    rows.setdefault(t, []).append((float(rps), float(p50), float(p99)))
med = {t: tuple(statistics.median(v[i] for v in vs) for i in range(3)) for t, vs in rows.items()}
print("| app | server | rps | p50 ms | p99 ms |")
print("|---|---|---:|---:|---:|")
for t, (rps, p50, p99) in med.items():
    app, server = t.split("/")
    name = {"request": "wasmwsgi, isolation=request", "instance": "wasmwsgi, isolation=instance",
            "gunicorn": "gunicorn, 2 sync workers"}[server]
    print(f"| {app} | {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
print()
print("| app | request / gunicorn | instance / gunicorn | request / instance |")
print("|---|---:|---:|---:|")
for app in ("hello", "flask"):
    r, i, g = (med[f"{app}/{s}"][0] for s in ("request", "instance", "gunicorn"))
    print(f"| {app} | {r / g:.2f}x | {i / g:.2f}x | {r / i:.2f}x |")
EOF
)
echo "$report"
if [ -n "$out" ]; then
  {
    echo "# Benchmark results"
    echo
    echo "Written by \`make bench\` (benchmarks/bench.sh); rerun it to refresh. All figures come"
    echo "from one run on one machine, measured side by side."
    echo
    echo "- date: $(date -u +%Y-%m-%d)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
         "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- $(go version | cut -d' ' -f3), $(gunicorn --version 2>&1 | head -1), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)"
    echo
    echo "## Throughput: wrk on loopback"
    echo
    echo "$rounds interleaved rounds of $duration per target, $conns connections, $threads threads; medians."
    echo "Hello is apps/hello (raw WSGI), Flask is apps/flask's /hello (a Jinja template);"
    echo "wasmwsgi serves both copies of each app in one process, with warmup set."
    echo
    echo "$report"
    echo
    echo "## Runtime: Go benchmarks"
    echo
    echo "One request through the runtime without HTTP (Serve), the restore of a used"
    echo "instance to the snapshot (Restore: median time and pages copied back), an app from"
    echo "nothing to its first response (ColdStart new: import; cached: snapshot from the disk"
    echo "cache), and compiling python.wasm with a warm compilation cache (EngineStart)."
    echo
    echo '```'
    cat "$work/go.txt"
    echo '```'
    echo
    echo "Interpreter speed against native CPython: benchmarks/micro (make micro). Resident"
    echo "memory of idle apps and the first request to an idle app: benchmarks/idle-memory.sh."
  } > "$out"
  echo "wrote $out" >&2
fi
