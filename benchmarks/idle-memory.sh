#!/usr/bin/env bash
# Resident memory of idle apps, and what the first request to an idle app costs.
#
# Serves N copies of apps/flask (default 50) and, once they are loaded and pre-warmed,
# reads the server's resident memory with no traffic; the same with one copy gives the
# per-app figure. Then it times the first request to several idle apps against repeated
# requests to one busy app. The second start of the N-app server uses the cached
# snapshots, so it also reports restart-to-ready.
#
#   benchmarks/idle-memory.sh [N]      (run make build vendor-apps first)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
bin=bin/wasmwsgi
[ -x "$bin" ] || { echo "run make build first" >&2; exit 1; }
[ -d apps/flask/site-packages ] || { echo "run make vendor-apps first" >&2; exit 1; }
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

make_apps() { # dir count
  mkdir -p "$1"
  for i in $(seq "$2"); do cp -r apps/flask "$1/flask$i"; done
}
now_ms() { date +%s%3N; }
# serve dir: starts the server, waits for ready and for pre-warming, sets pid, addr, ready_ms
serve() {
  addr=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local t0
  t0=$(now_ms)
  XDG_CACHE_HOME=$work/cache "$bin" serve "$1" --addr "$addr" --log-level warn >"$work/log" 2>&1 &
  pid=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/_wasmwsgi/ready")" = 200 ]; do
    kill -0 $pid || { cat "$work/log" >&2; exit 1; }
    sleep 0.05
  done
  ready_ms=$(( $(now_ms) - t0 ))
  sleep 5 # pre-warming runs after load; then nothing happens
}
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

make_apps "$work/one" 1
make_apps "$work/many" "$n"

# Both counts are taken after a restart from cached snapshots, so that neither includes
# what importing left behind in the Go heap.
serve "$work/one"
stop
serve "$work/one"
one=$(rss_kib $pid VmRSS)
stop

serve "$work/many"
cold_ready=$ready_ms
stop
serve "$work/many"
warm_ready=$ready_ms
many=$(rss_kib $pid VmRSS)
anon=$(rss_kib $pid RssAnon); file=$(rss_kib $pid RssFile); shmem=$(rss_kib $pid RssShmem)
snap_kib=$(du -k "$work"/cache/wasmwsgi/snapshots/flask1-*.mem | cut -f1)

# First request to idle apps versus repeated requests to a busy one.
t() { curl -s -o /dev/null -w '%{time_total}\n' "http://$addr/$1/hello"; }
idle=$(for i in $(seq 2 11); do t "flask$i"; done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] * 1000 }')
for _ in $(seq 20); do t flask1 >/dev/null; done
busy=$(for _ in $(seq 30); do t flask1; done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] * 1000 }')
stop

per_app=$(( (many - one) / (n - 1) ))
cat <<EOF
idle memory, $n copies of apps/flask (no traffic, after pre-warming):
  server RSS with 1 app:  $(( one / 1024 )) MiB
  server RSS with $n apps: $(( many / 1024 )) MiB (anon $(( anon / 1024 )), file $(( file / 1024 )), shmem $(( shmem / 1024 )) MiB)
  per idle app:           $(( per_app / 1024 )).$(( (per_app % 1024) * 10 / 1024 )) MiB resident
  snapshot per app:       $(( snap_kib / 1024 )) MiB in the page cache (file-backed, shared by its instances, reclaimable)
start to ready, $n apps: ${cold_ready} ms importing, ${warm_ready} ms from cached snapshots
first request to an idle app: median ${idle} ms over 10 apps; busy app: median ${busy} ms
EOF
