#!/usr/bin/env bash
# Where the memory of an idle TLS connection goes: mailfront under heaptrack
# (Debian's heaptrack package), N idle connections held (bench loadgen --mode
# idle), then the allocation sites alive at the peak, per connection.
#   bash bench/idle-heap.sh [NODE_MAJOR] [N]      e.g. bash bench/idle-heap.sh 24 3000
# Needs a previous `npm run bench` (bench/work: binaries, certificates, configs).
set -euo pipefail
cd "$(dirname "$0")/.."
major=${1:-24}
n=${2:-3000}
node=node conf=bench/work/conf/mailfront.yaml port=24101
if [ "$(node -p 'process.versions.node.split(".")[0]')" != "$major" ]; then
  node="$(bash scripts/node-runtime.sh "$major")/bin/node" conf=bench/work/conf/mailfront-node24.yaml port=24111
fi
out=$(mktemp -d /tmp/mf-heap-XXXXXX)
bench/work/bin/backend --port 24001 --max-seconds 120 >"$out/backend.log" 2>&1 &
heaptrack -o "$out/heap" "$node" dist/cli.js run --config "$conf" >"$out/mailfront.log" 2>&1 &
for _ in $(seq 60); do ss -ltn | grep -q ":$port " && break; sleep 1; done
bench/work/bin/loadgen --port "$port" --mode full -c 16 -n 300 -t 20 >/dev/null
bench/work/bin/loadgen --port "$port" --mode idle -c 64 -n "$n" -t 60 --hold 20 >"$out/idle.json" &
sleep 25
pkill -TERM -f "cli.js run --config $conf" || true
wait
echo "Node $("$node" -v), $n idle connections; bytes per connection alive at the peak, by allocation site:"
heaptrack_print -f "$out"/heap.zst -a 0 -T 0 -n 3 -s 25 2>/dev/null |
  awk -v n="$n" '/consumed over [0-9]+ calls from:/ { sz=$1; calls=$4; getline; site=$1
                  mult = sz ~ /M$/ ? 1e6 : sz ~ /K$/ ? 1e3 : 1; sub(/[MK]$/, "", sz)
                  if (calls >= n * 0.2) printf "  %6.0f  %s (%d calls)\n", sz * mult / n, site, calls }' |
  sort -k2,2 -s | awk '{ s[$2] += $1; c[$2] = c[$2] " " $3 " " $4 } END { for (k in s) printf "%7.0f  %s\n", s[k], k }' | sort -rn
echo "(heaptrack data: $out)"
