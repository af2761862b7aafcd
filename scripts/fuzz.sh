#!/usr/bin/env bash
# Builds the libFuzzer targets in native/fuzz/ (clang, -fsanitize=fuzzer,address,undefined;
# pure sources only: no Node, no sockets; the record layer links the system's libcrypto)
# and runs each for a bounded time.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     default: 20 s, every target
#   scripts/fuzz.sh --build-only                         build every target and stop
#                                                        (scripts/test.sh runs it niced while vitest runs)
# A target is rebuilt only when its stamp (a hash of its sources, native/'s headers,
# the flags and the compiler) changed; the stamp is written after the build.
#
# Fails (exit 1) on any crash, sanitizer report or broken invariant; the input
# is left in tmp/fuzz/crashes/ and the command to replay it is printed.
# The kept seeds (native/fuzz/corpus/<target>/) are read, never written: new
# inputs go to tmp/fuzz/corpus/<target>/ (kept between local runs).
# Env: FUZZ_JOBS (targets run at once, default 2), CLANGXX (default clang++-14 or clang++), FUZZ_DIR (default tmp/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_ONLY=0
[ "${1:-}" = --build-only ] && { BUILD_ONLY=1; shift; }
SECS=${1:-20}
shift || true
ALL_TARGETS=(dialog greeting proxy_header proxy_parse addr sni login record)
[ $# -gt 0 ] && TARGETS=("$@") || TARGETS=("${ALL_TARGETS[@]}")
OUT=${FUZZ_DIR:-tmp/fuzz}

CLANGXX=${CLANGXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$CLANGXX" ]; then
  echo "fuzz.sh: clang++ not found (Debian 12: apt-get install -y clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi

# Sources each target links (pure: no Node, no sockets; OpenSSL's crypto only for record).
declare -A SOURCES=(
  [dialog]="native/dialog.cc"
  [greeting]="native/backend_greeting.cc"
  [proxy_header]="native/proxy_header.cc native/proxy_parse.cc native/crc32c.cc native/net.cc"
  [proxy_parse]="native/proxy_parse.cc native/crc32c.cc"
  [addr]="native/net.cc"
  [sni]="native/sni.cc"
  [login]="native/login.cc native/login_server.cc native/login_text.cc"
  [record]="native/tls13_record.cc native/tls13_keys.cc"
)
declare -A LIBS=([record]="-lcrypto")
# Largest input: a relay buffer (16 KiB) for the byte streams, small for names.
declare -A MAXLEN=([dialog]=16384 [greeting]=16384 [proxy_header]=1500 [proxy_parse]=1024 [addr]=300 [sni]=300 [login]=16384 [record]=40000)

# Node's own OpenSSL headers (util.h includes them; nothing is linked).
NODE_INC=$(node -p "require('path').resolve(process.execPath, '../../include/node')" 2>/dev/null || true)
[ -f "$NODE_INC/openssl/ssl.h" ] || NODE_INC=/usr/include/node
CXXFLAGS=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=all -isystem "$NODE_INC" -Wall -Wextra -Wno-unused-parameter)

mkdir -p "$OUT/bin" "$OUT/crashes"
echo "== building ${#TARGETS[@]} fuzz targets (those not up to date) with $($CLANGXX --version | head -1)"
pids=()
for t in "${TARGETS[@]}"; do
  [ -n "${SOURCES[$t]:-}" ] || { echo "fuzz.sh: unknown target $t (${ALL_TARGETS[*]})" >&2; exit 2; }
  # shellcheck disable=SC2086
  stamp=$( { cat "native/fuzz/fuzz_$t.cc" ${SOURCES[$t]} native/*.h native/fuzz/*.h "$NODE_INC/openssl/opensslv.h"
             "$CLANGXX" --version; echo "${CXXFLAGS[*]} ${LIBS[$t]:-}"; } | sha256sum | cut -d' ' -f1)
  [ -x "$OUT/bin/fuzz_$t" ] && [ "$(cat "$OUT/bin/fuzz_$t.stamp" 2>/dev/null)" = "$stamp" ] && continue
  rm -f "$OUT/bin/fuzz_$t.stamp"
  # shellcheck disable=SC2086
  ( "$CLANGXX" "${CXXFLAGS[@]}" -o "$OUT/bin/fuzz_$t" "native/fuzz/fuzz_$t.cc" ${SOURCES[$t]} ${LIBS[$t]:-} \
      && echo "$stamp" >"$OUT/bin/fuzz_$t.stamp" ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
[ $BUILD_ONLY = 1 ] && exit 0

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# One target: run it, then write one summary line to $OUT/<t>.result; exit 1 on a failure.
run_target() {
  local t=$1 seeds=native/fuzz/corpus/$1 work=$OUT/corpus/$1 log=$OUT/$1.log rc execs cov crash
  local dict=()
  mkdir -p "$work"
  [ -f "native/fuzz/$t.dict" ] && dict=(-dict="native/fuzz/$t.dict")
  echo "== fuzz_$t: ${SECS}s, $(ls "$seeds" 2>/dev/null | wc -l) seeds"
  set +e
  timeout --signal=KILL $((SECS + 60)) "$OUT/bin/fuzz_$t" "$work" "$seeds" "${dict[@]}" \
    -max_total_time="$SECS" -max_len="${MAXLEN[$t]}" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t-" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1)
  if [ $rc -ne 0 ]; then
    crash=$(grep -Eo "Test unit written to [^ ]+" "$log" | tail -n 1 | sed 's/Test unit written to //')
    {
      echo "!! fuzz_$t FAILED (exit $rc) after ${execs:-?} execs: see $log"
      grep -E -A1 "INVARIANT BROKEN|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|^SUMMARY" "$log" | head -n 6 | sed 's/^/   /'
      [ -n "$crash" ] && echo "   reproduce: $OUT/bin/fuzz_$t $crash"
    } >"$OUT/$t.result"
    return 1
  fi
  echo "   fuzz_$t ok: ${execs:-?} execs in ${SECS}s, $cov" >"$OUT/$t.result"
  return 0
}

# FUZZ_JOBS targets at a time (default 2: each target is one process on one core).
JOBS=${FUZZ_JOBS:-2}
fail=0
running=()
for t in "${TARGETS[@]}"; do
  rm -f "$OUT/$t.result"
  run_target "$t" &
  running+=($!)
  if [ ${#running[@]} -ge "$JOBS" ]; then
    wait "${running[0]}" || fail=1
    running=("${running[@]:1}")
  fi
done
for p in "${running[@]}"; do wait "$p" || fail=1; done
echo "== fuzz summary"
for t in "${TARGETS[@]}"; do cat "$OUT/$t.result" 2>/dev/null || echo "!! fuzz_$t: no result"; done
exit $fail
