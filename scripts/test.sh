#!/usr/bin/env bash
# The test command (README): what the suites need, a fresh build, every vitest
# suite, then the hardening checks (fuzz targets for a bounded time, the native
# suite under ASan/UBSan).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d node_modules ] || npm ci
# Both addons: the production one and the tests' (mailfront_testing.so, binding.gyp).
[ -f build/Release/mailfront.node ] && [ -f build/Release/mailfront_testing.so ] || npx node-gyp rebuild -j 2
npx tsc -p tsconfig.json
if [ $# -gt 0 ]; then npx vitest run "$@"; exit 0; fi   # a chosen subset: vitest only
# The npm package (its prepack compiles the addon), the fuzz targets and the
# ASan/UBSan addon need no test to have run: they are made in that order at the
# lowest priority while vitest runs, so the tests keep the CPU they ask for. test/package
# takes that tarball while the tree is the same (test/package/pack.mjs: it waits
# for a pack still running, or packs itself); sanitize.sh and fuzz.sh find their
# builds up to date (or rebuild, showing the error).
mkdir -p tmp
# Its own session (low-priority.sh), so a failing vitest leaves no compiler behind.
bash scripts/low-priority.sh bash -c 'rc=0; MF_PACK_TIMEOUT_MS=1800000 node test/package/pack.mjs || rc=1
  bash scripts/fuzz.sh --build-only && bash scripts/sanitize.sh --build-only || rc=1; exit $rc' >tmp/prebuild.log 2>&1 &
prebuild=$!
lane=
trap 'kill -- -$prebuild 2>/dev/null || true; [ -z "$lane" ] || kill -- -$lane 2>/dev/null || true' EXIT

# Files run one at a time within a vitest run (vitest.config.ts). Two runs at once
# where that is safe: the end-to-end and package suites mostly wait on Cyrus,
# Dovecot, python and npm, and the native suite beside them listens on port 0
# (theirs are below the ephemeral range, test/helpers/mailfront.ts; Cyrus has its
# own blocks). The rest first, alone: the hardening suite loads the CPU.
npx vitest run --exclude 'test/e2e/**' --exclude 'test/package/**' --exclude 'test/native/**'
# The native run in its own session, so a failure here leaves nothing behind; its output after.
setsid -w npx vitest run test/native >tmp/native.log 2>&1 &
lane=$!
# test/package last, so the pack made in the background has the longest time.
e2e=0
npx vitest run test/e2e || e2e=1
npx vitest run test/package || e2e=1
native=0
wait "$lane" || native=1
lane=
echo "== test/native (run beside test/e2e and test/package)"
cat tmp/native.log
[ $e2e = 0 ] && [ $native = 0 ] || exit 1

bash scripts/low-priority.sh --raise "$prebuild"   # what is left now holds the tests up
wait "$prebuild" || echo "(the early build failed, see tmp/prebuild.log: building again)" >&2
trap - EXIT
bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
bash scripts/sanitize.sh --self-test
bash scripts/sanitize.sh
