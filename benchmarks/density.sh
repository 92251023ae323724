#!/usr/bin/env bash
# Density: N tenants that are copies of one Flask app, each folder vendored on its own
# (its own site-packages, as real tenants have), served by one wasmwsgi process inside a
# memory cgroup. For each variant of the app it measures:
#   - a fresh start to ready, from an empty cache folder (no snapshot, no compiled
#     python.wasm either: the engine's compile is given apart);
#   - a restart to ready from the cached snapshots, with the page cache dropped first,
#     and to every app loaded (serve loads the apps it restores after ready);
#   - wrk on 127.0.0.1 with a tenant drawn at random for every request: rps, p50, p99,
#     errors (non-2xx and socket errors), the cgroup's peak usage and the split of its
#     memory (anon against page cache) at the end; and the snapshot files' size on disk;
#   - after a restart with --idle-timeout IDLE_TIMEOUT, the first request of IDLE_N
#     tenants idle past it (they hold no instance), each followed at once by a second
#     request to the same tenant, now busy: p50 and p99 of both.
# Variants: "flask" is apps/flask (its wasmwsgi.toml sets warmup; /hello renders a Jinja
# template); "plain" is a Flask hello app with no wasmwsgi.toml, so the automatic
# warm-up applies (GET /).
#
#   benchmarks/density.sh [OUT.md]     (make bench-density; needs wrk, make build vendor-apps;
#                                       run as root for the cgroup and the page-cache drop)
#
# With OUT.md, its "## Density" section (the last one) is replaced by this run's.
#
# Environment: N tenants (200), VARIANTS ("flask plain"), LIMIT of the cgroup in bytes
# (2 GiB), DURATION of wrk (15s), after WARMUP of the same load (3s), CONNECTIONS (16), THREADS (2), IDLE_N (200, at most N),
# IDLE_TIMEOUT (2s), READY_TIMEOUT, the longest wait for a start, in seconds (1800),
# CGROUP_PARENT, the memory cgroup to create the benchmark's under (default the one this
# script runs in, so that limits above it still apply).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-}
n=${N:-200}
variants=${VARIANTS:-flask plain}
limit=${LIMIT:-$((2 << 30))}
duration=${DURATION:-15s}
warmup=${WARMUP:-3s}
conns=${CONNECTIONS:-16}
threads=${THREADS:-2}
idle_n=${IDLE_N:-200}
idle_timeout=${IDLE_TIMEOUT:-2s}
ready_timeout=${READY_TIMEOUT:-1800}
bin=bin/wasmwsgi
[ "$idle_n" -le "$n" ] || idle_n=$n
[ "$n" -ge 1 ] && [ "$n" -le 9999 ] || { echo "density: N must be 1..9999" >&2; exit 1; }
for tool in wrk curl python3 timeout; do
  command -v "$tool" >/dev/null || { echo "density: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "density: run make build first" >&2; exit 1; }
[ -d apps/flask/site-packages ] || { echo "density: run make vendor-apps first" >&2; exit 1; }
secs() { case $1 in *m) echo $(( ${1%m} * 60 ));; *s) echo "${1%s}";; *) echo "$1";; esac; }

# The memory cgroup (v1): a child of this script's own, one per server process, so
# that each start is charged from zero.
cg_parent=${CGROUP_PARENT:-/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup 2>/dev/null)}
cg_parent=${cg_parent%/}
cg_note="in a memory cgroup limited to $(( limit >> 20 )) MiB"
if [ ! -e "$cg_parent/memory.limit_in_bytes" ] || ! mkdir "$cg_parent/wasmwsgi-density-probe-$$" 2>/dev/null; then
  echo "density: memory cgroup v1 not writable at $cg_parent (cgroup v1 and root needed):" \
       "the server runs without a memory limit, and memory figures come from /proc/PID/status" >&2
  cg_parent=
  cg_note="with no memory cgroup (not writable here); memory from /proc/PID/status"
else
  rmdir "$cg_parent/wasmwsgi-density-probe-$$"
fi
drop_note="page cache dropped first"
if ! { [ -w /proc/sys/vm/drop_caches ] && : 2>/dev/null >/proc/sys/vm/drop_caches; }; then
  echo "density: cannot write /proc/sys/vm/drop_caches (root needed): cached restarts run on a warm page cache" >&2
  drop_note="page cache NOT dropped (not root)"
fi

work=$(mktemp -d /tmp/wasmwsgi-density.XXXXXX)
pid=
cg=
stop() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
  fi
  if [ -n "$cg" ]; then
    for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
    [ -d "$cg" ] && echo "density: could not remove the cgroup $cg" >&2
    cg=
  fi
}
trap 'stop; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# make_tenants variant dir: N copies of the variant's app, each with its own site-packages.
make_tenants() {
  local src=$work/src-$1
  rm -rf "$src" "$2" && mkdir -p "$src" "$2"
  case $1 in
    flask) cp -r apps/flask/. "$src/" ;;
    plain)
      cp -r apps/flask/site-packages "$src/"
      cat > "$src/app.py" <<'EOF'
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "Hello, World!"
EOF
      ;;
  esac
  for i in $(seq -f '%04g' "$n"); do cp -r "$src" "$2/t$i"; done
}

# serve label appsdir cachedir [flags...]: starts the server (in a new cgroup) and waits
# until /_wasmwsgi/ready answers 200; sets pid, addr, ready_ms.
serve() {
  local label=$1 dir=$2 cache=$3 t0 code=
  shift 3
  addr=127.0.0.1:$(port)
  log=$work/$label.log
  if [ -n "$cg_parent" ]; then
    cg=$cg_parent/wasmwsgi-density-$$-$label
    mkdir "$cg"
    echo "$limit" > "$cg/memory.limit_in_bytes"
  fi
  t0=$(now_ms)
  # The shell puts itself in the cgroup, then becomes the server.
  bash -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$cg" \
    "$bin" serve "$dir" --cache-dir "$cache" --addr "$addr" --log-level info "$@" >"$log" 2>&1 &
  pid=$!
  while [ "$code" != 200 ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "density: the server ($label) exited before it was ready; end of its log:" >&2
      tail -5 "$log" >&2
      [ -n "$cg" ] && echo "density: cgroup failcnt $(cat "$cg/memory.failcnt"), $(grep oom_kill "$cg/memory.oom_control")" >&2
      exit 1
    fi
    if [ $(( $(now_ms) - t0 )) -gt $(( ready_timeout * 1000 )) ]; then
      echo "density: the server ($label) was not ready after ${ready_timeout}s" >&2
      exit 1
    fi
    sleep 0.1
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://$addr/_wasmwsgi/ready" || true)
  done
  ready_ms=$(( $(now_ms) - t0 ))
  serve_t0=$t0
  none_failed 'msg=ready ' "($label)"
}

# none_failed PATTERN WHEN: exits when the last log line matching PATTERN counts failed
# apps.
none_failed() {
  local failed
  failed=$(sed -n "s/.*$1.*failed=\([0-9]*\).*/\1/p" "$log" | tail -1)
  if [ "${failed:-0}" != 0 ]; then
    echo "density: $failed apps failed to load $2; see the log:" >&2
    grep -m3 'app failed' "$log" >&2
    exit 1
  fi
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# all_loaded: waits until the server started last has loaded every app, the ones it
# left for after ready included (README, "Restarts"); sets loaded_ms, from its start.
all_loaded() {
  loaded_ms=$ready_ms
  grep -q 'msg="loading the apps an earlier start loaded, after ready"' "$log" || return 0
  until grep -q 'msg="apps loaded after ready"' "$log"; do
    if [ $(( $(now_ms) - serve_t0 )) -gt $(( ready_timeout * 1000 )) ]; then
      echo "density: the server did not load every app within ${ready_timeout}s" >&2
      exit 1
    fi
    sleep 0.05
  done
  loaded_ms=$(( $(now_ms) - serve_t0 ))
  none_failed 'msg="apps loaded after ready"' "after ready"
}

# mem: "usage_MiB peak_MiB anon_MiB file_MiB failcnt mapped_MiB" of the cgroup (file
# is its page cache, mapped the part of it mapped by the process), or of the process
# (VmRSS, VmHWM, RssAnon, RssFile, -, RssFile) without one.
mem() {
  if [ -n "$cg" ]; then
    awk -v u="$(cat "$cg/memory.usage_in_bytes")" -v p="$(cat "$cg/memory.max_usage_in_bytes")" \
        -v f="$(cat "$cg/memory.failcnt")" '
      $1 == "rss" { a = $2 } $1 == "cache" { c = $2 } $1 == "mapped_file" { m = $2 }
      END { printf "%.0f %.0f %.0f %.0f %s %.0f\n", u / 1048576, p / 1048576, a / 1048576, c / 1048576, f, m / 1048576 }' "$cg/memory.stat"
  else
    awk '$1 == "VmRSS:" { u = $2 } $1 == "VmHWM:" { p = $2 } $1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { c = $2 }
      END { printf "%.0f %.0f %.0f %.0f - %.0f\n", u / 1024, p / 1024, a / 1024, c / 1024, c / 1024 }' "/proc/$pid/status"
  fi
}

# run_wrk path duration: prints "rps p50_ms p99_ms requests errors"
run_wrk() {
  timeout $(( $(secs "$2") + 60 )) wrk -t"$threads" -c"$conns" -d"$2" --latency \
    -s benchmarks/density.lua "http://$addr" -- "$n" "$1" | awk '
    function ms(v) {
      if (v ~ /us$/) return v * 0.001; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    / requests in / { total = $1 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { err += $NF }
    /Socket errors/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.2f %.2f %d %d\n", rps, p50, p99, total, err }'
}

# idle_vs_busy path: the first request of tenants t0001..t<IDLE_N> (idle), each followed
# by a second (busy), on one kept-alive connection; prints
# "idle_p50 idle_p99 busy_p50 busy_p99 count non200".
idle_vs_busy() {
  python3 - "$addr" "$idle_n" "$1" <<'EOF'
import http.client, math, sys, time
host, port = sys.argv[1].split(":")
n, path = int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection(host, int(port), timeout=30)
idle, busy, bad = [], [], 0
deadline = time.monotonic() + 600
for i in range(1, n + 1):
    for times in (idle, busy):
        t = time.perf_counter()
        conn.request("GET", f"/t{i:04d}{path}")
        r = conn.getresponse()
        r.read()
        times.append((time.perf_counter() - t) * 1000)
        bad += r.status != 200
    if time.monotonic() > deadline:
        break
def pct(v, p):
    v = sorted(v)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)]
print(f"{pct(idle, 50):.2f} {pct(idle, 99):.2f} {pct(busy, 50):.2f} {pct(busy, 99):.2f} {len(idle)} {bad}")
EOF
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
rows=
for variant in $variants; do
  case $variant in
    flask) path=/hello ;;
    plain) path=/ ;;
    *) echo "density: unknown variant $variant (flask or plain)" >&2; exit 1 ;;
  esac
  apps=$work/apps-$variant
  cache=$work/cache-$variant
  echo "$variant: copying $n tenants..." >&2
  make_tenants "$variant" "$apps"
  tenant_mib=$(du -sm "$apps/t0001" | cut -f1)

  echo "$variant: fresh start (empty cache)..." >&2
  serve "$variant-fresh" "$apps" "$cache"
  fresh_ms=$ready_ms
  engine=$(sed -n 's/.*msg="engine ready".*elapsed=\([^ ]*\).*/\1/p' "$log" | head -1)
  fresh_mem=$(mem)
  autowarm_off=$(grep -c 'snapshot taken without the automatic warm-up' "$log" || true)
  stop
  # The snapshots, not the hot page sets kept beside them.
  snap_files=$(find "$cache/snapshots" -type f -name '*.mem' | wc -l)
  base_files=$(find "$cache/snapshots" -type f -name '_base-*.mem' | wc -l)
  snap_mib=$(find "$cache/snapshots" -type f -name '*.mem' -print0 | du -cm --files0-from=- | tail -1 | cut -f1)
  snap_apparent_mib=$(find "$cache/snapshots" -type f -name '*.mem' -print0 | du -cm --apparent-size --files0-from=- | tail -1 | cut -f1)

  echo "$variant: cached restart ($drop_note)..." >&2
  drop_caches
  serve "$variant-cached" "$apps" "$cache"
  cached_ms=$ready_ms
  all_loaded
  cached_all_ms=$loaded_ms
  sleep 5 # pre-warming runs after the load
  idle_mem=$(mem)
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/t0001$path")
  [ "$code" = 200 ] || { echo "density: /t0001$path answered $code" >&2; exit 1; }
  echo "$variant: wrk $duration, a random tenant per request (after $warmup of warm-up)..." >&2
  run_wrk "$path" "$warmup" >/dev/null
  load=$(run_wrk "$path" "$duration")
  end_mem=$(mem)
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "density: the server ($variant-cached) exited under load; end of its log:" >&2
    grep -v 'msg=request' "$log" | tail -20 >&2
    exit 1
  fi
  stop

  echo "$variant: idle tenants (--idle-timeout $idle_timeout)..." >&2
  serve "$variant-idle" "$apps" "$cache" --idle-timeout "$idle_timeout"
  all_loaded
  sleep $(( $(secs "$idle_timeout") + 5 ))
  idle=$(idle_vs_busy "$path")
  stop

  rm -rf "$apps" "$cache"
  rows+="$variant $path $tenant_mib $fresh_ms ${engine:--} $autowarm_off $cached_ms $cached_all_ms $snap_files $base_files $snap_mib $snap_apparent_mib | $fresh_mem | $idle_mem | $load | $end_mem | $idle"$'\n'
  echo "$variant: $fresh_ms ms fresh, $cached_ms ms cached ($cached_all_ms ms to every app loaded); load: $load; end memory: $end_mem; idle/busy: $idle" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

report=$(python3 - "$n" "$duration" "$conns" "$threads" "$idle_n" "$idle_timeout" "$cg_note" "$drop_note" "$warmup" <<EOF
import sys
n, duration, conns, threads, idle_n, idle_timeout, cg_note, drop_note, warmup = sys.argv[1:]
rows = [r for r in """$rows""".splitlines() if r.strip()]
name = {"flask": "apps/flask, warmup set", "plain": "Flask hello, no wasmwsgi.toml (automatic warm-up)"}
def s(ms): return f"{int(ms) / 1000:.1f} s"
print(f"{n} tenants, each a copy of the app with its own site-packages, one server {cg_note}.")
print(f"Fresh start: from an empty cache folder (the engine's compile of python.wasm included,")
print(f"given apart). Cached restart: from the snapshots on disk, {drop_note}.")
if "no memory cgroup" in cg_note:
    print("Memory is the server process's (/proc/PID/status): anon is RssAnon, file and mapped")
    print("are RssFile, peak is VmHWM.")
else:
    print("Memory is the cgroup's: anon is memory.stat rss, file its page cache (the app files")
    print("read at load and the snapshots' pages), mapped the part of file the server maps")
    print("(snapshot pages in use), peak is memory.max_usage_in_bytes.")
print()
print("| app | path | fresh start to ready | of it, engine start | peak MiB, fresh start | cached restart to ready (every app loaded) | snapshots on disk (allocated / apparent) | memory at ready, cached: anon / file (mapped) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    head, fresh, idle, load, end, ib = [p.split() for p in r.split("|")]
    v, path, tmib, fresh_ms, engine, autowarm_off, cached_ms, cached_all_ms, files, bases, snap, apparent = head
    note = f" ({autowarm_off} without the automatic warm-up)" if v == "plain" and autowarm_off != "0" else ""
    print(f"| {name[v]}{note} | {path} | {s(fresh_ms)} | {engine} | {fresh[1]} | {s(cached_ms)} ({s(cached_all_ms)}) | {files} files ({bases} base images), {int(snap) / 1024:.2f} / {int(apparent) / 1024:.2f} GiB ({int(snap) / int(n):.2f} / {int(apparent) / int(n):.2f} MiB a tenant) | {idle[2]} / {idle[3]} ({idle[5]}) MiB |")
print()
print(f"wrk -t{threads} -c{conns} -d{duration} on 127.0.0.1, a tenant drawn at random for every request")
print(f"(benchmarks/density.lua), after the cached restart and {warmup} of the same load; memory read")
print("when wrk ended.")
print()
print("| app | rps | p50 ms | p99 ms | requests | errors | peak MiB | at end: anon / file (mapped) MiB | failcnt |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    head, fresh, idle, load, end, ib = [p.split() for p in r.split("|")]
    rps, p50, p99, total, err = load
    print(f"| {name[head[0]]} | {rps} | {p50} | {p99} | {total} | {err} | {end[1]} | {end[2]} / {end[3]} ({end[5]}) | {end[4]} |")
print()
print(f"Idle against busy: a restart with --idle-timeout {idle_timeout}, {idle_timeout} and 5 s of quiet, then")
print(f"tenants t0001..t{int(idle_n):04d} in turn on one kept-alive connection: the first request of each")
print("(idle: the tenant holds no instance, so one is restored from its snapshot), then at once")
print("a second (busy: the instance the first one left).")
print()
print("| app | idle p50 ms | idle p99 ms | busy p50 ms | busy p99 ms | tenants | non-200 |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    head, fresh, idle, load, end, ib = [p.split() for p in r.split("|")]
    print(f"| {name[head[0]]} | {ib[0]} | {ib[1]} | {ib[2]} | {ib[3]} | {ib[4]} | {ib[5]} |")
EOF
)
echo "$report"

if [ -n "$out" ]; then
  section=$(
    echo "## Density"
    echo
    echo "Written by \`make bench-density\` (benchmarks/density.sh; \`N=1000 make bench-density\` for"
    echo "a thousand tenants)."
    echo
    echo "- date: $(date -u +%Y-%m-%d)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
         "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r)"
    echo "- load average (1, 5, 15 min) $load_start at the start, $load_end at the end: the machine"
    echo "  is shared, so take the figures as one noisy run, not as medians"
    echo
    echo "$report"
  )
  if [ -f "$out" ] && grep -q '^## Density' "$out"; then
    sed -i '/^## Density/,$d' "$out"
  fi
  [ -s "$out" ] && [ -n "$(tail -c1 "$out")" ] && echo >> "$out"
  [ -s "$out" ] && [ -n "$(tail -n1 "$out")" ] && echo >> "$out"
  echo "$section" >> "$out"
  echo "wrote the density section of $out" >&2
fi
