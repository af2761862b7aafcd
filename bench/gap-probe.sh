#!/usr/bin/env bash
# The harness's own accept gaps, without reloads: new full TLS 1.3 handshakes at 200/s (SNI over
# the 10,000 names of bench/cert-store.mjs's store, one handshake per name first), through
# mailfront (Node 24) or HAProxy 3.4 + AWS-LC with the same certificates; prints the longest gap
# between two completed connections, as bench/cert-store.mjs's reload phase measures it.
#   bash bench/gap-probe.sh mailfront|haproxy [SECONDS=60]
# Needs bench/work/store-10000 (node bench/cert-store.mjs --phases load makes it), bench/work/bin
# (npm run bench builds it), the pinned Node 24 (scripts/node-runtime.sh 24) and, for haproxy,
# ../shared/peers/haproxy-3.4-awslc. Proxy on CPU 0, loadgen and backend on CPU 1, all at nice -10
# in a session (autogroup) at nice -10; root.
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${1:?usage: gap-probe.sh mailfront|haproxy [SECONDS]}
seconds=${2:-60}
work=bench/work
store=$work/store-10000
port=24601 backend_port=24602
echo -10 >/proc/self/autogroup 2>/dev/null || true
run() { taskset -c "$1" nice -n -10 "${@:2}"; }
# In the background, as its own process (taskset and nice exec it): $! is what the trap kills.
pids=()
background() { local log=$1; shift; taskset -c "$1" nice -n -10 "${@:2}" >"$log" 2>&1 & pids+=($!); }
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
background /dev/null 1 "$work/bin/backend" --port $backend_port --max-seconds 900
case $peer in
  haproxy)
    pems=$work/haproxy-pems-10000 cfg=$work/conf/gap-probe-haproxy.cfg
    if [ ! -d "$pems" ]; then  # HAProxy's crt directory: one combined PEM per lineage
      mkdir -p "$pems.tmp"
      for d in "$store"/le/live/*/; do n=$(basename "$d"); cat "$d/fullchain.pem" "$d/privkey.pem" >"$pems.tmp/$n.pem"; done
      mv "$pems.tmp" "$pems"
    fi
    mkdir -p "$(dirname "$cfg")"
    printf '%s\n' global '  nbthread 1' '  maxconn 9800' defaults '  mode tcp' '  timeout connect 5s' \
      '  timeout client 30m' '  timeout server 30m' frontend\ fe "  bind 127.0.0.1:$port ssl crt $PWD/$pems/" \
      '  default_backend be' backend\ be "  server s1 127.0.0.1:$backend_port" >"$cfg"
    background "$work/logs/gap-probe-haproxy.log" 0 "${PEERS_DIR:-../shared/peers}/haproxy-3.4-awslc" -db -f "$cfg" ;;
  mailfront)
    node24=$(bash scripts/node-runtime.sh 24 | tail -1)/bin/node
    background "$work/logs/gap-probe-mailfront.log" 0 "$node24" dist/cli.js run --config "$store/mailfront-info.yaml" ;;
  *) echo "gap-probe.sh: mailfront or haproxy, not $peer" >&2; exit 2 ;;
esac
for _ in $(seq 1 240); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.5; done
names=(--names 10000 --sni-fmt mail.s%05d.store.test --conn-timeout 10)
run 1 "$work/bin/loadgen" --port $port --mode full -c 32 -n 10000 -t 120 "${names[@]}" >/dev/null
run 1 "$work/bin/loadgen" --port $port --mode full -c 64 --rate 200 -t "$seconds" --times "${names[@]}" | grep '"done"' >"$work/gap-probe-$peer.json"
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const d = r.done_t, t0 = d[0] + 1, g = [];  // the first second is ramp-up, as in cert-store.mjs
for (let i = 1; i < d.length; i++) if (d[i - 1] >= t0) g.push((d[i] - d[i - 1]) * 1000);
g.sort((a, b) => a - b);
console.log(`${process.argv[2]}: ${d.length} completed, ${r.fail_t.length} failed; longest gap ${g.at(-1).toFixed(1)} ms, p99 ${g[Math.floor(g.length * 0.99)].toFixed(1)} ms, gaps over 15 ms: ${g.filter((x) => x > 15).length}`);
' "$work/gap-probe-$peer.json" "$peer"
