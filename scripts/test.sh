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
# ASan/UBSan addon need no test to have run: they are made at the lowest priority
# while vitest runs (its files run one at a time and mostly wait on sockets and
# child processes), so the tests keep the CPU they ask for. The package first:
# test/package takes that tarball while the tree is the same (test/package/pack.mjs;
# it waits for a pack still running, or packs itself), fuzz.sh and sanitize.sh
# find their builds up to date (or rebuild, showing the error).
mkdir -p tmp
# Its own session (low-priority.sh), so a failing vitest leaves no compiler behind.
bash scripts/low-priority.sh bash -c 'rc=0; node test/package/pack.mjs || rc=1
  bash scripts/fuzz.sh --build-only && bash scripts/sanitize.sh --build-only || rc=1; exit $rc' >tmp/prebuild.log 2>&1 &
prebuild=$!
trap 'kill -- -$prebuild 2>/dev/null || true' EXIT
npx vitest run
bash scripts/low-priority.sh --raise "$prebuild"   # what is left now holds the tests up
wait "$prebuild" || echo "(the early build failed, see tmp/prebuild.log: building again)" >&2
trap - EXIT
bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
bash scripts/sanitize.sh --self-test
bash scripts/sanitize.sh
