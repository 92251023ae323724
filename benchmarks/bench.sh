#!/usr/bin/env bash
# Go benchmarks of the runtime (one request's overhead, restore, cold start) and of an
# outbound round trip, then side-by-side throughput on loopback: wasmwsgi with
# per-request isolation, wasmwsgi with instance reuse, and Debian's gunicorn (2 sync
# workers), on the same raw-WSGI hello app (apps/hello) and Flask app (apps/flask), and
# on benchmarks/egress/app.py doing one Redis GET or one PostgreSQL SELECT per request
# against servers the script starts on 127.0.0.1, driven by wrk; then PING round trips
# to Redis from the sandbox and from native Python; then one small static file
# (apps/flask/static/style.css) answered by the host through [static], by Flask's own
# static route in the sandbox, and by nginx (Debian's package, unpacked into the cache
# when the machine has none) serving the same folder. Targets are measured in interleaved
# rounds so that machine noise hits all of them alike; the report gives the median of
# the rounds and the ratios.
#
#   benchmarks/bench.sh [OUT.md]       (make bench; needs wrk, gunicorn, make build vendor-apps;
#                                       the outbound part needs redis-server and PostgreSQL 15)
#
# With OUT.md, the whole report (machine, date, commit, every part) is written there.
#
# Environment: ROUNDS (3), DURATION per round and target (5s), EGRESS_DURATION per
# round and outbound target (10s), CONNECTIONS (16), THREADS (2), RTT_N round trips per
# timing (2000). PARTS=static measures only the static files and, with OUT.md, rewrites
# only that section of it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-}
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
egress_duration=${EGRESS_DURATION:-10s}
rtt_n=${RTT_N:-2000}
conns=${CONNECTIONS:-16}
threads=${THREADS:-2}
static_only=0
[ "${PARTS:-all}" = static ] && static_only=1
bin=bin/wasmwsgi
for tool in wrk gunicorn curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench: run make build first" >&2; exit 1; }
[ -d apps/flask/site-packages ] || { echo "bench: run make vendor-apps first" >&2; exit 1; }

work=$(mktemp -d)
if [ "$static_only" = 0 ]; then
  echo "Go benchmarks (runtime)..." >&2
  {
    go test -run '^$' -bench 'Serve|Restore|FirstRequest' -benchtime "${BENCHTIME:-300x}" -count 1 ./runtime
    go test -run '^$' -bench 'ColdStart|EngineStart' -benchtime "${STARTTIME:-5x}" -count 1 ./runtime
    go test -run '^$' -bench 'RoundTrip' -benchtime "${RTTTIME:-20000x}" -count 3 ./egress
  } | grep -E '^Benchmark' > "$work/go.txt"
  cat "$work/go.txt"
fi
pids=()
pgdata=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$pgdata" ]; then
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$pgdata/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pgdata"
  fi
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
# And Flask as a new user has it: no wasmwsgi.toml, so the automatic warm-up.
mkdir -p "$work/apps/flask-default"
cp -r apps/flask/. "$work/apps/flask-default/"
rm -f "$work/apps/flask-default/wasmwsgi.toml"
# The static file: answered by the host ([static], as apps/flask has it), and by
# Flask's static route in the sandbox (no [static], that path warmed up).
for v in static sandbox; do
  mkdir -p "$work/apps/flask-$v"
  cp -r apps/flask/. "$work/apps/flask-$v/"
done
printf 'isolation = "request"\nwarmup = ["/static/style.css"]\n' > "$work/apps/flask-sandbox/wasmwsgi.toml"

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
# run_wrk target [duration]: prints "rps p50_ms p99_ms errors"
run_wrk() {
  wrk -t"$threads" -c"$conns" -d"${2:-$duration}" --latency "${url[$1]}" | awk '
    function ms(v) {
      if (v ~ /us$/) return v * 0.001; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
    /Non-2xx|Socket errors/ { err = err $0 " " }
    END { printf "%.0f %.2f %.2f %s\n", rps, p50, p99, (err == "" ? "-" : "yes") }'
}
# warm_up target...: one second of light load on each target.
warm_up() {
  local t
  for t in "$@"; do wrk -t1 -c4 -d1s "${url[$t]}" >/dev/null; done
}
# measure_rounds raw target...: ROUNDS rounds over the targets in turn, appended to raw.
measure_rounds() {
  local raw=$1 r t
  shift
  for r in $(seq "$rounds"); do
    for t in "$@"; do
      echo "round $r/$rounds: $t" >&2
      echo "$t $(run_wrk "$t")" >> "$raw"
    done
  done
}
# fail_on_errors raw what: stops the run when a request in raw failed.
fail_on_errors() {
  if grep -q ' yes$' "$1"; then
    echo "bench: some ${2}requests failed (non-2xx or socket errors):" >&2
    grep ' yes$' "$1" >&2
    exit 1
  fi
}

declare -A url
if [ "$static_only" = 0 ]; then
gh=$(port); start_gunicorn hello "$gh" application
gf=$(port); start_gunicorn flask "$gf" app
wait_up "http://127.0.0.1:$gh/hello/"
wait_up "http://127.0.0.1:$gf/flask/hello"

url=(
  [hello/request]="http://$ws/hello-request/"
  [hello/instance]="http://$ws/hello-instance/"
  [hello/gunicorn]="http://127.0.0.1:$gh/hello/"
  [flask/request]="http://$ws/flask-request/hello"
  [flask/instance]="http://$ws/flask-instance/hello"
  [flask/default]="http://$ws/flask-default/hello"
  [flask/gunicorn]="http://127.0.0.1:$gf/flask/hello"
)
targets=(hello/request hello/instance hello/gunicorn flask/request flask/instance flask/default flask/gunicorn)

# The same response from every server, or the comparison means nothing.
for t in "${targets[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "${url[$t]}")
  [ "$code" = 200 ] || { echo "bench: ${url[$t]} answered $code" >&2; exit 1; }
done

echo "warming up..." >&2
warm_up "${targets[@]}"
measure_rounds "$work/raw" "${targets[@]}"
fail_on_errors "$work/raw" ""

# report RAW: the medians of the rounds in RAW ("app/server rps p50 p99 errors" lines)
# and the ratios, as Markdown tables.
report() {
  python3 - "$1" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, rps, p50, p99, _ = line.split()
    rows.setdefault(t, []).append((float(rps), float(p50), float(p99)))
med = {t: tuple(statistics.median(v[i] for v in vs) for i in range(3)) for t, vs in rows.items()}
label = {"redis": "Redis GET", "pg": "PostgreSQL SELECT"}
print("| app | server | rps | p50 ms | p99 ms |")
print("|---|---|---:|---:|---:|")
for t, (rps, p50, p99) in med.items():
    app, server = t.split("/")
    name = {"request": "wasmwsgi, isolation=request", "instance": "wasmwsgi, isolation=instance",
            "default": "wasmwsgi, no wasmwsgi.toml (automatic warm-up)",
            "gunicorn": "gunicorn, 2 sync workers",
            "fresh": "gunicorn, 2 sync workers, a new connection per request"}[server]
    print(f"| {label.get(app, app)} | {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
print()
fresh = any(t.endswith("/fresh") for t in med)
print("| app | request / gunicorn | instance / gunicorn | request / instance |" +
      (" request / gunicorn connecting per request |" if fresh else ""))
print("|---|---:|---:|---:|" + ("---:|" if fresh else ""))
for app in dict.fromkeys(t.split("/")[0] for t in med):
    r, i, g = (med[f"{app}/{s}"][0] for s in ("request", "instance", "gunicorn"))
    extra = f" {r / med[f'{app}/fresh'][0]:.2f}x |" if fresh else ""
    print(f"| {label.get(app, app)} | {r / g:.2f}x | {i / g:.2f}x | {r / i:.2f}x |" + extra)
for app in dict.fromkeys(t.split("/")[0] for t in med if t.endswith("/default")):
    d, r, g = (med[f"{app}/{s}"][0] for s in ("default", "request", "gunicorn"))
    print(f"\n{label.get(app, app)} with no wasmwsgi.toml (automatic warm-up): {d / g:.2f}x gunicorn, "
          f"{d / r:.2f}x the same app with its warmup paths.")
EOF
}
report=$(report "$work/raw")
echo "$report"
fi

# Static files: the same small file from the host's [static], from Flask in the sandbox
# and from nginx serving the same folder (one worker process per core; no access log,
# like wasmwsgi at --log-level warn).
nginx_bin=$(command -v nginx || true)
if [ -z "$nginx_bin" ]; then
  debs=${WASMWSGI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmwsgi}/debs
  mkdir -p "$debs"
  deb=$(ls -1 "$debs"/nginx_*.deb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$deb" ]; then
    echo "bench: apt-get download nginx" >&2
    (cd "$debs" && apt-get download -q nginx 2>&1 | grep -v "unsandboxed as root" >&2; exit "${PIPESTATUS[0]}")
    deb=$(ls -1 "$debs"/nginx_*.deb | sort -V | tail -n 1)
  fi
  x=$debs/x/$(basename "$deb" .deb)
  if [ ! -f "$x/.done" ]; then
    rm -rf "$x" && mkdir -p "$x" && dpkg-deb -x "$deb" "$x" && touch "$x/.done"
  fi
  nginx_bin=$x/usr/sbin/nginx
fi
load=$(cut -d' ' -f1-3 /proc/loadavg)
np=$(port)
mkdir -p "$work/nginx"
# Workers run as this user: they read the app's copy in the script's private folder.
cat > "$work/nginx/nginx.conf" <<EOF
$([ "$(id -u)" -eq 0 ] && echo "user root;")
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  types { text/css css; }
  access_log off;
  sendfile on;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$np;
    location /flask-static/static/ { alias $work/apps/flask-static/static/; }
  }
}
EOF
"$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e stderr -g 'daemon off;' >"$work/nginx.log" 2>&1 &
pids+=($!)
wait_up "http://127.0.0.1:$np/flask-static/static/style.css"
url[static/host]="http://$ws/flask-static/static/style.css"
url[static/sandbox]="http://$ws/flask-sandbox/static/style.css"
url[static/nginx]="http://127.0.0.1:$np/flask-static/static/style.css"
stargets=(static/host static/sandbox static/nginx)
for t in "${stargets[@]}"; do
  curl -fs "${url[$t]}" | cmp -s - apps/flask/static/style.css ||
    { echo "bench: ${url[$t]} does not answer apps/flask/static/style.css" >&2; exit 1; }
done
warm_up "${stargets[@]}"
measure_rounds "$work/sraw" "${stargets[@]}"
fail_on_errors "$work/sraw" "static "
static_report=$(python3 - "$work/sraw" "$("$nginx_bin" -v 2>&1 | cut -d/ -f2)" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, rps, p50, p99, _ = line.split()
    rows.setdefault(t, []).append((float(rps), float(p50), float(p99)))
med = {t: tuple(statistics.median(v[i] for v in vs) for i in range(3)) for t, vs in rows.items()}
name = {"static/host": "wasmwsgi, [static] (the host, from the app's files in memory)",
        "static/sandbox": "wasmwsgi, Flask's static route in the sandbox (isolation=request)",
        "static/nginx": f"nginx {sys.argv[2]}, the same folder"}
print("| server | rps | p50 ms | p99 ms |")
print("|---|---:|---:|---:|")
for t, (rps, p50, p99) in med.items():
    print(f"| {name[t]} | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
h, s, n = (med[t][0] for t in ("static/host", "static/sandbox", "static/nginx"))
print()
print(f"[static] / nginx: {h / n:.2f}x; [static] / the same file through the sandbox: {h / s:.1f}x.")
EOF
)
echo "$static_report"

# Outbound: Redis and PostgreSQL on 127.0.0.1, the egress app in both isolation modes
# in a server of its own (granted those two ports) and under gunicorn.
egress_report=
if [ "$static_only" = 1 ]; then
  :
elif ! command -v redis-server >/dev/null || [ ! -x /usr/lib/postgresql/15/bin/initdb ] || ! command -v runuser >/dev/null; then
  egress_report="(not measured: the outbound part needs redis-server, PostgreSQL 15 and runuser)"
  echo "bench: $egress_report" >&2
else
  # redis-py and pg8000 from Debian's packages, as the outbound tests take them.
  site=${WASMWSGI_CACHE:-$HOME/.cache/wasmwsgi}/site-packages-egress
  if [ ! -e "$site/.done" ]; then
    mkdir -p "$work/debs"
    (cd "$work/debs" && apt-get download -q python3-redis python3-packaging python3-deprecated python3-wrapt \
      python3-async-timeout python3-pg8000 python3-six >&2)
    for f in "$work"/debs/*.deb; do dpkg-deb -x "$f" "$work/debs/x"; done
    rm -rf "$site" && mkdir -p "$(dirname "$site")"
    mv "$work/debs/x/usr/lib/python3/dist-packages" "$site" && touch "$site/.done"
  fi
  rp=$(port)
  redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
  pids+=($!)
  pgdata=$(mktemp -d /tmp/wasmwsgi-bench-pg.XXXXXX)
  chown postgres "$pgdata"
  pg=/usr/lib/postgresql/15/bin
  pp=$(port)
  runuser -u postgres -- "$pg/initdb" -D "$pgdata/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$pg/pg_ctl" -D "$pgdata/data" -l "$pgdata/data/server.log" -w \
    -o "-p $pp -k $pgdata/data -c listen_addresses=127.0.0.1" start >/dev/null
  runuser -u postgres -- psql -q -h 127.0.0.1 -p "$pp" -d postgres \
    -c "CREATE TABLE greeting (id int PRIMARY KEY, body text); INSERT INTO greeting VALUES (1, 'hello from postgres')"
  for _ in $(seq 100); do
    python3 - "$rp" <<'EOF' && break
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b'SET greeting "hello from redis"\r\n')
assert s.recv(64) == b"+OK\r\n"
EOF
    sleep 0.1
  done 2>/dev/null
  conf=$work/egress.toml
  for iso in request instance; do
    mkdir -p "$work/eapps/egress-$iso"
    cp benchmarks/egress/app.py "$work/eapps/egress-$iso/"
    cp -r "$site" "$work/eapps/egress-$iso/site-packages"
    printf 'isolation = "%s"\n' "$iso" > "$work/eapps/egress-$iso/wasmwsgi.toml"
    printf '[apps.egress-%s]\noutbound = ["tcp://127.0.0.1:%s", "tcp://127.0.0.1:%s"]\n[apps.egress-%s.env]\nREDIS_PORT = "%s"\nPG_PORT = "%s"\n' \
      "$iso" "$rp" "$pp" "$iso" "$rp" "$pp" >> "$conf"
  done
  ews=127.0.0.1:$(port)
  XDG_CACHE_HOME=$work/cache "$bin" serve "$work/eapps" --config "$conf" --addr "$ews" --log-level warn >"$work/wasmwsgi-egress.log" 2>&1 &
  pids+=($!)
  ge=$(port)
  REDIS_PORT=$rp PG_PORT=$pp PYTHONPATH=$site PYTHONDONTWRITEBYTECODE=1 \
    gunicorn --bind "127.0.0.1:$ge" --workers 2 --chdir "$PWD/benchmarks/egress" --log-level warning \
    app:application >"$work/gunicorn-egress.log" 2>&1 &
  pids+=($!)
  wait_up "http://$ews/_wasmwsgi/ready"
  wait_up "http://127.0.0.1:$ge/"
  for db in redis pg; do
    url[$db/request]="http://$ews/egress-request/$db"
    url[$db/instance]="http://$ews/egress-instance/$db"
    url[$db/gunicorn]="http://127.0.0.1:$ge/$db"
    url[$db/fresh]="http://127.0.0.1:$ge/$db-fresh"
  done
  etargets=(redis/request redis/instance redis/gunicorn redis/fresh pg/request pg/instance pg/gunicorn pg/fresh)
  for t in "${etargets[@]}"; do
    want="hello from redis"
    [ "${t%%/*}" = pg ] && want="hello from postgres"
    body=$(curl -s "${url[$t]}")
    [ "$body" = "$want" ] || { echo "bench: ${url[$t]} answered \"$body\"" >&2; cat "$work/wasmwsgi-egress.log" >&2; exit 1; }
  done
  warm_up "${etargets[@]}"
  for r in $(seq "$rounds"); do
    for t in "${etargets[@]}"; do
      echo "round $r/$rounds: $t" >&2
      echo "$t $(run_wrk "$t" "$egress_duration")" >> "$work/eraw"
    done
    # PING round trips: the sandbox's socket path, then native Python, the same loop.
    echo "sandbox $(curl -s "http://$ews/egress-request/rtt?n=$rtt_n")" >> "$work/rtt"
    echo "native $(cd benchmarks/egress && PYTHONPATH=$site PYTHONDONTWRITEBYTECODE=1 python3 -c \
      "import app; print('%.1f' % app.round_trips($rp, $rtt_n))")" >> "$work/rtt"
  done
  fail_on_errors "$work/eraw" "outbound "
  egress_report=$(report "$work/eraw")
  rtt=$(python3 - "$work/rtt" <<'EOF'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    k, us = line.split()
    v.setdefault(k, []).append(float(us))
s, n = statistics.median(v["sandbox"]), statistics.median(v["native"])
print("| PING round trip to Redis | µs |")
print("|---|---:|")
print(f"| wasmwsgi guest (Python socket, host functions, egress.Session) | {s:.1f} |")
print(f"| native Python socket | {n:.1f} |")
print(f"| sandbox / native | {s / n:.2f}x |")
EOF
)
  egress_report="$egress_report"$'\n\n'"$rtt"
  echo "$egress_report"
fi
# static_section: the Static files section of the report.
static_section() {
  echo "## Static files: wrk on loopback"
  echo
  echo "$rounds interleaved rounds of $duration per target, $conns connections, $threads threads; medians"
  echo "($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
  echo "One small file, apps/flask/static/style.css ($(wc -c < apps/flask/static/style.css) bytes), without Accept-Encoding:"
  echo "answered by the host through the app's [static] table, by Flask's static route"
  echo "(send_file) in the sandbox, and by nginx serving the same folder with sendfile and"
  echo "$(nproc) worker processes. Neither server writes an access log (wasmwsgi runs at"
  echo "--log-level warn, nginx with access_log off). Load average when the part started:"
  echo "$load ($(nproc) cores; other work may share the machine)."
  echo
  echo "$static_report"
}
if [ -n "$out" ] && [ "$static_only" = 1 ]; then
  # Replace the Static files section (or add it before the outbound one), keep the rest.
  section=$(static_section)
  python3 - "$out" "$section" <<'EOF'
import os, re, sys
path, section = sys.argv[1], sys.argv[2].rstrip("\n") + "\n\n"
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n\n"
m = re.search(r"^## Static files.*?(?=^## )", text, re.S | re.M)
if m:
    text = text[:m.start()] + section + text[m.end():]
elif "\n## Outbound connections" in text:
    i = text.index("\n## Outbound connections") + 1
    text = text[:i] + section + text[i:]
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
EOF
  echo "wrote the Static files section of $out" >&2
elif [ -n "$out" ]; then
  # The Density section is benchmarks/density.sh's: keep it.
  density=
  [ -f "$out" ] && density=$(sed -n '/^## Density/,$p' "$out")
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
    static_section
    echo
    echo "## Outbound connections: wrk on loopback"
    echo
    echo "$rounds interleaved rounds of $egress_duration per target, $conns connections, $threads threads; medians."
    echo "benchmarks/egress/app.py answers one Redis GET (/redis) or one PostgreSQL SELECT by"
    echo "primary key (/pg) per request, with redis-py and pg8000 from Debian, against"
    echo "redis-server and PostgreSQL 15 started by the script on 127.0.0.1. Its connection is"
    echo "made at a process's (an instance's) first request and kept: with isolation=request"
    echo "every request connects anew, as the host closes a request's connections; gunicorn"
    echo "is measured both ways (/redis-fresh and /pg-fresh close the connection after each"
    echo "request). PostgreSQL starts a backend process for every connection."
    echo "Then, once per round, $rtt_n PING round trips on one connection timed inside the"
    echo "sandbox and by native python3 running the same function; medians of the rounds."
    echo
    echo "$egress_report"
    echo
    echo "## Runtime: Go benchmarks"
    echo
    echo "One request through the runtime without HTTP (Serve), the restore of a used"
    echo "instance to the snapshot (Restore: median time and pages copied back), a request in"
    echo "an instance made for it (FirstRequest: over a spare memory, or the snapshot mapped"
    echo "afresh), an app from nothing to its first response (ColdStart new: import; cached:"
    echo "snapshot from the disk cache, as after a restart), the engine's start with a warm"
    echo "compilation cache (EngineStart) and with an empty one, python.wasm compiled with one"
    echo "worker per CPU (EngineStartCold), and one 100-byte round trip to an echo server"
    echo "through egress.Session's Send and Recv, as the host functions make it, against a"
    echo "plain net.Conn (RoundTrip, 3 runs)."
    echo
    echo '```'
    cat "$work/go.txt"
    echo '```'
    echo
    echo "Interpreter speed against native CPython: benchmarks/micro (make micro). Resident"
    echo "memory of idle apps and the first request to an idle app: benchmarks/idle-memory.sh."
    if [ -n "$density" ]; then
      echo
      echo "$density"
    fi
  } > "$out"
  echo "wrote $out" >&2
fi
