#!/usr/bin/env bash
# The test command (README): what the suites need, a fresh build, then every suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d node_modules ] || npm ci
[ -f build/Release/mailfront.node ] || npx node-gyp rebuild -j 2
npx tsc -p tsconfig.json
npx vitest run "$@"
