#!/usr/bin/env bash
# The test command: build the addon and the TypeScript if needed, then every suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/Release/mailfront.node ] || npx node-gyp rebuild
npx tsc -p tsconfig.json
npx vitest run "$@"
