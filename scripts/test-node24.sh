#!/usr/bin/env bash
# The data plane on a second runtime: Node 24 (OpenSSL 3.5), as `npm run test:node24`
# and as the second half of .ci/run. mailfront's addon uses the OpenSSL of the Node
# that loads it, so the native, service and end-to-end suites run again there:
#  1. with the addon that ships (build/Release, built on the machine's Node: the same
#     N-API binary the package carries as its prebuild), loaded by Node 24;
#  2. the native suite once more with an addon built from source against Node 24's
#     own headers (the install fallback where no prebuild fits), by node-gyp --nodedir.
# Both native runs go beside step 1's end-to-end and service suites (see below).
# Arguments, if any, replace the suites of step 1 (e.g. test/native/groups.test.ts).
# --build-only: fetch the runtime and make the source build of step 2, nothing else
# (.ci/run runs it niced while npm test runs). That build is reused while its stamp
# (a hash of native/, binding.gyp, node-addon-api, the runtime and this script) matches.
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$0")/.."
major=${MF_SECOND_NODE:-24}
runtime=$(bash scripts/node-runtime.sh "$major")
node="$runtime/bin/node"
export PATH="$runtime/bin:$PATH"   # children started as `node` run on it too
[ -d node_modules ] || npm ci

# Step 2's source build, in its own folder so build/Release stays the machine Node's.
src="$PWD/.runtimes/build-node-$major"
build_from_source() {
  local stamp
  stamp=$( { cat binding.gyp "$SELF" native/*.cc native/*.h node_modules/node-addon-api/napi.h; echo "$runtime"; } \
    | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$src/build.stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$src/build/Release/mailfront.node" ] \
     && [ -f "$src/build/Release/mailfront_testing.so" ]; then
    echo "== the addon built against Node $("$node" -v)'s headers is up to date ($src)" >&2
    return 0
  fi
  rm -rf "$src" && mkdir -p "$src"
  cp -r binding.gyp native "$src/"
  ln -s "$PWD/node_modules" "$src/node_modules"
  echo "== building the addon against Node $("$node" -v)'s headers ($runtime/include/node)" >&2
  (cd "$src" && "$node" "$OLDPWD/node_modules/node-gyp/bin/node-gyp.js" rebuild -j 2 --loglevel=warn --nodedir="$runtime" >/dev/null)
  echo "$stamp" >"$src/build.stamp"
}
if [ "${1:-}" = --build-only ]; then build_from_source; exit 0; fi
# Both addons: the production one and the tests' (mailfront_testing.so, binding.gyp).
[ -f build/Release/mailfront.node ] && [ -f build/Release/mailfront_testing.so ] || npx node-gyp rebuild -j 2
npx tsc -p tsconfig.json
echo "== Node $("$node" -v) with OpenSSL $("$node" -p process.versions.openssl): the shipped addon" >&2
if [ $# -gt 0 ]; then "$node" node_modules/vitest/vitest.mjs run "$@"; exit 0; fi

# Step 2's addon: .ci/run builds it at the lowest priority while npm test runs
# (--build-only), so here its stamp is found up to date; else it is built now.
build_from_source
# Files run one at a time within a vitest run (vitest.config.ts). Two runs at once:
# the end-to-end and service suites (step 1), which mostly wait on Cyrus, Dovecot
# and python, and beside them the native suite of step 1, then of step 2 (the
# tests' own addon, mailfront_testing.so, is found beside MAILFRONT_ADDON). Native
# listeners are on port 0, the others below the ephemeral range
# (test/helpers/mailfront.ts). The native runs in their own session, output after.
native_log=.runtimes/native-node-$major.log
setsid -w env NODE24="$node" BUILT="$src/build/Release/mailfront.node" bash -c '
  rc=0
  "$NODE24" node_modules/vitest/vitest.mjs run test/native || rc=1
  echo "== step 2: the native suite with the addon built against the headers of Node $("$NODE24" -v) ($BUILT)"
  MAILFRONT_ADDON="$BUILT" "$NODE24" node_modules/vitest/vitest.mjs run test/native || rc=1
  exit $rc' >"$native_log" 2>&1 &
native=$!
trap 'kill -- -$native 2>/dev/null || true' EXIT
rc=0
"$node" node_modules/vitest/vitest.mjs run test/e2e test/service || rc=1
wait "$native" || rc=1
trap - EXIT
echo "== Node $("$node" -v): step 1's native suite, then step 2's (run beside test/e2e and test/service)" >&2
cat "$native_log"
exit $rc
