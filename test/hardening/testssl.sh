#!/usr/bin/env bash
# testssl.sh (Debian package `testssl.sh`, 3.0.x) against one mailfront listener.
#   test/hardening/testssl.sh NAME PORT [imap|pop3]   (third argument: STARTTLS protocol)
# Checks: protocols (-p), standard cipher lists (-s), forward secrecy (-f),
# vulnerabilities (-U). Keeps the text report in docs/testssl/NAME.txt (the
# command on its first line) and the JSON in tmp/hardening/testssl/NAME.json.
# Bounded: 600 s. Debian's testssl 3.0.8 has no `-t sieve`; the sieve listener
# is covered by test/hardening/hostile.test.ts (openssl s_client -starttls sieve).
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1 port=$2 starttls=${3:-}
command -v testssl >/dev/null || { echo "testssl missing: apt-get install testssl.sh" >&2; exit 2; }
mkdir -p docs/testssl tmp/hardening/testssl
json=tmp/hardening/testssl/$name.json
rm -f "$json"
args=(--quiet --color 0 --warnings batch --nodns none --ip 127.0.0.1 --connect-timeout 5 --openssl-timeout 5
      -p -s -f -U --jsonfile "$json")
[ -n "$starttls" ] && args+=(-t "$starttls")
cmd="testssl ${args[*]} 127.0.0.1:$port"
{
  echo "# $cmd"
  echo "# listener: $name  date: $(date -u +%FT%TZ)  testssl: $(testssl --version 2>/dev/null | grep -o 'testssl *[0-9.]*' | head -1)"
  timeout 600 testssl "${args[@]}" "127.0.0.1:$port" 2>&1 | sed -e 's/\x1b\[[0-9;]*m//g' || true
} > "docs/testssl/$name.txt"
test -s "$json"
