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
npx vitest run "$@"
[ $# -gt 0 ] && exit 0   # a chosen subset: vitest only
bash scripts/fuzz.sh "${FUZZ_SECONDS:-10}"
bash scripts/sanitize.sh --self-test
bash scripts/sanitize.sh
