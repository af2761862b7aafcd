#!/usr/bin/env bash
# Syscalls per connection of one proxy: strace -c -f attached to the proxy while
# bench/loadgen makes a fixed number of connections. Counts, not rates: they hold
# on a busy machine. Ports 25xxx, so a bench run on 24xxx is not disturbed.
#   bash bench/syscalls.sh PEER MODE [N] [trace]
#     PEER  mf20 | mf24 (mailfront on Node 20 / 24) | haproxy34 (../shared/peers) | haproxy26 (Debian)
#     MODE  full | resumed | bulk (4 connections, 3 s) | idle (N held, then RSS per connection)
#     trace: also a full strace -f of 3 sequential connections -> $out/trace.txt
#     perf:  instead of strace, perf record -g (cpu-clock) over the run -> $out/perf-*.txt
#     cpu:   instead of strace, the proxy's CPU time (utime+stime) over the run, in µs per connection
#     instr: the proxy runs under valgrind --tool=callgrind, instrumented only during the N
#            connections (not its start, the warm-up, nor loadgen's ticket phase): user-space
#            instructions per connection, which a busy host does not blur (same binary, same
#            inputs: the same count within ~0.5%). Slow: N=300 takes a few minutes.
#            mailfront: also by thread (workers, JS thread, V8's background threads: a major GC
#            that falls in the window shows there). -> $out/callgrind.out.*, $out/annotate-*.txt
# PORTS=26 moves the ports to 26001-2/26101-2 (two runs at once).
# Needs bench/work/bin (make -C bench) and bench/work/pki (from `npm run bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${1:?peer}; mode=${2:?mode}; n=${3:-2000}; trace=${4:-}
out=$(mktemp -d /tmp/mf-sys-XXXXXX)
pki=$PWD/bench/work/pki
le=$pki/letsencrypt; [ -d "$le" ] || le=$pki/le   # the bench's layout, before and after its PKI rework
bport=${PORTS:-25}001 port=${PORTS:-25}101
if ss -ltn | grep -qE ":($bport|$((bport + 1))|$port|$((port + 1))) "; then echo "bench/syscalls.sh: a port of $bport-2/$port-2 is taken (another run? PORTS=26)" >&2; exit 1; fi
bench/work/bin/backend --port $bport --max-seconds 300 >"$out/backend.log" 2>&1 &
bpid=$!
bench/work/bin/backend --port $((bport + 1)) --discard --max-seconds 300 >"$out/sink.log" 2>&1 &
spid=$!
cat >"$out/mf.yaml" <<EOF
certificates:
  letsencrypt: [$le]
  default: mail.d00.bench.test
listeners:
  - {name: echo, protocol: imaps, listen: ["127.0.0.1:$port"], backend: echo}
  - {name: sink, protocol: imaps, listen: ["127.0.0.1:$((port + 1))"], backend: sink}
backends:
  echo: {servers: ["127.0.0.1:$bport"]}
  sink: {servers: ["127.0.0.1:$((bport + 1))"]}
limits: {connections: 200000, per_client: 200000, connection_rate: 10000000}
timeouts: {drain: 1s}
workers: 1
metrics: false
log: {level: warn}
EOF
cat >"$out/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 9800
defaults
  mode tcp
  timeout connect 5s
  timeout client 30m
  timeout server 30m
frontend fe_echo
  bind 127.0.0.1:$port ssl crt $pki/pems/
  default_backend be_echo
frontend fe_sink
  bind 127.0.0.1:$((port + 1)) ssl crt $pki/pems/
  default_backend be_sink
backend be_echo
  server s1 127.0.0.1:$bport
backend be_sink
  server s1 127.0.0.1:$((bport + 1))
EOF
case $peer in
  mf20) cmd=(node dist/cli.js run --config "$out/mf.yaml") ;;
  mf24) cmd=("$(bash scripts/node-runtime.sh 24)/bin/node" dist/cli.js run --config "$out/mf.yaml") ;;
  haproxy34) cmd=(/work/shared/peers/haproxy-3.4-awslc -db -f "$out/haproxy.cfg") ;;
  haproxy26) cmd=(haproxy -db -f "$out/haproxy.cfg") ;;
  *) echo "unknown peer $peer" >&2; exit 2 ;;
esac
if [ "$trace" = instr ]; then
  cmd=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out.%p" "${cmd[@]}")
fi
"${cmd[@]}" >"$out/proxy.log" 2>&1 &
ppid_=$!
cleanup() { kill "$ppid_" "$bpid" "$spid" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 600); do ss -ltn | grep -q ":$port " && break; sleep 0.5; done
lg() { bench/work/bin/loadgen "$@"; }
lg --port $port --mode full -c 8 -n 200 -t 30 >/dev/null   # warm: contexts, allocator, tickets
if [ "$mode" = idle ]; then
  rss() { awk '/VmRSS/ {print $2}' /proc/$ppid_/status; }
  before=$(rss)
  lg --port $port --mode idle -c 64 -n "$n" -t 120 --hold 3 >"$out/idle.json" &
  lpid=$!
  for _ in $(seq 600); do grep -q '"event":"ready"' "$out/idle.json" 2>/dev/null && break; sleep 0.2; done
  sleep 0.5
  with=$(rss)
  if [ -n "${TRIM:-}" ]; then   # experiment: what glibc gives back after the burst
    gdb -p "$ppid_" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
    echo "after malloc_trim: $(awk -v a="$before" -v b="$(rss)" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / n}') KiB per connection"
  fi
  wait $lpid || true
  echo "$peer idle: RSS $before -> $with KiB over $n connections: $(awk -v a="$before" -v b="$with" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / n}') KiB per connection"
  cat "$out/idle.json" | tail -1
  exit 0
fi
cpu() { awk '{print $14 + $15}' /proc/$ppid_/stat; }
if [ "$trace" = instr ]; then
  case $mode in full | resumed) ;; *) echo "instr: full or resumed only" >&2; exit 2 ;; esac
  # loadgen waits (--sync) after its own warm phase (resumed: a ticket per name) for a line on
  # the fifo: the instrumentation covers the measured connections only.
  mkfifo "$out/go"
  lg --port $port --mode "$mode" -c 8 -n "$n" -t 1200 --conn-timeout 120 --sync <"$out/go" >"$out/lg.json" &
  lpid=$!
  exec 3>"$out/go"
  for _ in $(seq 1200); do grep -q '"event":"ready"' "$out/lg.json" 2>/dev/null && break; sleep 0.5; done
  callgrind_control -i on "$ppid_" >/dev/null 2>&1
  callgrind_control -z "$ppid_" >/dev/null 2>&1
  echo go >&3
  wait $lpid
  sleep 2   # the JS thread's share: connection records, logs
  callgrind_control -d "$ppid_" >/dev/null 2>&1
  tail -1 "$out/lg.json"
  dump=$(ls -t "$out"/callgrind.out.*.[0-9]* | head -1)
  total=$(awk '/^summary:|^totals:/ {print $2; exit}' "$dump")
  ok=$(grep -o '"ok":[0-9]*' "$out/lg.json" | tail -1 | cut -d: -f2)
  callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null >"$out/annotate-all.txt" || true
  head -80 "$out/annotate-all.txt" >"$out/annotate-inclusive.txt"
  callgrind_annotate "$dump" 2>/dev/null | head -60 >"$out/annotate-self.txt" || true
  echo "$peer $mode: $(awk -v t="$total" -v n="$ok" 'BEGIN {printf "%.0f", t / n}') instructions per connection ($total over $ok)"
  if [ "${peer#mf}" != "$peer" ]; then
    # By thread, from the roots of each: a V8 collection that falls in the window (about 200k a
    # connection over 1,000) lands mostly on V8's own threads, so the workers' and the JS thread's
    # figures compare builds without it.
    incl() { awk -v f="$1" 'index($0, f) { gsub(",", "", $1); print $1; exit }' "$out/annotate-all.txt"; }
    awk -v t="$total" -v n="$ok" -v w="$(incl '???:mf::Worker::run()')" -v v="$(incl 'PlatformWorkerThread(void*)')" \
      'BEGIN {printf "  by thread: workers %.0f, JS thread %.0f, V8 background (GC, compilers) %.0f\n", w / n, (t - w - v) / n, v / n}'
  fi
  echo "(callgrind: $dump, $out/annotate-{inclusive,self}.txt)"
  exit 0
fi
if [ "$trace" = perf ]; then
  perf record -g -F 999 -o "$out/perf.data" -p "$ppid_" 2>/dev/null &
elif [ "$trace" = cpu ]; then
  sleep 0 &
  c0=$(cpu)
else
  strace -c -f -o "$out/strace.txt" -p "$ppid_" 2>/dev/null &
fi
st=$!
sleep 1
case $mode in
  full) lg --port $port --mode full -c 32 -n "$n" -t 120 >"$out/lg.json"; conns=$n ;;
  resumed) lg --port $port --mode resumed -c 32 -n "$n" -t 120 >"$out/lg.json"; conns=$n ;;
  bulk) lg --port $((port + 1)) --mode bulk -c 4 -t 3 >"$out/lg.json"; conns=4 ;;
esac
sleep 0.5
kill -INT $st 2>/dev/null || true; wait $st 2>/dev/null || true
tail -1 "$out/lg.json"
if [ "$trace" = cpu ]; then
  c1=$(cpu)
  echo "$peer $mode: $(( (c1 - c0) * 10000 / conns )) µs of proxy CPU per connection ($(( c1 - c0 )) ticks over $conns)"
  exit 0
fi
if [ "$trace" = perf ]; then
  perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | grep -v '^$' | grep -E '^ +[0-9]' | head -60 >"$out/perf-self.txt" || true
  perf report -i "$out/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -80 >"$out/perf-children.txt" || true
  perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12 >"$out/perf-dso.txt" || true
  perf report -i "$out/perf.data" --no-children --sort tid --stdio -g none 2>/dev/null | grep -E "^ +[0-9]" | head -12 >"$out/perf-comm.txt" || true
  echo "perf reports: $out/perf-{self,children,dso,comm}.txt"
  exit 0
fi
bytes=$(grep -o '"bytes":[0-9]*' "$out/lg.json" | tail -1 | cut -d: -f2 || true)
echo "$peer $mode: syscalls per connection over $conns connections${bytes:+ ($bytes bytes)}"
awk -v n="$conns" -v b="${bytes:-0}" '
  /^-+/ || /^ *%/ || /^ *$/ { next }
  $NF == "total" { printf "  %-16s %9.2f\n", "total", $(NF-2) / n; next }
  { calls = $4; errs = (NF == 6) ? $5 : 0; name = $NF
    printf "  %-16s %9.2f", name, calls / n; if (errs) printf "  (errors %.2f)", errs / n
    if (b > 0) printf "  per MiB %.1f", calls / (b / 1048576)
    printf "\n" }' "$out/strace.txt"
if [ "$trace" = trace ]; then
  strace -f -tt -o "$out/trace.txt" -p "$ppid_" 2>/dev/null &
  st=$!
  sleep 1
  lg --port $port --mode "$mode" -c 1 -n 3 -t 30 >/dev/null
  sleep 0.5
  kill -INT $st; wait $st 2>/dev/null || true
  echo "trace: $out/trace.txt"
fi
echo "(strace data: $out)"
