#!/usr/bin/env bash
# The prebuilt addon the npm package ships (run by `npm pack` through prepack):
# one N-API binary for linux-x64 glibc, made by prebuildify into prebuilds/.
# It is built against the oldest supported Node's headers, Node 20 (OpenSSL 3.0's
# API): N-API is ABI-stable and OpenSSL keeps its ABI across 3.x, so that binary
# loads on Node 20, 22, 24 and 26, whichever Node runs the pack. Built in a
# scratch folder: build/Release of this checkout stays as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
headers=20.20.2   # the pinned Node 20 of scripts/node-runtime.sh
if [ "$(node -v)" != "v$headers" ]; then
  export npm_config_nodedir
  npm_config_nodedir=$(bash scripts/node-runtime.sh 20)
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r package.json binding.gyp native "$stage/"
ln -s "$root/node_modules" "$stage/node_modules"
rm -rf prebuilds
# Without the tests' addon (binding.gyp: mailfront_testing), which is not shipped.
# JOBS: node-gyp compiles on every CPU (30 sources since the split; one at a time took minutes).
JOBS=${JOBS:-max} npm_package_config_node_gyp_mailfront_testing=false npx prebuildify --napi --strip --tag-libc --target "$headers" --out "$root" "$stage" >&2
ls prebuilds/linux-x64/*.node >/dev/null
