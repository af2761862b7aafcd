#!/usr/bin/env bash
# The data plane on a second runtime: Node 24 (OpenSSL 3.5), as `npm run test:node24`
# and as the second half of .ci/run. mailfront's addon uses the OpenSSL of the Node
# that loads it, so the native, service and end-to-end suites run again there:
#  1. with the addon that ships (build/Release, built on the machine's Node: the same
#     N-API binary the package carries as its prebuild), loaded by Node 24;
#  2. the native suite once more with an addon built from source against Node 24's
#     own headers (the install fallback where no prebuild fits), by node-gyp --nodedir.
# Arguments, if any, replace the suites of step 1 (e.g. test/native/groups.test.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
major=${MF_SECOND_NODE:-24}
runtime=$(bash scripts/node-runtime.sh "$major")
node="$runtime/bin/node"
export PATH="$runtime/bin:$PATH"   # children started as `node` run on it too
[ -d node_modules ] || npm ci
# Both addons: the production one and the tests' (mailfront_testing.so, binding.gyp).
[ -f build/Release/mailfront.node ] && [ -f build/Release/mailfront_testing.so ] || npx node-gyp rebuild -j 2
npx tsc -p tsconfig.json
echo "== Node $("$node" -v) with OpenSSL $("$node" -p process.versions.openssl): the shipped addon" >&2
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(test/native test/service test/e2e)
"$node" node_modules/vitest/vitest.mjs run "${suites[@]}"
[ $# -gt 0 ] && exit 0

# The source build, in its own folder so build/Release stays the machine Node's.
src="$PWD/.runtimes/build-node-$major"
rm -rf "$src" && mkdir -p "$src"
cp -r binding.gyp native "$src/"
ln -s "$PWD/node_modules" "$src/node_modules"
echo "== building the addon against Node $("$node" -v)'s headers ($runtime/include/node)" >&2
(cd "$src" && "$node" "$OLDPWD/node_modules/node-gyp/bin/node-gyp.js" rebuild -j 2 --loglevel=warn --nodedir="$runtime" >/dev/null)
# The tests' own addon (mailfront_testing.so) is built too, and found beside MAILFRONT_ADDON.
MAILFRONT_ADDON="$src/build/Release/mailfront.node" "$node" node_modules/vitest/vitest.mjs run test/native
