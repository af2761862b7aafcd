#!/usr/bin/env bash
# Builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer (clang) into
# tmp/asan/mailfront.node, and the tests' addon into tmp/asan/mailfront_testing.so
# (build/Release/ is left alone), and runs the native test
# suite against it (MAILFRONT_ADDON, read by src/native.ts) with the ASan runtime
# preloaded into vitest's test workers (they load the addon) and every process
# they start, and leak detection on. vitest's own process runs without it
# (vitest.config.ts: MF_WORKER_PRELOAD): it never loads the addon, and preloaded
# it cost ~20 s of start and of symbolizing V8's leaks at exit.
#
#   scripts/sanitize.sh [vitest args...]        default: test/native
#   scripts/sanitize.sh --self-test             the judge catches planted bugs (canary addon)
#   scripts/sanitize.sh --build-only            build and stop (scripts/test.sh runs it
#                                               niced while vitest runs)
# A build is reused while its stamp ($OUT/build.stamp: a hash of native/, binding.gyp,
# this script, the compiler and the headers) matches; the stamp is written last.
#
# Every process writes its sanitizer reports to tmp/asan/logs/. The run fails on:
# the tests failing, any AddressSanitizer error, any UBSan "runtime error" in
# native/, any leak whose stack holds a frame of our addon (Node, V8 and libuv
# leak at exit by design: those leaks are counted and listed, never fatal; so are
# the records Node allocates inside napi_create_external, whose finalizer Node may
# leave pending at exit, and napi_create_promise, freed when the promise settles: a
# certificate check in flight at process.exit() never does).
# Env: CLANGXX, ASAN_DIR (default tmp/asan).
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$0")/.."

OUT=${ASAN_DIR:-tmp/asan}
CLANGXX=${CLANGXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$CLANGXX" ]; then
  echo "sanitize.sh: clang++ not found (Debian 12: apt-get install -y clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi
RT=$("$CLANGXX" -print-file-name=libclang_rt.asan-x86_64.so)
[ -f "$RT" ] || { echo "sanitize.sh: ASan runtime not found ($RT)" >&2; exit 2; }
SYMBOLIZER=$(dirname "$(readlink -f "$CLANGXX")")/llvm-symbolizer
[ -x "$SYMBOLIZER" ] || SYMBOLIZER=$(command -v llvm-symbolizer || true)

[ -d node_modules/node-addon-api ] || npm ci
NODE_INC=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
[ -f "$NODE_INC/node_api.h" ] || NODE_INC=/usr/include/node
NAPI_INC=$(node -p "require('node-addon-api').include_dir")
# The same sources, defines and language as binding.gyp: every target's sources
# (the static library, the addon's init, the tests' addon), compiled once.
mapfile -t SOURCES < <(node -e "
  const g = JSON.parse(require('fs').readFileSync('binding.gyp', 'utf8'));
  const targets = [...g.targets, ...g.conditions.flatMap((c) => c[1].targets ?? [])];
  for (const t of targets) for (const s of t.sources) console.log(s);")
DEFINES=(-DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS -DOPENSSL_API_COMPAT=30000 -DBUILDING_NODE_EXTENSION)


# Reads every sanitizer log in $1; prints findings; exit 1 if any is ours.
judge() {
  node - "$1" <<'JS'
const fs = require('fs');
const path = require('path');
const dir = process.argv[2];
const files = fs.readdirSync(dir).map((f) => path.join(dir, f));
const ours = (frames) => frames.some((l) => /(^|[\s/])native\/[^ :]+\.(cc|h)\b|mailfront\.node/.test(l));
let fatal = 0;
let foreignLeaks = 0, foreignBytes = 0;
const foreignTop = new Map();
for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  // Errors: one report from "ERROR: AddressSanitizer" to the next blank line after SUMMARY.
  for (const m of text.matchAll(/==\d+==ERROR: AddressSanitizer[\s\S]*?SUMMARY: AddressSanitizer[^\n]*/g)) {
    fatal++;
    console.log(`!! ${path.basename(f)}: AddressSanitizer error\n${m[0].split('\n').slice(0, 30).join('\n')}\n`);
  }
  for (const m of text.matchAll(/^[^\n]*runtime error:[^\n]*(\n +#\d+[^\n]*)*/gm)) {
    // Only the addon is built with -fsanitize=undefined: every report is ours
    // (or a header inlined into it, such as node-addon-api's).
    const lines = m[0].split('\n');
    fatal++;
    console.log(`!! ${path.basename(f)}: UBSan${ours(lines) ? '' : ' (no native/ frame)'}\n${lines.slice(0, 12).join('\n')}\n`);
  }
  // Leaks: "Direct|Indirect leak of N byte(s) in M object(s) allocated from:" then frames.
  for (const m of text.matchAll(/^(Direct|Indirect) leak of (\d+) byte[^\n]*\n((?: +#\d+[^\n]*\n?)*)/gm)) {
    const frames = m[3].split('\n').filter(Boolean);
    // Node's own record for an external (napi_create_external allocates it, frame #1):
    // freed by the external's finalizer, which Node may leave pending at exit. What
    // the external wraps is allocated by our frames and would be reported on its own.
    // So for a promise's deferred (napi_create_promise), freed when it settles: one
    // pending at process.exit() (a certificate check stopped by exit) stays.
    const site = frames.find((l) => !/libclang_rt|malloc|calloc|realloc|operator new/.test(l)) || '';
    const napiRecord = / in napi_create_(external|promise) /.test(site) && !ours([site]);
    if (ours(frames) && !napiRecord) {
      fatal++;
      console.log(`!! ${path.basename(f)}: leak from our code\n${m[0].split('\n').slice(0, 20).join('\n')}\n`);
    } else {
      foreignLeaks++;
      foreignBytes += Number(m[2]);
      const top = (frames.find((l) => !/libclang_rt|malloc|calloc|realloc|operator new|strdup/.test(l)) || frames[0] || '?')
        .replace(/^ +#\d+ 0x[0-9a-f]+ in /, '').replace(/\(.*BuildId.*\)/, '').slice(0, 90);
      foreignTop.set(top, (foreignTop.get(top) || 0) + 1);
    }
  }
}
console.log(`== sanitizer reports: ${files.length} log file(s); ${fatal} finding(s) in our code; ` +
  `${foreignLeaks} leak record(s), ${foreignBytes} bytes, outside native/ (node/v8/libuv/openssl at exit, ignored)`);
for (const [k, v] of [...foreignTop].sort((a, b) => b[1] - a[1]).slice(0, 5)) console.log(`   ${v} x ${k}`);
process.exit(fatal ? 1 : 0);
JS
}

# Runs "$@" (env assignments allowed first) with the ASan runtime preloaded and
# every report logged under $LOGS (default $OUT/logs; files are named ubsan.<pid>
# for both runtimes, since the last log_path read wins). PRELOAD_AS=MF_WORKER_PRELOAD:
# named so for vitest.config.ts, which preloads it into the test workers only.
sanitized() {
  local logs=${LOGS:-$PWD/$OUT/logs}
  env "${PRELOAD_AS:-LD_PRELOAD}=$RT" ASAN_SYMBOLIZER_PATH="$SYMBOLIZER" \
    ASAN_OPTIONS="detect_leaks=1:exitcode=0:log_path=$logs/asan:detect_odr_violation=0:alloc_dealloc_mismatch=0:check_initialization_order=1" \
    LSAN_OPTIONS="exitcode=0:report_objects=0:max_leaks=0" \
    UBSAN_OPTIONS="print_stacktrace=1:log_path=$logs/ubsan" \
    "$@"
}

# --self-test: prove the judge sees a leak, a heap overflow and UB in an addon
# under native/ (a throwaway canary addon), and ignores Node's own leaks.
if [ "${1:-}" = --self-test ]; then
  C=$PWD/$OUT/canary
  rm -rf "$C"; mkdir -p "$C/native" "$C/logs"
  cat >"$C/native/canary.cc" <<'CC'
#include <node_api.h>
#include <climits>
#include <cstdlib>
#include <cstring>
static void* keep;
static napi_value run(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; char what[16] = "";
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_get_value_string_utf8(env, argv[0], what, sizeof what, nullptr);
  if (!strcmp(what, "leak")) { keep = malloc(77); keep = nullptr; }
  if (!strcmp(what, "overflow")) { volatile char* p = (char*)malloc(8); p[8] = 1; free((void*)p); }
  if (!strcmp(what, "ub")) { volatile int x = INT_MAX; volatile int y = x + int(argc); (void)y; }
  return nullptr;
}
NAPI_MODULE_INIT() { napi_value f; napi_create_function(env, "run", NAPI_AUTO_LENGTH, run, nullptr, &f); return f; }
CC
  "$CLANGXX" -std=c++20 -g -O0 -fPIC -shared -fsanitize=address,undefined -shared-libasan -isystem "$NODE_INC" \
    -o "$C/canary.node" "$C/native/canary.cc"
  for what in leak overflow ub; do
    LOGS=$C/logs sanitized node -e "require('$C/canary.node')('$what')" >/dev/null 2>&1 || true
  done
  set +e
  out=$(judge "$C/logs"); jrc=$?
  set -e
  echo "$out" | grep -E '^!!' | sed 's/^!! /   caught (planted): /'
  if [ $jrc -eq 1 ] && grep -q 'leak from our code' <<<"$out" && grep -q 'AddressSanitizer error' <<<"$out" \
     && grep -q 'UBSan' <<<"$out"; then
    echo "== self-test ok: leak, heap overflow and UB in native/ are caught"; exit 0
  fi
  echo "!! self-test FAILED: the judge missed a planted finding"; exit 1
fi

mkdir -p "$OUT/obj" "$OUT/logs"
# Everything the objects depend on: rebuild when any of it changes.
stamp=$( { cat binding.gyp "$SELF" native/*.cc native/*.h "$NODE_INC/node_version.h" "$NAPI_INC/napi.h"
           "$CLANGXX" --version; echo "$NODE_INC $NAPI_INC"; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$OUT/build.stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$OUT/mailfront.node" ] && [ -f "$OUT/mailfront_testing.so" ]; then
  echo "== $OUT/mailfront.node and mailfront_testing.so are up to date (-fsanitize=address,undefined)"
else
rm -f "$OUT/build.stamp"
echo "== building $OUT/mailfront.node and mailfront_testing.so with -fsanitize=address,undefined (${#SOURCES[@]} sources)"
t0=$(date +%s)
objs=()
pids=()
for s in "${SOURCES[@]}"; do
  o=$OUT/obj/$(basename "${s%.cc}").o
  objs+=("$o")
  "$CLANGXX" -std=c++20 -g -O1 -fPIC -fno-omit-frame-pointer -fsanitize=address,undefined \
    -fvisibility=hidden -Wall -Wextra -Wno-unused-parameter "${DEFINES[@]}" \
    -isystem "$NODE_INC" -isystem "$NAPI_INC" -c "$s" -o "$o" &
  pids+=($!)
  # Two at a time.
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p"; done
# -shared-libasan: the runtime comes from the preloaded libclang_rt.asan; the
# node binary provides the N-API and OpenSSL symbols at load time.
# The production addon without the tests' functions; the tests' addon (found by
# test/helpers/testing-addon.ts beside MAILFRONT_ADDON) without the production init.
main_objs=() testing_objs=()
for o in "${objs[@]}"; do
  [ "$(basename "$o")" = test_exports.o ] || main_objs+=("$o")
  [ "$(basename "$o")" = addon.o ] || testing_objs+=("$o")
done
"$CLANGXX" -shared -fsanitize=address,undefined -shared-libasan -o "$OUT/mailfront.node" "${main_objs[@]}"
"$CLANGXX" -shared -fsanitize=address,undefined -shared-libasan -o "$OUT/mailfront_testing.so" "${testing_objs[@]}"
echo "$stamp" >"$OUT/build.stamp"
echo "   built in $(( $(date +%s) - t0 ))s"
fi
[ "${1:-}" = --build-only ] && exit 0
rm -f "$OUT"/logs/*

ARGS=("$@")
[ ${#ARGS[@]} -gt 0 ] || ARGS=(test/native)

echo "== vitest ${ARGS[*]} under ASan/UBSan (LD_PRELOAD=$RT in the test workers)"
t0=$(date +%s)
set +e
PRELOAD_AS=MF_WORKER_PRELOAD sanitized MAILFRONT_ADDON="$PWD/$OUT/mailfront.node" \
  timeout --signal=KILL 900 node node_modules/vitest/vitest.mjs run "${ARGS[@]}" >"$OUT/vitest.log" 2>&1
rc=$?
set -e
echo "   vitest exit $rc in $(( $(date +%s) - t0 ))s: $(grep -E '^ +Tests ' "$OUT/vitest.log" | tr -s ' ' | head -1)"

# ---- judge the reports ----
set +e
judge "$OUT/logs"
judged=$?
set -e
if [ $rc -ne 0 ]; then
  echo "!! the native tests failed under the sanitizers: see $OUT/vitest.log"
  tail -n 30 "$OUT/vitest.log"
  exit 1
fi
exit $judged
